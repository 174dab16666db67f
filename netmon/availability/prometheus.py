"""A journal slice rebuilt from Prometheus, for `netmon report --from-prometheus URL`: for users
whose history lives in Prometheus rather than in netmon's outage journal.

It reads the recording rule `netmon:target_up` (deploy/prometheus/rules/netmon-recording.yml:
`max by (target) (netmon_target_up)`, one series per target, an HA pair's replicas merged)
with `query_range` at a fixed step, and turns it into the journal's evidence:

- each sample holds for one step: 1 is up, 0 is down; no sample is unknown (netmon had no
  verdict on the target, or was not running, or was not scraped);
- runs: the spans where the series has a sample for any target at all (netmon ran and was
  scraped);
- changes: per target, one at each change of state (the reason is unknown to Prometheus: none);
- district links (`link:<parent>`): the parent target's own series, down (reason
  "unreachable") while the parent is down. The journal's richer rule (the parent's uplink
  interface down, or most of the targets behind it down, while the parent still answers) is
  not available from this metric, so a link can only be cut here when its parent is down;
- maintenance windows: the config's `availability.maintenance`, as the recorder writes them;
- readiness checks: none (they are not in Prometheus); nor the link-quality alerts behind the
  quality figure (`availability.degraded`): `netmon report` leaves that figure out.

Prometheus answers at most 11,000 points per series and query: longer periods are asked in
chunks. Its lookback (5 min by default) fills a gap without staleness markers, e.g. while
Prometheus itself was down, with the last sample before it; netmon stopping or a target losing
its verdict ends the series at once (staleness markers).
"""

from __future__ import annotations

import base64
import bisect
import itertools
import json
import math
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from netmon.availability.accounting import LINK
from netmon.availability.db import Change, JournalSlice, Run, Window
from netmon.availability.report import in_scope
from netmon.config.availability import AvailabilityConfig
from netmon.inventory import Inventory

RECORDED = "netmon:target_up"
DEFAULT_STEP = 15.0
MAX_POINTS = 11_000  # Prometheus refuses a query_range with more points per series
TIMEOUT = 30.0  # seconds per request: connect and every read

# (first step, step after the last, value): a span of steps with the same value.
Segment = tuple[int, int, int]


class PrometheusError(Exception):
    """Prometheus unreachable, or an error answer: the message names its URL (no credentials)."""


@dataclass(frozen=True, slots=True)
class PrometheusSource:
    url: str
    step: float = DEFAULT_STEP
    timeout: float = TIMEOUT

    def __post_init__(self) -> None:
        if not self.step > 0:
            raise ValueError(f"the step must be positive, not {self.step}")
        parts = urllib.parse.urlsplit(self.url)
        if "@" in parts.scheme + parts.path + parts.query + parts.fragment:
            # A password with / ? # (or no scheme): the URL would be split inside the password,
            # and redact() would show it. Not a word of the URL, then.
            raise ValueError(
                "the Prometheus URL: write it as http(s)://user:password@host:port/, the user "
                "and password percent-encoded (/ ? # @ : as %2F %3F %23 %40 %3A)"
            )
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) URL: {redact(self.url)}")

    def describe(self) -> str:
        """What the report's policy says its evidence came from."""
        return f"prometheus {redact(self.url)} {RECORDED}, step {self.step:g} s"


def redact(url: str) -> str:
    """The URL without its user and password."""
    parts = urllib.parse.urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = host + (f":{parts.port}" if parts.port is not None else "")
    return urllib.parse.urlunsplit(parts._replace(netloc=netloc))


def read_prometheus(
    source: PrometheusSource,
    inventory: Inventory,
    config: AvailabilityConfig,
    start: float,
    end: float,
    *,
    scope: Mapping[str, str] | None = None,
) -> JournalSlice:
    """The slice a report over [start, end) reads, from Prometheus: the series of the targets
    in scope and of their parents (their links)."""
    targets = inventory.targets
    wanted: set[str] | None = None
    scope = {k: v for k, v in (scope or {}).items() if v}
    if scope:
        wanted = set()
        for target in targets.values():
            if in_scope(target, scope):
                wanted.add(target.id)
                parent = target.parent
                while parent is not None and parent in targets and parent not in wanted:
                    wanted.add(parent)
                    parent = targets[parent].parent
    parents = sorted({t.parent for t in targets.values() if t.parent and t.parent in targets})
    series = fetch_series(source, start, end, wanted)
    return slice_from_series(
        series, start, end, source.step, parents, maintenance_windows(config, start, end)
    )


def maintenance_windows(config: AvailabilityConfig, start: float, end: float) -> list[Window]:
    """The configured windows touching [start, end), as the recorder keeps them."""
    windows = [Window.configured(w) for w in config.maintenance]
    return sorted(
        (w for w in windows if w.starts < end and w.ends > start), key=lambda w: (w.starts, w.id)
    )


# --- Prometheus ------------------------------------------------------------------------------


def fetch_series(
    source: PrometheusSource, start: float, end: float, targets: Collection[str] | None = None
) -> dict[str, list[Segment]]:
    """Per target, its samples over [start, end) as segments of steps (step k is
    start + k * step), in chunks of at most MAX_POINTS steps."""
    selector = RECORDED
    if targets is not None:
        if not targets:
            return {}
        pattern = "|".join(_re2_escape(t) for t in sorted(targets))
        selector = f"{RECORDED}{{target=~{json.dumps(pattern)}}}"
    steps = max(0, math.ceil((end - start) / source.step))
    found: dict[str, list[list[Segment]]] = {}
    for first in range(0, steps, MAX_POINTS):
        last = min(first + MAX_POINTS, steps) - 1
        answer = query_range(
            source, selector, start + first * source.step, start + last * source.step
        )
        for series in answer:
            target = series.get("metric", {}).get("target")
            if not isinstance(target, str):
                continue
            segments = _segments(
                (round((float(at) - start) / source.step), _value(value))
                for at, value in series.get("values", [])
            )
            found.setdefault(target, []).append(segments)
    return {target: _combine(lists) for target, lists in found.items()}


def query_range(
    source: PrometheusSource, expr: str, start: float, end: float
) -> list[dict[str, Any]]:
    """One `query_range` (POST: a long target list fits); its matrix."""
    parts = urllib.parse.urlsplit(source.url)
    base = urllib.parse.urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2]))
    headers = {"Content-Type": "application/x-www-form-urlencoded", "Accept": "application/json"}
    if parts.username is not None:
        user = urllib.parse.unquote(parts.username)
        password = urllib.parse.unquote(parts.password or "")
        token = base64.b64encode(f"{user}:{password}".encode()).decode()
        headers["Authorization"] = f"Basic {token}"
    body = urllib.parse.urlencode(
        {"query": expr, "start": repr(start), "end": repr(end), "step": repr(source.step)}
    ).encode()
    request = urllib.request.Request(  # noqa: S310 - the scheme is checked: http(s) only
        base.rstrip("/") + "/api/v1/query_range", data=body, headers=headers, method="POST"
    )
    where = f"Prometheus at {redact(source.url)}"
    try:
        with _NO_REDIRECTS.open(request, timeout=source.timeout) as response:
            raw = response.read()
    except urllib.error.HTTPError as exc:
        raise PrometheusError(f"{where} answered {exc.code}: {_error_of(exc.read())}") from None
    except (urllib.error.URLError, OSError) as exc:
        reason = exc.reason if isinstance(exc, urllib.error.URLError) else exc
        raise PrometheusError(f"{where} is unreachable: {reason}") from None
    try:
        answer = json.loads(raw)
    except ValueError:
        raise PrometheusError(f"{where} answered something else than JSON") from None
    if not isinstance(answer, dict) or answer.get("status") != "success":
        raise PrometheusError(f"{where} answered an error: {_error_of(raw)}")
    data = answer.get("data") or {}
    if data.get("resultType") != "matrix":
        raise PrometheusError(f"{where} answered no matrix for {expr}")
    result: list[dict[str, Any]] = data.get("result") or []
    return result


class _Refuse(urllib.request.HTTPRedirectHandler):
    """A redirect is an answer (3xx), never followed: urllib would carry the Authorization
    header, and so the password, to whatever host it names."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


_NO_REDIRECTS = urllib.request.build_opener(_Refuse)


def _error_of(body: bytes) -> str:
    try:
        answer = json.loads(body)
        return f"{answer.get('errorType', 'error')}: {answer.get('error', '')}"
    except (ValueError, AttributeError):
        return body[:200].decode(errors="replace").strip() or "(no body)"


def _re2_escape(text: str) -> str:
    return "".join(c if c.isalnum() or c == "_" else "\\" + c for c in text)


def _value(text: object) -> int:
    """1 up (any vantage point reaches it), 0 down."""
    try:
        return 1 if float(str(text)) > 0 else 0
    except ValueError:
        return 0


# --- from series to evidence -----------------------------------------------------------------


def _segments(samples: Iterable[tuple[int, int]]) -> list[Segment]:
    out: list[Segment] = []
    for step, value in samples:
        if out and out[-1][1] == step and out[-1][2] == value:
            out[-1] = (out[-1][0], step + 1, value)
        elif not out or out[-1][1] <= step:
            out.append((step, step + 1, value))
    return out


def _combine(lists: Sequence[list[Segment]]) -> list[Segment]:
    """Several series of one target (chunks, or series the rule did not merge): the highest
    value at each step (up if any says up), adjacent equal segments joined."""
    if len(lists) == 1:
        return lists[0]
    cuts = sorted({k for segments in lists for s in segments for k in s[:2]})
    values: dict[int, int] = {}
    for segments in lists:
        for first, after, value in segments:
            for k in cuts[_index(cuts, first) : _index(cuts, after)]:
                values[k] = max(values.get(k, value), value)
    out: list[Segment] = []
    for k, after in itertools.pairwise(cuts):
        highest = values.get(k)
        if highest is None:
            continue
        if out and out[-1][1] == k and out[-1][2] == highest:
            out[-1] = (out[-1][0], after, highest)
        else:
            out.append((k, after, highest))
    return out


def _index(cuts: list[int], k: int) -> int:
    return bisect.bisect_left(cuts, k)


def slice_from_series(
    series: Mapping[str, list[Segment]],
    start: float,
    end: float,
    step: float,
    parents: Iterable[str],
    windows: list[Window],
) -> JournalSlice:
    """The journal's evidence from segments of steps (pure)."""

    def at(k: int) -> float:
        return min(start + k * step, end)

    covered = sorted((first, after) for segments in series.values() for first, after, _ in segments)
    spans: list[tuple[int, int]] = []
    for first, after in covered:
        if spans and first <= spans[-1][1]:
            spans[-1] = (spans[-1][0], max(spans[-1][1], after))
        else:
            spans.append((first, after))
    runs = [Run(at(first), at(after), at(after)) for first, after in spans]
    subjects: dict[str, tuple[list[Segment], str | None]] = {
        target: (segments, None) for target, segments in series.items()
    }
    for parent in parents:
        if parent in series:
            subjects[LINK + parent] = (series[parent], "unreachable")
    changes: list[Change] = []
    for subject, (segments, down_reason) in sorted(subjects.items()):
        for index, (first, after, value) in enumerate(segments):
            state = "up" if value else "down"
            changes.append(Change(subject, at(first), state, None if value else down_reason))
            following = segments[index + 1][0] if index + 1 < len(segments) else None
            if following != after and at(after) < end:
                changes.append(Change(subject, at(after), "unknown"))  # the series stops
    return JournalSlice(
        start=start, end=end, runs=runs, changes=changes, windows=windows, checks=[]
    )

"""The accounting: from the journal's evidence to a report's figures, by the policy's rules.

Pure (no I/O, no clock): the journal slice, the targets and the config in, a `Report` out.
Every second of the period is classified once per subject, in the policy's order
(policy.PRECEDENCE): maintenance, unknown, behind a cut parent link, down, up.
"""

from __future__ import annotations

import bisect
import datetime as dt
import fnmatch
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from netmon.alerting.model import fingerprint
from netmon.availability import intervals as iv
from netmon.availability.calendar import day_bounds, days_of
from netmon.availability.db import Change, JournalSlice, Run, Window
from netmon.availability.intervals import Spans
from netmon.availability.model import (
    NO_FIGURES,
    DistrictSummary,
    Figures,
    MeetingReport,
    MeetingRoom,
    Piece,
    SubjectReport,
)
from netmon.availability.quality import CallQuality
from netmon.config.rules import Rule
from netmon.inventory import Target

GROUP_ALERT = "DistrictUnreachable"  # netmon.alerting.topology's name for a cut parent
LINK = "link:"
QUALITY = "~quality"  # a target's link quality: down while a quality alert fires


@dataclass(frozen=True, slots=True)
class Timeline:
    """A subject's known states over the period: up spans, and down spans with netmon's reason."""

    up: Spans
    down: list[tuple[float, float, str | None]]

    @property
    def down_spans(self) -> Spans:
        return iv.normal((s, e) for s, e, _ in self.down)


@dataclass(frozen=True, slots=True)
class Meeting:
    name: str
    start: float
    end: float
    rooms: Sequence[Target]


def coverage(runs: Sequence[Run], changes: Sequence[Change]) -> list[tuple[float, float]]:
    """When netmon ran: each run from its start to its stop, else to its last heartbeat (or its
    last recorded change, if later), never past the next run's start."""
    last_change: dict[int, float] = {}
    starts = [run.started for run in runs]
    for change in changes:
        index = _run_of(starts, change.at)
        if index is not None:
            last_change[index] = max(last_change.get(index, change.at), change.at)
    spans = []
    for index, run in enumerate(runs):
        end = max(run.ended, last_change.get(index, run.ended))
        if index + 1 < len(runs):
            end = min(end, runs[index + 1].started)
        spans.append((run.started, end))
    return spans


def _run_of(starts: Sequence[float], at: float) -> int | None:
    """The run a moment falls in: the last begun at or before it (starts ascending)."""
    index = bisect.bisect_right(starts, at) - 1
    return index if index >= 0 else None


def timeline(changes: Sequence[Change], runs: Sequence[tuple[float, float]]) -> Timeline:
    """A subject's states: each run starts unknown; a change holds until the next change of
    that run or the run's end."""
    up: Spans = []
    down: list[tuple[float, float, str | None]] = []
    ordered = sorted(changes, key=lambda c: c.at)
    times = [c.at for c in ordered]
    for run_start, run_end in runs:
        inside = ordered[bisect.bisect_left(times, run_start) : bisect.bisect_left(times, run_end)]
        for index, change in enumerate(inside):
            until = inside[index + 1].at if index + 1 < len(inside) else run_end
            if change.state == "up":
                up.append((change.at, until))
            elif change.state == "down":
                down.append((change.at, until, change.reason))
    return Timeline(iv.normal(up), down)


def target_labels(target: Target) -> dict[str, str]:
    return {
        "target": target.id,
        "district": target.district,
        "group": target.group,
        "kind": target.kind,
        "site": target.site,
    }


def windows_for(windows: Iterable[Window], labels: Mapping[str, str]) -> list[Window]:
    return [
        w
        for w in windows
        if all(fnmatch.fnmatchcase(labels.get(k, ""), glob) for k, glob in w.matchers.items())
    ]


def down_alert(target: Target, rules: Mapping[str, Rule]) -> str:
    """The alert netmon fires when this target is down (EndpointDown, TargetDown, ...)."""
    for name, rule in rules.items():
        if (
            rule.metric == "down"
            and rule.enabled
            and (rule.kinds is None or target.kind in rule.kinds)
        ):
            return name
    return "TargetDown"


def probe_alert(rules: Mapping[str, Rule]) -> str:
    """The alert netmon fires when a service probe fails (ProbeFailed)."""
    found = (name for name, rule in rules.items() if rule.metric == "probe_failed" and rule.enabled)
    return next(found, "ProbeFailed")


class Accountant:
    """Figures and evidence per subject over one period."""

    def __init__(
        self,
        journal: JournalSlice,
        targets: Mapping[str, Target],
        rules: Mapping[str, Rule],
        office: Spans,
        timezone: str,
        unknown_is_down: bool = False,
        degraded: bool = False,
    ) -> None:
        self.degraded = degraded
        self.start, self.end = journal.start, journal.end
        self.period: Spans = [(self.start, self.end)]
        self._targets = targets
        self._rules = rules
        self._office = office
        self._zone = ZoneInfo(timezone)
        self._unknown_is_down = unknown_is_down
        self._windows = journal.windows
        self.runs = coverage(journal.runs, journal.changes)
        self.gaps = iv.subtract(self.period, iv.normal(self.runs))
        by_subject: dict[str, list[Change]] = {}
        for change in journal.changes:
            by_subject.setdefault(change.subject, []).append(change)
        self._changes = by_subject
        self._timelines: dict[str, Timeline] = {}
        self.days = days_of(self.start, self.end, self._zone)

    def timeline(self, subject: str) -> Timeline:
        found = self._timelines.get(subject)
        if found is None:
            found = self._timelines[subject] = timeline(self._changes.get(subject, []), self.runs)
        return found

    def ancestors(self, target: Target) -> list[Target]:
        """Parents, nearest first."""
        chain, seen = [], {target.id}
        parent = self._targets.get(target.parent) if target.parent else None
        while parent is not None and parent.id not in seen:
            chain.append(parent)
            seen.add(parent.id)
            parent = self._targets.get(parent.parent) if parent.parent else None
        return chain

    def subject(
        self, target: Target, *, link: bool = False, service: str | None = None
    ) -> SubjectReport:
        """A site's figures and evidence; its district link's (`link`); one of its service
        probes' (`service`: the probe's name), charged to a cut link as the site is."""
        subject = LINK + target.id if link else target.id
        if service is not None:
            subject = target.id + "/" + service
        line = self.timeline(subject)
        windows = windows_for(self._windows, target_labels(target))
        maintenance = iv.clip(iv.normal((w.starts, w.ends) for w in windows), self.start, self.end)
        cut = [(a, iv.clip(self.timeline(LINK + a.id).down_spans, self.start, self.end))
               for a in self.ancestors(target)]  # fmt: skip
        behind = iv.union(*(spans for _, spans in cut))
        up, down = (
            iv.clip(line.up, self.start, self.end),
            iv.clip(line.down_spans, self.start, self.end),
        )
        rest = iv.subtract(self.period, maintenance)
        unknown = iv.subtract(rest, iv.union(up, down))
        known = iv.subtract(rest, unknown)
        parent = iv.intersect(known, behind)
        counted_down = iv.subtract(iv.intersect(down, known), parent)
        counted_up = iv.subtract(iv.intersect(up, known), parent)
        if self._unknown_is_down:
            counted_down, unknown = iv.union(counted_down, unknown), []
        parts = (counted_up, counted_down, unknown, maintenance, parent)
        quality = None
        if self.degraded and not link and service is None:
            bad = iv.intersect(counted_up, self.timeline(target.id + QUALITY).down_spans)
            quality = self._figures(
                self.period, iv.subtract(counted_up, bad), iv.union(counted_down, bad),
                unknown, maintenance, parent,
            )  # fmt: skip
        alertname = GROUP_ALERT if link else down_alert(target, self._rules)
        labels = {}
        if service is not None:
            alertname, labels = probe_alert(self._rules), {"probe": service}
        return SubjectReport(
            subject=subject,
            name=target.display_name,
            district=target.district,
            group=target.group,
            kind=target.kind,
            parent=target.parent,
            total=self._figures(self.period, *parts),
            office=self._figures(self._office, *parts),
            pieces=self._pieces(target, line, windows, cut, (alertname, labels), unknown),
            daily=[self._day(day, counted_up, counted_down) for day in self.days],
            quality=quality,
            down_by_hour=self._by_hour(counted_down),
        )

    def _figures(self, within: Spans, up: Spans, down: Spans, unknown: Spans,
                 maintenance: Spans, parent: Spans) -> Figures:  # fmt: skip
        def seconds(spans: Spans) -> float:
            return iv.total(iv.intersect(spans, within))

        return Figures(
            iv.total(within),
            seconds(up),
            seconds(down),
            seconds(unknown),
            seconds(maintenance),
            seconds(parent),
        )

    def _pieces(
        self,
        target: Target,
        line: Timeline,
        windows: list[Window],
        cut: list[tuple[Target, Spans]],
        alert: tuple[str, dict[str, str]],
        unknown: Spans,
    ) -> list[Piece]:
        pieces: list[Piece] = []
        alertname = alert[0]
        outages = iv.normal((s, e) for s, e, _ in line.down)
        own_alert = fingerprint(alertname, target.id, alert[1])
        downs = sorted(line.down, key=lambda d: d[0])
        first = 0  # each down span belongs to one outage: walk them once, not per outage
        for number, (start, end) in enumerate(outages, 1):
            while first < len(downs) and downs[first][1] <= start:
                first += 1
            mine = []
            while first < len(downs) and downs[first][0] < end:
                mine.append(downs[first])
                first += 1
            if end <= self.start or start >= self.end:
                continue
            split = start < self.start or end > self.end
            left = iv.clip([(start, end)], self.start, self.end)
            # (spans, cause, alert, excluded, why, reason); the first that claims a second has
            # it (policy.PRECEDENCE).
            causes: list[tuple[Spans, str, str | None, bool, str | None, str | None]] = []
            for window in windows:
                why = f"maintenance {window.id}" + (f": {window.comment}" if window.comment else "")
                causes.append(
                    ([(window.starts, window.ends)], "maintenance", None, True, why, None)
                )
            for ancestor, spans in cut:
                charged = f"charged to the link of {ancestor.display_name}"
                link_alert = fingerprint(GROUP_ALERT, ancestor.id, {})
                causes.append((spans, GROUP_ALERT, link_alert, True, charged, None))
            for s, e, reason in mine:
                causes.append(([(s, e)], alertname, own_alert, False, None, reason))
            for spans, cause, fingerprint_, excluded, because, reason in causes:
                for s, e in iv.intersect(left, spans):
                    pieces.append(
                        Piece(s, e, cause, fingerprint_, excluded, because, reason, number, split)
                    )
                left = iv.subtract(left, spans)
        if self._unknown_is_down:
            pieces += [Piece(s, e, "unknown", None, False, None, "no data", 0) for s, e in unknown]
        return sorted(pieces, key=lambda p: (p.start, p.end))

    def _day(self, day: dt.date, up: Spans, down: Spans) -> float | None:
        bounds = [day_bounds(day, self._zone)]
        u, d = iv.total(iv.intersect(up, bounds)), iv.total(iv.intersect(down, bounds))
        return u / (u + d) if u + d > 0 else None

    def _by_hour(self, down: Spans) -> list[float]:
        hours = [0.0] * 24
        for start, end in down:
            cursor = start
            while cursor < end:
                local = dt.datetime.fromtimestamp(cursor, self._zone)
                following = (local.replace(minute=0, second=0, microsecond=0)
                             + dt.timedelta(hours=1)).timestamp()  # fmt: skip
                until = min(end, following)
                hours[local.hour] += until - cursor
                cursor = until
        return hours

    def meeting(
        self,
        meeting: Meeting,
        verdicts: Mapping[tuple[str, str], tuple[str, tuple[str, ...]]],
        quality: Mapping[str, CallQuality],
    ) -> MeetingReport:
        window = [(meeting.start, meeting.end)]
        rooms = []
        for room in meeting.rooms:
            line = self.timeline(room.id)
            up = iv.total(iv.intersect(line.up, window))
            down = iv.total(iv.intersect(line.down_spans, window))
            verdict, reasons = verdicts.get((meeting.name, room.id), (None, ()))
            length = meeting.end - meeting.start
            rooms.append(
                MeetingRoom(room.id, room.display_name, room.district, length, up, down,
                            length - up - down, verdict, reasons, quality.get(room.id))
            )  # fmt: skip
        return MeetingReport(meeting.name, meeting.start, meeting.end, rooms)


def district_summaries(
    sites: Sequence[SubjectReport],
    links: Sequence[SubjectReport],
    meetings: Sequence[MeetingReport],
    rooms: set[str],
) -> list[DistrictSummary]:
    """Per district: its rooms' figures summed (all its sites where it has no room), its links'
    summed, the office-hours figure of its rooms, its rooms' meeting availability."""
    names = sorted({s.district for s in sites} | {link.district for link in links})
    out = []
    for district in names:
        mine = [s for s in sites if s.district == district]
        counted = [s for s in mine if s.subject in rooms] or mine
        own_links = [link for link in links if link.district == district]
        up = down = 0.0
        for meeting in meetings:
            for room in meeting.rooms:
                if room.district == district:
                    up, down = up + room.up, down + room.down
        out.append(
            DistrictSummary(
                district=district,
                sites=sum((s.total for s in counted), NO_FIGURES),
                links=sum((link.total for link in own_links), NO_FIGURES),
                office=sum((s.office for s in counted), NO_FIGURES),
                meetings=up / (up + down) if up + down > 0 else None,
                outages=sum(s.outages for s in counted),
                down_seconds=sum(s.total.down for s in counted),
            )
        )
    return out

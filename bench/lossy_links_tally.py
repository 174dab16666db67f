"""What the lossy-links campaign's webhook events say, row by row, and whether a row met its goal.

Pure counting: given the alert events the receiver stamped, the campaign's start and end and
its cuts, it counts per row and per endpoint and judges each row against its `Goal`. No I/O, no
clock, no lab: `bench.lossy_links` runs the campaign, owns the goals table and prints what this
returns.

Counting rules (issue 13): a *loss notification* is a firing event of HighPacketLoss or
LinkUnstable; a change of severity of a firing alert arrives as another firing event and counts
as another notification (so does the firing event that marks an alert flapping). A *false down*
is a firing event of EndpointDown on a row without a cut (on the cut row: one outside its cut).
Events count when netmon decided them (`event_at`) between the start and the end of the run;
times to a notification run to its arrival at the receiver, which is what a pager sees.
"""

from __future__ import annotations

import datetime as dt
import math
import statistics
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

DOWN_ALERT = "EndpointDown"
LOSS_ALERTS = ("HighPacketLoss", "LinkUnstable")


@dataclass(frozen=True)
class Goal:
    """One row's goal as data. None (or empty) leaves that part out of the row's goal."""

    false_down: int | None = 0  # EndpointDown firing events in the row, at most
    max_per_endpoint: int | None = None  # counted notifications of one endpoint, at most
    exactly_per_endpoint: int | None = None  # counted notifications of every endpoint, exactly
    per_endpoint_hour: float | None = None  # counted notifications per endpoint-hour, at most
    severities: tuple[str, ...] = ()  # every counted notification has one of these severities
    within: float | None = None  # seconds from the start to each endpoint's first, at most
    within_median: float | None = None  # the same, median over the endpoints notified
    share: float = 1.0  # of the endpoints that must meet exactly_per_endpoint
    severities_share: float = 1.0  # of the counted notifications that must meet severities
    notified_min: float | None = None  # share of endpoints with a counted notification, at least
    notified_max: float | None = None  # and at most
    alertnames: tuple[str, ...] = LOSS_ALERTS  # which notifications the goals above count
    detection_median: float | None = None  # cut rows: median seconds, cut -> EndpointDown
    downs_per_cut: int | None = None  # cut rows: EndpointDown firing events per cut, exactly


@dataclass(frozen=True)
class Event:
    """One alert transition as the webhook receiver got it."""

    arrival: float  # unix seconds, stamped by the receiver
    event_at: float  # unix seconds, when netmon decided the transition
    alertname: str
    target: str
    status: str  # firing | resolved
    severity: str
    previous_severity: str | None  # set on a firing event that changes the severity
    flapping: bool

    @classmethod
    def from_alert(cls, arrival: float, alert: Mapping[str, Any]) -> Event:
        """From the `alert` object of the webhook's payload (netmon.alerting.model.to_json)."""
        stamp = alert.get("event_at") or alert.get("starts_at")
        return cls(
            arrival=arrival,
            event_at=dt.datetime.fromisoformat(stamp).timestamp() if stamp else arrival,
            alertname=str(alert.get("alertname", "")),
            target=str(alert.get("target", "")),
            status=str(alert.get("status", "")),
            severity=str(alert.get("severity", "")),
            previous_severity=alert.get("previous_severity"),
            flapping=bool(alert.get("flapping", False)),
        )

    @property
    def firing(self) -> bool:
        return self.status == "firing"


@dataclass
class Cut:
    """One cut of an endpoint (the cut row: one each; the fades row: several), restored after
    its length."""

    target: str
    due: float  # seconds after the start
    cut_at: float | None = None  # unix seconds: the responder acknowledged loss 1.0
    restore_at: float | None = None  # unix seconds: the responder acknowledged the restore
    length: float = 30.0  # seconds


def spread(values: Iterable[float]) -> dict[str, float | int | None]:
    """Median, 90th percentile and max of `values`, and how many there were."""
    seen = sorted(values)
    if not seen:
        return {"n": 0, "median": None, "p90": None, "max": None}
    rank = max(0, math.ceil(0.9 * len(seen)) - 1)  # nearest-rank percentile
    return {"n": len(seen), "median": statistics.median(seen), "p90": seen[rank], "max": seen[-1]}


@dataclass
class CutResult:
    cuts: int
    detection: dict[str, float | int | None]  # seconds, cut applied -> EndpointDown arrival
    recovery: dict[str, float | int | None]  # seconds, restore applied -> resolved arrival
    undetected: int  # cuts without an EndpointDown firing event while cut
    unrecovered: int  # restores without an EndpointDown resolved event afterwards
    downs: dict[str, int]  # cuts with 0 / 1 / 2+ EndpointDown firing events while cut
    outside: int  # EndpointDown firing events outside the endpoints' cuts


@dataclass
class RowResult:
    key: str
    endpoints: int
    endpoint_hours: float
    false_down: int
    counted: dict[str, int]  # per endpoint: notifications the goal counts
    spread: dict[str, int]  # endpoints with 0 / 1 / 2+ of them
    rate: float  # counted notifications per endpoint-hour
    all_spread: dict[str, int]  # endpoints with 0 / 1 / 2+ loss notifications of any name
    by_alert: dict[str, dict[str, int]]  # alertname -> severity -> firing events
    first_severity: dict[str, int]  # severity of each endpoint's first loss notification
    first_after: dict[str, float | int | None]  # seconds, start -> first loss notification
    severity_changes: int  # firing events that changed the severity of a firing alert
    flapping: int  # firing events marked flapping
    resolved: int  # resolved events of loss alerts
    other_alerts: dict[str, int]  # firing events of any other alertname
    cut: CutResult | None = None
    misses: list[str] = field(default_factory=list)

    @property
    def met(self) -> bool:
        return not self.misses


def _bucket(counts: Iterable[int]) -> dict[str, int]:
    buckets = {"0": 0, "1": 0, "2+": 0}
    for count in counts:
        buckets["0" if count == 0 else "1" if count == 1 else "2+"] += 1
    return buckets


def _cuts(cuts: Sequence[Cut], events: Sequence[Event]) -> CutResult:
    by_target: dict[str, list[Event]] = {}
    for event in events:
        if event.alertname == DOWN_ALERT:
            by_target.setdefault(event.target, []).append(event)
    detection, recovery, per_cut = [], [], []
    windows: dict[str, list[tuple[float, float]]] = {}
    for cut in cuts:
        mine = by_target.get(cut.target, [])
        start, end = cut.cut_at or math.inf, cut.restore_at or math.inf
        windows.setdefault(cut.target, []).append((start, end))
        if cut.cut_at is not None:
            fired = [e.arrival for e in mine if e.firing and e.arrival >= cut.cut_at]
            if fired and (cut.restore_at is None or min(fired) <= cut.restore_at):
                detection.append(min(fired) - cut.cut_at)
        if cut.restore_at is not None:
            cleared = [e.arrival for e in mine if not e.firing and e.arrival >= cut.restore_at]
            if cleared:
                recovery.append(min(cleared) - cut.restore_at)
        per_cut.append(sum(1 for e in mine if e.firing and start <= e.event_at <= end))
    outside = sum(
        1
        for target, spans in windows.items()
        for e in by_target.get(target, [])
        if e.firing and not any(start <= e.event_at <= end for start, end in spans)
    )
    return CutResult(
        cuts=len(cuts),
        detection=spread(detection),
        recovery=spread(recovery),
        undetected=sum(1 for c in cuts if c.cut_at is not None) - len(detection),
        unrecovered=sum(1 for c in cuts if c.restore_at is not None) - len(recovery),
        downs=_bucket(per_cut),
        outside=outside,
    )


def tally(
    key: str,
    endpoints: Sequence[str],
    goal: Goal,
    events: Sequence[Event],
    *,
    started: float,
    ended: float,
    cuts: Sequence[Cut] = (),
) -> RowResult:
    """Count one row's events (every event of the run may be passed: others are ignored)."""
    mine = set(endpoints)
    run = [e for e in events if e.target in mine and started <= e.event_at <= ended]
    loss = [e for e in run if e.alertname in LOSS_ALERTS and e.firing]
    counted_events = [e for e in loss if e.alertname in goal.alertnames]
    counted = Counter(e.target for e in counted_events)
    every = Counter(e.target for e in loss)
    by_alert: dict[str, dict[str, int]] = {}
    for event in loss:
        severities = by_alert.setdefault(event.alertname, {})
        severities[event.severity] = severities.get(event.severity, 0) + 1
    firsts: dict[str, Event] = {}
    for event in sorted(loss, key=lambda e: e.arrival):
        firsts.setdefault(event.target, event)
    hours = len(endpoints) * (ended - started) / 3600
    cut = _cuts(cuts, run) if cuts else None
    downs = [e for e in run if e.alertname == DOWN_ALERT and e.firing]
    result = RowResult(
        key=key,
        endpoints=len(endpoints),
        endpoint_hours=hours,
        false_down=cut.outside if cut is not None else len(downs),
        counted={target: counted[target] for target in endpoints},
        spread=_bucket(counted[target] for target in endpoints),
        rate=len(counted_events) / hours if hours > 0 else 0.0,
        all_spread=_bucket(every[target] for target in endpoints),
        by_alert=by_alert,
        first_severity=dict(Counter(e.severity for e in firsts.values())),
        first_after=spread(e.arrival - started for e in firsts.values()),
        severity_changes=sum(1 for e in loss if e.previous_severity),
        flapping=sum(1 for e in loss if e.flapping),
        resolved=sum(1 for e in run if e.alertname in LOSS_ALERTS and not e.firing),
        other_alerts=dict(
            Counter(
                e.alertname
                for e in run
                if e.firing and e.alertname not in (*LOSS_ALERTS, DOWN_ALERT)
            )
        ),
        cut=cut,
    )
    result.misses = judge(goal, result, counted_events, started)
    return result


def _names(goal: Goal) -> str:
    """What the row's goal counts, in words."""
    return (
        "loss notifications" if tuple(goal.alertnames) == LOSS_ALERTS else "/".join(goal.alertnames)
    )


def judge(goal: Goal, result: RowResult, counted: Sequence[Event], started: float) -> list[str]:
    """Why the row misses its goal; empty when it meets it."""
    misses: list[str] = []
    names = _names(goal)
    if goal.false_down is not None and result.false_down > goal.false_down:
        misses.append(f"{result.false_down} false {DOWN_ALERT}")
    per_endpoint = list(result.counted.values())
    if goal.max_per_endpoint is not None:
        over = sum(1 for n in per_endpoint if n > goal.max_per_endpoint)
        if over:
            misses.append(f"{over} endpoints over {goal.max_per_endpoint} {names}")
    if goal.exactly_per_endpoint is not None:
        off = sum(1 for n in per_endpoint if n != goal.exactly_per_endpoint)
        if off > (1 - goal.share) * len(per_endpoint):
            misses.append(f"{off} endpoints not exactly {goal.exactly_per_endpoint} {names}")
    notified = sum(1 for n in per_endpoint if n) / len(per_endpoint) if per_endpoint else 0.0
    if goal.notified_min is not None and notified < goal.notified_min:
        misses.append(f"{notified:.0%} of endpoints with {names}")
    if goal.notified_max is not None and notified > goal.notified_max:
        misses.append(f"{notified:.0%} of endpoints with {names}")
    if goal.per_endpoint_hour is not None and result.rate > goal.per_endpoint_hour:
        misses.append(f"{result.rate:.2f} {names} per endpoint-hour")
    if goal.severities:
        wrong = sum(1 for e in counted if e.severity not in goal.severities)
        if wrong > (1 - goal.severities_share) * len(counted):
            misses.append(f"{wrong} {names} not {' or '.join(goal.severities)}")
    first: dict[str, float] = {}
    for event in counted:
        first[event.target] = min(first.get(event.target, math.inf), event.arrival - started)
    if goal.within is not None:
        late = sum(1 for after in first.values() if after > goal.within)
        if late:
            misses.append(f"{late} endpoints' first {names} after {goal.within:g} s")
    if goal.within_median is not None:
        median = statistics.median(first.values()) if first else math.inf
        if median > goal.within_median:
            misses.append(f"median first {names} after {median:.0f} s")
    cut = result.cut
    if cut is not None and goal.detection_median is not None:
        median = cut.detection["median"]
        if median is None:
            misses.append(f"no cut raised {DOWN_ALERT}")
        elif median > goal.detection_median:
            misses.append(f"median detection {median:.2f} s")
    if cut is not None and goal.downs_per_cut is not None:
        wanted = str(goal.downs_per_cut) if goal.downs_per_cut < 2 else "2+"
        off = cut.cuts - cut.downs.get(wanted, 0)
        if off:
            misses.append(f"{off} cuts without exactly {goal.downs_per_cut} {DOWN_ALERT}")
    return misses


def _seconds(values: Mapping[str, float | int | None], *keys: str) -> str:
    shown = [f"{key} {values[key]:.1f}" for key in keys if values.get(key) is not None]
    return ", ".join(shown) + " s" if shown else "none"


def _severities(counts: Mapping[str, int]) -> str:
    order = ("info", "warning", "major", "critical")
    ranked = sorted(counts.items(), key=lambda kv: order.index(kv[0]) if kv[0] in order else 9)
    return ", ".join(f"{severity} {n}" for severity, n in ranked) or "-"


def measured_lines(result: RowResult, goal: Goal) -> list[str]:
    """The row's measure, a few short lines for the report's table."""
    names = _names(goal)
    spread_text = "/".join(str(result.spread[k]) for k in ("0", "1", "2+"))
    lines = [
        f"false {DOWN_ALERT}: {result.false_down}"
        + (" (outside the cuts)" if result.cut is not None else ""),
        f"endpoints with 0/1/2+ {names}: {spread_text}",
    ]
    if tuple(goal.alertnames) != LOSS_ALERTS:
        every = "/".join(str(result.all_spread[k]) for k in ("0", "1", "2+"))
        lines.append(f"endpoints with 0/1/2+ loss notifications: {every}")
    lines.append(f"{names}: {result.rate:.2f} per endpoint-hour")
    for name in LOSS_ALERTS:
        if name in result.by_alert:
            lines.append(f"{name}: {_severities(result.by_alert[name])}")
    if result.first_severity:
        lines.append(f"first: {_severities(result.first_severity)}")
        lines.append(f"first after: {_seconds(result.first_after, 'median', 'max')}")
    if result.severity_changes or result.flapping:
        lines.append(f"severity changes {result.severity_changes}, flapping {result.flapping}")
    if result.other_alerts:
        lines.append(
            "other: " + ", ".join(f"{k} {v}" for k, v in sorted(result.other_alerts.items()))
        )
    cut = result.cut
    if cut is not None:
        downs = "/".join(str(cut.downs[k]) for k in ("0", "1", "2+"))
        lines += [
            f"detection: {_seconds(cut.detection, 'median', 'p90', 'max')}"
            + (f" ({cut.undetected} undetected)" if cut.undetected else ""),
            f"recovery: {_seconds(cut.recovery, 'median', 'max')}"
            + (f" ({cut.unrecovered} unresolved)" if cut.unrecovered else ""),
            f"cuts ({cut.cuts}) with 0/1/2+ {DOWN_ALERT} while cut: {downs}",
        ]
    return lines

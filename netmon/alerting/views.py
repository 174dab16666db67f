"""Read views of the tracked alerts: what the sinks, /metrics, the status topics and the API see.

Pure reads over the engine's alerts; nothing here changes an alert or decides a transition.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from netmon.alerting.model import AlertEvent, Severity
from netmon.alerting.tracked import Tracked

QUALITY_ALERTS = frozenset({"HighLatency", "HighPacketLoss", "HighJitter", "LinkUnstable"})


def firing(alerts: Iterable[Tracked]) -> list[AlertEvent]:
    """Alerts the sinks should consider active (announced and still firing)."""
    return [
        t.emitted
        for t in alerts
        if t.emitted is not None and t.announced and (t.level >= 0 or t.flapping)
    ]


def active_by_severity(
    alerts: Iterable[Tracked], *, acknowledged: bool | None = None
) -> dict[str, int]:
    """Alerts firing now by severity; only those (not) acknowledged when `acknowledged` is
    given."""
    counts = {severity.value: 0 for severity in Severity}
    for tracked in alerts:
        firing = tracked.emitted is not None and (tracked.level >= 0 or tracked.flapping)
        if firing and (acknowledged is None or (tracked.ack is not None) == acknowledged):
            assert tracked.emitted is not None
            counts[tracked.emitted.severity.value] += 1
    return counts


def quality_alerts(alerts: Iterable[Tracked], target_id: str) -> list[Tracked]:
    """The target's latency, loss and jitter alerts (what makes it "degraded")."""
    return [
        t
        for t in alerts
        if t.target == target_id and t.alertname in QUALITY_ALERTS and t.emitted is not None
    ]


def listing(
    alerts: Iterable[Tracked],
    *,
    render: Callable[[Tracked], AlertEvent],
    silenced: Callable[[AlertEvent], bool],
) -> list[dict[str, Any]]:
    """Every alert that fires, is held or is pending, with its state, for the API; `render`
    gives the event a pending or held alert would fire with."""
    out = []
    for tracked in alerts:
        if tracked.emitted is not None:
            state = "firing"
        elif tracked.held_until is not None or tracked.suppressed_by is not None:
            state = "held"
        elif tracked.candidate is not None and tracked.candidate >= 0:
            state = "pending"
        else:
            continue
        event = tracked.emitted or render(tracked)
        item = event.to_json()
        item["state"] = state
        item["silenced"] = silenced(event)
        item["announced"] = tracked.announced
        item["suppressed_by"] = tracked.suppressed_by
        out.append(item)
    out.sort(key=lambda a: (-Severity(a["severity"]).rank, a["target"], a["alertname"]))
    return out

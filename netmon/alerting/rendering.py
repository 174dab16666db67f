"""Rendering: the AlertEvent one tracked alert becomes, with its summary, labels and context.

A pure function of the alert, its target, the config's language and flapping window, and the
severity to show (the caller raises it during a meeting). It decides nothing and writes
nothing; which event goes out, and when, is the lifecycle's business.
"""

from __future__ import annotations

from collections.abc import Sequence

from netmon.alerting import templates
from netmon.alerting.model import AlertEvent, Severity, Status
from netmon.alerting.tracked import Tracked
from netmon.config.alerting import AlertingConfig
from netmon.inventory import Target

LISTED = 20  # names of affected targets spelled out in a summary; the rest are counted


def listed(names: Sequence[str]) -> str:
    """The names of affected targets for a summary: the first few, then how many more."""
    more = f" (+{len(names) - LISTED})" if len(names) > LISTED else ""
    return ", ".join(names[:LISTED]) + more


def render(
    tracked: Tracked,
    *,
    target: Target | None,
    config: AlertingConfig,
    status: Status,
    severity: Severity,
    now: float,
) -> AlertEvent:
    level = tracked.rule.levels[max(tracked.peak if tracked.flapping else tracked.level, 0)]
    # A rule of `below` levels keeps its values and thresholds mirrored: shown the right way up.
    sign = -1.0 if tracked.rule.falling else 1.0
    value = None if tracked.value is None else sign * tracked.value
    values: dict[str, object] = {
        "name": target.display_name if target else tracked.target,
        "target": tracked.target,
        "district": target.district if target else "",
        "value": templates.format_value(tracked.metric, value),
        "threshold": templates.format_value(tracked.metric, sign * level.above),
        **tracked.labels,
        **tracked.extra,
    }
    language = config.language
    text = templates.summary(language, tracked.alertname, values, tracked.rule.summary)
    if tracked.flapping:
        text += templates.flapping_suffix(language, len(tracked.toggles), config.flapping.window)
    context = {}
    if target is not None:
        context = {
            "kind": target.kind,
            "site": target.site,
            "district": target.district,
            "group": target.group,
        }
        context = {k: v for k, v in context.items() if v}
    affected = tracked.extra.get("affected")
    description = ""
    if isinstance(affected, list):
        description = "affected: " + ", ".join(map(str, affected))
    return AlertEvent(
        alertname=tracked.alertname,
        target=tracked.target,
        severity=severity,
        status=status,
        starts_at=tracked.started or now,
        ends_at=now if status is Status.RESOLVED else None,
        summary=text,
        labels={**tracked.rule.labels, **tracked.labels},
        context=context,
        value=value,
        description=description,
        flapping=tracked.flapping,
        event_at=now,
        acknowledged_by=tracked.ack.by if tracked.ack else "",
        acknowledged_at=tracked.ack.at if tracked.ack else None,
        acknowledged_comment=tracked.ack.comment if tracked.ack else "",
    )

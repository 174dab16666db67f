"""The accounting policy: the rules every figure of a report was computed by, as data printed
on the report (and in its JSON), so that a figure can be checked by hand and questioned."""

from __future__ import annotations

import datetime as dt
from importlib.metadata import version
from typing import Any
from zoneinfo import ZoneInfo

from netmon.availability.calendar import Holiday
from netmon.availability.model import POLICY_VERSION
from netmon.config.availability import AvailabilityConfig

# Each second of the period is classified once, in this order: the first that applies wins.
PRECEDENCE = ("maintenance", "unknown", "parent", "down", "up")

FORMULAS = {
    "availability": "up / (up + down)",
    "site down": "seconds netmon judged the target down, less maintenance, unknown and the time "
    "a parent link was cut (charged to that link)",
    "link down": "seconds the district's aggregation (the parent target) was cut (down itself, "
    "its uplink interface down, or most targets behind it down) with targets behind it down, "
    "as DistrictUnreachable judges it",
    "unknown": "seconds without a verdict: netmon not running (from its last heartbeat after a "
    "crash), or running without a verdict on the target yet",
    "office hours": "the same over office hours only, public holidays left out",
    "meeting availability": "a room's up / (up + down) over the meeting's scheduled time; a cut "
    "link counts as down here (the room could not take part)",
    "MTTR": "counted down seconds / outages with counted time",
}


def policy(
    config: AvailabilityConfig,
    start: float,
    end: float,
    holidays: list[Holiday],
    source: str = "journal",
) -> dict[str, Any]:
    """`source`: where the evidence came from: "journal" (netmon's outage journal), or the
    Prometheus series it was rebuilt from (netmon/availability/prometheus.py says how)."""
    zone = ZoneInfo(config.timezone)
    hours = config.office_hours
    return {
        "version": POLICY_VERSION,
        "source": source,
        "timezone": config.timezone,
        "period": {
            "from": dt.datetime.fromtimestamp(start, zone).isoformat(),
            "to": dt.datetime.fromtimestamp(end, zone).isoformat(),
            "note": "outages crossing the period's bounds are split at them",
        },
        "down": "unreachable: netmon's reach verdict (ICMP: lost echoes confirmed by the "
        "reach policy's down_after and confirmation echoes; targets watched by probes alone: "
        "their probes failing)",
        "unknown": config.unknown,
        "unknown_note": "out of the denominator, shown on its own"
        if config.unknown == "excluded"
        else "counted as down",
        "excluded": ["maintenance windows", "a site's time behind a cut parent link"],
        "degraded": "a quality figure beside availability: time up with a link-quality alert "
        "firing (HighLoss, HighLatency, HighJitter, LossBursts) counted as down"
        if config.degraded
        else None,
        "precedence": list(PRECEDENCE),
        "heartbeat_seconds": config.heartbeat,
        "office_hours": {
            "days": list(hours.days),
            "periods": [[a.strftime("%H:%M"), b.strftime("%H:%M")] for a, b in hours.periods],
            "holidays": config.holidays,
            "holidays_source": f"python-holidays {version('holidays')}",
            "holidays_in_period": [{"day": h.day.isoformat(), "name": h.name} for h in holidays],
        },
        "formulas": FORMULAS,
    }

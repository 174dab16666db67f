"""The period a report covers, as `netmon report` and the API take it: a month, or from a day
(or today) until a day or now, local time; and the formats a report comes in."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

from netmon.availability.calendar import month_bounds

FORMATS = ("html", "pdf", "csv", "json")


def period_of(
    month: str | None, since: str | None, until: str | None, zone: ZoneInfo, now: float
) -> tuple[float, float]:
    """[start, end) of the period asked for, local time; never past now."""
    if month:
        start, end = month_bounds(month, zone)
    else:
        start = _local_day(since or "today", zone, now)
        end = _local_day(until, zone, now) if until else now
    end = min(end, now)
    if end <= start:
        raise ValueError("the period is empty (it starts after it ends, or in the future)")
    return start, end


def _local_day(text: str, zone: ZoneInfo, now: float) -> float:
    if text == "today":
        day = dt.datetime.fromtimestamp(now, zone).date()
    else:
        try:
            day = dt.date.fromisoformat(text)
        except ValueError:
            raise ValueError(f"{text!r} is not a date (YYYY-MM-DD) or 'today'") from None
    return dt.datetime.combine(day, dt.time(), zone).timestamp()

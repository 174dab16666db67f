"""The period a report covers, as `netmon report` and the API take it: a month, or from a day
(or today) until a day or now, local time; and the formats a report comes in."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

from netmon.availability.calendar import month_bounds

FORMATS = ("html", "pdf", "csv", "json")
# The longest period one report covers: the journal keeps 400 days by default, and a report
# over centuries (a typo in a year) would be computed day by day before anyone noticed.
MAX_DAYS = 1000


def period_of(
    month: str | None, since: str | None, until: str | None, zone: ZoneInfo, now: float
) -> tuple[float, float]:
    """[start, end) of the period asked for, local time; never past now."""
    if month and (since or until):
        raise ValueError("give a month, or a first day (and a last), not both")
    if until and not since:
        raise ValueError("a last day (to) needs a first day (from)")
    if month:
        start, end = month_bounds(month, zone)
    else:
        start = _local_day(since or "today", zone, now)
        end = _local_day(until, zone, now) if until else now
    end = min(end, now)
    if end <= start:
        raise ValueError("the period is empty (it starts after it ends, or in the future)")
    if end - start > MAX_DAYS * 86400:
        raise ValueError(f"a report covers at most {MAX_DAYS} days")
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

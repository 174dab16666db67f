"""Calendar time for the accounting: months and days in the province's time zone, office hours
(giờ hành chính) and the public holidays left out of them."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from zoneinfo import ZoneInfo

import holidays as holiday_tables

from netmon.availability.intervals import Spans, clip, normal
from netmon.config.availability import AvailabilityConfig
from netmon.oncall.rota import Hours


@dataclass(frozen=True, slots=True)
class Holiday:
    day: dt.date
    name: str


def month_bounds(month: str, zone: ZoneInfo) -> tuple[float, float]:
    """[first midnight, next month's first midnight) of `YYYY-MM`, local."""
    try:
        first = dt.datetime.strptime(month, "%Y-%m").replace(tzinfo=zone)
    except ValueError:
        raise ValueError(f"month: {month!r} is not YYYY-MM") from None
    try:
        following = (first.replace(day=28) + dt.timedelta(days=4)).replace(day=1)
    except OverflowError:  # 9999-12: no month after it
        raise ValueError(f"month: {month!r} is out of range") from None
    return first.timestamp(), following.timestamp()


def day_bounds(day: dt.date, zone: ZoneInfo) -> tuple[float, float]:
    start = dt.datetime.combine(day, dt.time(), zone)
    return start.timestamp(), dt.datetime.combine(
        day + dt.timedelta(days=1), dt.time(), zone
    ).timestamp()


def days_of(start: float, end: float, zone: ZoneInfo) -> list[dt.date]:
    """The local days that [start, end) touches."""
    first = dt.datetime.fromtimestamp(start, zone).date()
    last = dt.datetime.fromtimestamp(max(start, end - 1e-6), zone).date()
    return [first + dt.timedelta(days=n) for n in range((last - first).days + 1)]


def holidays_between(
    config: AvailabilityConfig, first: dt.date, last: dt.date, lang: str = "en"
) -> list[Holiday]:
    """Public holidays (and the config's extra days off) from `first` to `last` inclusive."""
    found: dict[dt.date, str] = {}
    if config.holidays:
        language = "vi" if lang == "vi" else "en_US"
        years = list(range(first.year, last.year + 1))
        try:
            table = holiday_tables.country_holidays(config.holidays, years=years, language=language)
        except NotImplementedError:
            raise ValueError(
                f"availability.holidays: no holiday table for {config.holidays!r}"
            ) from None
        found.update({day: str(name) for day, name in table.items() if first <= day <= last})
    for day in config.extra_holidays:
        if first <= day <= last:
            found.setdefault(day, "ngày nghỉ" if lang == "vi" else "day off")
    return [Holiday(day, found[day]) for day in sorted(found)]


def office_spans(
    config: AvailabilityConfig, start: float, end: float, lang: str = "en"
) -> tuple[Spans, list[Holiday]]:
    """Office time in [start, end): the office periods of each office day that is not a
    holiday; and the holidays that were left out."""
    zone = ZoneInfo(config.timezone)
    hours = Hours(config.office_hours, zone)
    days = days_of(start, end, zone)
    off = holidays_between(config, days[0], days[-1], lang)
    skipped = {h.day for h in off}
    spans = [span for day in days if day not in skipped for span in hours.periods_of(day)]
    return clip(normal(spans), start, end), off

"""Who is on call at a moment, and who comes next; office hours. Pure functions of the config
and a time (unix seconds), so a fake clock drives them in tests like the real one."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from netmon.config.oncall import WEEKDAYS, OfficeHours, Override, Rota


@dataclass(frozen=True, slots=True)
class Shift:
    person: str
    start: float  # unix seconds
    end: float
    override: bool = False


def _local(when: float, zone: ZoneInfo) -> dt.datetime:
    return dt.datetime.fromtimestamp(when, zone)


def _aware(value: dt.datetime, zone: ZoneInfo) -> dt.datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=zone)


def _anchor(rota: Rota) -> dt.date:
    """The local date of a handover on or before `rota.start` that begins the first shift."""
    if rota.shift == "daily":
        return rota.start
    back = (rota.start.weekday() - WEEKDAYS.index(rota.handover_day)) % 7
    return rota.start - dt.timedelta(days=back)


def regular_shift(rota: Rota, when: float, zone: ZoneInfo) -> Shift:
    """The rota's own shift at `when`, overrides aside."""
    period = 1 if rota.shift == "daily" else 7
    local = _local(when, zone)
    day = local.date() if local.time() >= rota.handover else local.date() - dt.timedelta(days=1)
    number = (day - _anchor(rota)).days // period
    first = _anchor(rota) + dt.timedelta(days=number * period)
    start = dt.datetime.combine(first, rota.handover, zone)
    end = dt.datetime.combine(first + dt.timedelta(days=period), rota.handover, zone)
    person = rota.people[number % len(rota.people)]
    return Shift(person, start.timestamp(), end.timestamp())


def _override_at(overrides: list[Override], when: float, zone: ZoneInfo) -> Shift | None:
    # The last one listed wins where two overlap: it was written later, on purpose.
    for override in reversed(overrides):
        start = _aware(override.start, zone).timestamp()
        end = _aware(override.end, zone).timestamp()
        if start <= when < end:
            return Shift(override.person, start, end, override=True)
    return None


def on_call(rota: Rota, when: float, zone: ZoneInfo) -> Shift:
    """Who is on call at `when`, and from when until when they are (overrides counted)."""
    regular = regular_shift(rota, when, zone)
    override = _override_at(rota.overrides, when, zone)
    if override is not None:
        return override
    # A regular shift resumes where an override inside it ended, and ends early where one
    # begins.
    starts = [
        _aware(o.start, zone).timestamp()
        for o in rota.overrides
        if when < _aware(o.start, zone).timestamp() < regular.end
    ]
    ends = [
        _aware(o.end, zone).timestamp()
        for o in rota.overrides
        if regular.start < _aware(o.end, zone).timestamp() <= when
    ]
    return Shift(regular.person, max([regular.start, *ends]), min([regular.end, *starts]))


def next_on_call(rota: Rota, when: float, zone: ZoneInfo) -> Shift:
    """The shift after the one at `when`."""
    return on_call(rota, on_call(rota, when, zone).end, zone)


class Hours:
    """Office hours (giờ hành chính) in a time zone: whether a moment is in them, and a delay
    counted in office time only."""

    def __init__(self, config: OfficeHours, zone: ZoneInfo) -> None:
        self._days = {WEEKDAYS.index(day) for day in config.days}
        self._periods = sorted(config.periods)
        self._zone = zone

    def periods_of(self, day: dt.date) -> list[tuple[float, float]]:
        if day.weekday() not in self._days:
            return []
        return [
            (
                dt.datetime.combine(day, start, self._zone).timestamp(),
                dt.datetime.combine(day, end, self._zone).timestamp(),
            )
            for start, end in self._periods
        ]

    def within(self, when: float) -> bool:
        day = _local(when, self._zone).date()
        return any(start <= when < end for start, end in self.periods_of(day))

    def add(self, when: float, seconds: float) -> float:
        """The moment `seconds` of office time after `when` (at once in office hours for 0;
        outside them, the next opening)."""
        day = _local(when, self._zone).date()
        left = seconds
        for _ in range(3660):  # ten years of days: a config with no office day never ends
            for start, end in self.periods_of(day):
                begin = max(start, when)
                if begin >= end:
                    continue
                if begin + left < end or (left == 0 and begin < end):
                    return begin + left
                left -= end - begin
            day += dt.timedelta(days=1)
        raise ValueError("office hours: no office day in ten years")


class Always:
    """Every moment counts (the default for policies)."""

    def within(self, when: float) -> bool:
        return True

    def add(self, when: float, seconds: float) -> float:
        return when + seconds

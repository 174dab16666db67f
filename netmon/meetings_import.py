"""`netmon meetings import FILE.ics`: the meetings of a calendar export as netmon config.

Each VEVENT becomes a meeting: SUMMARY is its name, DTSTART its start (an event without a time
zone is read in `--timezone`, the province's by default), DTEND or DURATION its duration.
Who takes part comes from CATEGORIES (groups of the inventory) and from the netmon properties
X-NETMON-DISTRICTS and X-NETMON-TARGETS (comma-separated), which a calendar keeps as they are.

A recurring event (RRULE, with RDATE and EXDATE) gives each of its occurrences from now to
`days` ahead (60 by default, 100 at most per series), named "SUMMARY YYYY-MM-DD" so that they
stay distinct; an occurrence moved or changed in the calendar (a VEVENT with RECURRENCE-ID)
replaces the one it moves. A weekly meeting set up last year is therefore imported as the
meetings still to come, not as its first one. Run the import again to extend the horizon.
Nothing is written unless every event is good.
"""

from __future__ import annotations

import contextlib
import datetime as dt
from typing import Any
from zoneinfo import ZoneInfo

import icalendar
import yaml
from dateutil import rrule  # type: ignore[import-untyped]  # no stubs in the venv; one call

DEFAULT_TIMEZONE = "Asia/Ho_Chi_Minh"
DEFAULT_DAYS = 60
MAX_OCCURRENCES = 100
MAX_RULE_STEPS = 100_000  # a daily meeting set up 270 years ago
_UNREADABLE = (ValueError, TypeError, AttributeError, OverflowError)


class IcsImportError(ValueError):
    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


def _list(value: Any) -> list[str]:
    if value is None:
        return []
    values = value if isinstance(value, list) else [value]
    out: list[str] = []
    for item in values:
        if hasattr(item, "cats"):  # CATEGORIES: a vCategory
            out += [str(c) for c in item.cats]
        else:
            out += [part.strip() for part in str(item).split(",")]
    return [item for item in out if item]


def _aware(value: Any, zone: ZoneInfo) -> dt.datetime | None:
    """A DTSTART/EXDATE/RDATE/RECURRENCE-ID value as an aware datetime (a date: None)."""
    if not isinstance(value, dt.datetime):
        return None
    return value if value.tzinfo is not None else value.replace(tzinfo=zone)


def _dates(event: Any, name: str, zone: ZoneInfo) -> set[dt.datetime]:
    """Every datetime of a multi-valued property (EXDATE, RDATE), however many lines it has."""
    values = event.get(name)
    found: set[dt.datetime] = set()
    for line in values if isinstance(values, list) else [values] if values is not None else []:
        for item in getattr(line, "dts", []):
            when = _aware(item.dt, zone)
            if when is not None:
                found.add(when)
    return found


def _occurrences(
    event: Any,
    start: dt.datetime,
    zone: ZoneInfo,
    moved: set[dt.datetime],
    now: dt.datetime,
    days: float,
) -> list[dt.datetime]:
    """When a recurring event happens from `now` to `days` ahead; [start] if it does not recur.
    Raises ValueError for a rule dateutil cannot read."""
    if event.get("RRULE") is None:
        return [start]
    rule_text = event["RRULE"].to_ical().decode()
    series = rrule.rrulestr(rule_text, dtstart=start)
    end = now + dt.timedelta(days=days)
    skipped = _dates(event, "EXDATE", zone) | moved
    found = {when for when in _dates(event, "RDATE", zone) if now <= when <= end}
    # The rule is walked from its start, one occurrence at a time and no further than needed:
    # `FREQ=SECONDLY` is 5 million occurrences in 60 days (24 s of dateutil), and the same
    # from 1990 never ends. A rule is stopped after MAX_RULE_STEPS; occurrences come in
    # order, so the first MAX_OCCURRENCES in the window are all that can be kept.
    taken = 0
    for step, when in enumerate(series):
        if when > end or taken >= MAX_OCCURRENCES:
            break
        if step >= MAX_RULE_STEPS:
            raise ValueError(f"more than {MAX_RULE_STEPS} occurrences from DTSTART on")
        if when >= now and when not in skipped:
            found.add(when)
            taken += 1
    return sorted(when for when in found if when not in skipped)[:MAX_OCCURRENCES]


def ics_to_meetings(
    text: str,
    *,
    timezone: str = DEFAULT_TIMEZONE,
    now: dt.datetime | None = None,
    days: float = DEFAULT_DAYS,
) -> list[dict[str, Any]]:
    try:
        calendar = icalendar.Calendar.from_ical(text)
    except ValueError as exc:
        raise IcsImportError([f"not an iCalendar file: {exc}"]) from exc
    zone = ZoneInfo(timezone)
    now = now or dt.datetime.now(dt.UTC)
    meetings: list[dict[str, Any]] = []
    problems: list[str] = []
    events: list[Any] = calendar.walk("VEVENT")  # property values vary by type: read as Any
    # Occurrences a calendar moved or changed: the VEVENT with RECURRENCE-ID stands for them.
    moved: dict[str, set[dt.datetime]] = {}
    for event in events:
        recurrence = event.get("RECURRENCE-ID")
        with contextlib.suppress(*_UNREADABLE):  # the event's own turn below reports it
            when = _aware(recurrence.dt, zone) if recurrence is not None else None
            if when is not None:
                moved.setdefault(str(event.get("UID", "")), set()).add(when)
    for number, event in enumerate(events, start=1):
        name = str(event.get("SUMMARY", "")).strip()
        where = f"event {number} ({name or 'no SUMMARY'})"
        try:
            start_field = event.get("DTSTART")
            if not name or start_field is None:
                problems.append(f"{where}: needs SUMMARY and DTSTART")
                continue
            start = start_field.dt
            if not isinstance(start, dt.datetime):
                problems.append(f"{where}: an all-day event has no start time")
                continue
            if start.tzinfo is None:
                start = start.replace(tzinfo=zone)
            duration = 7200.0
            if event.get("DTEND") is not None and isinstance(event["DTEND"].dt, dt.datetime):
                end = event["DTEND"].dt
                end = end if end.tzinfo is not None else end.replace(tzinfo=zone)
                duration = (end - start).total_seconds()
            elif event.get("DURATION") is not None:
                duration = event["DURATION"].dt.total_seconds()
            groups = _list(event.get("CATEGORIES"))
            districts = _list(event.get("X-NETMON-DISTRICTS"))
            targets = _list(event.get("X-NETMON-TARGETS"))
            if not (groups or districts or targets):
                problems.append(
                    f"{where}: names no endpoints (CATEGORIES for groups, X-NETMON-DISTRICTS, "
                    "X-NETMON-TARGETS)"
                )
                continue
            try:
                moved_here = moved.get(str(event.get("UID", "")), set())
                starts = _occurrences(event, start, zone, moved_here, now, days)
            except ValueError as exc:
                problems.append(f"{where}: RRULE: {exc}")
                continue
            recurring = event.get("RRULE") is not None or event.get("RECURRENCE-ID") is not None
            for when in starts:
                label = f"{name} {when.astimezone(zone).date().isoformat()}" if recurring else name
                meeting: dict[str, Any] = {"name": label, "start": when.isoformat()}
                if duration > 0:
                    meeting["duration"] = f"{int(duration)}s"
                for key, values in (
                    ("groups", groups),
                    ("districts", districts),
                    ("targets", targets),
                ):
                    if values:
                        meeting[key] = values
                meetings.append(meeting)
        except _UNREADABLE as exc:
            # icalendar raises only when a value is read (a DTSTART that is no date), a
            # property given twice comes as a list, a floating end minus an aware start fails:
            # each is this event's problem, reported with the others.
            problems.append(f"{where}: cannot read it: {exc}")
    if problems:
        raise IcsImportError(problems)
    return meetings


def to_yaml(meetings: list[dict[str, Any]]) -> str:
    return "# meetings imported from a calendar; add them to the config\n" + yaml.safe_dump(
        {"meetings": meetings}, allow_unicode=True, sort_keys=False, width=100
    )

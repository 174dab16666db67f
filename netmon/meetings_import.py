"""`netmon meetings import FILE.ics`: the meetings of a calendar export as netmon config.

Each VEVENT becomes a meeting: SUMMARY is its name, DTSTART its start (an event without a time
zone is read in `--timezone`, the province's by default), DTEND or DURATION its duration.
Who takes part comes from CATEGORIES (groups of the inventory) and from the netmon properties
X-NETMON-DISTRICTS and X-NETMON-TARGETS (comma-separated), which a calendar keeps as they are.
A recurring event gives its next occurrence only. Nothing is written unless every event is good.
"""

from __future__ import annotations

import datetime as dt
from typing import Any
from zoneinfo import ZoneInfo

import icalendar
import yaml

DEFAULT_TIMEZONE = "Asia/Ho_Chi_Minh"


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


def ics_to_meetings(text: str, *, timezone: str = DEFAULT_TIMEZONE) -> list[dict[str, Any]]:
    try:
        calendar = icalendar.Calendar.from_ical(text)
    except ValueError as exc:
        raise IcsImportError([f"not an iCalendar file: {exc}"]) from exc
    zone = ZoneInfo(timezone)
    meetings: list[dict[str, Any]] = []
    problems: list[str] = []
    events: list[Any] = calendar.walk("VEVENT")  # property values vary by type: read as Any
    for number, event in enumerate(events, start=1):
        name = str(event.get("SUMMARY", "")).strip()
        where = f"event {number} ({name or 'no SUMMARY'})"
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
        meeting: dict[str, Any] = {"name": name, "start": start.isoformat()}
        if duration > 0:
            meeting["duration"] = f"{int(duration)}s"
        groups = _list(event.get("CATEGORIES"))
        districts = _list(event.get("X-NETMON-DISTRICTS"))
        targets = _list(event.get("X-NETMON-TARGETS"))
        for key, values in (("groups", groups), ("districts", districts), ("targets", targets)):
            if values:
                meeting[key] = values
        if not (groups or districts or targets):
            problems.append(
                f"{where}: names no endpoints (CATEGORIES for groups, X-NETMON-DISTRICTS, "
                "X-NETMON-TARGETS)"
            )
            continue
        meetings.append(meeting)
    if problems:
        raise IcsImportError(problems)
    return meetings


def to_yaml(meetings: list[dict[str, Any]]) -> str:
    return "# meetings imported from a calendar; add them to the config\n" + yaml.safe_dump(
        {"meetings": meetings}, allow_unicode=True, sort_keys=False, width=100
    )

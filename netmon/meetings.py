"""Meetings over the inventory: which rooms a meeting has, when it is watched, its thresholds.

Pure functions of the config and the inventory, used by the alert engine (meeting windows), the
readiness checks and the loader (a meeting's thresholds must validate). It must do no I/O.
"""

from __future__ import annotations

from netmon.config.schema import Config, MeetingConfig
from netmon.config.thresholds import Thresholds
from netmon.inventory import Inventory, Target


def meeting_targets(inventory: Inventory, meeting: MeetingConfig) -> list[Target]:
    """The rooms (endpoints, MCUs) of a meeting: its targets, groups and districts."""
    rooms = [t for t in inventory.targets.values() if t.is_room]
    groups, districts = set(meeting.groups), {d.casefold() for d in meeting.districts}
    members = {t.id: t for t in rooms if t.group in groups}
    members.update({t.id: t for t in rooms if t.district.casefold() in districts})
    members.update({t: inventory.targets[t] for t in meeting.targets if t in inventory.targets})
    return sorted(members.values(), key=lambda t: t.id)


def meetings_starting(
    inventory: Inventory, start: float, end: float
) -> list[tuple[MeetingConfig, float]]:
    """The configured meetings that start in [start, end), with their start (unix seconds)."""
    found = []
    for meeting in inventory.config.meetings:
        begins = meeting.start.timestamp()
        if start <= begins < end:
            found.append((meeting, begins))
    return found


def meeting_windows(inventory: Inventory) -> list[tuple[float, float, frozenset[str]]]:
    """(from, until, rooms) per meeting: from its first check until it ends."""
    windows = []
    for meeting in inventory.config.meetings:
        start = meeting.start.timestamp()
        ahead = max(meeting.check_before, default=0.0)
        rooms = frozenset(t.id for t in meeting_targets(inventory, meeting))
        windows.append((start - ahead, start + meeting.duration, rooms))
    return windows


def meeting_thresholds(config: Config, meeting: MeetingConfig) -> Thresholds:
    """The config's thresholds with the meeting's stricter ones over them."""
    if not meeting.thresholds:
        return config.thresholds
    return Thresholds.model_validate({**config.thresholds.model_dump(), **meeting.thresholds})

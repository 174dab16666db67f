"""The config's (and so the imported .ics's) meetings in progress at a time: pure.

A scheduled meeting is on from its start until start + duration; its rooms are
`netmon.meetings.meeting_targets` of the inventory in force.
"""

from __future__ import annotations

from netmon.inventory import Inventory, Target
from netmon.meeting_quality.model import Meeting, Room, scheduled_id
from netmon.meetings import meeting_targets


def room_of(target: Target) -> Room:
    return Room(target.id, target.display_name, target.district)


def in_progress(inventory: Inventory, now: float) -> list[Meeting]:
    found: dict[str, Meeting] = {}
    for config in inventory.config.meetings:
        start = config.start.timestamp()
        end = start + config.duration
        if not start <= now < end:
            continue
        meeting_id = scheduled_id(config.name, start)
        rooms = tuple(room_of(t) for t in meeting_targets(inventory, config))
        earlier = found.get(meeting_id)
        if earlier is not None:  # the same name at the same minute: one meeting
            merged = {r.id: r for r in (*earlier.rooms, *rooms)}
            rooms = tuple(merged[k] for k in sorted(merged))
            end = max(end, earlier.end or end)
        found[meeting_id] = Meeting(meeting_id, config.name, "scheduled", start, end, rooms)
    return list(found.values())

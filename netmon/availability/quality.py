"""Call quality for the meetings of a report, from the meeting quality record
(netmon/meeting_quality/): each room's mean and lowest MOS and its poor minutes, where the
record has the meeting."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from netmon.inventory import Inventory
from netmon.meeting_quality.db import MeetingDB
from netmon.meeting_quality.model import scheduled_id
from netmon.meeting_quality.summary import summarize
from netmon.meetings import meetings_starting


@dataclass(frozen=True, slots=True)
class CallQuality:
    mean_mos: float | None
    min_mos: float | None
    poor_minutes: int

    def to_json(self) -> dict[str, object]:
        return {
            "mean_mos": None if self.mean_mos is None else round(self.mean_mos, 3),
            "min_mos": None if self.min_mos is None else round(self.min_mos, 3),
            "poor_minutes": self.poor_minutes,
        }


def meetings_between(inventory: Inventory, start: float, end: float) -> list[tuple[str, float]]:
    """(name, start) of the configured meetings that start in [start, end)."""
    return [(meeting.name, begins) for meeting, begins in meetings_starting(inventory, start, end)]


def call_quality(
    db: MeetingDB, meetings: Sequence[tuple[str, float]]
) -> dict[tuple[str, str], CallQuality]:
    """(meeting id, room) -> its call quality, for the meetings the record has; blocking (run
    it on the record's thread)."""
    found: dict[tuple[str, str], CallQuality] = {}
    for name, begins in meetings:
        meeting_id = scheduled_id(name, begins)
        recorded = db.meeting(meeting_id)
        if recorded is None:
            continue
        for room in summarize(recorded, db.samples(meeting_id)):
            if room.in_call_samples:
                found[(meeting_id, room.room.id)] = CallQuality(
                    room.mean_mos, room.min_mos, room.poor_minutes
                )
    return found

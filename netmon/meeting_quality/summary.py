"""A room's timeline summed up: pure.

- mean and min MOS of what the room received (rx audio; the samples where it could be scored);
- worst loss and jitter of any of its streams;
- poor minutes: the wall-clock minutes in which a sample of its received audio scored below
  3.6 (CallQualityDegraded's raise point): ten seconds of bad audio is heard, so one sample
  makes its minute poor; runs of them as periods;
- where the fault lay over the poor samples, by the alert hint's own rule
  (`netmon.call_quality.fault_side`): the call's mean loss against netmon's own pings to the
  site over those same samples' intervals (sent and lost counted, a binomial test).

Rooms come worst first: the most poor minutes, then the lowest MOS; rooms never scored last.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from netmon.call_quality import FaultSide, fault_side
from netmon.meeting_quality.model import POOR_MOS, Meeting, Room, RoomSample
from netmon.model import iso


@dataclass(frozen=True, slots=True)
class PoorPeriod:
    start: float  # the first poor minute's start
    end: float  # the last poor minute's end
    min_mos: float

    @property
    def minutes(self) -> int:
        return round((self.end - self.start) / 60)

    def to_json(self) -> dict[str, Any]:
        return {
            "from": iso(self.start),
            "to": iso(self.end),
            "minutes": self.minutes,
            "min_mos": round(self.min_mos, 3),
        }


@dataclass(frozen=True, slots=True)
class RoomSummary:
    room: Room
    timeline: tuple[RoomSample, ...]
    mean_mos: float | None
    min_mos: float | None
    min_mos_tx: float | None
    worst_loss: float | None
    max_jitter: float | None
    mean_call_loss: float | None  # over the poor samples (all in-call samples if none)
    mean_path_loss: float | None  # netmon's pings over the same samples
    path_sent: int  # those pings
    path_lost: int
    mean_path_rtt: float | None
    poor: tuple[PoorPeriod, ...]
    fault: FaultSide | None  # None: never poor

    @property
    def poor_minutes(self) -> int:
        return sum(period.minutes for period in self.poor)

    @property
    def in_call_samples(self) -> int:
        return sum(1 for s in self.timeline if s.in_call)

    def sort_key(self) -> tuple[bool, int, float, float]:
        return (
            self.min_mos is None,
            -self.poor_minutes,
            self.min_mos if self.min_mos is not None else math.inf,
            self.mean_mos if self.mean_mos is not None else math.inf,
        )

    def to_json(self, hint: str | None, *, timeline: bool = True) -> dict[str, Any]:
        def r(value: float | None, digits: int = 3) -> float | None:
            return None if value is None else round(value, digits)

        body: dict[str, Any] = {
            **self.room.to_json(),
            "summary": {
                "samples": len(self.timeline),
                "in_call_samples": self.in_call_samples,
                "mean_mos": r(self.mean_mos),
                "min_mos": r(self.min_mos),
                "min_mos_tx": r(self.min_mos_tx),
                "worst_loss": r(self.worst_loss, 5),
                "max_jitter": r(self.max_jitter, 5),
                "mean_call_loss": r(self.mean_call_loss, 5),
                "mean_path_loss": r(self.mean_path_loss, 5),
                "mean_path_rtt": r(self.mean_path_rtt, 5),
                "path_sent": self.path_sent,
                "path_lost": self.path_lost,
                "poor_minutes": self.poor_minutes,
                "poor_periods": [period.to_json() for period in self.poor],
                "fault": self.fault,
                "hint": hint,
            },
        }
        if timeline:
            body["timeline"] = [sample.to_json() for sample in self.timeline]
        return body


def _mean(values: Iterable[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return sum(known) / len(known) if known else None


def _extreme(values: Iterable[float | None], *, low: bool) -> float | None:
    known = [v for v in values if v is not None]
    return (min(known) if low else max(known)) if known else None


def poor_periods(samples: Sequence[RoomSample]) -> tuple[PoorPeriod, ...]:
    worst: dict[int, float] = {}
    for sample in samples:
        if sample.mos_rx is not None and sample.mos_rx < POOR_MOS:
            minute = math.floor(sample.t / 60)
            worst[minute] = min(worst.get(minute, math.inf), sample.mos_rx)
    periods: list[PoorPeriod] = []
    for minute in sorted(worst):
        last = periods[-1] if periods else None
        if last is not None and last.end == minute * 60:
            periods[-1] = PoorPeriod(
                last.start, (minute + 1) * 60, min(last.min_mos, worst[minute])
            )
        else:
            periods.append(PoorPeriod(minute * 60, (minute + 1) * 60, worst[minute]))
    return tuple(periods)


def summarize_room(room: Room, samples: Sequence[RoomSample]) -> RoomSummary:
    poor = [s for s in samples if s.mos_rx is not None and s.mos_rx < POOR_MOS]
    judged = poor or [s for s in samples if s.in_call]
    call_loss = _mean(s.loss for s in judged)
    sent = sum(s.path_sent or 0 for s in judged)
    lost = sum(s.path_lost or 0 for s in judged)
    path_loss = lost / sent if sent else _mean(s.path_loss for s in judged)
    return RoomSummary(
        room=room,
        timeline=tuple(samples),
        mean_mos=_mean(s.mos_rx for s in samples),
        min_mos=_extreme((s.mos_rx for s in samples), low=True),
        min_mos_tx=_extreme((s.mos_tx for s in samples), low=True),
        worst_loss=_extreme((s.loss for s in samples), low=False),
        max_jitter=_extreme((s.jitter for s in samples), low=False),
        mean_call_loss=call_loss,
        mean_path_loss=path_loss,
        path_sent=sent,
        path_lost=lost,
        mean_path_rtt=_mean(s.path_rtt for s in judged),
        poor=poor_periods(samples),
        fault=fault_side(call_loss, lost, sent) if poor else None,
    )


def summarize(meeting: Meeting, samples: Sequence[RoomSample]) -> list[RoomSummary]:
    """Every room of the meeting (those with samples but no longer listed too), worst first."""
    by_room: dict[str, list[RoomSample]] = {}
    for sample in samples:
        by_room.setdefault(sample.room, []).append(sample)
    rooms = {room.id: room for room in meeting.rooms}
    for room_id in by_room:
        rooms.setdefault(room_id, Room(room_id))
    summaries = [summarize_room(room, by_room.get(room.id, [])) for room in rooms.values()]
    return sorted(summaries, key=lambda s: (s.sort_key(), s.room.id))

"""A recorded meeting, its rooms and one room's sample: plain data, and the meetings' ids."""

from __future__ import annotations

import datetime as dt
import re
import unicodedata
from dataclasses import dataclass
from typing import Any, Literal

from netmon.model import iso

Kind = Literal["scheduled", "adhoc"]

# Below this MOS a minute of a room's call is poor: CallQualityDegraded's raise point (README).
POOR_MOS = 3.6


@dataclass(frozen=True, slots=True)
class Room:
    id: str
    name: str = ""
    district: str = ""

    def to_json(self) -> dict[str, str]:
        return {"id": self.id, "name": self.name, "district": self.district}


@dataclass(frozen=True, slots=True)
class Meeting:
    """A meeting as recorded. `end` is a scheduled meeting's planned end, an ad hoc meeting's
    last moment with a room in a call; None while an ad hoc meeting goes on."""

    id: str
    name: str
    kind: Kind
    start: float
    end: float | None
    rooms: tuple[Room, ...]
    samples: int = 0

    def in_progress(self, now: float) -> bool:
        if self.kind == "adhoc":
            return self.end is None
        return self.end is not None and self.start <= now < self.end

    def to_json(self, now: float) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "kind": self.kind,
            "start": iso(self.start),
            "end": iso(self.end),
            "in_progress": self.in_progress(now),
            "rooms": [room.to_json() for room in self.rooms],
            "samples": self.samples,
            "quality": f"/api/v1/meetings/{self.id}/quality",
            "report": f"/api/v1/meetings/{self.id}/report",
        }


@dataclass(frozen=True, slots=True)
class RoomSample:
    """One room at one moment of a meeting. MOS are the E-model's (worst stream of the
    direction: rx what the room hears, tx what it sends as the far end reports); `loss` and
    `jitter` the worst stream's; `video` G.1070's estimate of the worst received video
    stream; `path_rtt` and `path_loss` netmon's own echoes to the site as the alerts read
    them (the last RTT, the loss over the ICMP window); `path_sent` and `path_lost` its
    regular echoes since the previous sample (None for a room's first)."""

    room: str
    t: float
    in_call: bool
    mos_rx: float | None = None
    mos_tx: float | None = None
    loss: float | None = None
    jitter: float | None = None
    video: float | None = None
    path_rtt: float | None = None
    path_loss: float | None = None
    path_sent: int | None = None
    path_lost: int | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "t": iso(self.t),
            "in_call": self.in_call,
            "mos_rx": _round(self.mos_rx, 3),
            "mos_tx": _round(self.mos_tx, 3),
            "loss": _round(self.loss, 5),
            "jitter": _round(self.jitter, 5),
            "video": _round(self.video, 3),
            "path_rtt": _round(self.path_rtt, 5),
            "path_loss": _round(self.path_loss, 5),
            "path_sent": self.path_sent,
            "path_lost": self.path_lost,
        }


def _round(value: float | None, digits: int) -> float | None:
    return None if value is None else round(value, digits)


def slug(text: str, limit: int = 60) -> str:
    """Lower-case ASCII words joined by '-': Vietnamese marks dropped, Đ as D."""
    bare = unicodedata.normalize("NFD", text.replace("Đ", "D").replace("đ", "d"))
    ascii_only = "".join(c for c in bare if not unicodedata.combining(c)).lower()
    words = re.sub(r"[^a-z0-9]+", "-", ascii_only).strip("-")
    return words[:limit].rstrip("-") or "meeting"


def _stamp(timestamp: float) -> str:
    return dt.datetime.fromtimestamp(timestamp, dt.UTC).strftime("%Y%m%dT%H%MZ")


def scheduled_id(name: str, start: float) -> str:
    """A config meeting's id: its name's slug and its start in UTC to the minute,
    "hop-giao-ban-tinh-20261205T0100Z"; the same on every run and after a reload."""
    return f"{slug(name)}-{_stamp(start)}"


def adhoc_id(start: float) -> str:
    """An ad hoc meeting's id: "adhoc-" and the UTC minute its first call was seen. Two never
    share a minute: one ends only after `adhoc_idle` (60 s) without a call."""
    return f"adhoc-{_stamp(start)}"

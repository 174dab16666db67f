"""The demo's faults of a room's own status: what they make each room's codec say.

`camera-unplug`, `unregister`, `diagnostic <level>` and `busy` change what a simulated codec
reports over its API (`netmon_lab.codec_state.CodecState`); `unregister` of a plain SIP room
takes its user agent off the registrar. The injector (`faults.py`) validates and keeps the
faults; this says what the faults in force add up to, per room. Plain data, no I/O.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Protocol

from netmon_lab.fault_kinds import FaultKind


@dataclass(frozen=True, slots=True)
class RoomFaults:
    """What the faults in force do to one room."""

    camera_unplugged: bool = False
    unregistered: bool = False
    diagnostics: tuple[str, ...] = ()  # levels: warning, error, critical
    busy: bool = False
    path_loss: float = 0.0  # a loss fault on the room's path: its calls lose as much


class RoomControl(Protocol):
    """The demo's rooms: their codec simulators and the registrar's user agents."""

    def refusal(self, endpoint: str, kind: FaultKind) -> str | None:
        """Why `kind` cannot be injected on `endpoint` (a room without a codec API cannot
        unplug a camera), or None."""
        ...

    async def set_rooms(self, rooms: Mapping[str, RoomFaults]) -> None: ...


def rooms_of(faults: Iterable[tuple[FaultKind, str, str | None]]) -> dict[str, RoomFaults]:
    """(kind, endpoint, level) of every room fault in force -> what each room suffers."""
    rooms: dict[str, RoomFaults] = {}
    for kind, endpoint, level in faults:
        room = rooms.get(endpoint, RoomFaults())
        if kind is FaultKind.CAMERA_UNPLUG:
            room = replace(room, camera_unplugged=True)
        elif kind is FaultKind.UNREGISTER:
            room = replace(room, unregistered=True)
        elif kind is FaultKind.DIAGNOSTIC:
            room = replace(room, diagnostics=(*room.diagnostics, level or "error"))
        elif kind is FaultKind.BUSY:
            room = replace(room, busy=True)
        rooms[endpoint] = room
    return rooms


def summary(kind: FaultKind, where: str, level: str | None) -> str:
    return {
        FaultKind.CAMERA_UNPLUG: f"{where} reports its camera disconnected",
        FaultKind.UNREGISTER: f"{where} is not registered (SIP)",
        FaultKind.DIAGNOSTIC: f"{where} raises a diagnostic at {level} level",
        FaultKind.BUSY: f"{where} is in another call",
    }[kind]

"""The demo's softphone rooms: a few plain SIP rooms whose user agents make REAL calls.

Where kamailio and baresip are installed (`netmon_lab.calls.calls_available`), the demo takes
`COUNT` of its plain SIP rooms (the HDX 7000s, spread over the list) out of `SipRooms` and gives
each its own baresip in a `CallLab`: registered to the lab's Kamailio, called by the lab's hub
(the province's bridge) when the demo's meeting starts, every RTP packet through the lab's
media relay. netmon reads them as it would read a softphone in a commune hall: the `baresip`
probe on the room's control socket (RTCP figures, registration, calls), and their Kamailio as a
second registrar target (`REGISTRAR_ID`). A `loss` fault on such a room's path is applied by
the relay to its RTP, both ways, as the namespace's responder applies it to netmon's pings.

Their control sockets are netmon's (ctrl_tcp serves one client), so the demo cannot unregister
them, unplug their camera or raise a diagnostic: those faults are refused with the reason.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Mapping, Sequence
from types import TracebackType
from typing import Any

from netmon_lab.calls import CallLab, CallLabError, calls_available
from netmon_lab.fault_kinds import FaultKind
from netmon_lab.room_faults import RoomFaults

log = logging.getLogger(__name__)

COUNT = 4  # real calls cost a baresip each and CPU while in a call: a handful shows it
REGISTRAR_ID = "softphone-registrar"
REGISTRAR_PROBE = {"interval": "5s", "timeout": "3s"}


def softphone_rooms(plain: Sequence[Mapping[str, str]], count: int = COUNT) -> list[str]:
    """`count` room ids spread evenly over the plain SIP rooms of communes (where a softphone
    on a PC is what a hall has), or of any level when there are none; not the first few of
    one district."""
    communes = [room for room in plain if room.get("level") == "commune"] or list(plain)
    ids = sorted(room["id"] for room in communes)
    if len(ids) <= count:
        return ids
    step = len(ids) / count
    return [ids[int(i * step)] for i in range(count)]


class Softphones:
    """A `CallLab` for `rooms`, for as long as the context lasts; `reason` says why there is
    none (a program missing, or it would not start), and then every method is a no-op."""

    def __init__(self, rooms: Sequence[str]) -> None:
        self.rooms = list(rooms)
        self.lab: CallLab | None = None
        self.reason: str | None = None
        self._stack = contextlib.AsyncExitStack()

    async def __aenter__(self) -> Softphones:
        self.reason = calls_available() if self.rooms else "no plain SIP room"
        if self.reason is None:
            try:
                self.lab = await self._stack.enter_async_context(
                    CallLab(self.rooms, watch_rooms=False)
                )
            except CallLabError as exc:
                self.reason = str(exc)
        if self.lab is None:
            self.rooms = []
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self._stack.aclose()

    def config(self, data: dict[str, Any]) -> dict[str, Any]:
        """Each softphone room as `vendor: sip` read by the `baresip` probe and registered to
        the softphones' Kamailio (a registrar target of its own)."""
        if self.lab is None:
            return data
        targets = []
        for target in data["targets"]:
            if target["id"] in self.rooms:
                probes = dict(target.get("probes") or {"icmp": {}})
                probes["baresip"] = {
                    "address": "127.0.0.1",
                    "port": self.lab.control_port(target["id"]),
                }
                target = {
                    **target, "vendor": "sip", "registrar": REGISTRAR_ID, "aor": target["id"],
                    "probes": probes,
                }  # fmt: skip
            targets.append(target)
        registrar = {
            "id": REGISTRAR_ID,
            "name": "Kamailio (the demo's softphones)",
            "address": "127.0.0.1",
            "kind": "service",
            "probes": {"kamailio": {"url": self.lab.rpc_url, **REGISTRAR_PROBE}},
        }
        return {**data, "targets": [*targets, registrar]}

    def refusal(self, endpoint: str, kind: FaultKind) -> str:
        return (
            f"{endpoint} is a softphone room making real calls: netmon holds its control "
            f"socket, so the demo cannot fake {kind} on it (a `loss` fault reaches its calls)"
        )

    def set_rooms(self, rooms: Mapping[str, RoomFaults]) -> None:
        """Each softphone's RTP loses what its path loses (a `loss` fault), both ways."""
        if self.lab is None:
            return
        for room in self.rooms:
            loss = rooms.get(room, RoomFaults()).path_loss
            self.lab.set_impairment(room, loss=loss, direction="both")

    async def start_meeting(self, rooms: Sequence[str]) -> None:
        if self.lab is not None and rooms:
            await self.lab.start_meeting(rooms)

    async def stop_meeting(self) -> None:
        if self.lab is not None:
            await self.lab.stop_meeting()

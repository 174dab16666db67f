"""The demo's rooms as they see themselves: codec simulators (and the plain SIP rooms'
registrar, `sip_rooms`).

The lab's inventory (its CSV) says each room's vendor and model. Cisco Room Kits answer
xAPI (`cisco_sim`), Poly G7500s the VideoOS REST API and Polycom Group 500s the Group Series
one (`poly_sim`); the older HDX 7000s, which have no REST API, are plain SIP rooms registered
to a Kamailio with one baresip user agent per room (`sip_rooms`, when both programs are
installed); the Huawei rooms have neither, and their status is "not available", as a real
province's would be. Every simulated codec renders a `CodecState`; the demo's room faults
(`room_faults`) change it.

All of it listens on loopback: a room's API address is not its ping address (a management
network, as in many provinces), so `probes.xapi.address` and `port` say where to find it.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from types import TracebackType
from typing import Any

from netmon_lab.cisco_sim import CiscoSim, SimCodec
from netmon_lab.codec_state import CodecState, SimCall, SimDiagnostic
from netmon_lab.fault_kinds import FaultKind
from netmon_lab.poly_sim import GROUP_SERIES, VIDEOOS, PolyCodec, PolySim
from netmon_lab.room_faults import RoomFaults
from netmon_lab.sip_rooms import SipRooms, plain_sip_rooms
from netmon_lab.softphones import Softphones, softphone_rooms

log = logging.getLogger(__name__)

API_CREDENTIAL = "demo-codecs"
# Shorter than a real fleet's 30 s, so a fault injected in the demo shows within seconds.
STATUS_INTERVAL = "10s"
API_USER = "netmon"
# Firmware per model, with a few rooms left behind on an older release: what the software
# version panel is for.
SOFTWARE = {
    "Room Kit": ("ce11.9.2.4", "ce11.5.1.9"),
    "G7500": ("4.1.0-410085", "3.14.2-330020"),
    "Group 500": ("6.2.2.5-440049", "6.2.1-360051"),
}
LAGGING = 7  # one room in this many runs the older release
# Which REST API each Poly model speaks; the HDX 7000 has none (a plain SIP room).
POLY_APIS = {"G7500": VIDEOOS, "Group 500": GROUP_SERIES}
DIAGNOSTICS = {
    "warning": ("NTPStatus", "The NTP server is not reachable"),
    "error": ("TemperatureCheck", "The unit is running hot"),
    "critical": ("FanStatus", "A fan has stopped"),
}


def _digest(text: str) -> int:
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:4], "big")


def codec_state(room: Mapping[str, str]) -> CodecState:
    """What a healthy room of this model says of itself."""
    model = room.get("model", "")
    current, older = SOFTWARE.get(model, ("1.0", "1.0"))
    serial = f"FOC{_digest(room['id']) % 10**8:08d}"
    return CodecState(
        model=model,
        software=older if _digest(room["id"]) % LAGGING == 0 else current,
        serial=serial,
        sip_uri=room.get("sip_uri", ""),
    )


MEETING_HUB = "sip:hop-tinh@vc.thanhhoa.example"  # the provincial meeting's bridge


def faulted(
    base: CodecState, faults: RoomFaults, started: float, meeting: float | None = None
) -> CodecState:
    """`base` with `faults` applied (a fresh copy: the base stays healthy), in the demo's
    meeting since `meeting` (unix seconds) when it is one of its rooms."""
    state = replace(
        base,
        peripherals=[replace(p) for p in base.peripherals],
        diagnostics=list(base.diagnostics),
        calls=list(base.calls),
    )
    if faults.camera_unplugged:
        state.connect("camera", False)
    if faults.unregistered:
        state.sip_state, state.sip_reason = "failed", "403 Forbidden"
    for level in faults.diagnostics:
        kind, text = DIAGNOSTICS[level]
        state.diagnostics.append(SimDiagnostic(level, kind, text))
    if faults.busy:
        state.calls.append(SimCall(remote="sip:hop-thuong-xuyen@vc.example", started=started))
    if meeting is not None:
        # A loss on the room's path (a `loss` fault) is lost by its calls too.
        state.calls.append(SimCall(remote=MEETING_HUB, started=meeting, rx_loss=faults.path_loss))
    return state


@dataclass
class DemoRooms:
    """The rooms' simulators of one demo run: start with `async with`, then `config()`."""

    rooms: list[dict[str, str]]  # id, vendor, model, sip_uri of every endpoint
    password: str = field(default_factory=lambda: secrets.token_urlsafe(12))
    sip: SipRooms | None = None  # the plain SIP rooms and their registrar, once started
    softphones: Softphones | None = None  # the plain SIP rooms that make real calls
    meeting: dict[str, float] = field(default_factory=dict)  # room -> when it joined
    _faults: dict[str, RoomFaults] = field(default_factory=dict)
    _codecs: dict[str, SimCodec | PolyCodec] = field(default_factory=dict)
    _base: dict[str, CodecState] = field(default_factory=dict)
    _stack: contextlib.AsyncExitStack = field(default_factory=contextlib.AsyncExitStack)

    async def __aenter__(self) -> DemoRooms:
        try:
            await self._start()
        except BaseException:
            await self._stack.aclose()
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self._stack.aclose()

    async def _start(self) -> None:
        cisco = [r for r in self.rooms if r.get("vendor", "").casefold() == "cisco"]
        poly = [r for r in self.rooms if r.get("model", "") in POLY_APIS]
        if cisco:
            cisco_sim = await self._stack.enter_async_context(
                CiscoSim(user=API_USER, password=self.password)
            )
            for room in cisco:
                state = self._base[room["id"]] = codec_state(room)
                self._codecs[room["id"]] = await cisco_sim.add(faulted(state, RoomFaults(), 0))
        if poly:
            poly_sim = PolySim()
            await poly_sim.start()
            self._stack.push_async_callback(poly_sim.close)
            for room in poly:
                state = self._base[room["id"]] = codec_state(room)
                self._codecs[room["id"]] = await poly_sim.add(
                    faulted(state, RoomFaults(), 0),
                    api=POLY_APIS[room["model"]],
                    user=API_USER,
                    password=self.password,
                )
        log.info("simulated codecs ready", extra={"cisco": len(cisco), "poly": len(poly)})
        plain = plain_sip_rooms(self.rooms)
        self.softphones = await self._stack.enter_async_context(Softphones(softphone_rooms(plain)))
        if self.softphones.reason is not None:
            log.warning("no real calls in the demo", extra={"reason": self.softphones.reason})
        plain = [room for room in plain if room["id"] not in self.softphones.rooms]
        if plain:
            self.sip = await self._stack.enter_async_context(SipRooms(plain))
            if self.sip.reason is not None:
                log.warning("no plain SIP rooms in the demo", extra={"reason": self.sip.reason})

    def config(self, data: dict[str, Any]) -> dict[str, Any]:
        """The demo config with each simulated room's vendor, API and credential."""
        targets = []
        for target in data["targets"]:
            codec = self._codecs.get(target["id"])
            if codec is not None:
                vendor, probe = (
                    ("cisco", "xapi") if isinstance(codec, SimCodec) else ("poly", "poly")
                )
                probes = dict(target.get("probes") or {"icmp": {}})
                probes[probe] = {"scheme": "http", "address": codec.host, "port": codec.port}
                target = {**target, "vendor": vendor, "probes": probes}
            targets.append(target)
        credentials = {
            **data.get("credentials", {}),
            API_CREDENTIAL: {"user": API_USER, "password": self.password},
        }
        status = {"credential": API_CREDENTIAL, "interval": STATUS_INTERVAL}
        defaults = {**data.get("defaults", {}), "xapi": status, "poly": status}
        data = {**data, "targets": targets, "credentials": credentials, "defaults": defaults}
        if self.softphones is not None:
            data = self.softphones.config(data)
        return data if self.sip is None else self.sip.config(data)

    # -- RoomControl ---------------------------------------------------------------------------

    def refusal(self, endpoint: str, kind: FaultKind) -> str | None:
        if self.softphones is not None and endpoint in self.softphones.rooms:
            return self.softphones.refusal(endpoint, kind)
        if self.sip is not None and endpoint in self.sip.rooms:
            return self.sip.refusal(endpoint, kind)
        codec = self._codecs.get(endpoint)
        if codec is None:
            return f"{endpoint} has no simulated codec API (a Huawei room: its status is not read)"
        if kind is FaultKind.DIAGNOSTIC and isinstance(codec, PolyCodec):
            return f"{endpoint} is a Poly codec: its REST API reports no diagnostics"
        return None

    async def set_rooms(self, rooms: Mapping[str, RoomFaults]) -> None:
        self._faults = dict(rooms)
        self._render()
        if self.softphones is not None:
            self.softphones.set_rooms(rooms)
        if self.sip is not None:
            await self.sip.set_rooms(rooms)

    def _render(self) -> None:
        now = time.time()
        for endpoint, codec in self._codecs.items():
            faults = self._faults.get(endpoint, RoomFaults())
            codec.state = faulted(self._base[endpoint], faults, now, self.meeting.get(endpoint))

    # -- the demo's meeting -------------------------------------------------------------------

    def meeting_rooms(self) -> list[str]:
        """The rooms a meeting can be held in: those whose media statistics netmon reads (the
        Cisco and Poly codecs, and the softphones' real calls)."""
        return [*self._codecs, *(self.softphones.rooms if self.softphones else [])]

    async def start_meeting(self, rooms: list[str] | None) -> list[str]:
        """Put `rooms` (default: every room that can) in a call to the province's bridge;
        returns once the softphones' real calls are established."""
        able = self.meeting_rooms()
        chosen = rooms or able
        unable = [room for room in chosen if room not in able]
        if unable:
            raise ValueError(
                f"rooms: {', '.join(unable)} cannot join (the demo's meeting needs a room "
                f"with a codec API, whose media statistics netmon reads; e.g. "
                f"{able[0] if able else '-'})"
            )
        if self.softphones is not None:
            await self.softphones.start_meeting(
                [room for room in chosen if room in self.softphones.rooms]
            )
        now = time.time()
        for room in chosen:
            self.meeting.setdefault(room, now)
        self._render()
        return sorted(self.meeting)

    async def stop_meeting(self) -> list[str]:
        ended = sorted(self.meeting)
        if self.softphones is not None:
            await self.softphones.stop_meeting()
        self.meeting.clear()
        self._render()
        return ended

"""The demo's plain SIP rooms: user agents registered to a real Kamailio, by a real baresip.

The older rooms of the lab's inventory (Polycom HDX 7000: no REST API) are plain SIP rooms:
netmon learns whether they are registered only from their registrar. `SipRooms` starts
kamailio with the lab registrar's config (`netmon_lab.registrar`, the one the tests run: SIP
on a free loopback UDP port, JSON-RPC on a free loopback TCP port) and ONE baresip holding one
account per room (user: the user part of the room's SIP URI, or its id; a random password
per room and run), and waits until the registrar lists every room. `unregister(room, True)`
takes a room's user agent off the registrar through baresip's control socket, `False` puts it
back; `config(data)` adds the registrar target and each room's `vendor: sip`, `registrar`
and `aor` to the demo config.

When kamailio or baresip is not installed, or will not start, `reason` says why, `config()`
leaves the demo config as it is, and the demo runs without plain SIP rooms.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import secrets
import shutil
import socket
import tempfile
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import aiohttp

from collectors.baresip_ctrl import BaresipCommandError, BaresipControl
from collectors.registrar.kamailio import (
    KamailioAnswerError,
)
from netmon_lab.fault_kinds import FaultKind
from netmon_lab.lab_process import LabProcess
from netmon_lab.registrar import (
    free_port,
    kamailio_modules,
    kamailio_program,
    registered_aors,
    render_config,
    snippet,
    write_baresip,
    write_kamailio,
)
from netmon_lab.room_faults import RoomFaults

log = logging.getLogger(__name__)

# The inventory's models without a vendor API: plain SIP rooms.
PLAIN_SIP_MODELS = frozenset({"HDX 7000"})
REGISTRAR_ID = "registrar"
# The registrar is one RPC call for every room: polled twice per demo codec poll (10 s), so
# an `unregister` shows within one status interval; it answers from loopback in milliseconds.
REGISTRAR_PROBE = {"interval": "5s", "timeout": "3s"}
EXPIRES = 60  # seconds a registration asks for; baresip refreshes it before it runs out
BARESIP_MODULES = Path("/usr/lib/baresip/modules")
# account: reads the accounts file; menu: the uanew/uadel commands; ctrl_tcp: their socket.
BARESIP_NEEDS = ("account.so", "menu.so", "ctrl_tcp.so")
READY = "baresip is ready."
CTRL_FAILED = "ctrl_tcp: failed to listen"
ATTEMPTS = 3  # a free port can be taken by someone else before the program binds it
_USER = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


class SipRoomsError(RuntimeError):
    """A plain SIP room could not be changed as asked."""


@dataclass(frozen=True, slots=True)
class SipRoom:
    id: str
    user: str  # its AoR at the registrar (usrloc without domains: the user part)
    password: str


def plain_sip_rooms(rooms: Iterable[Mapping[str, str]]) -> list[dict[str, str]]:
    """The rooms (id, model, sip_uri, ...) that are plain SIP rooms: `[{id, sip_uri, level}]`."""
    return [
        {"id": room["id"], "sip_uri": room.get("sip_uri", ""), "level": room.get("level", "")}
        for room in rooms
        if room.get("model", "") in PLAIN_SIP_MODELS
    ]


def sip_user(room: Mapping[str, str]) -> str:
    """The user part of the room's SIP URI (`sip:ep-so-04@vc.example` -> `ep-so-04`), or its
    id; only names that fit a kamailio.cfg string and a baresip account line."""
    uri = room.get("sip_uri", "")
    matched = re.fullmatch(r"sips?:([^@;>]+)@.*", uri)
    user = matched.group(1) if matched else room["id"]
    if not _USER.fullmatch(user):
        raise ValueError(f"{room['id']}: {user!r} is not a SIP user name the lab can register")
    return user


def baresip_program() -> str | None:
    return shutil.which("baresip")


def _failed(process: LabProcess, what: str) -> str:
    """Why a program is of no use: how it ended, or what it was not doing, and its last words."""
    state = f"exited with {process.returncode}" if process.ended else what
    tail = process.tail()
    return f"{process.name} {state}" + (f": {tail}" if tail else "")


class SipRooms:
    """Kamailio and one baresip for `rooms` (`[{id, sip_uri}]`), for as long as the context
    lasts. After `async with`: `rpc_url` (None when `reason` says why not), `registered()`,
    `unregister(room, bool)`, `config(data)`; `refusal`/`set_rooms` as a `RoomControl`."""

    def __init__(
        self,
        rooms: Sequence[Mapping[str, str]],
        *,
        expires: int = EXPIRES,
        start_timeout: float = 30.0,
        change_timeout: float = 5.0,
    ) -> None:
        self.rooms = {
            room["id"]: SipRoom(room["id"], sip_user(room), secrets.token_urlsafe(12))
            for room in rooms
        }
        users = [room.user for room in self.rooms.values()]
        if len(set(users)) != len(users):
            raise ValueError("two plain SIP rooms share a SIP user")
        self.expires = expires
        self.start_timeout = start_timeout
        self.change_timeout = change_timeout
        self.reason: str | None = None
        self.rpc_url: str | None = None
        self.sip_port = 0
        self.processes: list[LabProcess] = []
        self._unregistered: set[str] = set()
        self._control: BaresipControl | None = None
        self._http: aiohttp.ClientSession | None = None
        self._stack = contextlib.AsyncExitStack()
        self._change = asyncio.Lock()

    # -- life --------------------------------------------------------------------------------

    async def __aenter__(self) -> SipRooms:
        if not self.rooms:
            self.reason = "the inventory has no plain SIP rooms"
            return self
        started = time.monotonic()
        try:
            self.reason = await self._start()
        except (
            OSError,
            TimeoutError,
            BaresipCommandError,
            aiohttp.ClientError,
            KamailioAnswerError,
        ) as exc:
            self.reason = f"{type(exc).__name__}: {exc}"
        except BaseException:
            await self._stack.aclose()
            raise
        if self.reason is not None:
            await self._stack.aclose()
            # Nothing half-started answers for the rooms: no registrar URL, no control socket.
            self.rpc_url, self._control = None, None
            log.warning("the demo runs without plain SIP rooms", extra={"reason": self.reason})
        else:
            log.info(
                "plain SIP rooms registered",
                extra={"rooms": len(self.rooms), "seconds": round(time.monotonic() - started, 2)},
            )
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self._stack.aclose()

    async def _start(self) -> str | None:
        """Everything started and every room registered: None; else why not."""
        kamailio, modules = kamailio_program(), kamailio_modules()
        baresip = baresip_program()
        if kamailio is None or modules is None:
            return "kamailio is not installed (Debian package kamailio)"
        missing = [m for m in BARESIP_NEEDS if not (BARESIP_MODULES / m).is_file()]
        if baresip is None or missing:
            return "baresip is not installed (Debian package baresip-core)"
        workdir = Path(await asyncio.to_thread(tempfile.mkdtemp, prefix="netmon-siprooms-"))
        self._stack.push_async_callback(asyncio.to_thread, shutil.rmtree, workdir, True)
        self._http = await self._stack.enter_async_context(aiohttp.ClientSession())
        included = self._stack.enter_context(snippet())
        reason = await self._start_kamailio(kamailio, modules, included, workdir)
        if reason is None:
            reason = await self._start_baresip(baresip, workdir)
        if reason is None:
            users = {room.user for room in self.rooms.values()}
            if not await self._until(lambda aors: users <= aors, self.start_timeout):
                missing_users = users - await self.registered()
                reason = (
                    f"{len(missing_users)} of {len(users)} rooms not registered within "
                    f"{self.start_timeout:g}s (baresip: {self.processes[-1].tail(3)})"
                )
        return reason

    async def _start_kamailio(
        self, program: str, modules: Path, included: Path, workdir: Path
    ) -> str | None:
        runtime = workdir / "kamailio-run"
        config = workdir / "kamailio.cfg"
        users = {room.user: room.password for room in self.rooms.values()}
        reason = "kamailio did not start"
        for _attempt in range(ATTEMPTS):
            self.sip_port = free_port(socket.SOCK_DGRAM)
            rpc_port = free_port(socket.SOCK_STREAM)
            text = render_config(
                sip_port=self.sip_port, rpc_port=rpc_port, users=users,
                modules=modules, snippet=included,
            )  # fmt: skip
            await asyncio.to_thread(write_kamailio, config, text, runtime)
            process = await self._own(
                "kamailio",
                # -DD: in the foreground; -E: log to stderr (drained); -Y: its runtime dir.
                [
                    program,
                    "-f",
                    str(config),
                    "-DD",
                    "-E",
                    "-Y",
                    str(runtime),
                    "-m",
                    "32",
                    "-M",
                    "8",
                ],
            )
            self.rpc_url = f"http://127.0.0.1:{rpc_port}/RPC"
            if await self._rpc_answers(process, timeout=10.0):
                return None
            reason = _failed(process, "did not answer its RPC within 10s")
            await self._disown(process)
        return reason

    async def _rpc_answers(self, process: LabProcess, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while not process.ended and time.monotonic() < deadline:
            with contextlib.suppress(OSError, aiohttp.ClientError, KamailioAnswerError):
                await self.registered()
                return True
            await asyncio.sleep(0.05)
        return False

    async def _start_baresip(self, program: str, workdir: Path) -> str | None:
        confdir = workdir / "baresip"
        accounts = "".join(f"{self._account(room)}\n" for room in self.rooms.values())
        reason = "baresip did not start"
        for _attempt in range(ATTEMPTS):
            control_port = free_port(socket.SOCK_STREAM)
            config = (
                # Port 0: the kernel picks SIP's ports (UDP, TCP, TLS), nothing to collide.
                "sip_listen\t127.0.0.1:0\n"
                f"module_path\t{BARESIP_MODULES}\n"
                + "".join(f"module\t{module}\n" for module in BARESIP_NEEDS)
                + f"ctrl_tcp_listen\t127.0.0.1:{control_port}\n"
            )
            await asyncio.to_thread(write_baresip, confdir, config, accounts)
            process = await self._own("baresip", [program, "-f", str(confdir), "-n", "127.0.0.1"])
            await process.until_saw(READY, CTRL_FAILED, timeout=10.0)
            if process.saw(READY) and not process.saw(CTRL_FAILED) and not process.ended:
                self._control = await BaresipControl.connect(control_port)
                self._stack.push_async_callback(self._control.close)
                return None
            reason = _failed(process, "did not start within 10s")
            await self._disown(process)
        return reason

    async def _own(self, name: str, argv: list[str]) -> LabProcess:
        process = await LabProcess.start(name, argv)
        self.processes.append(process)
        self._stack.push_async_callback(process.stop)
        return process

    async def _disown(self, process: LabProcess) -> None:
        """A failed attempt: stopped now (stopping again at exit is harmless)."""
        await process.stop()
        self.processes.remove(process)

    def _account(self, room: SipRoom) -> str:
        # The registrar's address in the AoR: baresip sends its REGISTERs there.
        return (
            f"<sip:{room.user}@127.0.0.1:{self.sip_port}>"
            f";auth_pass={room.password};regint={self.expires}"
        )

    # -- the registrar's view ----------------------------------------------------------------

    async def registered(self) -> set[str]:
        """The AoRs with a live contact at the registrar now (its `ul.dump`)."""
        if self._http is None or self.rpc_url is None:
            return set()
        return await registered_aors(self._http, self.rpc_url)

    async def _until(self, condition: Callable[[set[str]], bool], timeout: float) -> bool:
        """Poll the registrar until `condition(aors)` holds, at most `timeout` s."""
        deadline = time.monotonic() + timeout
        while True:
            if condition(await self.registered()):
                return True
            if time.monotonic() > deadline:
                return False
            await asyncio.sleep(0.05)

    # -- faults ------------------------------------------------------------------------------

    async def unregister(self, room_id: str, unregistered: bool) -> None:
        """Take the room's user agent off the registrar (True) or put it back (False), and
        return once the registrar's `ul.dump` shows it."""
        room = self.rooms.get(room_id)
        if room is None:
            raise KeyError(f"{room_id} is not a plain SIP room")
        if self._control is None:
            raise SipRoomsError(f"no plain SIP rooms: {self.reason}")
        async with self._change:
            if (room_id in self._unregistered) == unregistered:
                return
            if unregistered:
                await self._control.command("uadel", f"sip:{room.user}@127.0.0.1:{self.sip_port}")
                self._unregistered.add(room_id)
            else:
                await self._control.command("uanew", self._account(room))
                self._unregistered.discard(room_id)
            if not await self._until(
                lambda aors: (room.user in aors) != unregistered, self.change_timeout
            ):
                state = "unregistered" if unregistered else "registered"
                raise SipRoomsError(f"{room_id} not {state} within {self.change_timeout:g}s")

    def refusal(self, endpoint: str, kind: FaultKind) -> str | None:
        if endpoint not in self.rooms:
            return f"{endpoint} is not a plain SIP room"
        if kind is not FaultKind.UNREGISTER:
            return f"{endpoint} is a plain SIP room: it has no API to report {kind}"
        if self._control is None:
            return f"{endpoint}'s registrar is not running: {self.reason}"
        return None

    async def set_rooms(self, rooms: Mapping[str, RoomFaults]) -> None:
        """Every plain SIP room registered or not as `rooms` says (absent: registered)."""
        if self._control is None:
            return
        for room_id in self.rooms:
            faults = rooms.get(room_id)
            await self.unregister(room_id, faults is not None and faults.unregistered)

    # -- the demo config ---------------------------------------------------------------------

    def config(self, data: dict[str, Any]) -> dict[str, Any]:
        """The demo config with the registrar target and each plain SIP room's `vendor: sip`,
        `registrar` and `aor`; unchanged when the rooms are not running."""
        if self.rpc_url is None or self._control is None:
            return data
        targets = []
        for target in data["targets"]:
            room = self.rooms.get(target["id"])
            if room is not None:
                target = {**target, "vendor": "sip", "registrar": REGISTRAR_ID, "aor": room.user}
            targets.append(target)
        registrar = {
            "id": REGISTRAR_ID,
            "name": "Kamailio (the demo's registrar)",
            "address": "127.0.0.1",
            "kind": "service",
            "probes": {"kamailio": {"url": self.rpc_url, **REGISTRAR_PROBE}},
        }
        return {**data, "targets": [*targets, registrar]}

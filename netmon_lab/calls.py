"""Real calls in the lab: rooms' SIP user agents calling a hub through a lossy media relay.

`CallLab(["r1", "r2"])` starts, for as long as its context lasts:

- the media relay (netmon_lab.media_relay): every call's RTP passes through it, and it drops
  and delays packets per room and direction (there is no netem here);
- Kamailio with the lab registrar's config (netmon_lab.registrar) routing INVITEs to registered
  contacts and each SDP through the relay (its rtpengine module speaking to our relay);
- one baresip per room and one for the hub (the meeting's far end: the provincial hall's MCU),
  each with its own account and control socket, on its own loopback address 127.0.1.<n>, so
  the relay knows a room by the address its SDP names. Media: G.711 µ-law from `ausine` (a
  sine), no player; with `video=True` also VP8 from `fakevideo`. RTCP multiplexed on the RTP
  port. Rooms answer automatically (`answermode=auto`).

Then `await start_meeting(rooms)` has the hub call each room and returns once every call is
established; `set_impairment(room, loss=0.05, delay=0.1, direction="inbound")` impairs a
room's path; `stats(room)` is the room's view of its calls (collectors.baresip_stats
`StreamStats`, from the latest `CALL_RTCP` event of each stream, rx and tx);
`await until(room, condition)` waits for a new report that satisfies `condition(stats)`;
`await stop_meeting()` hangs up and returns once every call is closed. Processes are stopped
by PID when the context ends.

With `watch_rooms=False` the lab leaves each room's control socket (`control_port(room)`) to
netmon's `baresip` probe, as a real softphone room's would be (ctrl_tcp serves one client):
the hub alone dials and hangs up, the lab follows the calls through the hub's events, and the
rooms' statistics are netmon's to read (`stats` and `until` refuse).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import shutil
import socket
import tempfile
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import TracebackType
from typing import Any, Literal

import aiohttp

from collectors.baresip_ctrl import BaresipCommandError, BaresipControl
from collectors.baresip_stats import (
    StreamStats,
    callstat_codecs,
    closed_call,
    is_rtcp_event,
    parse_rtcp_event,
)
from collectors.registrar.kamailio import (
    KamailioAnswerError,
)
from netmon_lab.lab_process import LabProcess
from netmon_lab.media_relay import Impairment, MediaRelay
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

log = logging.getLogger(__name__)

BARESIP_MODULES = Path("/usr/lib/baresip/modules")
AUDIO_MODULES = ("g711.so", "ausine.so")
VIDEO_MODULES = ("fakevideo.so", "vp8.so")
# Codecs before `account` (an account's audio_codecs= names loaded codecs only).
CONTROL_MODULES = ("account.so", "menu.so", "ctrl_tcp.so")
READY = "baresip is ready."
CTRL_FAILED = "ctrl_tcp: failed to listen"
ATTEMPTS = 3
HUB = "hub"
EXPIRES = 60
Where = Literal["inbound", "outbound", "both"]


class CallLabError(RuntimeError):
    """The call lab could not start, or a call did not do what was asked in time."""


def _user(uri: str) -> str:
    """`sip:r1@127.0.0.1:5060` -> `r1`."""
    return uri.removeprefix("sip:").split("@", 1)[0]


def calls_available() -> str | None:
    """Why real calls cannot run here (a program or module missing); None when they can."""
    if kamailio_program() is None or kamailio_modules() is None:
        return "kamailio is not installed (Debian package kamailio)"
    modules = kamailio_modules()
    assert modules is not None
    if not (modules / "rtpengine.so").is_file():
        return "kamailio's rtpengine module is missing"
    needed = (*AUDIO_MODULES, *CONTROL_MODULES)
    if shutil.which("baresip") is None or any(not (BARESIP_MODULES / m).is_file() for m in needed):
        return "baresip is not installed (Debian package baresip-core)"
    return None


def video_available() -> bool:
    return all((BARESIP_MODULES / m).is_file() for m in VIDEO_MODULES)


@dataclass(slots=True)
class _Agent:
    """One baresip: a room's or the hub's user agent, and what its events told."""

    id: str
    host: str
    password: str
    control_port: int = 0
    process: LabProcess | None = None
    control: BaresipControl | None = None
    established: set[str] = field(default_factory=set)
    closed: set[str] = field(default_factory=set)
    peers: dict[str, str] = field(default_factory=dict)  # call -> the peer's user
    codecs: dict[str, dict[str, str]] = field(default_factory=dict)  # call -> media -> codec
    latest: dict[tuple[str, str], tuple[StreamStats, StreamStats]] = field(default_factory=dict)
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def live_calls(self) -> set[str]:
        return self.established - self.closed

    def in_call_with(self, user: str) -> bool:
        return any(self.peers.get(call) == user for call in self.live_calls)

    def on_event(self, event: dict[str, Any]) -> None:
        kind = event.get("type")
        call_id = str(event.get("id", ""))
        if kind == "CALL_ESTABLISHED":
            self.established.add(call_id)
            self.peers[call_id] = _user(str(event.get("peeruri", "")))
        elif (closed := closed_call(event)) is not None:
            self.closed.add(closed)
            for key in [key for key in self.latest if key[0] == closed]:
                del self.latest[key]
        elif is_rtcp_event(event) and call_id not in self.closed:
            rx, tx = parse_rtcp_event(event, self.codecs.get(call_id))
            self.latest[(call_id, rx.media)] = (rx, tx)
        else:
            return
        self.changed.set()

    def stats(self) -> list[StreamStats]:
        """The latest report of each live stream, named with its codec (`callstat` is asked
        once the call is established: a report may have come before)."""
        live = self.live_calls
        return [
            s if s.codec else replace(s, codec=self.codecs.get(s.call_id, {}).get(s.media))
            for key, pair in self.latest.items()
            if key[0] in live
            for s in pair
        ]


class CallLab:
    """Kamailio, the media relay and a baresip per room and for the hub; see the module."""

    def __init__(
        self,
        rooms: Sequence[str],
        *,
        video: bool = False,
        ptime: int = 20,
        seed: int = 0,
        start_timeout: float = 30.0,
        watch_rooms: bool = True,
    ) -> None:
        if len(set(rooms)) != len(rooms) or HUB in rooms or not rooms:
            raise ValueError("rooms: distinct ids, none of them 'hub'")
        if len(rooms) > 200:
            raise ValueError("at most 200 rooms")
        self.video = video
        self.ptime = ptime
        self.start_timeout = start_timeout
        # False: the rooms' control sockets are left to netmon's `baresip` probe (ctrl_tcp
        # serves one client); the lab then drives and follows the calls from the hub alone.
        self.watch_rooms = watch_rooms
        self.relay = MediaRelay(seed=seed)
        self.sip_port = 0
        self.rpc_url = ""
        self.processes: list[LabProcess] = []
        # The hub at 127.0.1.1, the rooms from 127.0.1.2: each its own media address.
        self.agents = {
            name: _Agent(name, f"127.0.1.{n}", secrets.token_urlsafe(12))
            for n, name in enumerate([HUB, *rooms], start=1)
        }
        self._stack = contextlib.AsyncExitStack()
        self._http: aiohttp.ClientSession | None = None

    @property
    def rooms(self) -> list[str]:
        return [name for name in self.agents if name != HUB]

    def host(self, room: str) -> str:
        """The room's address: its SIP and RTP, and the relay's key for its impairment."""
        return self._agent(room).host

    def control_port(self, room: str) -> int:
        """The loopback TCP port of the room's baresip control socket (ctrl_tcp)."""
        return self._agent(room).control_port

    # -- life --------------------------------------------------------------------------------

    async def __aenter__(self) -> CallLab:
        try:
            reason = calls_available()
            if reason is not None:
                raise CallLabError(reason)
            await self._stack.enter_async_context(self.relay)
            self._http = await self._stack.enter_async_context(aiohttp.ClientSession())
            workdir = Path(await asyncio.to_thread(tempfile.mkdtemp, prefix="netmon-calls-"))
            self._stack.push_async_callback(asyncio.to_thread, shutil.rmtree, workdir, True)
            await self._start_kamailio(workdir)
            for agent in self.agents.values():
                await self._start_agent(agent, workdir)
            users = set(self.agents)
            deadline = time.monotonic() + self.start_timeout
            while not users <= await self.registered():
                if time.monotonic() > deadline:
                    missing = sorted(users - await self.registered())
                    raise CallLabError(f"not registered within {self.start_timeout:g}s: {missing}")
                await asyncio.sleep(0.05)
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

    async def _own(self, name: str, argv: list[str]) -> LabProcess:
        process = await LabProcess.start(name, argv)
        self.processes.append(process)
        self._stack.push_async_callback(process.stop)
        return process

    async def _start_kamailio(self, workdir: Path) -> None:
        program, modules = kamailio_program(), kamailio_modules()
        assert program is not None
        assert modules is not None
        runtime = workdir / "kamailio-run"
        config = workdir / "kamailio.cfg"
        users = {agent.id: agent.password for agent in self.agents.values()}
        included = self._stack.enter_context(snippet())
        why = "kamailio did not start"
        for _attempt in range(ATTEMPTS):
            self.sip_port = free_port(socket.SOCK_DGRAM)
            rpc_port = free_port(socket.SOCK_STREAM)
            text = render_config(
                sip_port=self.sip_port, rpc_port=rpc_port, users=users, modules=modules,
                snippet=included, media_relay=self.relay.control_port,
            )  # fmt: skip
            await asyncio.to_thread(write_kamailio, config, text, runtime)
            argv = [program, "-f", str(config), "-DD", "-E", "-Y", str(runtime), "-m", "32"]
            process = await self._own("kamailio", [*argv, "-M", "8"])
            self.rpc_url = f"http://127.0.0.1:{rpc_port}/RPC"
            deadline = time.monotonic() + 10
            while not process.ended and time.monotonic() < deadline:
                with contextlib.suppress(OSError, aiohttp.ClientError, KamailioAnswerError):
                    await self.registered()
                    return
                await asyncio.sleep(0.05)
            why = f"kamailio: {process.tail()}"
            await process.stop()
        raise CallLabError(why)

    def _account(self, agent: _Agent) -> str:
        return (
            f"<sip:{agent.id}@127.0.0.1:{self.sip_port}>;auth_pass={agent.password}"
            f";regint={EXPIRES};answermode=auto;audio_codecs=PCMU;ptime={self.ptime}"
        )

    async def _start_agent(self, agent: _Agent, workdir: Path) -> None:
        confdir = workdir / agent.id
        modules = (*AUDIO_MODULES, *(VIDEO_MODULES if self.video else ()), *CONTROL_MODULES)
        why = "baresip did not start"
        for _attempt in range(ATTEMPTS):
            control_port = free_port(socket.SOCK_STREAM)
            config = (
                f"sip_listen\t{agent.host}:0\n"
                f"module_path\t{BARESIP_MODULES}\n"
                + "".join(f"module\t{module}\n" for module in modules)
                + f"ctrl_tcp_listen\t127.0.0.1:{control_port}\n"
                # ausine makes 48 kHz stereo only; baresip resamples it for G.711.
                "audio_source\tausine,440\nausrc_srate\t48000\nausrc_channels\t2\n"
                "rtcp_mux\tyes\nstatmode_default\toff\n"
                + (
                    "video_source\tfakevideo,nil\nvideo_display\tfakevideo,nil\n"
                    if self.video
                    else ""
                )
            )
            accounts = self._account(agent) + "\n"
            await asyncio.to_thread(write_baresip, confdir, config, accounts)
            process = await self._own(agent.id, ["baresip", "-f", str(confdir), "-n", agent.host])
            await process.until_saw(READY, CTRL_FAILED, timeout=10.0)
            if process.saw(READY) and not process.saw(CTRL_FAILED) and not process.ended:
                agent.process, agent.control_port = process, control_port
                if agent.id == HUB or self.watch_rooms:
                    agent.control = await BaresipControl.connect(
                        control_port, on_event=agent.on_event
                    )
                    self._stack.push_async_callback(agent.control.close)
                return
            why = f"baresip ({agent.id}): {process.tail()}"
            await process.stop()
        raise CallLabError(why)

    async def registered(self) -> set[str]:
        """The AoRs the registrar lists now."""
        assert self._http is not None
        return await registered_aors(self._http, self.rpc_url)

    # -- meetings ----------------------------------------------------------------------------

    def _agent(self, name: str) -> _Agent:
        agent = self.agents.get(name)
        if agent is None:
            raise KeyError(f"{name} is not a room of this call lab")
        return agent

    def _control(self, agent: _Agent) -> BaresipControl:
        if agent.control is None:
            raise CallLabError(f"{agent.id} has no control connection")
        return agent.control

    def _in_call(self, room: str) -> bool:
        if self.watch_rooms:
            return bool(self.agents[room].live_calls)
        return self.agents[HUB].in_call_with(room)

    def in_call(self) -> list[str]:
        """The rooms with an established call now."""
        return [room for room in self.rooms if self._in_call(room)]

    async def start_meeting(
        self, rooms: Iterable[str] | None = None, timeout: float = 15.0
    ) -> None:
        """The hub calls each of `rooms` (default: all) not yet in a call; returns once every
        one of them is in an established call."""
        wanted = [self._agent(room) for room in (self.rooms if rooms is None else rooms)]
        hub = self.agents[HUB]
        for agent in wanted:
            if not self._in_call(agent.id):
                await self._control(hub).command(
                    "dial", f"sip:{agent.id}@127.0.0.1:{self.sip_port}"
                )
        await self._wait(wanted, lambda a: self._in_call(a.id), timeout, "in a call")
        if not self.watch_rooms:
            return
        for agent in wanted:
            for call_id in agent.live_calls - agent.codecs.keys():
                # One call per room: `callstat` describes it (its SDP: the codecs).
                agent.codecs[call_id] = callstat_codecs(
                    await self._control(agent).command("callstat")
                )

    async def stop_meeting(self, timeout: float = 15.0) -> None:
        """Every room hangs up; returns once no room is in a call."""
        busy = [self.agents[room] for room in self.in_call()]
        if self.watch_rooms:
            for agent in busy:
                with contextlib.suppress(BaresipCommandError):
                    await self._control(agent).command("hangup")
        else:
            # baresip 1.0's `hangup` ends the user agent's latest call: once per call.
            hub = self.agents[HUB]
            for _call in list(hub.live_calls):
                with contextlib.suppress(BaresipCommandError):
                    await self._control(hub).command("hangup")
        await self._wait(busy, lambda a: not self._in_call(a.id), timeout, "hung up")

    async def _wait(
        self, agents: list[_Agent], done: Callable[[_Agent], bool], timeout: float, what: str
    ) -> None:
        try:
            async with asyncio.timeout(timeout):
                for agent in agents:
                    # Unwatched rooms are followed through the hub's events.
                    heard = agent if self.watch_rooms else self.agents[HUB]
                    while not done(agent):
                        heard.changed.clear()
                        await heard.changed.wait()
        except TimeoutError:
            late = [agent.id for agent in agents if not done(agent)]
            raise CallLabError(f"not {what} within {timeout:g}s: {late}") from None

    # -- impairment and statistics -----------------------------------------------------------

    def set_impairment(
        self, room: str, *, loss: float = 0.0, delay: float = 0.0, direction: Where = "both"
    ) -> None:
        """The room's media path drops `loss` of the RTP packets and holds every packet `delay`
        seconds: those it receives (inbound), sends (outbound) or both."""
        impairment = Impairment(loss, delay)
        host = self.host(room)
        self.relay.set_impairment(
            host,
            inbound=impairment if direction in ("inbound", "both") else None,
            outbound=impairment if direction in ("outbound", "both") else None,
        )

    def stats(self, room: str) -> list[StreamStats]:
        """The room's own statistics of its live calls: per stream, rx and tx."""
        return self._watched(room).stats()

    def _watched(self, room: str) -> _Agent:
        if not self.watch_rooms:
            raise CallLabError("the rooms' statistics are netmon's here (watch_rooms=False)")
        return self._agent(room)

    async def until(
        self, room: str, condition: Callable[[list[StreamStats]], bool], timeout: float = 30.0
    ) -> list[StreamStats]:
        """The room's statistics once `condition` holds for them (checked at each event)."""
        agent = self._watched(room)
        try:
            async with asyncio.timeout(timeout):
                while not condition(agent.stats()):
                    agent.changed.clear()
                    await agent.changed.wait()
        except TimeoutError:
            raise CallLabError(f"{room}: statistics not as awaited within {timeout:g}s") from None
        return agent.stats()

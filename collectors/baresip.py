"""The `baresip` probe: a softphone room's own status from its baresip user agent.

baresip's control socket (module ctrl_tcp, collectors.baresip_ctrl) answers menu commands and
sends events on the connection that holds it. netmon keeps that connection open: each poll asks
`reginfo` (is the room registered?) and `listcalls` (is it in a call, with whom, for how long),
and `callstat` once per call for the codecs its SDP chose; between polls, the `CALL_RTCP` events
baresip sends for every stream (about every 5 s) are kept, and a poll turns the reports that
came since the previous poll into each stream's loss over that interval, its jitter and, for
constant-rate codecs, its bit rate (collectors.baresip_stats). Cisco's LastIntervalLost is the
same idea.

ctrl_tcp serves one client: a second connection takes the socket over. So every collector of
this process (the scheduler's and the readiness checks') shares one connection per user agent
(`_agents`, counted by users), and the probe's documentation asks that nothing else hold it.
A connection lost (baresip restarted, another client) is opened again at the next poll; the
cumulative RTCP counters make the first interval after it span the gap.

This module must not import anything from the exporter, alerting or MQTT.
"""

from __future__ import annotations

import asyncio
import logging
import re
from dataclasses import dataclass, field
from typing import Any, ClassVar

from collectors.baresip_ctrl import BaresipCommandError, BaresipControl
from collectors.baresip_stats import (
    CALL_STATES,
    AgentRegistration,
    BaresipStatsError,
    IntervalStats,
    ListedCall,
    StreamStats,
    callstat_call_id,
    callstat_codecs,
    closed_call,
    interval,
    is_rtcp_event,
    parse_listcalls,
    parse_reginfo,
    parse_rtcp_event,
)
from collectors.base import CollectError, CollectorSettings
from collectors.codec_settings import BaresipSettings
from collectors.reasons import socket_failure
from netmon.model import (
    Call,
    EndpointStatus,
    MediaStream,
    ProbeTarget,
    Registration,
    RegistrationState,
)

log = logging.getLogger(__name__)

MAX_CALLS = 32  # calls tracked per user agent: a room has one or two; a flood is cut here
RTCP_INTERVAL = 5.0  # seconds: what a first report's figures are taken to span
_PEER = re.compile(r"peer_uri:\s*<?([^>\s]+)>?")
_REGISTRATION_STATES = {
    "OK": RegistrationState.REGISTERED,
    "ERR": RegistrationState.FAILED,
    "ZZZ": RegistrationState.REGISTERING,
}


@dataclass(slots=True)
class _Stream:
    """One direction of one stream: its latest report, and the one the previous poll used."""

    latest: StreamStats
    at: float
    baseline: StreamStats | None = None
    baseline_at: float = 0.0
    current: IntervalStats | None = None

    def since_last_poll(self) -> IntervalStats:
        if self.current is None or self.latest is not self.baseline:
            seconds = self.at - self.baseline_at if self.baseline is not None else RTCP_INTERVAL
            self.current = interval(self.baseline, self.latest, seconds)
            self.baseline, self.baseline_at = self.latest, self.at
        return self.current


@dataclass(slots=True)
class _Call:
    peer: str = ""
    direction: str = ""
    codecs: dict[str, str] | None = None  # media -> codec, once `callstat` told
    streams: dict[tuple[str, str], _Stream] = field(default_factory=dict)  # (media, rx|tx)


class _Agent:
    """One user agent's control connection and what its events told since it opened."""

    def __init__(self, host: str, port: int) -> None:
        self.host = host
        self.port = port
        self.users = 0
        self.calls: dict[str, _Call] = {}
        self.malformed = 0
        self._control: BaresipControl | None = None
        self._connecting = asyncio.Lock()

    async def control(self) -> BaresipControl:
        async with self._connecting:
            if self._control is None or self._control.closed:
                if self._control is not None:
                    await self._control.close()
                    self._control = None
                self._control = await BaresipControl.connect(
                    self.port, host=self.host, on_event=self.on_event
                )
            return self._control

    async def drop(self) -> None:
        """Close the connection (a broken answer): the next poll opens a new one."""
        if self._control is not None:
            control, self._control = self._control, None
            await control.close()

    def on_event(self, event: dict[str, Any]) -> None:
        kind = event.get("type")
        call_id = str(event.get("id", ""))
        if kind == "CALL_ESTABLISHED" and call_id:
            call = self._call(call_id)
            if call is not None:
                call.peer = str(event.get("peeruri", ""))[:200]
                call.direction = str(event.get("direction", ""))[:20]
        elif (closed := closed_call(event)) is not None:
            self.calls.pop(closed, None)
        elif is_rtcp_event(event):
            try:
                rx, tx = parse_rtcp_event(event)
            except BaresipStatsError as exc:
                self.malformed += 1
                log.debug("baresip RTCP event dropped", extra={"reason": str(exc)})
                return
            call = self._call(rx.call_id)
            if call is None:
                return
            now = asyncio.get_running_loop().time()
            for report in (rx, tx):
                key = (report.media, report.direction)
                stream = call.streams.get(key)
                if stream is None:
                    call.streams[key] = _Stream(report, now)
                else:
                    stream.latest, stream.at = report, now

    def _call(self, call_id: str) -> _Call | None:
        call = self.calls.get(call_id)
        if call is None and call_id and len(self.calls) < MAX_CALLS:
            call = self.calls[call_id] = _Call()
        return call

    def learn_callstat(self, text: str) -> None:
        call_id = callstat_call_id(text)
        call = self._call(call_id) if call_id else None
        if call is None:
            return
        call.codecs = callstat_codecs(text)
        if not call.peer and (peer := _PEER.search(text)):
            call.peer = peer.group(1)[:200]

    def forget_ended(self, listed: list[ListedCall]) -> None:
        """Calls baresip no longer lists (their CALL_CLOSED came while disconnected)."""
        peers = {call.peer for call in listed}
        for call_id in [c for c, call in self.calls.items() if not listed or (
            call.peer and call.peer not in peers
        )]:  # fmt: skip
            del self.calls[call_id]

    def streams(self, plc: bool) -> list[MediaStream]:
        found = []
        for call_id, call in sorted(self.calls.items()):
            for (media, direction), stream in sorted(call.streams.items()):
                current = stream.since_last_poll()
                codec = (call.codecs or {}).get(media, "")
                if codec and current.stream.codec != codec:
                    current = IntervalStats(
                        _with_codec(current.stream, codec),
                        current.seconds,
                        current.packets,
                        current.lost,
                    )
                found.append(
                    MediaStream(
                        call=call_id,
                        direction=direction,
                        media=media,
                        codec=codec,
                        loss_ratio=current.loss_ratio,
                        jitter=stream.latest.jitter,
                        bitrate=current.bitrate,
                        channel=media,
                        plc=plc,
                    )
                )
        return found

    async def close(self) -> None:
        await self.drop()


def _with_codec(stats: StreamStats, codec: str) -> StreamStats:
    return StreamStats(
        stats.call_id, stats.peer, stats.direction, stats.media, codec,
        stats.packets, stats.lost, stats.jitter, stats.rtt,
    )  # fmt: skip


# One connection per user agent for the whole process (ctrl_tcp serves one client).
_agents: dict[tuple[str, int], _Agent] = {}


def _registrations(agents: list[AgentRegistration]) -> tuple[Registration, ...]:
    if not agents:
        return (Registration("sip", RegistrationState.UNREGISTERED, "no SIP account"),)
    return tuple(
        Registration(
            "sip",
            _REGISTRATION_STATES.get(agent.state, RegistrationState.FAILED),
            "" if agent.state != "ERR" else "registration refused or unanswered",
            agent.aor[:200],
        )
        for agent in agents
    )


class BaresipCollector:
    name: ClassVar[str] = "baresip"
    settings_model: ClassVar[type[CollectorSettings]] = BaresipSettings

    def __init__(self) -> None:
        self._used: dict[str, tuple[str, int]] = {}  # target id -> the agent it reads
        self._keys: set[tuple[str, int]] = set()  # agents this collector counts as a user of

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        for key in list(self._keys):
            await self._release(key)
        self._used.clear()

    async def _release(self, key: tuple[str, int]) -> None:
        """This collector no longer reads `key`: its connection closes with its last user."""
        self._keys.discard(key)
        agent = _agents.get(key)
        if agent is not None:
            agent.users -= 1
            if agent.users <= 0:
                del _agents[key]
                await agent.close()

    async def _agent(self, target_id: str, key: tuple[str, int]) -> _Agent:
        previous = self._used.get(target_id)
        self._used[target_id] = key
        if key not in self._keys:
            self._keys.add(key)
            _agents.setdefault(key, _Agent(*key)).users += 1
        if previous is not None and previous != key and previous not in self._used.values():
            await self._release(previous)  # the target moved: its old address or port
        return _agents[key]

    async def collect(self, target: ProbeTarget, settings: CollectorSettings) -> EndpointStatus:
        assert isinstance(settings, BaresipSettings)
        agent = await self._agent(target.id, (settings.address or target.address, settings.port))
        loop = asyncio.get_running_loop()
        started = loop.time()
        try:
            async with asyncio.timeout(settings.timeout):
                control = await agent.control()
                registered = parse_reginfo(await control.command("reginfo"))
                listed = parse_listcalls(await control.command("listcalls"))
                agent.forget_ended(listed)
                if listed and any(call.codecs is None for call in agent.calls.values()):
                    agent.learn_callstat(await control.command("callstat"))
        except TimeoutError:
            await agent.drop()
            raise CollectError("timeout", f"no answer within {settings.timeout:g}s") from None
        except BaresipCommandError as exc:
            await agent.drop()
            raise CollectError("protocol", str(exc)) from None
        except OSError as exc:
            failure = socket_failure(exc)
            raise CollectError(failure.reason, f"{failure.text} (port {settings.port})") from None
        directions = {call.peer: call.direction for call in agent.calls.values()}
        calls = tuple(
            Call(
                status=CALL_STATES.get(call.state, call.state.lower()),
                protocol="sip",
                direction=directions.get(call.peer, ""),
                remote=call.peer[:200],
                duration=call.seconds,
            )
            for call in listed
        )
        return EndpointStatus(
            target=target.id,
            collector=self.name,
            ok=True,
            duration=loop.time() - started,
            vendor="baresip",
            model="baresip",
            registrations=_registrations(registered),
            calls=calls,
            streams=tuple(agent.streams(settings.plc)) if calls else (),
        )

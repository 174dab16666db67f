"""The lab's media relay: every call's RTP passes through it, and it drops and delays packets.

There is no netem here, so a room's media path is impaired by a process of ours in that path.
Kamailio puts it there: its rtpengine module (installed with kamailio; the rtpengine program
is not) asks this relay, over rtpengine's ng protocol (netmon_lab.ng_protocol), to rewrite each
INVITE's and each 200 OK's SDP so that both user agents send their media to the relay's ports
instead of to each other. The relay forwards each packet to the address the other side's SDP
named, after its impairment: a loss ratio (random, seeded: runs repeat) and a delay, per host
and direction, changeable at any time with `set_impairment`.

Impairments are keyed by a user agent's IP address (each lab room's user agent has its own
loopback address, 127.0.0.x): `inbound` is what the relay forwards to that address (what the
room receives), `outbound` what it forwards from it. A packet between two impaired hosts gets
both. Loss hits RTP only: RTCP (the same port, `a=rtcp-mux`; told apart by its packet type,
RFC 5761) is delayed but never dropped, so the number of RTP packets the relay dropped, which
`counters(host)` reports, is exactly the loss the receiver should measure.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import random
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

from netmon_lab.ng_protocol import (
    NgError,
    NgRequest,
    parse_request,
    reply,
    rewrite_sdp,
    sdp_media,
)

log = logging.getLogger(__name__)

Direction = Literal["inbound", "outbound"]
MAX_DELAY = 10.0  # seconds: a relay holding packets longer is no longer a path
REPLIES_KEPT = 64  # answers remembered per cookie, for Kamailio's retransmissions


@dataclass(frozen=True, slots=True)
class Impairment:
    """What a path does to packets: `loss` the ratio of RTP packets dropped (0..1), `delay`
    the seconds every packet is held."""

    loss: float = 0.0
    delay: float = 0.0

    def __post_init__(self) -> None:
        if not 0.0 <= self.loss <= 1.0 or math.isnan(self.loss):
            raise ValueError(f"loss {self.loss!r} is not a ratio between 0 and 1")
        if not 0.0 <= self.delay <= MAX_DELAY or math.isnan(self.delay):
            raise ValueError(f"delay {self.delay!r} is not between 0 and {MAX_DELAY:g} s")


CLEAN = Impairment()


@dataclass(slots=True)
class PathCounters:
    """RTP packets the relay forwarded and dropped on one host's path, one direction."""

    forwarded: int = 0
    dropped: int = 0


def is_rtcp(packet: bytes) -> bool:
    """RTCP multiplexed with RTP: packet types 192..223 in the second byte (RFC 5761 §4)."""
    return len(packet) >= 2 and 192 <= packet[1] <= 223


class _Leg(asyncio.DatagramProtocol):
    """One relay port: advertised to one party in place of `owner`'s own address; what
    arrives there (from the other party) goes to `owner`, sent from the partner leg's port
    (the one `owner` sends to), so each side sees one relay address."""

    def __init__(self, relay: MediaRelay, owner: tuple[str, int]) -> None:
        self.relay = relay
        self.owner = owner
        self.partner: _Leg | None = None
        self.transport: asyncio.DatagramTransport | None = None

    @property
    def port(self) -> int:
        assert self.transport is not None
        return int(self.transport.get_extra_info("sockname")[1])

    def datagram_received(self, data: bytes, addr: tuple[str | object, int]) -> None:
        sender = self.partner if self.partner is not None else self
        if sender.transport is None or self.owner[1] == 0:
            return
        # The sender is the other party: its SDP's address, not the datagram's source (a user
        # agent's RTP socket bound to 0.0.0.0 sends from 127.0.0.1 whatever its own address).
        source = self.partner.owner[0] if self.partner is not None else str(addr[0])
        self.relay.forward(sender.transport, data, source, self.owner)

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


@dataclass(slots=True)
class _Call:
    legs: dict[str, list[_Leg]] = field(default_factory=dict)  # tag -> a leg per stream

    def close(self) -> None:
        for legs in self.legs.values():
            for leg in legs:
                leg.close()


class _Control(asyncio.DatagramProtocol):
    def __init__(self, relay: MediaRelay) -> None:
        self.relay = relay

    def datagram_received(self, data: bytes, addr: tuple[str | object, int]) -> None:
        self.relay.request(data, addr)


class MediaRelay:
    """`async with MediaRelay() as relay:` serves the ng protocol on udp `host`:
    `control_port`; `set_impairment(host, inbound=, outbound=)`, `counters(host)`, `calls`."""

    def __init__(self, host: str = "127.0.0.1", *, seed: int = 0) -> None:
        self.host = host
        self.control_port = 0
        self._random = random.Random(seed)
        self._impairments: dict[tuple[str, Direction], Impairment] = {}
        self._counters: dict[tuple[str, Direction], PathCounters] = {}
        self._calls: dict[str, _Call] = {}
        self._control: asyncio.DatagramTransport | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._held: set[asyncio.TimerHandle] = set()
        self._replies: OrderedDict[bytes, bytes] = OrderedDict()
        self._serial = asyncio.Lock()

    async def __aenter__(self) -> MediaRelay:
        loop = asyncio.get_running_loop()
        transport, _ = await loop.create_datagram_endpoint(
            lambda: _Control(self), local_addr=(self.host, 0)
        )
        self._control = transport
        self.control_port = int(transport.get_extra_info("sockname")[1])
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for handle in self._held:
            handle.cancel()
        self._held.clear()
        for call in self._calls.values():
            call.close()
        self._calls.clear()
        if self._control is not None:
            self._control.close()
            self._control = None

    # -- impairment --------------------------------------------------------------------------

    def set_impairment(
        self,
        host: str,
        *,
        inbound: Impairment | None = None,
        outbound: Impairment | None = None,
    ) -> None:
        """What the path does to packets to `host` (inbound) and from it (outbound); a
        direction not given is left as it was. `Impairment()` makes it clean."""
        for direction, impairment in (("inbound", inbound), ("outbound", outbound)):
            if impairment is not None:
                self._impairments[(host, direction)] = impairment  # type: ignore[index]

    def impairment(self, host: str, direction: Direction) -> Impairment:
        return self._impairments.get((host, direction), CLEAN)

    def counters(self, host: str, direction: Direction) -> PathCounters:
        """RTP packets forwarded and dropped to (inbound) or from (outbound) `host`."""
        found = self._counters.get((host, direction), PathCounters())
        return PathCounters(found.forwarded, found.dropped)

    @property
    def calls(self) -> int:
        """Calls whose media the relay is holding ports for."""
        return len(self._calls)

    def ports(self) -> int:
        return sum(len(legs) for call in self._calls.values() for legs in call.legs.values())

    def forward(
        self,
        sender: asyncio.DatagramTransport,
        data: bytes,
        source: str,
        destination: tuple[str, int],
    ) -> None:
        outbound = self.impairment(source, "outbound")
        inbound = self.impairment(destination[0], "inbound")
        delay = outbound.delay + inbound.delay
        if not is_rtcp(data):
            # One draw per impaired direction, always made: the sequence is the seed's.
            dropped = False
            for impairment in (outbound, inbound):
                if impairment.loss and self._random.random() < impairment.loss:
                    dropped = True
            for key in ((source, "outbound"), (destination[0], "inbound")):
                counter = self._counters.setdefault(key, PathCounters())
                counter.dropped += dropped
                counter.forwarded += not dropped
            if dropped:
                return
        if delay <= 0:
            sender.sendto(data, destination)
            return
        loop = asyncio.get_running_loop()
        handle: asyncio.TimerHandle

        def send() -> None:
            self._held.discard(handle)
            if not sender.is_closing():
                sender.sendto(data, destination)

        handle = loop.call_later(delay, send)
        self._held.add(handle)

    # -- the ng protocol ---------------------------------------------------------------------

    def request(self, datagram: bytes, addr: tuple[str | object, int]) -> None:
        try:
            request = parse_request(datagram)
        except NgError as exc:
            log.warning("media relay: not an ng request", extra={"reason": str(exc)})
            return
        cached = self._replies.get(request.cookie)
        if cached is not None:
            self._send(cached, addr)
            return
        task = asyncio.get_running_loop().create_task(self._answer(request, addr))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _answer(self, request: NgRequest, addr: tuple[str | object, int]) -> None:
        try:
            # One request at a time: a retransmitted 200 OK's answer waits for the first.
            async with self._serial:
                answer = await self._handle(request)
        except (OSError, ValueError) as exc:
            answer = {"result": "error", "error-reason": str(exc)[:200]}
        data = reply(request.cookie, answer)
        self._replies[request.cookie] = data
        while len(self._replies) > REPLIES_KEPT:
            self._replies.popitem(last=False)
        self._send(data, addr)

    def _send(self, data: bytes, addr: tuple[str | object, int]) -> None:
        if self._control is not None:
            self._control.sendto(data, addr)

    async def _handle(self, request: NgRequest) -> dict[str, object]:
        if request.command == "ping":
            return {"result": "pong"}
        call_id = request.text("call-id")
        if request.command == "delete":
            call = self._calls.pop(call_id, None)
            if call is not None:
                call.close()
            return {"result": "ok"}
        if request.command in ("offer", "answer"):
            tag = request.text("from-tag" if request.command == "offer" else "to-tag")
            sdp = request.text("sdp")
            if not call_id or not tag or not sdp:
                raise ValueError(f"{request.command} without call-id, tag or sdp")
            ports = await self._legs(call_id, tag, sdp)
            return {"result": "ok", "sdp": rewrite_sdp(sdp, self.host, ports)}
        return {"result": "error", "error-reason": f"unsupported command {request.command}"}

    async def _legs(self, call_id: str, tag: str, sdp: str) -> list[int]:
        """The relay's port for each stream of `tag`'s SDP, reused when `tag` had them."""
        streams = sdp_media(sdp)
        call = self._calls.setdefault(call_id, _Call())
        legs = call.legs.get(tag)
        if legs is None or len(legs) != len(streams):
            for leg in legs or ():
                leg.close()
            loop = asyncio.get_running_loop()
            legs = []
            call.legs[tag] = legs
            for stream in streams:
                leg = _Leg(self, (stream.host, stream.port))
                transport, _ = await loop.create_datagram_endpoint(
                    _factory(leg), local_addr=(self.host, 0)
                )
                leg.transport = transport
                legs.append(leg)
        for leg, stream in zip(legs, streams, strict=True):
            leg.owner = (stream.host, stream.port)
        others = [other for other_tag, other in call.legs.items() if other_tag != tag]
        if others:
            for mine, theirs in zip(legs, others[0], strict=False):
                mine.partner, theirs.partner = theirs, mine
        return [leg.port for leg in legs]


def _factory(leg: _Leg) -> Callable[[], _Leg]:
    return lambda: leg

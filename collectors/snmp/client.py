"""SNMP v1/v2c over UDP: one shared socket per address family, replies matched by request-id.

Hundreds of agents are polled through one socket: every request gets a fresh request-id, the
reader callback hands each reply to the request waiting for it, and a bounded window of
requests in flight keeps the receive buffer from overflowing (unbounded fan-out dropped over a
thousand replies here). Each request has a timeout and retries; a reply that does not decode is
counted and dropped. Walks step with GETBULK (GETNEXT for v1); the walk itself, shared with v3,
is `walk.py`.

Communities are bytes handed in by the caller; nothing here logs them.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import secrets
import socket
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from collectors.base import CollectError
from collectors.snmp.codec import (
    OID,
    DecodeError,
    Message,
    PduType,
    Tag,
    VarBind,
    Version,
    decode_message,
    encode_request,
)
from collectors.snmp.walk import ColumnWalker

log = logging.getLogger(__name__)

ERROR_STATUS_NAMES = {
    1: "tooBig", 2: "noSuchName", 3: "badValue", 4: "readOnly", 5: "genErr", 6: "noAccess",
    7: "wrongType", 8: "wrongLength", 9: "wrongEncoding", 10: "wrongValue", 11: "noCreation",
    12: "inconsistentValue", 13: "resourceUnavailable", 14: "commitFailed", 15: "undoFailed",
    16: "authorizationError", 17: "notWritable", 18: "inconsistentName",
}  # fmt: skip


@dataclass(frozen=True, slots=True)
class Agent:
    """Where and how to reach one SNMP agent (v1/v2c)."""

    address: str
    port: int = 161
    version: Version = Version.V2C
    community: bytes = field(default=b"public", repr=False)
    timeout: float = 1.0
    retries: int = 1


@dataclass
class ClientStats:
    """What went wrong on the wire, for self-monitoring."""

    malformed: int = 0
    unmatched: int = 0
    retries: int = 0
    varbinds: int = 0


@dataclass(frozen=True, slots=True)
class WalkResult:
    varbinds: list[VarBind]
    truncated: str | None = None  # why the walk stopped early, if it did


class SnmpClient(ColumnWalker[Agent]):
    """Async SNMP requests over shared UDP sockets. `async with SnmpClient() as client:`."""

    def __init__(self, *, max_in_flight: int = 256, receive_buffer: int = 4 * 1024 * 1024) -> None:
        self._window = asyncio.Semaphore(max_in_flight)
        self._receive_buffer = receive_buffer
        self._sockets: dict[int, socket.socket] = {}
        self._waiting: dict[int, tuple[asyncio.Future[Message], tuple[str, int]]] = {}
        self._next_id = secrets.randbelow(1 << 30) + 1
        self._garbled: set[tuple[str, int]] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self.stats = ClientStats()

    async def __aenter__(self) -> SnmpClient:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()

    async def close(self) -> None:
        for sock in self._sockets.values():
            if self._loop is not None:
                self._loop.remove_reader(sock.fileno())
            sock.close()
        self._sockets.clear()
        for future, _ in self._waiting.values():
            if not future.done():
                future.cancel()
        self._waiting.clear()

    def _socket(self, family: int) -> socket.socket:
        sock = self._sockets.get(family)
        if sock is None:
            sock = socket.socket(family, socket.SOCK_DGRAM)
            sock.setblocking(False)
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, self._receive_buffer)
            sock.bind(("0.0.0.0", 0) if family == socket.AF_INET else ("::", 0))
            assert self._loop is not None
            self._loop.add_reader(sock.fileno(), self._make_reader(sock))
            self._sockets[family] = sock
        return sock

    def _make_reader(self, sock: socket.socket) -> Callable[[], None]:
        def on_readable() -> None:
            while True:
                try:
                    data, source = sock.recvfrom(65535)
                except (BlockingIOError, InterruptedError):
                    return
                except OSError as exc:  # ICMP port unreachable surfaces here on Linux
                    log.debug("SNMP receive error: %s", exc)
                    continue
                self._on_datagram(data, (str(source[0]), int(source[1])))

        return on_readable

    def _on_datagram(self, data: bytes, source: tuple[str, int]) -> None:
        try:
            message = decode_message(data)
        except DecodeError:
            # Dropped, but remembered against the agent it came from: if its request then
            # times out, the reason is the garbage it sent, not silence.
            self.stats.malformed += 1
            if any(destination == source for _, destination in self._waiting.values()):
                self._garbled.add(source)
            return
        waiting = self._waiting.get(message.request_id)
        if waiting is None or waiting[1] != source:
            self.stats.unmatched += 1  # late (already retried or timed out), or spoofed
            return
        future, _ = waiting
        del self._waiting[message.request_id]
        self.stats.varbinds += len(message.varbinds)
        if not future.done():
            future.set_result(message)

    def _request_id(self) -> int:
        while True:
            self._next_id = self._next_id % 0x7FFFFFFF + 1
            if self._next_id not in self._waiting:
                return self._next_id

    async def request(
        self,
        agent: Agent,
        pdu_type: PduType,
        oids: Sequence[OID],
        *,
        max_repetitions: int = 0,
        non_repeaters: int = 0,
    ) -> Message:
        """One request, retried on timeout; the response, or CollectError("timeout")."""
        ip = ipaddress.ip_address(agent.address)
        family = socket.AF_INET if ip.version == 4 else socket.AF_INET6
        destination = (str(ip), agent.port)
        loop = asyncio.get_running_loop()
        async with self._window:
            sock = self._socket(family)
            self._garbled.discard(destination)
            for attempt in range(agent.retries + 1):
                if attempt:
                    self.stats.retries += 1
                # A fresh id per attempt: a late reply to the first try cannot be taken for
                # the second one's.
                request_id = self._request_id()
                packet = encode_request(
                    version=agent.version,
                    community=agent.community,
                    pdu_type=pdu_type,
                    request_id=request_id,
                    oids=list(oids),
                    non_repeaters=non_repeaters,
                    max_repetitions=max_repetitions,
                )
                future: asyncio.Future[Message] = loop.create_future()
                self._waiting[request_id] = (future, destination)
                try:
                    sock.sendto(packet, destination)
                    async with asyncio.timeout(agent.timeout):
                        return await future
                except TimeoutError:
                    continue
                except OSError as exc:
                    raise CollectError("send", f"sending to {destination[0]}: {exc}") from exc
                finally:
                    self._waiting.pop(request_id, None)
        if destination in self._garbled:
            self._garbled.discard(destination)
            raise CollectError(
                "malformed", f"{agent.address}:{agent.port} answered with undecodable packets"
            )
        raise CollectError(
            "timeout",
            f"no answer from {agent.address}:{agent.port} after {agent.retries + 1} tries",
        )

    async def get(self, agent: Agent, oids: Sequence[OID]) -> list[VarBind]:
        """GET scalars; an error status becomes CollectError("snmp-error")."""
        if agent.version == Version.V1:
            return await self._v1_request(agent, PduType.GET, oids, Tag.NO_SUCH_OBJECT)
        response = await self.request(agent, PduType.GET, oids)
        _raise_for_status(response, agent)
        return list(response.varbinds)

    async def walk(
        self,
        agent: Agent,
        root: OID,
        *,
        max_repetitions: int = 25,
        max_rows: int = 100_000,
    ) -> WalkResult:
        """Every varbind under `root`, in OID order: the column walk with one column."""
        table = await self.walk_columns(
            agent, [root], max_repetitions=max_repetitions, max_rows=max_rows
        )
        return WalkResult(list(table.columns[0].values()), truncated=table.truncated)

    async def next_varbinds(
        self, agent: Agent, oids: list[OID], *, non_repeaters: int, max_repetitions: int
    ) -> list[VarBind]:
        """The successors of `oids`, row by row: one GETBULK (GETNEXT for v1)."""
        if agent.version == Version.V1:
            return await self._v1_request(agent, PduType.GET_NEXT, oids, Tag.END_OF_MIB_VIEW)
        response = await self.request(
            agent,
            PduType.GET_BULK,
            oids,
            max_repetitions=max_repetitions,
            non_repeaters=non_repeaters,
        )
        _raise_for_status(response, agent)
        return list(response.varbinds)

    async def _v1_request(
        self, agent: Agent, pdu_type: PduType, oids: Sequence[OID], missing: Tag
    ) -> list[VarBind]:
        """A v1 GET or GETNEXT. In v1 one object the agent lacks (noSuchName) fails the whole
        request: it is answered `missing` (noSuchObject, or endOfMibView at the end of a
        column), as v2c would, and the others are asked again."""
        dropped: set[int] = set()
        while True:
            asked = [i for i in range(len(oids)) if i not in dropped]
            if not asked:
                return [VarBind(oid, missing, None) for oid in oids]
            response = await self.request(agent, pdu_type, [oids[i] for i in asked])
            if response.error_status == 2 and 1 <= response.error_index <= len(asked):
                dropped.add(asked[response.error_index - 1])
                continue
            _raise_for_status(response, agent)
            answers = dict(zip(asked, response.varbinds, strict=False))
            return [answers.get(i) or VarBind(oid, missing, None) for i, oid in enumerate(oids)]


def _raise_for_status(response: Message, agent: Agent) -> None:
    if response.error_status:
        name = ERROR_STATUS_NAMES.get(response.error_status, str(response.error_status))
        raise CollectError(
            "snmp-error", f"{agent.address}: {name} at varbind {response.error_index}"
        )

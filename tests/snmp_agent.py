"""An SNMP agent of the tests' own: answers a test writes, or a MIB given as data."""

from __future__ import annotations

import asyncio
import bisect
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from collectors.snmp.codec import (
    OID,
    DecodeError,
    Message,
    PduType,
    Tag,
    VarBind,
    decode_message,
    encode_message,
)

Responder = Callable[[Message], list[VarBind] | bytes | None]


class BadAgent(asyncio.DatagramProtocol):
    """A UDP SNMP agent whose answers a test writes: varbinds, raw bytes, or silence."""

    def __init__(self, respond: Responder) -> None:
        self.respond = respond
        self.transport: Any = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # selector datagram transports are not DatagramTransport

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        try:
            request = decode_message(data)
        except DecodeError:
            return
        answer = self.respond(request)
        if answer is None:
            return
        if isinstance(answer, list):
            answer = encode_message(
                Message(request.version, request.community, PduType.RESPONSE,
                        request.request_id, 0, 0, tuple(answer))
            )  # fmt: skip
        assert self.transport is not None
        self.transport.sendto(answer, addr)


@pytest.fixture
async def bad_agent() -> AsyncIterator[Callable[[Responder], Any]]:
    transports: list[asyncio.BaseTransport] = []

    async def start(respond: Responder) -> int:
        loop = asyncio.get_running_loop()
        transport, _ = await loop.create_datagram_endpoint(
            lambda: BadAgent(respond), local_addr=("127.0.0.1", 0)
        )
        transports.append(transport)
        return int(transport.get_extra_info("sockname")[1])

    yield start
    for transport in transports:
        transport.close()


def mib_agent(values: dict[OID, tuple[Tag, Any]]) -> Responder:
    """A well-behaved agent serving `values`: GET, GETNEXT and GETBULK."""
    oids = sorted(values)

    def successor(oid: OID) -> VarBind:
        position = bisect.bisect_right(oids, oid)
        if position == len(oids):
            return VarBind(oid, Tag.END_OF_MIB_VIEW, None)
        found = oids[position]
        return VarBind(found, *values[found])

    def respond(request: Message) -> list[VarBind]:
        if request.pdu_type == PduType.GET:
            return [
                VarBind(vb.oid, *values[vb.oid])
                if vb.oid in values
                else VarBind(vb.oid, Tag.NO_SUCH_OBJECT, None)
                for vb in request.varbinds
            ]
        bulk = request.pdu_type == PduType.GET_BULK
        repetitions = request.error_index if bulk else 1
        non_repeaters = request.error_status if bulk else 0
        out = [successor(vb.oid) for vb in request.varbinds[:non_repeaters]]
        current = [vb.oid for vb in request.varbinds[non_repeaters:]]
        for _ in range(max(1, repetitions)):
            step = [successor(oid) for oid in current]
            out += step
            current = [vb.oid for vb in step]
        return out

    return respond

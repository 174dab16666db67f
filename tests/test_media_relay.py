"""The lab's media relay: rtpengine's ng protocol as Kamailio speaks it, SDP rewriting, and the
loss and delay it puts on a path (real UDP on loopback, no SIP)."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator

import pytest

from netmon_lab.media_relay import Impairment, MediaRelay, PathCounters, is_rtcp
from netmon_lab.ng_protocol import (
    NgError,
    bdecode,
    bencode,
    parse_request,
    rewrite_sdp,
    sdp_media,
)

SDP = (
    "v=0\r\no=- 1 2 IN IP4 127.0.1.2\r\ns=-\r\nc=IN IP4 127.0.1.2\r\nt=0 0\r\n"
    "m=audio 4000 RTP/AVP 0\r\na=rtcp-mux\r\nm=video 0 RTP/AVP 96\r\n"
)


def test_bencode_round_trip() -> None:
    value = {"command": "offer", "flags": ["trust-address"], "n": 3}
    encoded = bencode(value)
    assert encoded == b"d7:command5:offer5:flagsl13:trust-addresse1:ni3ee"
    assert bdecode(encoded) == {b"command": b"offer", b"flags": [b"trust-address"], b"n": 3}
    for broken in (b"d3:abc", b"i12", b"5:ab", b"x", b"i1ei2e"):
        with pytest.raises(NgError):
            bdecode(broken)


def test_a_request_has_a_cookie_and_a_command() -> None:
    request = parse_request(b"42_7 " + bencode({"command": "ping"}))
    assert (request.cookie, request.command) == (b"42_7", "ping")
    with pytest.raises(NgError):
        parse_request(bencode({"command": "ping"}))


def test_the_sdp_names_the_relay_for_each_stream() -> None:
    assert [(m.media, m.host, m.port) for m in sdp_media(SDP)] == [
        ("audio", "127.0.1.2", 4000),
        ("video", "127.0.1.2", 0),
    ]
    rewritten = rewrite_sdp(SDP, "127.0.0.1", [30000, 30002])
    assert "c=IN IP4 127.0.0.1\r\n" in rewritten
    assert "m=audio 30000 RTP/AVP 0\r\n" in rewritten
    assert "m=video 0 RTP/AVP 96\r\n" in rewritten  # refused stays refused
    assert "o=- 1 2 IN IP4 127.0.1.2" in rewritten


def test_rtcp_is_told_from_rtp() -> None:
    assert is_rtcp(bytes([0x80, 200, 0, 6]))
    assert not is_rtcp(bytes([0x80, 0, 0, 1]))


def test_an_impairment_is_a_ratio_and_a_bounded_delay() -> None:
    for bad in ({"loss": 1.5}, {"loss": -0.1}, {"delay": -1.0}, {"delay": 60.0}):
        with pytest.raises(ValueError, match=r"is not (a ratio|between)"):
            Impairment(**bad)


class Ng:
    """Kamailio's side of the ng protocol, on a socket of the test's own."""

    def __init__(self, port: int) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.setblocking(False)
        self.port = port
        self.cookies = 0

    async def ask(self, **fields: object) -> dict[bytes, object]:
        self.cookies += 1
        cookie = b"c%d" % self.cookies
        loop = asyncio.get_running_loop()
        await loop.sock_sendto(self.sock, cookie + b" " + bencode(fields), ("127.0.0.1", self.port))
        async with asyncio.timeout(5):
            data = await loop.sock_recv(self.sock, 65536)
        assert data.startswith(cookie + b" ")
        answer = bdecode(data[len(cookie) + 1 :])
        assert isinstance(answer, dict)
        return answer


def vars_of(counters: PathCounters) -> tuple[int, int]:
    return counters.forwarded, counters.dropped


@pytest.fixture
async def relay() -> AsyncIterator[MediaRelay]:
    async with MediaRelay(seed=1) as relay:
        yield relay


def udp(host: str) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((host, 0))
    sock.setblocking(False)
    return sock


def sdp_for(sock: socket.socket) -> str:
    host, port = sock.getsockname()
    return f"v=0\r\nc=IN IP4 {host}\r\nt=0 0\r\nm=audio {port} RTP/AVP 0\r\na=rtcp-mux\r\n"


async def test_a_call_through_the_relay_loses_what_it_is_told(relay: MediaRelay) -> None:
    ng = Ng(relay.control_port)
    assert await ng.ask(command="ping") == {b"result": b"pong"}
    caller, callee = udp("127.0.1.1"), udp("127.0.1.2")
    offer = await ng.ask(command="offer", **{"call-id": "c1", "from-tag": "f"}, sdp=sdp_for(caller))
    answer = await ng.ask(
        command="answer", **{"call-id": "c1", "from-tag": "f", "to-tag": "t"}, sdp=sdp_for(callee)
    )
    to_caller = sdp_media(bytes(offer[b"sdp"]).decode())[0]  # type: ignore[arg-type]
    to_callee = sdp_media(bytes(answer[b"sdp"]).decode())[0]  # type: ignore[arg-type]
    assert to_caller.host == to_callee.host == "127.0.0.1"
    relay.set_impairment("127.0.1.2", inbound=Impairment(loss=0.25, delay=0.05))
    loop = asyncio.get_running_loop()
    sent = 200  # in batches the relay reads before the next: a socket buffer holds ~250
    started = time.monotonic()
    for seq in range(sent):
        rtp = bytes([0x80, 0]) + seq.to_bytes(2, "big") + bytes(8)
        await loop.sock_sendto(caller, rtp, (to_callee.host, to_callee.port))
        if seq % 50 == 49:
            async with asyncio.timeout(5):  # the relay reads them on this same loop
                while sum(vars_of(relay.counters("127.0.1.2", "inbound"))) <= seq:
                    await asyncio.sleep(0.01)
    await loop.sock_sendto(
        caller, bytes([0x80, 201, 0, 1]) + bytes(4), (to_callee.host, to_callee.port)
    )
    counters = relay.counters("127.0.1.2", "inbound")
    assert counters.forwarded + counters.dropped == sent
    received = []
    async with asyncio.timeout(5):
        while len(received) < counters.forwarded + 1:
            received.append(await loop.sock_recv(callee, 2048))
    assert time.monotonic() - started >= 0.05  # held for the delay
    assert sum(is_rtcp(p) for p in received) == 1  # RTCP is never dropped
    # 200 draws at 25 %: 50 ± 3.29·√(200·0.25·0.75) = 50 ± 20.1 (99.9 %).
    assert abs(counters.dropped - 50) <= 20.1
    # The other way is clean, and it comes from the port the callee sends to.
    await loop.sock_sendto(callee, bytes([0x80, 0, 0, 1]), (to_caller.host, to_caller.port))
    async with asyncio.timeout(5):
        _, source = await loop.sock_recvfrom(caller, 2048)
    assert source == (to_callee.host, to_callee.port)
    assert relay.counters("127.0.1.2", "outbound").dropped == 0
    assert await ng.ask(command="delete", **{"call-id": "c1", "from-tag": "f"}) == {
        b"result": b"ok"
    }
    assert relay.calls == 0
    for sock in (caller, callee, ng.sock):
        sock.close()


async def test_a_request_it_cannot_do_is_an_error(relay: MediaRelay) -> None:
    ng = Ng(relay.control_port)
    answer = await ng.ask(command="offer", **{"call-id": "c1"})
    assert answer[b"result"] == b"error"
    assert (await ng.ask(command="play media"))[b"result"] == b"error"
    ng.sock.close()

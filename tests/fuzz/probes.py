"""Fuzz targets: what a probed endpoint answers (ICMP replies, SIP responses, HTTP answers
and TLS certificates)."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Iterator

from hypothesis import strategies as st

from collectors.base import CollectError
from collectors.http import HttpCollector, not_after
from collectors.http_settings import HttpSettings
from collectors.pinger import (
    Pinger,
    _Batch,
    _FamilySocket,
    _Pending,
)
from collectors.sip_message import (
    MalformedResponseError,
    build_options,
    matches,
    parse_response,
    request_length,
)
from netmon.model import HttpAnswer, ProbeTarget
from tests.fuzz.target import Check, Target, plain

# --- ICMP replies -----------------------------------------------------------------------------

_ICMP = st.tuples(
    st.booleans(),  # IPv4 or IPv6 socket
    st.booleans(),  # raw (IPv4 header included) or datagram
    st.one_of(
        st.binary(max_size=120),
        # near-valid: type (echo reply v4/v6, unreachable, request), code, our identifier,
        # a sequence in flight, our token or not, any rest
        st.tuples(
            st.sampled_from([0, 129, 3, 8]),
            st.integers(0, 255),
            st.integers(0, 3),
            st.booleans(),
            st.binary(max_size=40),
        ).map(
            lambda r: (
                bytes((r[0], r[1], 0, 0, 0x12, 0x34, 0, r[2]))
                + (b"TOKEN123" if r[3] else b"")
                + r[4]
            )
        ),
    ),
    st.integers(0, 15),  # the IPv4 header length nibble, for raw sockets
)


@contextlib.contextmanager
def _open_pinger() -> Iterator[Check]:
    loop = asyncio.new_event_loop()
    pinger = Pinger()
    pinger._token = b"TOKEN123"

    def check(value: tuple[bool, bool, bytes, int]) -> None:
        v4, raw, data, ihl = value
        family = socket.AF_INET if v4 else socket.AF_INET6
        fsock = _FamilySocket(family=family, sock=None, identifier=0x1234, raw=raw)  # type: ignore[arg-type]
        batch = _Batch(results=[[None] * 4], done=loop.create_future(), outstanding=4)
        for sequence in range(4):
            fsock.pending[sequence] = _Pending("192.0.2.7", batch, 0, sequence, 0, 0)
        if v4 and raw:
            data = bytes((0x40 | ihl,)) + bytes(19) + data
        stamp = (socket.SOL_SOCKET, 35, (1).to_bytes(8, "little") * 2)
        pinger._on_packet(fsock, data, [stamp], "192.0.2.7")
        # At most the one echo it answers is settled, with a round trip of no negative time.
        answered = [rtt for rtt in batch.results[0] if rtt is not None]
        assert len(answered) <= 1
        assert batch.outstanding == 4 - len(answered)
        assert all(rtt >= 0 for rtt in answered)

    try:
        yield check
    finally:
        loop.close()


def _icmp_sized(size: int) -> tuple[bool, bool, bytes, int]:
    return (True, True, bytes((0, 0, 0, 0, 0x12, 0x34, 0, 1)) + b"TOKEN123" + bytes(size), 5)


# --- SIP responses ----------------------------------------------------------------------------

_REQUEST = build_options(
    host="192.0.2.5",
    port=5060,
    user=None,
    transport="udp",
    local_host="192.0.2.1",
    local_port=5070,
    cseq=7,
    user_agent="fuzz",
    branch="z9hG4bKfuzz",
    call_id="callfuzz",
    tag="t",
)
_SIP_LINES = st.one_of(
    st.sampled_from(
        [
            "Via: SIP/2.0/UDP 192.0.2.1:5070;branch=z9hG4bKfuzz",
            "v: SIP/2.0/UDP x;branch=",
            "Call-ID: callfuzz",
            "i: callfuzz",
            "CSeq: 7 OPTIONS",
            "CSeq: x",
            "Content-Length: 0",
            "l: 12",
            "Content-Length: ²",
            "Content-Length: 99999999999999999999",
            " continued",
            "\tcontinued",
            "no colon",
            ":",
            "Bad Name: x",
            "Server: \x00\x1b[31m",
        ]
    ),
    st.text(max_size=30).map(lambda text: text.replace("\r", "").replace("\n", "")),
)
_SIP = st.one_of(
    st.binary(max_size=300),
    st.tuples(
        st.sampled_from(
            [
                "SIP/2.0 200 OK",
                "SIP/2.0 486 Busy",
                "SIP/2.0 999 x",
                "OPTIONS sip:x SIP/2.0",
                "SIP/2.0 200",
                "HTTP/1.1 200 OK",
                "",
            ]
        ),
        st.lists(_SIP_LINES, max_size=10),
        st.sampled_from(["\r\n", "\n"]),
        st.binary(max_size=20),
    ).map(lambda r: (r[2].join([r[0], *r[1]]) + r[2] * 2).encode("utf-8", "surrogatepass") + r[3]),
)


def _check_sip(data: bytes) -> None:
    request_length(data)
    try:
        response = parse_response(data)
        matches(_REQUEST, response)
        _ = response.content_length
    except MalformedResponseError:
        pass


def _sip_sized(size: int) -> bytes:
    """Continuation lines: every one makes the header it continues longer."""
    head = "SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bKfuzz\r\nCall-ID: c\r\n"
    head += "CSeq: 7 OPTIONS\r\nServer: x\r\n"
    line = " y\r\n"
    return (head + line * max(0, (size - len(head) - 2) // len(line)) + "\r\n").encode()


# --- HTTP probe answers -----------------------------------------------------------------------


def _check_certificate(der: bytes) -> None:
    result = not_after(der)
    assert result is None or isinstance(result, float)


@contextlib.contextmanager
def _open_http() -> Iterator[Check]:
    """A server that answers every connection with the example's bytes, and the probe."""
    loop = asyncio.new_event_loop()
    answer = [b""]

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError):
            await reader.readuntil(b"\r\n\r\n")
            writer.write(answer[0])
            await writer.drain()
        writer.close()

    server = loop.run_until_complete(asyncio.start_server(serve, "127.0.0.1", 0))
    port = server.sockets[0].getsockname()[1]
    probe = HttpCollector()
    loop.run_until_complete(probe.start())
    target = ProbeTarget(id="portal", address="127.0.0.1")
    settings = HttpSettings.model_validate(
        {
            "url": f"http://{{address}}:{port}/",
            "timeout": 2.0,
            "expect_text": "ok",
            "follow_redirects": False,
        }
    )

    def check(data: bytes) -> None:
        answer[0] = data
        reason = None
        try:
            result = loop.run_until_complete(probe.collect(target, settings))
            assert isinstance(result, HttpAnswer)
        except CollectError as exc:
            reason = exc.reason
        assert reason != "timeout", "the server answered and closed at once"

    try:
        yield check
    finally:
        loop.run_until_complete(probe.close())
        server.close()
        loop.run_until_complete(server.wait_closed())
        loop.close()


_HEADER_LINES = st.one_of(
    st.sampled_from(
        [
            "Content-Length: 5",
            "Content-Length: -1",
            "Content-Length: 99999999999",
            "Content-Type: text/html; charset=utf-16",
            "Content-Type: text/html; charset=rot13",
            "Content-Type: text/html; charset=nonsense",
            "Content-Type: text/html; charset=base64",
            "Transfer-Encoding: chunked",
            "Transfer-Encoding: gzip",
            "Content-Encoding: gzip",
            "Content-Encoding: br",
            "Location: /x",
            "Connection: close",
        ]
    ),
    st.text(max_size=30).map(lambda text: text.replace("\r", "").replace("\n", "")),
)
_HTTP = st.one_of(
    st.binary(max_size=200),
    st.tuples(
        st.sampled_from(
            [
                "HTTP/1.1 200 OK",
                "HTTP/1.0 302 Found",
                "HTTP/1.1 999 x",
                "HTTP/1.1 abc",
                "HTTP/2 200",
                "ICY 200 OK",
            ]
        ),
        st.lists(_HEADER_LINES, max_size=6),
        st.binary(max_size=60),
    ).map(
        lambda r: ("\r\n".join([r[0], *r[1]]) + "\r\n\r\n").encode("utf-8", "surrogatepass") + r[2]
    ),
)


TARGETS: tuple[Target, ...] = (
    Target("icmp reply", _ICMP, _open_pinger, sized=_icmp_sized),
    Target("sip response", _SIP, plain(_check_sip), sized=_sip_sized),
    Target("tls certificate", st.binary(max_size=400), plain(_check_certificate)),
    Target("http answer", _HTTP, _open_http, slow=True),
)

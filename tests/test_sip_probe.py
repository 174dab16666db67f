"""SIP OPTIONS probe against real SIP peers (kamailio, baresip), cross-checked with sipsak, and
against peers of our own that stay silent, refuse, or answer garbage, provisionally or late."""

from __future__ import annotations

import asyncio
import errno
import os
import socket
import time
from collections.abc import Callable
from typing import Any

import pytest
from pydantic import ValidationError

from collectors.base import CollectError
from collectors.sip import SipCollector, SipResponse, SipSettings, _os_failure
from collectors.sip_message import (
    MalformedResponseError,
    OptionsRequest,
    build_options,
    matches,
    parse_response,
)
from netmon.config.loader import load_data
from netmon.exporter import build_registry, render
from netmon.model import ProbeTarget
from netmon.state import StateStore
from tests.alertmanager_peer import eventually
from tests.helpers import metric_value
from tests.sip_peers import (
    CLOSE,
    Baresip,
    Kamailio,
    SilentUdp,
    reply,
    sipsak_options,
)

LOOPBACK = ProbeTarget(id="ep-1", address="127.0.0.1")
HANG = 30.0  # seconds: far beyond any probe timeout here; reached only by a hang
TRANSPORTS = ["udp", "tcp"]
ScriptedUas = Callable[..., Any]


async def probe(collector: SipCollector | None = None, **settings: Any) -> SipResponse:
    return await (collector or SipCollector()).collect(LOOPBACK, SipSettings(**settings))


async def failure(collector: SipCollector | None = None, **settings: Any) -> CollectError:
    # Only a hang guard: how fast a failure is known is said by its reason (refused, timeout,
    # parse), never by a wall-clock bound that a loaded machine can miss.
    async with asyncio.timeout(HANG):
        with pytest.raises(CollectError) as caught:
            await probe(collector, **settings)
    return caught.value


# --- Real peers ------------------------------------------------------------------------------


@pytest.mark.peer
@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_kamailio_is_alive_with_200(kamailio: Kamailio, transport: str) -> None:
    result = await probe(port=kamailio.port, transport=transport)
    assert result.ok
    assert (result.status_code, result.reason_phrase, result.detail) == (200, "OK", "200 OK")
    assert result.transport == transport
    assert "kamailio" in result.server
    assert result.duration > 0
    assert result.requests_sent == 1


@pytest.mark.peer
@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_a_uas_answering_503_is_alive_with_that_code(
    kamailio: Kamailio, transport: str
) -> None:
    result = await probe(port=kamailio.port, transport=transport, user="busy")
    assert result.ok
    assert result.status_code == 503
    assert result.detail == "503 Service Unavailable"


@pytest.mark.peer
@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_baresip_answers_options_for_its_account(baresip: Baresip, transport: str) -> None:
    result = await probe(port=baresip.port, transport=transport, user=baresip.user)
    assert result.ok
    assert result.status_code == 200
    assert "baresip" in result.server
    assert result.duration > 0


@pytest.mark.peer
async def test_baresip_404_for_another_user_still_means_alive(baresip: Baresip) -> None:
    result = await probe(port=baresip.port)  # no user: not its account
    assert result.ok
    assert result.detail == "404 Not Found"


@pytest.mark.peer
@pytest.mark.parametrize(
    ("peer", "user", "code"),
    [("kamailio", "alice", 200), ("kamailio", "busy", 503), ("baresip", "alice", 200),
     ("baresip", "bob", 404)],
)  # fmt: skip
async def test_sipsak_agrees_with_netmon(
    request: pytest.FixtureRequest, peer: str, user: str, code: int
) -> None:
    server: Kamailio | Baresip = request.getfixturevalue(peer)
    ours = await probe(port=server.port, user=user)
    theirs = await sipsak_options(f"sip:{user}@127.0.0.1:{server.port}")
    assert theirs.status_code == ours.status_code == code, theirs.output
    # sipsak calls only a 2xx a success; netmon calls any final answer a live SIP stack.
    assert ours.ok
    assert (theirs.exit_code == 0) == (200 <= code < 300), theirs.output


@pytest.mark.peer
async def test_215_endpoints_probed_at_once(kamailio: Kamailio) -> None:
    collector = SipCollector()
    settings = SipSettings(port=kamailio.port)
    # Every one answered, none mixed up with another's transaction. How long the 215 take is a
    # benchmark figure (bench/sip_bench.py, against sipsak), not a bound here.
    async with asyncio.timeout(HANG):
        results = await asyncio.gather(
            *(collector.collect(ProbeTarget(f"ep-{i}", "127.0.0.1"), settings) for i in range(215))
        )
    assert {r.status_code for r in results} == {200}


@pytest.mark.peer
async def test_result_reaches_probe_metrics_and_state(kamailio: Kamailio) -> None:
    inventory = load_data(
        {"targets": [{"id": "ep-1", "address": "127.0.0.1",
                      "probes": {"sip": {"port": kamailio.port, "user": "busy"}}}]}
    )  # fmt: skip
    store = StateStore()
    store.apply_inventory(inventory)
    settings = inventory.targets["ep-1"].probe("sip")
    assert isinstance(settings, SipSettings)
    store.record(await SipCollector().collect(LOOPBACK, settings))
    state = store.targets["ep-1"].probes["sip"]
    assert (state.success, state.reason, state.detail) == (True, None, "503 Service Unavailable")
    text = render(build_registry(store), None)[0].decode()
    assert metric_value(text, "netmon_probe_success", target="ep-1", probe="sip") == 1
    duration = metric_value(text, "netmon_probe_duration_seconds", target="ep-1", probe="sip")
    assert duration is not None
    assert duration > 0


# --- Silent, closed and misbehaving peers ----------------------------------------------------


async def test_silent_udp_port_times_out_after_retransmitting(silent_udp: SilentUdp) -> None:
    collector = SipCollector()
    started = time.monotonic()
    error = await failure(collector, port=silent_udp.port, timeout=3, t1=0.5)
    elapsed = time.monotonic() - started
    assert error.reason == "timeout"
    assert error.detail == "no response to OPTIONS within 3s (3 requests sent)"
    assert elapsed > 2.9  # it waited out its timeout; no upper bound: a loaded machine is slow
    datagrams = silent_udp.datagrams()
    # RFC 3261 17.1.2.2: sent at 0, T1 and 3 T1; a retransmission is the same request.
    assert len(datagrams) >= 3
    assert len(set(datagrams)) == 1
    assert collector.retransmissions == len(datagrams) - 1


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_closed_port_is_refused_quickly(transport: str) -> None:
    with socket.socket() as placeholder:  # a port nobody listens on
        placeholder.bind(("127.0.0.1", 0))
        port = placeholder.getsockname()[1]
    error = await failure(port=port, transport=transport)
    # Refused, not a timeout: the probe did not wait out its 3 s timeout to say so.
    assert error.reason == "refused"
    assert error.detail.endswith("(nothing listens there)")


async def test_garbage_then_nothing_is_a_parse_failure(scripted_uas: ScriptedUas) -> None:
    uas = await scripted_uas([(0, b"HTTP/1.1 400 Bad Request\r\n\r\n")])
    collector = SipCollector()
    error = await failure(collector, port=uas.port, timeout=1, t1=0.25)
    assert error.reason == "parse"
    # One garbage answer to each of the 3 requests (0, T1, 3 T1).
    assert error.detail == (
        "3 malformed replies and no valid response within 1s: "
        "no SIP/2.0 status line: 'HTTP/1.1 400 Bad Request'"
    )
    assert collector.malformed_responses == 3


async def test_garbage_then_a_valid_answer_is_alive(scripted_uas: ScriptedUas) -> None:
    uas = await scripted_uas(
        [(0, b"\xff\xfe garbage"), (0.01, b"SIP/2.0 200 OK\r\n\r\n"), (0.02, reply(200, "OK"))]
    )
    collector = SipCollector()
    result = await probe(collector, port=uas.port)
    assert (result.ok, result.status_code) == (True, 200)
    assert collector.malformed_responses == 2  # not UTF-8; no Via, Call-ID or CSeq


async def test_answer_to_another_transaction_is_ignored(scripted_uas: ScriptedUas) -> None:
    uas = await scripted_uas(
        [(0, reply(500, "Wrong", Via="SIP/2.0/UDP 127.0.0.1:9;branch=z9hG4bKother")),
         (0.02, reply(486, "Busy Here"))]
    )  # fmt: skip
    result = await probe(port=uas.port)
    assert result.detail == "486 Busy Here"


async def test_trying_then_200_is_alive(scripted_uas: ScriptedUas) -> None:
    uas = await scripted_uas([(0, reply(100, "Trying")), (0.7, reply(200, "OK"))])
    result = await probe(port=uas.port, timeout=2, t1=0.2)
    assert (result.ok, result.status_code) == (True, 200)
    assert result.duration >= 0.7
    # Proceeding after the 100: the next retransmission waits T2 (4 s), past the 200.
    assert result.requests_sent == 1
    assert len(uas.received) == 1


async def test_trying_and_no_final_answer_times_out(scripted_uas: ScriptedUas) -> None:
    uas = await scripted_uas([(0, reply(100, "Trying"))])
    error = await failure(port=uas.port, timeout=1, t1=0.25)
    assert (error.reason, error.detail) == (
        "timeout",
        "100 Trying, then no final response within 1s",
    )


async def test_tcp_answer_with_provisional_first(scripted_uas: ScriptedUas) -> None:
    uas = await scripted_uas(
        [(0, b"\r\n\r\n"), (0, reply(100, "Trying")), (0.05, reply(603, "Decline"))],
        transport="tcp",
    )
    result = await probe(port=uas.port, transport="tcp")
    assert (result.ok, result.detail) == (True, "603 Decline")


def _superscript_length(request: bytes) -> bytes:
    return reply(200, "OK")(request).replace(b"Content-Length: 0", "Content-Length: ²".encode())


def _arabic_indic_status(request: bytes) -> bytes:
    return reply(200, "OK")(request).replace(b"SIP/2.0 200", "SIP/2.0 2٠٠".encode())


@pytest.mark.parametrize(
    ("answer", "transport", "detail"),
    [
        # Over TCP the length frames the message; a UDP datagram frames itself.
        (_superscript_length, "tcp", "bad Content-Length '²'"),
        (_arabic_indic_status, "tcp", "no SIP/2.0 status line: 'SIP/2.0 2٠٠ OK'"),
        (_arabic_indic_status, "udp", "no SIP/2.0 status line: 'SIP/2.0 2٠٠ OK'"),
    ],
    ids=["superscript-length-tcp", "arabic-indic-status-tcp", "arabic-indic-status-udp"],
)
async def test_non_ascii_digits_are_a_parse_failure_not_a_crash(
    scripted_uas: ScriptedUas, answer: Callable[[bytes], bytes], detail: str, transport: str
) -> None:
    uas = await scripted_uas([(0, answer)], transport=transport)
    error = await failure(port=uas.port, transport=transport, timeout=0.5, t1=0.1)
    assert error.reason == "parse"
    assert detail in error.detail, error.detail


@pytest.mark.parametrize(
    ("script", "reason", "detail"),
    [
        ([(0, b"garbage\r\n\r\n")], "parse", "no SIP/2.0 status line: 'garbage'"),
        ([(0, b"SIP/2.0 200 OK\r\n" + b"X: " + b"y" * 70_000)], "parse",
         "response head larger than 64 KiB"),
        ([(0, CLOSE)], "protocol", "connection closed without a response"),
        ([(0, b"SIP/2.0 200 OK\r\n"), (0.01, CLOSE)], "parse", "connection closed mid-message"),
        ([], "timeout", "no response to OPTIONS within 0.5s (1 request sent)"),
    ],
    ids=["garbage", "huge-head", "closed", "half-message", "silent"],
)  # fmt: skip
async def test_tcp_misbehaviour(
    scripted_uas: ScriptedUas, script: list[Any], reason: str, detail: str
) -> None:
    uas = await scripted_uas(script, transport="tcp")
    error = await failure(port=uas.port, transport="tcp", timeout=0.5, t1=0.1)
    assert error.reason == reason
    assert error.detail.endswith(detail), error.detail


async def test_unresolvable_name() -> None:
    target = ProbeTarget(id="ep-x", address="no-such-endpoint.invalid")
    with pytest.raises(CollectError) as caught:
        await SipCollector().collect(target, SipSettings(timeout=1))
    assert caught.value.reason == "resolve"


async def test_no_socket_left_open(silent_udp: SilentUdp, scripted_uas: ScriptedUas) -> None:
    tcp_uas = await scripted_uas([(0, reply(200, "OK"))], transport="tcp")
    udp_uas = await scripted_uas([(0, reply(200, "OK"))])
    collector = SipCollector()

    async def round_of_probes() -> None:
        await asyncio.gather(
            *(probe(collector, port=udp_uas.port) for _ in range(10)),
            *(probe(collector, port=tcp_uas.port, transport="tcp") for _ in range(10)),
            *(failure(collector, port=silent_udp.port, timeout=0.2, t1=0.05) for _ in range(10)),
            *(failure(collector, port=9, transport="tcp") for _ in range(10)),
        )

    def descriptors() -> int:
        return len(os.listdir("/proc/self/fd"))

    await round_of_probes()  # the event loop's own descriptors are there after this
    before = descriptors()
    await round_of_probes()
    # Closed transports give their sockets back on the loop's next turns: wait for that,
    # not for a time; a leaked socket never comes back.
    await eventually(lambda: descriptors() == before, what="the probes' sockets closed")
    assert descriptors() == before


# --- The request, the parser and the settings ------------------------------------------------


def _request(**overrides: Any) -> OptionsRequest:
    arguments: dict[str, Any] = {
        "host": "192.0.2.10", "port": 5060, "user": None, "transport": "udp",
        "local_host": "198.51.100.1", "local_port": 40000, "cseq": 7,
        "user_agent": "netmon/1.2", "branch": "z9hG4bKabc", "call_id": "cid1", "tag": "t1",
    }  # fmt: skip
    return build_options(**{**arguments, **overrides})


def test_request_is_well_formed() -> None:
    assert _request().data.decode().split("\r\n") == [
        "OPTIONS sip:192.0.2.10 SIP/2.0",
        "Via: SIP/2.0/UDP 198.51.100.1:40000;branch=z9hG4bKabc;rport",
        "Max-Forwards: 70",
        "From: <sip:netmon@198.51.100.1>;tag=t1",
        "To: <sip:192.0.2.10>",
        "Call-ID: cid1",
        "CSeq: 7 OPTIONS",
        "Contact: <sip:netmon@198.51.100.1:40000>",
        "Accept: application/sdp",
        "User-Agent: netmon/1.2",
        "Content-Length: 0",
        "",
        "",
    ]


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({"user": "room1", "port": 5070}, "OPTIONS sip:room1@192.0.2.10:5070 SIP/2.0"),
        ({"host": "2001:db8::5"}, "OPTIONS sip:[2001:db8::5] SIP/2.0"),
        ({"transport": "tcp"}, "Via: SIP/2.0/TCP 198.51.100.1:40000;branch=z9hG4bKabc;rport"),
        ({"transport": "tcp"}, "Contact: <sip:netmon@198.51.100.1:40000;transport=tcp>"),
        ({"local_host": "2001:db8::1"}, "From: <sip:netmon@[2001:db8::1]>;tag=t1"),
    ],
)
def test_request_lines(overrides: dict[str, Any], expected: str) -> None:
    assert expected in _request(**overrides).data.decode().split("\r\n")


def test_generated_identifiers_are_fresh_and_rfc3261_branches() -> None:
    first, second = (
        build_options(host="h", port=5060, user=None, transport="udp", local_host="l",
                      local_port=1, cseq=1, user_agent="x")
        for _ in range(2)
    )  # fmt: skip
    assert first.branch.startswith("z9hG4bK")
    assert first.branch != second.branch
    assert first.call_id != second.call_id


GOOD = (
    b"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 198.51.100.1:40000;branch=z9hG4bKabc;rport=40000\r\n"
    b"Call-ID: cid1\r\nCSeq: 7 OPTIONS\r\nContent-Length: 0\r\n\r\n"
)


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        (b"", "no SIP/2.0 status line: ''"),
        (b"SIP/2.0 99 Odd\r\n\r\n", "no SIP/2.0 status line: 'SIP/2.0 99 Odd'"),
        (b"SIP/2.0 700 Odd\r\n\r\n", "no SIP/2.0 status line: 'SIP/2.0 700 Odd'"),
        (b"SIP/1.0 200 OK\r\n\r\n", "no SIP/2.0 status line: 'SIP/1.0 200 OK'"),
        (b"\xc3\x28", "not UTF-8 text"),
        (b"SIP/2.0 200 OK\r\nno colon here\r\n\r\n", "bad header line: 'no colon here'"),
        (GOOD.replace(b"Call-ID: cid1\r\n", b""), "no Call-Id header"),
        (GOOD.replace(b"CSeq: 7 OPTIONS\r\n", b""), "no Cseq header"),
        (b"OPTIONS sip:x SIP/2.0\r\n\r\n", "a SIP request, not a response"),
    ],
)
def test_malformed_responses(data: bytes, problem: str) -> None:
    with pytest.raises(MalformedResponseError) as caught:
        parse_response(data)
    assert str(caught.value) == problem


def test_response_parsing_is_lenient_where_rfc3261_allows() -> None:
    data = (
        b"\r\nSIP/2.0 503 Service Unavailable\nv: SIP/2.0/UDP 198.51.100.1:40000\n"
        b" ;branch=z9hG4bKabc, SIP/2.0/UDP proxy;branch=z9hG4bKx\ni: cid1\n"
        b"CSeq: 7 options\nServer: room\x07system\n\n"
    )
    response = parse_response(data)
    assert (response.status_code, response.reason_phrase) == (503, "Service Unavailable")
    assert response.header("server") == "room\x07system"
    assert matches(_request(), response)


@pytest.mark.parametrize(
    "change",
    [
        (b"branch=z9hG4bKabc", b"branch=z9hG4bKabd"),
        (b"Call-ID: cid1", b"Call-ID: cid2"),
        (b"CSeq: 7 OPTIONS", b"CSeq: 8 OPTIONS"),
        (b"CSeq: 7 OPTIONS", b"CSeq: 7 INVITE"),
    ],
)
def test_responses_of_other_transactions_do_not_match(change: tuple[bytes, bytes]) -> None:
    assert matches(_request(), parse_response(GOOD))
    assert not matches(_request(), parse_response(GOOD.replace(*change)))


def test_config_example_from_readme_loads() -> None:
    inventory = load_data(
        {"defaults": {"sip": {"transport": "tcp", "timeout": "2s", "t1": "500ms"}},
         "targets": [{"id": "ep-1", "address": "10.20.31.10", "probes": {"sip": {"user": 1001}}}]}
    )  # fmt: skip
    settings = inventory.targets["ep-1"].probe("sip")
    assert isinstance(settings, SipSettings)
    assert (settings.transport, settings.timeout, settings.t1, settings.user) == (
        "tcp", 2.0, 0.5, "1001"
    )  # fmt: skip


@pytest.mark.parametrize(
    ("error", "reason"),
    [
        (ConnectionRefusedError(errno.ECONNREFUSED, "refused"), "refused"),
        (OSError(errno.EHOSTUNREACH, "No route to host"), "unreachable"),
        (OSError(errno.ENETUNREACH, "Network is unreachable"), "unreachable"),
        (OSError(errno.EPERM, "Operation not permitted"), "unreachable"),
        (ConnectionResetError(errno.ECONNRESET, "reset"), "protocol"),
        (OSError(errno.EMSGSIZE, "Message too long"), "error"),
    ],
)
def test_socket_errors_become_reasons(error: OSError, reason: str) -> None:
    assert _os_failure(error, "udp:192.0.2.1:5060").reason == reason


def test_settings_defaults() -> None:
    settings = SipSettings()
    assert (settings.transport, settings.port, settings.user) == ("udp", 5060, None)
    assert (settings.interval, settings.timeout, settings.t1) == (30.0, 3.0, 0.5)
    assert settings.user_agent.startswith("netmon")


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"timeout": "30s"}, "timeout 30s must be shorter than the interval 30s"),
        ({"t1": 3}, "t1 3s must be shorter than the timeout 3s"),
        ({"transport": "tls"}, "Input should be 'udp' or 'tcp'"),
        ({"user": "a b"}, "not a SIP user part: 'a b'"),
        ({"user": "a@b"}, "not a SIP user part: 'a@b'"),
        ({"port": 0}, "Input should be greater than or equal to 1"),
        ({"user_agent": "x\r\nInjected: 1"}, "must be printable text on one line"),
        ({"retries": 2}, "Extra inputs are not permitted"),
    ],
)
def test_bad_settings(fields: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError) as caught:
        SipSettings(**fields)
    assert message in str(caught.value)

"""The Cisco xAPI probe against simulated codecs (netmon_lab.cisco_sim) on loopback: what a room
says about itself (registration, calls, standby, peripherals, diagnostics, identity), its
session kept across polls and begun again when it expires, wrong passwords, HTTPS with a
self-signed certificate, and every bad answer a codec can give; and the sample payloads of
tests/data/cisco/ through the parser."""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from collectors.base import CollectError
from collectors.codec_settings import XapiSettings
from collectors.registry import collector_class
from collectors.xapi import XapiCollector
from collectors.xapi_parse import StatusError, parse_status, parse_xml
from netmon.credentials import ApiCredential, Secret
from netmon.model import (
    Call,
    Diagnostic,
    DiagnosticLevel,
    EndpointStatus,
    Peripheral,
    PeripheralKind,
    ProbeTarget,
    Registration,
    RegistrationState,
)
from netmon_lab.cisco_sim import HUGE_SIZE, CiscoSim, SimCodec
from netmon_lab.codec_state import CodecState, SimCall, SimDiagnostic
from tests.helpers import until
from tests.test_http_probe import Certificate, make_certificate

PASSWORD = "Kh0ng-d0an-du0c-7731"  # noqa: S105 - must never show up anywhere
HANG = 30.0  # seconds: far beyond any probe timeout here; reached only by a hang
DATA = Path(__file__).parent / "data" / "cisco"


def room_kit() -> CodecState:
    return CodecState(
        model="Cisco Webex Room Kit",
        software="ce9.15.3.17 9a8b6d5ad7b 2022-11-22",
        serial="FOC2117N3HK",
        sip_uri="room-hoa-binh@conf.lab",
    )


@pytest.fixture
def certificate(tmp_path: Path) -> Certificate:
    return make_certificate(tmp_path)


@pytest.fixture
async def sim(certificate: Certificate) -> AsyncIterator[CiscoSim]:
    async with CiscoSim(
        cert_file=certificate.cert_file, key_file=certificate.key_file, password=PASSWORD
    ) as simulator:
        yield simulator


@pytest.fixture
async def codec(sim: CiscoSim) -> SimCodec:
    return await sim.add(room_kit())


@pytest.fixture
async def probe() -> AsyncIterator[XapiCollector]:
    collector = XapiCollector()
    await collector.start()
    try:
        yield collector
    finally:
        await collector.close()


def _target(password: str = PASSWORD) -> ProbeTarget:
    credential = ApiCredential(user="admin", password=Secret(password))
    return ProbeTarget(id="room-hoa-binh", address="127.0.0.1", credentials={"codec": credential})


def _settings(codec: SimCodec, **values: Any) -> XapiSettings:
    return XapiSettings.model_validate(
        {
            "scheme": "https" if codec.tls else "http",
            "port": codec.port,
            "credential": "codec",
            **values,
        }
    )


async def _poll(
    probe: XapiCollector, codec: SimCodec, password: str = PASSWORD, **values: Any
) -> EndpointStatus:
    async with asyncio.timeout(HANG):
        return await probe.collect(_target(password), _settings(codec, **values))


async def _failure(
    probe: XapiCollector, codec: SimCodec, password: str = PASSWORD, **values: Any
) -> CollectError:
    with pytest.raises(CollectError) as caught:
        await _poll(probe, codec, password, **values)
    return caught.value


def _kinds(status: EndpointStatus) -> dict[PeripheralKind, list[bool]]:
    kinds: dict[PeripheralKind, list[bool]] = {}
    for peripheral in status.peripherals:
        kinds.setdefault(peripheral.kind, []).append(peripheral.connected)
    return kinds


# --- what a room says ---------------------------------------------------------------------------


def test_the_registry_knows_the_probe() -> None:
    assert collector_class("xapi") is XapiCollector


async def test_a_registered_idle_room_reports_everything(
    probe: XapiCollector, codec: SimCodec
) -> None:
    status = await _poll(probe, codec)
    assert status.ok
    assert (status.vendor, status.model, status.serial) == (
        "cisco",
        "Cisco Webex Room Kit",
        "FOC2117N3HK",
    )
    assert status.software == "ce9.15.3.17 9a8b6d5ad7b 2022-11-22"
    assert status.registrations == (
        Registration("sip", RegistrationState.REGISTERED, address="room-hoa-binh@conf.lab"),
        Registration("h323", RegistrationState.INACTIVE),  # no gatekeeper set up
    )
    assert status.calls == ()
    assert status.standby is False
    assert _kinds(status) == {
        PeripheralKind.CAMERA: [True],
        PeripheralKind.TOUCH_PANEL: [True],
        PeripheralKind.DISPLAY: [True],
        PeripheralKind.MICROPHONE: [True],
    }
    assert status.diagnostics == ()
    assert status.missing == ()


@pytest.mark.parametrize(
    ("state", "reason", "expected"),
    [
        ("failed", "403 Forbidden", RegistrationState.FAILED),
        ("unregistered", "", RegistrationState.UNREGISTERED),
        ("inactive", "", RegistrationState.INACTIVE),
        ("registering", "", RegistrationState.REGISTERING),
    ],
)
async def test_sip_registration_states_and_reason(
    probe: XapiCollector,
    codec: SimCodec,
    state: str,
    reason: str,
    expected: RegistrationState,
) -> None:
    codec.state.sip_state, codec.state.sip_reason = state, reason
    status = await _poll(probe, codec)
    assert status.registrations[0] == Registration(
        "sip", expected, reason=reason, address="room-hoa-binh@conf.lab"
    )


async def test_an_h323_gatekeeper_registration(probe: XapiCollector, codec: SimCodec) -> None:
    codec.state.h323_state, codec.state.h323_gatekeeper = "registered", "10.0.0.5"
    status = await _poll(probe, codec)
    assert Registration("h323", RegistrationState.REGISTERED, address="10.0.0.5") in (
        status.registrations
    )
    codec.state.h323_state = "failed"
    status = await _poll(probe, codec)
    assert status.registrations[1].state is RegistrationState.FAILED
    codec.state.h323_state = "unregistered"
    status = await _poll(probe, codec)
    assert status.registrations[1].state is RegistrationState.UNREGISTERED


async def test_a_room_in_a_call(probe: XapiCollector, codec: SimCodec) -> None:
    codec.state.calls.append(
        SimCall("hall@conf.lab", protocol="h323", direction="incoming", started=time.time() - 90)
    )
    status = await _poll(probe, codec)
    (call,) = status.calls
    assert (call.status, call.protocol, call.direction, call.remote) == (
        "connected",
        "h323",
        "incoming",
        "hall@conf.lab",
    )
    assert call.duration is not None
    assert call.duration >= 90
    codec.state.calls.clear()
    assert (await _poll(probe, codec)).calls == ()


async def test_in_a_call_the_media_statistics_of_the_last_interval_are_read(
    probe: XapiCollector, codec: SimCodec
) -> None:
    idle = codec.status_requests
    await _poll(probe, codec)
    per_poll = codec.status_requests - idle  # no MediaChannels request while idle
    codec.state.calls.append(SimCall("hall@conf.lab", rx_loss=0.05, jitter_ms=12))
    before = codec.status_requests
    status = await _poll(probe, codec)
    assert codec.status_requests - before == per_poll + 1
    streams = {(s.direction, s.media): s for s in status.streams}
    assert set(streams) == {("rx", "audio"), ("tx", "audio"), ("rx", "video"), ("tx", "video")}
    audio = streams["rx", "audio"]
    # 12 of the interval's 250 packets lost: the last interval's share, not the call's.
    assert (audio.codec, audio.loss_ratio, audio.jitter) == ("G711Mu", 12 / 250, 0.012)
    assert audio.bitrate == 64000
    video = streams["rx", "video"]
    assert (video.role, video.codec, video.frame_rate) == ("main", "H264", 30)
    assert streams["tx", "audio"].loss_ratio == 0
    codec.state.calls.clear()
    assert (await _poll(probe, codec)).streams == ()


async def test_standby(probe: XapiCollector, codec: SimCodec) -> None:
    codec.state.standby = True
    assert (await _poll(probe, codec)).standby is True


@pytest.mark.parametrize("mic_shape", ["connectors", "count", "peripheral"])
@pytest.mark.parametrize("kind", ["camera", "microphone", "display", "touch_panel"])
async def test_an_unplugged_peripheral_shows_disconnected(
    probe: XapiCollector, codec: SimCodec, kind: str, mic_shape: Any
) -> None:
    codec.mic_shape = mic_shape
    assert all(all(connected) for connected in _kinds(await _poll(probe, codec)).values())
    codec.state.connect(kind, False)
    kinds = _kinds(await _poll(probe, codec))
    assert kinds[PeripheralKind(kind)] == [False]
    assert all(all(connected) for k, connected in kinds.items() if k != PeripheralKind(kind))


async def test_diagnostics_with_their_levels(probe: XapiCollector, codec: SimCodec) -> None:
    codec.state.diagnostics = [
        SimDiagnostic(level, f"Check{level.title()}", f"a {level} message")
        for level in ("info", "warning", "error", "critical")
    ]
    status = await _poll(probe, codec)
    assert status.diagnostics == tuple(
        Diagnostic(DiagnosticLevel(level), f"Check{level.title()}", f"a {level} message")
        for level in ("info", "warning", "error", "critical")
    )


async def test_what_the_firmware_lacks_is_missing_not_an_error(
    probe: XapiCollector, codec: SimCodec
) -> None:
    codec.absent = {"H323", "Peripherals"}
    status = await _poll(probe, codec)
    assert status.ok
    assert set(status.missing) == {"H323/Gatekeeper", "Peripherals/ConnectedDevice"}
    assert [r.protocol for r in status.registrations] == ["sip"]
    # A path not asked for is not missing either.
    status = await _poll(probe, codec, paths=["SIP/Registration", "Standby"])
    assert status.missing == ()
    assert status.peripherals == ()


# --- sessions and credentials -------------------------------------------------------------------


async def test_one_session_and_one_connection_serve_every_poll(
    probe: XapiCollector, codec: SimCodec
) -> None:
    for _ in range(5):
        await _poll(probe, codec)
    assert codec.logins == 1
    assert codec.connections == 1
    assert codec.basic_requests == 0  # every status request rode on the session


async def test_an_expired_session_is_begun_again_once(
    probe: XapiCollector, codec: SimCodec
) -> None:
    await _poll(probe, codec)
    codec.expire_sessions()
    status = await _poll(probe, codec)
    assert status.ok
    assert codec.logins == 2
    await _poll(probe, codec)
    assert codec.logins == 2


async def test_polls_side_by_side_share_one_session(probe: XapiCollector, codec: SimCodec) -> None:
    await asyncio.gather(*(_poll(probe, codec) for _ in range(4)))
    assert codec.logins == 1


async def test_a_codec_without_sessions_gets_basic_auth(
    probe: XapiCollector, codec: SimCodec
) -> None:
    codec.sessions = False
    for _ in range(2):
        assert (await _poll(probe, codec)).ok
    assert codec.logins == 0
    assert codec.basic_requests == codec.status_requests > 0


async def test_closing_the_probe_ends_its_sessions(codec: SimCodec) -> None:
    collector = XapiCollector()
    await collector.start()
    await _poll(collector, codec)
    assert codec.live_sessions == 1
    await collector.close()
    assert codec.live_sessions == 0


async def test_a_wrong_password_is_auth_and_never_shown(
    probe: XapiCollector, codec: SimCodec, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    wrong = "wr0ng-Pa55w0rd-4412"
    error = await _failure(probe, codec, password=wrong)
    assert error.reason == "auth"
    assert "admin" in error.detail
    assert "wrong user or password" in error.detail
    # A good poll, so that a session id exists to leak, then the wrong password again.
    await _poll(probe, codec)
    session = next(iter(codec._sessions))
    error_again = await _failure(probe, codec, password=wrong)
    for text in (str(error), repr(error), error.detail, str(error_again), caplog.text):
        assert wrong not in text
        assert PASSWORD not in text
        assert session not in text
    assert PASSWORD not in repr(_target())
    assert PASSWORD not in repr(_settings(codec))


async def test_no_credential_is_a_config_error(probe: XapiCollector, codec: SimCodec) -> None:
    target = ProbeTarget(id="room", address="127.0.0.1")
    with pytest.raises(CollectError) as caught:
        await probe.collect(target, _settings(codec))
    assert caught.value.reason == "config"


# --- HTTPS --------------------------------------------------------------------------------------


async def test_https_with_a_self_signed_certificate(
    probe: XapiCollector, sim: CiscoSim, certificate: Certificate
) -> None:
    codec = await sim.add(room_kit(), tls=True)
    assert (await _poll(probe, codec, verify_tls=False)).ok
    error = await _failure(probe, codec)
    assert error.reason == "tls"
    assert "certificate" in error.detail
    assert (await _poll(probe, codec, ca_file=str(certificate.cert_file))).ok


async def test_http_to_an_https_codec_is_a_protocol_failure_not_a_crash(
    probe: XapiCollector, sim: CiscoSim
) -> None:
    codec = await sim.add(room_kit(), tls=True)
    error = await _failure(probe, codec, scheme="http")
    assert error.reason in ("protocol", "refused")


# --- bad answers --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("answer", "words"),
    [
        ("html", "HTML"),
        ("truncated", "truncated"),
        ("bomb", "DTD"),
    ],
)
async def test_a_bad_answer_is_a_parse_failure(
    probe: XapiCollector, codec: SimCodec, answer: Any, words: str
) -> None:
    codec.answer = answer
    error = await _failure(probe, codec)
    assert (error.reason, words in error.detail) == ("parse", True), error.detail


@pytest.mark.parametrize("answer", ["huge", "huge_chunked"])
async def test_a_huge_answer_is_refused_without_reading_it(
    probe: XapiCollector, codec: SimCodec, answer: Any
) -> None:
    codec.answer = answer
    error = await _failure(probe, codec)
    assert error.reason == "too_large"
    await until(lambda: codec.huge_ends == 1, timeout=HANG)
    # The codec could not send most of it: netmon hung up.
    assert codec.huge_sent < HUGE_SIZE // 4
    codec.answer = "xml"
    assert (await _poll(probe, codec)).ok


async def test_a_slow_codec_times_out(probe: XapiCollector, codec: SimCodec) -> None:
    await _poll(probe, codec)
    codec.delay = HANG
    error = await _failure(probe, codec, timeout=0.5)
    assert error.reason == "timeout"


async def test_a_closed_port_is_refused(probe: XapiCollector, codec: SimCodec) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    codec.port = port
    error = await _failure(probe, codec)
    assert error.reason == "refused"


# --- the sample payloads ------------------------------------------------------------------------


def _fixture(name: str) -> EndpointStatus:
    parts = parse_status(parse_xml((DATA / name).read_bytes(), 1 << 20))
    return EndpointStatus(
        target="t",
        collector="xapi",
        ok=True,
        duration=0.0,
        model=parts.model,
        software=parts.software,
        serial=parts.serial,
        registrations=tuple(parts.registrations),
        calls=tuple(parts.calls),
        standby=parts.standby,
        peripherals=tuple(parts.peripherals),
        diagnostics=tuple(parts.diagnostics),
        missing=tuple(parts.missing),
    )


def test_fixture_payloads_parse() -> None:
    kit = _fixture("room_kit_in_call.xml")
    assert (kit.model, kit.serial) == ("Cisco Webex Room Kit", "FOC2117N3HK")
    assert kit.registrations[0] == Registration(
        "sip", RegistrationState.REGISTERED, address="room-hoa-binh@conf.example.vn"
    )
    assert kit.calls == (Call("connected", "sip", "incoming", "hall@conf.example.vn", 754.0),)
    assert kit.standby is False
    assert set(kit.peripherals) == {
        Peripheral(PeripheralKind.CAMERA, "Room Kit camera", True),
        Peripheral(PeripheralKind.TOUCH_PANEL, "Cisco TelePresence Touch", True),
        Peripheral(PeripheralKind.DISPLAY, "LG TV", True),
        Peripheral(PeripheralKind.MICROPHONE, "Microphone input 1", True),
    }
    assert kit.diagnostics == (
        Diagnostic(DiagnosticLevel.WARNING, "NTPStatus", "The NTP server could not be reached."),
    )
    assert kit.missing == ()

    pro = _fixture("codec_pro_faults.xml")
    assert pro.software == "RoomOS 11.5.2.4 ab9dfd1a1a4"
    assert pro.registrations == (
        Registration(
            "sip",
            RegistrationState.FAILED,
            reason="403 Forbidden",
            address="room-quan-3@conf.example.vn",
        ),
        Registration("h323", RegistrationState.FAILED, "Duplicate alias", "10.0.0.5"),
    )
    assert pro.standby is True
    assert {(p.kind, p.connected) for p in pro.peripherals} == {
        (PeripheralKind.CAMERA, False),
        (PeripheralKind.TOUCH_PANEL, False),
        (PeripheralKind.MICROPHONE, False),
        (PeripheralKind.DISPLAY, False),
    }
    assert [d.level for d in pro.diagnostics] == [DiagnosticLevel.ERROR, DiagnosticLevel.CRITICAL]

    sx20 = _fixture("sx20_old_ce.xml")
    assert sx20.registrations[0].state is RegistrationState.INACTIVE  # SIP not set up
    assert sx20.standby is False  # Halfwake: awake
    assert Peripheral(PeripheralKind.MICROPHONE, "0 microphones", False) in sx20.peripherals
    assert set(sx20.missing) == {"H323/Gatekeeper", "Peripherals/ConnectedDevice"}

    sip = _fixture("sip_registration_only.xml")
    assert sip.registrations[0].state is RegistrationState.REGISTERING
    assert sip.registrations[0].reason == "No response from server"


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "parse"),
        (b"<html><body>Sign in</body></html>", "parse"),
        (b"<Configuration></Configuration>", "parse"),
        (b'<Status product="Cisco Codec"><SIP>', "parse"),
        (b'<!DOCTYPE x [<!ENTITY a "b">]><Status>&a;</Status>', "parse"),
        (b"<Status>" + b"<x/>" * 400 + b"</Status>", "too_large"),
    ],
)
def test_the_parser_refuses_what_is_not_a_status(data: bytes, reason: str) -> None:
    with pytest.raises(StatusError) as caught:
        parse_xml(data, 1024)
    assert caught.value.reason == reason

"""The Poly REST status probe against the lab's simulated codecs (netmon_lab/poly_sim.py), both
APIs: what a room's state reads as, one login kept across polls and a new one after the
session expired, the XSRF token sent back, wrong passwords, HTTPS with a self-signed
certificate, and every bad answer (HTML, cut short, 50 MB, slow, nobody listening). The sample
payloads of tests/data/poly/ are parsed as the unit test of the reading."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from collectors.base import CollectError
from collectors.codec_settings import PolySettings
from collectors.poly import PolyCollector
from collectors.poly_parse import (
    CONFERENCES,
    GATEKEEPERS,
    GROUP_SERIES,
    SIP_SERVERS,
    STATUS,
    SYSTEM,
    VIDEOOS,
    PolyParseError,
    load_json,
    parse,
)
from collectors.registry import collector_class
from netmon.credentials import ApiCredential, Secret
from netmon.model import (
    Call,
    EndpointStatus,
    Peripheral,
    PeripheralKind,
    ProbeTarget,
    Registration,
    RegistrationState,
)
from netmon_lab.codec_state import CodecState, SimCall
from netmon_lab.poly_sim import PolyCodec, PolySim, tls_context
from tests.test_http_probe import make_certificate

DATA = Path(__file__).parent / "data" / "poly"
PASSWORD = "Mật-khẩu-9f4c2a!"  # noqa: S105 (the lab codec's)
APIS = (VIDEOOS, GROUP_SERIES)


def _load(name: str) -> Any:
    return json.loads((DATA / name).read_text(encoding="utf-8"))


def _room() -> CodecState:
    return CodecState(
        model="Studio X50",
        software="3.14.1",
        serial="8L2103A1B2C3D4",
        sip_uri="room-07@conf.lab",
    )


def _target(codec: PolyCodec, password: str = PASSWORD) -> ProbeTarget:
    return ProbeTarget(
        id="room-07",
        address=codec.host,
        credentials={"poly": ApiCredential(user="admin", password=Secret(password))},
    )


def _settings(codec: PolyCodec, **overrides: Any) -> PolySettings:
    values: dict[str, Any] = {
        "scheme": codec.scheme,
        "port": codec.port,
        "credential": "poly",
        "verify_tls": False,
        "timeout": 3.0,
    }
    return PolySettings.model_validate({**values, **overrides})


@pytest.fixture
async def sim() -> AsyncIterator[PolySim]:
    simulator = PolySim()
    await simulator.start()
    try:
        yield simulator
    finally:
        await simulator.close()


@pytest.fixture
async def collector() -> AsyncIterator[PolyCollector]:
    probe = PolyCollector()
    await probe.start()
    try:
        yield probe
    finally:
        await probe.close()


async def _codec(sim: PolySim, api: str, **kwargs: Any) -> PolyCodec:
    return await sim.add(_room(), api=api, password=PASSWORD, **kwargs)


async def _poll(collector: PolyCollector, codec: PolyCodec, **overrides: Any) -> EndpointStatus:
    return await collector.collect(_target(codec), _settings(codec, **overrides))


def _registration(status: EndpointStatus, protocol: str) -> Registration:
    (found,) = [r for r in status.registrations if r.protocol == protocol]
    return found


def _connected(status: EndpointStatus, kind: PeripheralKind) -> list[bool]:
    return [p.connected for p in status.peripherals if p.kind is kind]


# --- the sample payloads -----------------------------------------------------------------------


def test_videoos_samples_read_as_the_codec_says() -> None:
    answers = {
        SYSTEM: _load("videoos/system.json"),
        STATUS: _load("videoos/status.json"),
        SIP_SERVERS: _load("videoos/sipservers.json"),
        GATEKEEPERS: _load("videoos/h323gatekeepers.json"),
        CONFERENCES: _load("videoos/conferences.json"),
    }
    status = parse(VIDEOOS, answers)
    assert (status.model, status.software, status.serial) == (
        "Studio X50",
        "3.14.1",
        "8L2103A1B2C3D4",
    )
    assert status.registrations == (
        Registration("sip", RegistrationState.REGISTERED, "", "10.0.0.10"),
        Registration("h323", RegistrationState.INACTIVE, "not configured", ""),
    )
    assert status.calls == (Call("ringing", "sip", "incoming", "so-tu-phap@conf.example.vn", 4.0),)
    assert status.standby is True
    assert set(status.peripherals) == {
        Peripheral(PeripheralKind.CAMERA, "Cameras", True),
        Peripheral(PeripheralKind.CAMERA, "Tracking camera", True),
        Peripheral(PeripheralKind.MICROPHONE, "Microphones", True),
    }
    # Poly reports no display and nothing that is faithfully a diagnostic.
    assert status.missing == ("display", "diagnostics")


def test_group_series_samples_read_as_the_codec_says() -> None:
    answers = {
        SYSTEM: _load("group_series/system.json"),
        STATUS: _load("group_series/status.json"),
        CONFERENCES: _load("group_series/conferences.json"),
    }
    status = parse(GROUP_SERIES, answers)
    assert (status.model, status.software) == ("RealPresence Group 500", "6.2.2.8-670021")
    assert status.registrations == (
        Registration("sip", RegistrationState.UNREGISTERED),  # "down": set up, not registered
        Registration("h323", RegistrationState.REGISTERED),
    )
    assert status.calls == (Call("connected", "h323", "outgoing", "10.20.3.40", 1000.0),)
    assert status.standby is False
    assert _connected_parsed(status.peripherals) == {"camera": [False], "microphone": [True]}
    idle = parse(
        GROUP_SERIES, {**answers, CONFERENCES: _load("group_series/conferences_idle.json")}
    )
    assert idle.calls == ()


def _connected_parsed(peripherals: tuple[Peripheral, ...]) -> dict[str, list[bool]]:
    found: dict[str, list[bool]] = {}
    for peripheral in peripherals:
        found.setdefault(peripheral.kind.value, []).append(peripheral.connected)
    return found


def test_the_login_sample_gives_its_session() -> None:
    assert _load("videoos/login.json")["session"]["sessionId"].startswith("PS")


@pytest.mark.parametrize(
    "body",
    [b"<html><body>Login</body></html>", b'{"model": "Studio', b"\xff\xfe", b"[" * 100_000, b"1e"],
    ids=["html", "truncated", "not-utf8", "too-deep", "bad-number"],
)
def test_bad_json_is_a_parse_error(body: bytes) -> None:
    with pytest.raises(PolyParseError):
        load_json(body, SYSTEM)


def test_wrong_shapes_are_parse_errors() -> None:
    with pytest.raises(PolyParseError, match="not a JSON object"):
        parse(VIDEOOS, {SYSTEM: []})
    with pytest.raises(PolyParseError, match="not a JSON list"):
        parse(VIDEOOS, {SYSTEM: {}, STATUS: {"name": "x"}})
    with pytest.raises(PolyParseError, match="not a JSON list"):
        parse(VIDEOOS, {SYSTEM: {}, SIP_SERVERS: "UP"})


def test_the_probe_is_registered() -> None:
    assert collector_class("poly") is PolyCollector


# --- against the simulator, both APIs ----------------------------------------------------------


@pytest.mark.parametrize("api", APIS)
async def test_a_healthy_room(sim: PolySim, collector: PolyCollector, api: str) -> None:
    codec = await _codec(sim, api)
    status = await _poll(collector, codec)
    assert status.ok
    assert (status.vendor, status.model, status.software, status.serial) == (
        "poly",
        "Studio X50",
        "3.14.1",
        "8L2103A1B2C3D4",
    )
    assert _registration(status, "sip").state is RegistrationState.REGISTERED
    assert _registration(status, "h323").state is RegistrationState.INACTIVE  # not set up
    assert status.calls == ()
    assert status.standby is False
    assert _connected(status, PeripheralKind.CAMERA) == [True]
    assert _connected(status, PeripheralKind.MICROPHONE) == [True]
    assert status.diagnostics == ()
    assert status.missing == ("display", "diagnostics")


@pytest.mark.parametrize("api", APIS)
async def test_what_goes_wrong_in_a_room_shows(
    sim: PolySim, collector: PolyCollector, api: str
) -> None:
    codec = await _codec(sim, api)
    await _poll(collector, codec)
    codec.state.sip_state = "failed"
    codec.state.h323_state, codec.state.h323_gatekeeper = "registered", "10.0.0.11"
    codec.state.connect("camera", False)
    codec.state.connect("microphone", False)
    codec.state.standby = True
    codec.state.calls.append(
        SimCall(remote="so-y-te@conf.lab", direction="incoming", started=time.time() - 60)
    )
    status = await _poll(collector, codec)
    assert _registration(status, "sip").state is RegistrationState.UNREGISTERED  # Poly: down
    h323 = _registration(status, "h323")
    assert h323.state is RegistrationState.REGISTERED
    if api == VIDEOOS:  # the gatekeeper list names it; the Group Series status list does not
        assert h323.address == "10.0.0.11"
        assert _registration(status, "sip").address == "conf.lab"
    assert _connected(status, PeripheralKind.CAMERA) == [False]
    assert _connected(status, PeripheralKind.MICROPHONE) == [False]
    assert status.standby is True
    (call,) = status.calls
    assert (call.status, call.protocol, call.direction, call.remote) == (
        "connected",
        "sip",
        "incoming",
        "so-y-te@conf.lab",
    )
    assert call.duration is not None
    assert call.duration >= 60
    codec.state.sip_state = "unregistered"
    codec.state.calls[0].status = "ringing"
    status = await _poll(collector, codec)
    assert _registration(status, "sip").state is RegistrationState.UNREGISTERED
    assert [c.status for c in status.calls] == ["ringing"]
    codec.state.sip_uri = ""  # SIP no longer set up on the room: no fault
    status = await _poll(collector, codec)
    assert _registration(status, "sip").state is RegistrationState.INACTIVE


@pytest.mark.parametrize("api", [VIDEOOS, GROUP_SERIES])
async def test_in_a_call_the_media_statistics_are_read(
    sim: PolySim, collector: PolyCollector, api: str
) -> None:
    codec = await _codec(sim, api)
    assert (await _poll(collector, codec)).streams == ()  # idle: no mediastats GET
    idle_gets = codec.gets
    await _poll(collector, codec)
    per_poll = codec.gets - idle_gets
    codec.state.calls.append(SimCall(remote="so-y-te@conf.lab", rx_loss=0.05, jitter_ms=12))
    before = codec.gets
    status = await _poll(collector, codec)
    assert codec.gets - before == per_poll + 1
    streams = {(s.direction, s.media): s for s in status.streams}
    assert set(streams) == {("rx", "audio"), ("tx", "audio"), ("rx", "video"), ("tx", "video")}
    audio = streams["rx", "audio"]
    assert (audio.codec, audio.loss_ratio, audio.jitter, audio.bitrate) == (
        "G.711U",
        0.05,
        0.012,
        64000,
    )
    video = streams["rx", "video"]
    assert (video.role, video.frame_rate, video.bitrate) == ("main", 30, 1_500_000)
    assert streams["tx", "audio"].loss_ratio == 0


@pytest.mark.parametrize("api", APIS)
async def test_one_login_is_kept_and_renewed_when_it_expires(
    sim: PolySim, collector: PolyCollector, api: str
) -> None:
    codec = await _codec(sim, api)
    for _ in range(3):
        await _poll(collector, codec)
    assert codec.logins == 1
    assert codec.refused == 0  # every request carried the session (and on VideoOS the token)
    codec.expire_sessions()
    status = await _poll(collector, codec)
    assert status.ok
    assert codec.logins == 2
    assert codec.refused == 1  # refused once, logged in again, asked again
    await _poll(collector, codec)
    assert (codec.logins, collector.logins("room-07")) == (2, 2)


async def test_the_xsrf_token_is_required_and_sent(sim: PolySim, collector: PolyCollector) -> None:
    codec = await _codec(sim, VIDEOOS)
    await _poll(collector, codec)
    (token,) = codec.sessions.values()
    assert token  # VideoOS issued one, and the poll above passed its check
    # A session whose token the probe does not know: every request refused, one new login.
    (session_id,) = codec.sessions
    codec.sessions[session_id] = "another-token"
    await _poll(collector, codec)
    assert codec.logins == 2
    assert codec.refused == 1


@pytest.mark.parametrize("api", APIS)
async def test_the_session_is_logged_out_on_close(sim: PolySim, api: str) -> None:
    codec = await _codec(sim, api)
    probe = PolyCollector()
    await probe.start()
    await _poll(probe, codec)
    assert len(codec.sessions) == 1
    await probe.close()
    assert codec.sessions == {}
    assert codec.logouts == 1


@pytest.mark.parametrize(
    ("api", "legacy", "gets"),
    [(VIDEOOS, False, 5), (GROUP_SERIES, True, 3), (GROUP_SERIES, False, 4)],
    ids=["videoos", "group-series-legacy-login", "group-series"],
)
async def test_auto_learns_the_api_once(
    sim: PolySim, collector: PolyCollector, api: str, legacy: bool, gets: int
) -> None:
    codec = await _codec(sim, api, legacy_login=legacy)
    status = await _poll(collector, codec)
    assert _registration(status, "sip").state is RegistrationState.REGISTERED
    assert codec.gets == gets  # a Group Series that logs in the new way is asked once more
    await _poll(collector, codec)
    assert codec.gets == gets + (5 if api == VIDEOOS else 3)


async def test_auto_asks_again_when_the_api_changed(sim: PolySim, collector: PolyCollector) -> None:
    codec = await _codec(sim, VIDEOOS)
    await _poll(collector, codec)
    codec.api, codec.legacy_login = GROUP_SERIES, False  # the codec swapped under the address
    codec.state.sip_state = "failed"
    status = await _poll(collector, codec)
    assert "registration.sip" in status.missing  # the VideoOS lists are gone
    status = await _poll(collector, codec)
    assert _registration(status, "sip").state is RegistrationState.UNREGISTERED


async def test_a_set_api_is_used_as_set(sim: PolySim, collector: PolyCollector) -> None:
    codec = await _codec(sim, GROUP_SERIES, legacy_login=False)
    status = await _poll(collector, codec, api="videoos")
    assert status.missing[:2] == ("registration.sip", "registration.h323")


# --- refusals and bad answers ------------------------------------------------------------------


@pytest.mark.parametrize("api", APIS)
@pytest.mark.parametrize("failure_status", [401, 200])
async def test_a_wrong_password_is_auth_never_the_password(
    sim: PolySim, collector: PolyCollector, api: str, failure_status: int, caplog: Any
) -> None:
    codec = await _codec(sim, api)
    codec.login_failure_status = failure_status
    wrong = "sai-mat-khau-3e1d"
    with pytest.raises(CollectError) as caught:
        await collector.collect(_target(codec, wrong), _settings(codec))
    assert caught.value.reason == "auth"
    assert "admin" in caught.value.detail
    for text in (caught.value.detail, str(caught.value), repr(caught.value), caplog.text):
        assert wrong not in text
        assert PASSWORD not in text
    assert codec.failed_logins == 1


async def test_no_api_credential_is_a_config_error(sim: PolySim, collector: PolyCollector) -> None:
    codec = await _codec(sim, VIDEOOS)
    with pytest.raises(CollectError) as caught:
        await collector.collect(_target(codec), _settings(codec, credential="other"))
    assert caught.value.reason == "config"


@pytest.mark.parametrize(
    ("fault", "reason"),
    [
        ("html", "parse"),
        ("truncated", "parse"),
        ("huge", "too_large"),
        ("huge_chunked", "too_large"),
    ],
)
@pytest.mark.parametrize("api", APIS)
async def test_bad_answers_have_a_reason(
    sim: PolySim, collector: PolyCollector, api: str, fault: str, reason: str
) -> None:
    codec = await _codec(sim, api)
    codec.fault, codec.fault_path = fault, "/rest/system/status"
    with pytest.raises(CollectError) as caught:
        await _poll(collector, codec)
    assert caught.value.reason == reason, caught.value.detail
    assert "/rest/system/status" in caught.value.detail
    # and the next poll of a mended codec is whole again, on the same login
    codec.fault = None
    assert (await _poll(collector, codec)).ok
    assert codec.logins == 1


async def test_a_50_mb_answer_is_not_read(sim: PolySim, collector: PolyCollector) -> None:
    codec = await _codec(sim, VIDEOOS)
    codec.fault, codec.fault_path = "huge_chunked", "/rest/system"
    with pytest.raises(CollectError) as caught:
        await _poll(collector, codec, max_body=64 * 1024)
    assert caught.value.reason == "too_large"
    assert "65536" in caught.value.detail


async def test_a_slow_codec_times_out(sim: PolySim, collector: PolyCollector) -> None:
    codec = await _codec(sim, GROUP_SERIES)
    await _poll(collector, codec)
    codec.delay = 30.0
    with pytest.raises(CollectError) as caught:
        await _poll(collector, codec, timeout=0.5)
    assert caught.value.reason == "timeout"


async def test_nobody_listening_is_refused(collector: PolyCollector) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    target = ProbeTarget(
        id="room-07",
        address="127.0.0.1",
        credentials={"poly": ApiCredential(user="admin", password=Secret(PASSWORD))},
    )
    settings = PolySettings(scheme="http", port=port, credential="poly")
    with pytest.raises(CollectError) as caught:
        await collector.collect(target, settings)
    assert caught.value.reason == "refused"


# --- HTTPS -------------------------------------------------------------------------------------


@pytest.mark.parametrize("api", APIS)
async def test_https_with_a_self_signed_certificate(
    sim: PolySim, collector: PolyCollector, api: str, tmp_path: Path
) -> None:
    certificate = make_certificate(tmp_path)
    context = tls_context(certificate.cert_file, certificate.key_file)
    codec = await _codec(sim, api, ssl_context=context)
    assert codec.scheme == "https"
    assert (await _poll(collector, codec, verify_tls=False)).ok
    with pytest.raises(CollectError) as caught:
        await _poll(collector, codec, verify_tls=True)
    assert caught.value.reason == "tls"
    status = await _poll(collector, codec, verify_tls=True, ca_file=str(certificate.cert_file))
    assert status.ok
    assert codec.logins == 1  # the refused handshake did not cost the session

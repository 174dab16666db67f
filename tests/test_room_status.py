"""A room's own status (its API, its registrar) in the store, on /metrics, in readiness checks.

The collectors that read the codecs and the registrar have tests of their own against their
peers; here their observations are given, and what netmon makes of them is checked.
"""

from __future__ import annotations

from dataclasses import replace

import pytest
from aiohttp.test_utils import make_mocked_request
from prometheus_client.parser import text_string_to_metric_families

from collectors.codec_settings import KamailioSettings, XapiSettings
from netmon.checks.collected import Collected
from netmon.checks.model import EndpointReport, Verdict
from netmon.checks.room import judge_room
from netmon.config.schema import Config
from netmon.endpoints import RegistrarTable, RegistrarWord, aor_key
from netmon.exporter import build_registry, render
from netmon.inventory import Inventory, Target
from netmon.model import (
    Call,
    Contact,
    Diagnostic,
    DiagnosticLevel,
    EndpointStatus,
    MediaStream,
    Observation,
    Peripheral,
    PeripheralKind,
    RegistrarContacts,
    Registration,
    RegistrationFailure,
    RegistrationState,
)
from netmon.quality import audio_mos
from netmon.state import StateStore
from netmon.status import status_message, target_json
from netmon.status_page import status_page

ROOM = Target(
    id="hall",
    address="192.0.2.10",
    kind="endpoint",
    name="Provincial hall",
    site="",
    district="Center",
    group="",
    labels=(),
    probes=(("xapi", XapiSettings(credential="codec")),),
    vendor="cisco",
    registrar="reg",
    aor="hall@conf.lab",
)
PLAIN = replace(ROOM, id="commune", name="Commune", probes=(), vendor="sip", aor="commune")
REGISTRAR = Target(
    id="reg",
    address="192.0.2.1",
    kind="service",
    name="Registrar",
    site="",
    district="",
    group="",
    labels=(),
    probes=(("kamailio", KamailioSettings()),),
)


def _status(
    sip: RegistrationState = RegistrationState.REGISTERED,
    *,
    reason: str = "",
    camera: bool = True,
    diagnostics: tuple[Diagnostic, ...] = (),
    calls: tuple[Call, ...] = (),
    standby: bool = False,
    target: str = "hall",
) -> EndpointStatus:
    return EndpointStatus(
        target=target,
        collector="xapi",
        ok=True,
        duration=0.05,
        vendor="cisco",
        model="Room Kit",
        software="ce11.9",
        serial="FOC123",
        registrations=(
            Registration("sip", sip, reason, "sip:hall@conf.lab"),
            Registration("h323", RegistrationState.INACTIVE),
        ),
        calls=calls,
        standby=standby,
        peripherals=(
            Peripheral(PeripheralKind.CAMERA, "Quad Camera", camera),
            Peripheral(PeripheralKind.MICROPHONE, "Table Mic", True),
            Peripheral(PeripheralKind.DISPLAY, "HDMI 1", True),
        ),
        diagnostics=diagnostics,
    )


def _contacts(*aors: str, failures: tuple[RegistrationFailure, ...] = ()) -> RegistrarContacts:
    return RegistrarContacts(
        target="reg",
        collector="kamailio",
        ok=True,
        duration=0.01,
        registrar="kamailio",
        contacts=tuple(Contact(aor, f"sip:{aor}") for aor in aors),
        failures=failures,
    )


def _store() -> StateStore:
    store = StateStore()
    targets = {t.id: t for t in (ROOM, PLAIN, REGISTRAR)}
    store.apply_inventory(Inventory(config=Config(), defaults={}, targets=targets))
    return store


def _samples(store: StateStore) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = render(build_registry(store), None)[0].decode()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name.startswith(("netmon_endpoint_", "netmon_registrar_"))
        and not sample.name.startswith(("netmon_endpoint_ready", "netmon_endpoint_readiness"))
    }


@pytest.mark.parametrize(
    ("written", "key"),
    [
        ("hall", ("hall", "")),
        ("sip:hall@Conf.Lab", ("hall", "conf.lab")),
        ("<sips:hall@conf.lab:5061;transport=tls>", ("hall", "conf.lab")),
        ("hall@[2001:db8::1]:5060", ("hall", "[2001:db8::1]")),
    ],
)
def test_an_address_of_record_is_read_however_it_is_written(
    written: str, key: tuple[str, str]
) -> None:
    assert aor_key(written) == key


def test_a_registrar_poll_tells_every_endpoint_registered_there() -> None:
    store = _store()
    heard: list[str] = []
    store.on_record(lambda state, observation: heard.append(state.target.id))
    store.record(_contacts("hall@conf.lab", "commune"))
    # The registrar, then each of its endpoints (in no promised order).
    assert heard[0] == "reg"
    assert sorted(heard[1:]) == ["commune", "hall"]
    commune = store.targets["commune"].endpoint_view()
    assert commune is not None
    assert commune.registered("sip") is True
    # Another domain's "hall" is another AoR.
    store.record(_contacts("hall@other.lab", "commune"))
    hall = store.targets["hall"].registrar_word
    assert hall is not None
    assert hall.registered is False


def test_a_registrar_that_cannot_be_read_leaves_registration_unknown() -> None:
    store = _store()
    store.record(_contacts("commune"))
    failed = Observation("reg", "kamailio", ok=False, duration=5.0, reason="timeout")
    store.record(failed)
    commune = store.targets["commune"].endpoint_view()
    assert commune is not None
    assert commune.registered("sip") is None
    assert commune.registrar is not None
    assert commune.registrar.reason == "timeout"


def test_room_status_on_metrics() -> None:
    store = _store()
    store.record(
        _status(
            camera=False,
            diagnostics=(Diagnostic(DiagnosticLevel.ERROR, "TemperatureCheck", "Too hot"),),
            calls=(Call("connected", "sip", "outgoing", "sip:vp@conf.lab", 61.0),),
        )
    )
    store.record(_contacts("commune"))
    samples = _samples(store)
    assert samples[("netmon_endpoint_registered", (("protocol", "sip"), ("target", "hall")))] == 1
    # H.323 is not set up on the hall: no series, rather than a 0 that reads "unregistered".
    assert ("netmon_endpoint_registered", (("protocol", "h323"), ("target", "hall"))) not in (
        samples
    )
    assert samples[("netmon_endpoint_registered", (("protocol", "sip"), ("target", "commune")))]
    # The hall says registered; the registrar holds no contact for it: one-sided.
    assert samples[("netmon_endpoint_registration_one_sided", (("target", "hall"),))] == 1
    camera = (("peripheral", "camera"), ("target", "hall"))
    assert samples[("netmon_endpoint_peripheral_connected", camera)] == 0
    microphone = (("peripheral", "microphone"), ("target", "hall"))
    assert samples[("netmon_endpoint_peripheral_connected", microphone)] == 1
    assert samples[("netmon_endpoint_diagnostics", (("level", "error"), ("target", "hall")))] == 1
    assert samples[("netmon_endpoint_in_call", (("target", "hall"),))] == 1
    info = (
        ("model", "Room Kit"),
        ("serial", "FOC123"),
        ("software", "ce11.9"),
        ("target", "hall"),
        ("vendor", "cisco"),
    )
    assert samples[("netmon_endpoint_info", info)] == 1
    assert samples[("netmon_registrar_contacts", (("target", "reg"),))] == 1
    # The API stops answering: the room's status series go, rather than stay as they were.
    store.record(Observation("hall", "xapi", ok=False, duration=5.0, reason="timeout"))
    after = _samples(store)
    assert not any(name == "netmon_endpoint_in_call" for name, _ in after)
    assert not any(name == "netmon_endpoint_peripheral_connected" for name, _ in after)


def _check(
    target: Target,
    status: Observation | None,
    registrar: RegistrarWord | None = None,
    *,
    protocol: str = "sip",
    starts_in: float | None = None,
) -> EndpointReport:
    report = EndpointReport(target.id, target.display_name, target.district, target.address)
    collected = Collected(status=status, registrar=registrar)
    judge_room(report, target, collected, protocol=protocol, starts_in=starts_in)
    return report


def _word(*aors: str, failures: tuple[RegistrationFailure, ...] = ()) -> RegistrarWord:
    return RegistrarTable.of(_contacts(*aors, failures=failures)).word("reg", "hall@conf.lab")


def test_a_ready_room_is_go() -> None:
    report = _check(ROOM, _status(), _word("hall@conf.lab"))
    assert (report.verdict, report.reasons) == (Verdict.GO, [])
    assert report.measurements["room"]["peripherals"]["Quad Camera"] == "connected"


@pytest.mark.parametrize(
    ("status", "word", "kwargs", "verdict", "english", "vietnamese"),
    [
        (
            _status(camera=False),
            _word("hall@conf.lab"),
            {},
            Verdict.NO_GO,
            "camera disconnected (Quad Camera)",
            "mất kết nối camera (Quad Camera)",
        ),
        (
            _status(RegistrationState.FAILED, reason="403 Forbidden"),
            _word(),
            {},
            Verdict.NO_GO,
            "not registered (SIP): 403 Forbidden",
            "chưa đăng ký (SIP): 403 Forbidden",
        ),
        (
            _status(),
            _word("hall@conf.lab"),
            {"protocol": "h323"},
            Verdict.NO_GO,
            "not set up to register over H.323, which the meeting uses",
            "chưa cấu hình đăng ký H.323, giao thức cuộc họp sử dụng",
        ),
        (
            _status(),
            _word(),
            {},
            Verdict.NO_GO,
            "one-sided registration: the room says registered, the registrar holds no contact",
            "đăng ký một phía: thiết bị báo đã đăng ký, máy chủ đăng ký không có",
        ),
        (
            _status(diagnostics=(Diagnostic(DiagnosticLevel.CRITICAL, "Fan", "Fan failure"),)),
            _word("hall@conf.lab"),
            {},
            Verdict.NO_GO,
            "diagnostic critical: Fan failure",
            "chẩn đoán nghiêm trọng: Fan failure",
        ),
        (
            _status(diagnostics=(Diagnostic(DiagnosticLevel.WARNING, "Ntp", "NTP not synced"),)),
            _word("hall@conf.lab"),
            {},
            Verdict.WARN,
            "diagnostic warning: NTP not synced",
            "chẩn đoán cảnh báo: NTP not synced",
        ),
        (
            _status(calls=(Call("connected", remote="sip:other@conf.lab"),)),
            _word("hall@conf.lab"),
            {"starts_in": 1800.0},
            Verdict.WARN,
            "already in another call (sip:other@conf.lab)",
            "đang trong một cuộc gọi khác (sip:other@conf.lab)",
        ),
        (
            _status(standby=True),
            _word("hall@conf.lab"),
            {"starts_in": 300.0},
            Verdict.WARN,
            "still in standby 5 min before the meeting",
            "vẫn ở chế độ chờ 5 phút trước cuộc họp",
        ),
        (
            Observation("hall", "xapi", ok=False, duration=5.0, reason="auth", detail="401"),
            _word("hall@conf.lab"),
            {},
            Verdict.WARN,
            "endpoint status not available: 401",
            "không đọc được trạng thái thiết bị: 401",
        ),
    ],
    ids=[
        "camera",
        "unregistered",
        "h323 meeting",
        "one-sided",
        "critical",
        "warning",
        "busy",
        "standby",
        "no status",
    ],
)
def test_what_a_room_says_of_itself_decides_its_verdict(
    status: Observation,
    word: RegistrarWord,
    kwargs: dict[str, object],
    verdict: Verdict,
    english: str,
    vietnamese: str,
) -> None:
    report = _check(ROOM, status, word, **kwargs)  # type: ignore[arg-type]
    assert report.verdict is verdict
    assert report.reasons == [english]
    assert report.reasons_vi == [vietnamese]


def test_being_in_the_call_during_the_meeting_and_standby_at_t30_are_fine() -> None:
    in_call = _status(calls=(Call("connected", remote="sip:vp@conf.lab"),))
    assert _check(ROOM, in_call, _word("hall@conf.lab"), starts_in=-60.0).verdict is Verdict.GO
    asleep = _status(standby=True)
    assert _check(ROOM, asleep, _word("hall@conf.lab"), starts_in=1800.0).verdict is Verdict.GO


def test_a_plain_sip_room_is_judged_by_its_registrar() -> None:
    failure = RegistrationFailure("commune", "401 Unauthorized", 0.0)
    word = RegistrarTable.of(_contacts(failures=(failure,))).word("reg", "commune")
    report = _check(PLAIN, None, word)
    assert report.verdict is Verdict.NO_GO
    assert report.reasons == ["not registered (SIP): 401 Unauthorized"]


def test_a_room_without_api_or_registrar_says_its_status_is_not_available() -> None:
    bare = replace(PLAIN, registrar=None, aor="")
    report = _check(bare, None)
    assert report.verdict is Verdict.GO
    assert report.notes == ["status not available (no codec API or registrar)"]
    assert report.to_json()["notes"] == report.notes


async def test_the_status_page_api_and_mqtt_status_say_what_is_wrong_with_a_room() -> None:
    store = _store()
    store.record(_status(RegistrationState.FAILED, reason="403 Forbidden", camera=False))
    store.record(_contacts())
    wrong = ["not registered (SIP): 403 Forbidden", "camera disconnected"]
    assert status_message(store.targets["hall"], False, 0.0)["problems"] == wrong
    room = target_json(store.targets["hall"])["room"]
    assert room["problems"] == wrong
    assert room["registered"] == {"sip": False, "h323": None}
    assert {"type": "camera", "name": "Quad Camera", "connected": False} in room["peripherals"]
    assert target_json(store.targets["reg"])["room"] is None  # a registrar is no room
    page = await status_page(store, "test")(make_mocked_request("GET", "/"))
    assert page.text is not None
    assert "not registered (SIP): 403 Forbidden; camera disconnected" in page.text


def _in_call(loss: float, *, target: str = "hall") -> EndpointStatus:
    streams = (
        MediaStream("1", "rx", "audio", codec="G711Mu", loss_ratio=loss, jitter=0.01,
                    bitrate=64000, channel="1"),
        MediaStream("1", "tx", "audio", codec="G711Mu", loss_ratio=0.0, jitter=0.002,
                    bitrate=64000, channel="2"),
        MediaStream("1", "rx", "video", codec="H264", loss_ratio=loss, jitter=0.01,
                    bitrate=1_500_000, frame_rate=30, channel="3"),
        # A second received audio channel of the same call (Cisco multistream): its own series.
        MediaStream("1", "rx", "audio", codec="G711Mu", loss_ratio=0.0, jitter=0.01,
                    bitrate=64000, channel="4"),
    )  # fmt: skip
    calls = (Call("connected", "sip", "outgoing", "sip:vp@conf.lab", 600.0),)
    return replace(_status(calls=calls, target=target), streams=streams)


def _call_samples(store: StateStore) -> dict[tuple[str, str, str], float]:
    text = render(build_registry(store), None)[0].decode()
    samples = [
        sample
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name.startswith("netmon_call_")
    ]
    # No two samples alike: a duplicate series would lose one of them in Prometheus.
    keys = [(s.name, tuple(sorted(s.labels.items()))) for s in samples]
    assert len(keys) == len(set(keys))
    return {
        (s.name, s.labels.get("direction", ""), s.labels.get("media", "audio")): s.value
        for s in samples
        if s.labels.get("channel") in ("1", "2", "3")
    }


def test_a_call_shows_per_stream_figures_and_an_audio_mos_that_falls_with_loss() -> None:
    store = _store()
    store.record(_in_call(0.0))
    clean = _call_samples(store)
    assert clean[("netmon_call_stream_loss_ratio", "rx", "audio")] == 0.0
    assert clean[("netmon_call_stream_bytes_per_second", "rx", "video")] == 1_500_000 / 8
    assert clean[("netmon_call_stream_frames_per_second", "rx", "video")] == 30
    # G.711, no loss, 10 ms jitter, no RTT known (no ICMP here): the E-model's best.
    assert clean[("netmon_call_audio_mos", "rx", "audio")] == pytest.approx(
        audio_mos("G711Mu", 0.0, jitter=0.01).mos  # type: ignore[union-attr]
    )
    assert clean[("netmon_call_audio_mos", "rx", "audio")] > 4.0
    assert ("netmon_call_video_quality_estimate", "rx", "video") in clean
    store.record(_in_call(0.05))
    lossy = _call_samples(store)
    assert lossy[("netmon_call_stream_loss_ratio", "rx", "audio")] == 0.05
    assert (
        lossy[("netmon_call_audio_mos", "rx", "audio")]
        < clean[("netmon_call_audio_mos", "rx", "audio")]
    )
    assert (
        lossy[("netmon_call_audio_mos", "tx", "audio")]
        == clean[("netmon_call_audio_mos", "tx", "audio")]
    )
    # The call ends: its streams' series go with it.
    store.record(_status())
    assert _call_samples(store) == {}

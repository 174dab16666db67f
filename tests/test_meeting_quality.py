"""The meeting quality record: what it keeps while meetings run, what it serves afterwards.

The recorder runs on the fake clock against a state store fed the observations the codec
collectors give (a room's status with its call's streams, netmon's own echoes to the site);
its SQLite file is real, in the test's directory, and its routes are served by the real app.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import threading
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import aiohttp
import pytest
from aiohttp.test_utils import TestClient, TestServer

from collectors.codec_settings import XapiSettings
from netmon.api import build_app
from netmon.api_access import Access
from netmon.cli import main
from netmon.config.loader import load_file
from netmon.config.schema import Config, MeetingConfig, MeetingRecordConfig
from netmon.exporter import build_registry
from netmon.inventory import Inventory, Target
from netmon.meeting_quality.api import routes
from netmon.meeting_quality.db import MeetingDB
from netmon.meeting_quality.model import Meeting, Room, RoomSample
from netmon.meeting_quality.recorder import MeetingRecorder
from netmon.meeting_quality.report import hint
from netmon.meeting_quality.summary import summarize
from netmon.model import Call, EchoRound, EndpointStatus, MediaStream, Observation
from netmon.quality import audio_mos
from netmon.service import Service
from netmon.state import Clock, StateStore
from tests.fake_clock import FakeClock

LOCAL = ZoneInfo("Asia/Ho_Chi_Minh")
START = dt.datetime(2026, 12, 5, 8, 0, tzinfo=LOCAL)  # 01:00 UTC
T0 = START.timestamp()
MEETING_ID = "hop-giao-ban-tinh-20261205T0100Z"
RTT = 0.03
JITTER = 0.01


def _room(target_id: str, name: str, district: str = "") -> Target:
    return Target(
        id=target_id,
        address="192.0.2.10",
        kind="endpoint",
        name=name,
        site="",
        district=district,
        group="",
        labels=(),
        probes=(("xapi", XapiSettings(credential="codec")),),
        vendor="cisco",
    )


ROOMS = {
    "hall": _room("hall", "Hội trường tỉnh", "Thành phố Thanh Hóa"),
    "ep-a": _room("ep-a", "UBND huyện Như Xuân", "Như Xuân"),
    "ep-b": _room("ep-b", 'Xã <b>Đông</b> & "Sơn"', "Đông Sơn"),
    "other": _room("other", "Sở Y tế"),
}


def _inventory(*, duration: float = 600, **record: Any) -> Inventory:
    scheduled = [
        MeetingConfig(
            name="Họp giao ban tỉnh",
            start=START,
            duration=duration,
            targets=["hall", "ep-a", "ep-b"],
        )
    ]
    config = Config(meetings=scheduled, meeting_record=MeetingRecordConfig(**record))
    return Inventory(config=config, defaults={}, targets=dict(ROOMS))


def _status(target: str, loss: float | None = None) -> EndpointStatus:
    """The room's status: in a call whose received audio loses `loss` (None: no call)."""
    if loss is None:
        return EndpointStatus(target=target, collector="xapi", ok=True, duration=0.05)
    streams = (
        MediaStream("1", "rx", "audio", codec="G711Mu", loss_ratio=loss, jitter=JITTER,
                    channel="1"),
        MediaStream("1", "tx", "audio", codec="G711Mu", loss_ratio=0.0, jitter=0.002,
                    channel="2"),
        MediaStream("1", "rx", "video", codec="H264", loss_ratio=loss, jitter=JITTER,
                    bitrate=1_500_000, frame_rate=30, channel="3"),
    )  # fmt: skip
    return EndpointStatus(
        target=target,
        collector="xapi",
        ok=True,
        duration=0.05,
        calls=(Call("connected", "sip", "outgoing", "sip:bridge@conf.lab", 60.0),),
        streams=streams,
    )


def _echoes(target: str, lost: int = 0) -> EchoRound:
    """Ten echoes to the site, `lost` of them unanswered (first, so the target stays up)."""
    rtts = (None,) * lost + (RTT,) * (10 - lost)
    return EchoRound(target=target, collector="icmp", ok=True, duration=0.1, rtts=rtts)


Frame = Callable[[float], Iterable[Observation]]


@dataclass
class Rig:
    clock: FakeClock
    store: StateStore
    path: Path
    recorder: MeetingRecorder

    async def play(self, until: float, frame: Frame) -> None:
        """Every 5 s until `until`: the observations of `frame(now)`, then time moves on (the
        recorder's tick at T sees the frame of T - 5)."""
        while self.clock.now < until:
            for observation in frame(self.clock.now):
                self.store.record(observation)
            await self.clock.advance(5)
        await self.recorder.flush()

    def meetings(self) -> list[Meeting]:
        return _read(self.path, lambda db: db.meetings())

    def samples(self, meeting_id: str, room: str) -> list[RoomSample]:
        return _read(self.path, lambda db: db.samples(meeting_id, [room]))


def _read(path: Path, query: Callable[[MeetingDB], Any]) -> Any:
    db = MeetingDB(path)
    db.open(create=False)
    try:
        return query(db)
    finally:
        db.shutdown()


@asynccontextmanager
async def _rig(
    tmp_path: Path, *, start: float, inventory: Inventory | None = None
) -> AsyncIterator[Rig]:
    clock = FakeClock(start)
    store = StateStore(clock=Clock(wall=clock, monotonic=clock))
    inventory = inventory or _inventory()
    store.apply_inventory(inventory)
    path = tmp_path / "state" / "netmon-meetings.sqlite"
    recorder = MeetingRecorder(store, inventory, MeetingDB(path), sleep=clock.sleep)
    await recorder.start()
    try:
        yield Rig(clock, store, path, recorder)
    finally:
        await recorder.close()


def _meeting_frame(now: float) -> Iterator[Observation]:
    """The scheduled meeting: the hall clean; ep-a behind a WAN path losing 10 %, its call
    losing 10 % from 08:02 to 08:05; ep-b on a clean path, its call losing 15 % from 08:06 to
    08:07 (its LAN); all three in the call."""
    minute = (now + 5 - T0) / 60  # the minute of the tick that will see this frame
    yield from (_status("hall", 0.0), _echoes("hall"))
    yield _status("ep-a", 0.10 if 2 <= minute < 5 else 0.0)
    yield _echoes("ep-a", lost=1)
    yield _status("ep-b", 0.15 if 6 <= minute < 7 else 0.0)
    yield _echoes("ep-b")


async def _recorded_meeting(tmp_path: Path) -> Rig:
    """A recorder that saw the whole scheduled meeting (08:00-08:10); calls end with it."""
    async with _rig(tmp_path, start=T0 - 5) as rig:
        await rig.play(T0 + 595, _meeting_frame)
        await rig.play(T0 + 700, lambda now: [_status(t) for t in ("hall", "ep-a", "ep-b")])
    return rig


async def test_a_scheduled_meeting_has_a_sample_per_room_every_10_s_within_its_window(
    tmp_path: Path,
) -> None:
    rig = await _recorded_meeting(tmp_path)
    [meeting] = rig.meetings()
    assert (meeting.id, meeting.name, meeting.kind) == (
        MEETING_ID,
        "Họp giao ban tỉnh",
        "scheduled",
    )
    assert (meeting.start, meeting.end) == (T0, T0 + 600)
    assert [r.id for r in meeting.rooms] == ["ep-a", "ep-b", "hall"]
    hall = rig.samples(MEETING_ID, "hall")
    # 08:00:00 to 08:09:50: nothing before the start, nothing once it is over.
    assert [s.t for s in hall] == [T0 + 10 * i for i in range(60)]
    assert meeting.samples == 3 * 60
    clean = hall[5]
    expected = audio_mos("G711Mu", 0.0, rtt=RTT, jitter=JITTER)
    assert expected is not None
    assert clean.in_call
    assert clean.mos_rx == pytest.approx(expected.mos, abs=0.001)  # the E-model, as /metrics
    assert clean.mos_tx is not None
    assert clean.mos_tx > 4.0
    assert clean.video is not None
    assert (clean.loss, clean.path_rtt, clean.path_loss) == (0.0, RTT, 0.0)
    lossy = {s.t: s for s in rig.samples(MEETING_ID, "ep-a")}[T0 + 150]
    assert lossy.loss == pytest.approx(0.10)
    assert lossy.path_loss == pytest.approx(0.10)
    assert lossy.mos_rx is not None
    assert lossy.mos_rx < 3.6


async def test_calls_outside_any_meeting_are_an_ad_hoc_meeting_until_60_s_without_a_call(
    tmp_path: Path,
) -> None:
    begin = T0 + 3 * 3600 + 12  # 04:00:12 UTC, no meeting scheduled
    async with _rig(tmp_path, start=begin) as rig:
        assert rig.meetings() == []
        await rig.play(begin + 60, lambda now: [_status("other", 0.0), _status("hall")])
        [meeting] = rig.meetings()
        assert meeting.id == "adhoc-20261205T0400Z"
        assert meeting.kind == "adhoc"
        assert meeting.in_progress(rig.clock.now)
        assert [r.id for r in meeting.rooms] == ["other"]
        # The hall joins; then both hang up at 04:03:15.
        await rig.play(begin + 180, lambda now: [_status("other", 0.0), _status("hall", 0.02)])
        await rig.play(begin + 235, lambda now: [_status("other"), _status("hall")])
        [going_on] = rig.meetings()
        assert going_on.end is None
        assert [r.id for r in going_on.rooms] == ["hall", "other"]
        await rig.play(begin + 300, lambda now: [_status("other"), _status("hall")])
        [ended] = rig.meetings()
        last_call = T0 + 3 * 3600 + 190  # the last tick that saw a room in a call
        assert (ended.end, ended.in_progress(rig.clock.now)) == (last_call, False)
        hall = rig.samples(ended.id, "hall")
        assert hall[0].t == T0 + 3 * 3600 + 80
        assert hall[-1].t == last_call
        assert all(s.in_call for s in hall)  # an ad hoc meeting keeps the rooms in a call
        # A new call later is a new ad hoc meeting.
        await rig.play(begin + 400, lambda now: [_status("ep-a", 0.0)])
        assert [m.id for m in rig.meetings()] == [
            "adhoc-20261205T0405Z",
            "adhoc-20261205T0400Z",
        ]


async def test_a_room_in_a_call_outside_the_scheduled_meeting_is_ad_hoc_beside_it(
    tmp_path: Path,
) -> None:
    async with _rig(tmp_path, start=T0 - 5) as rig:
        await rig.play(T0 + 60, lambda now: [*_meeting_frame(now), _status("other", 0.0)])
        meetings = {m.id: m for m in rig.meetings()}
        assert set(meetings) == {MEETING_ID, "adhoc-20261205T0100Z"}
        assert [r.id for r in meetings["adhoc-20261205T0100Z"].rooms] == ["other"]
        assert rig.samples(MEETING_ID, "other") == []


async def test_after_a_restart_the_record_goes_on_in_the_same_meetings(tmp_path: Path) -> None:
    async with _rig(tmp_path, start=T0 - 5) as rig:
        await rig.play(T0 + 100, lambda now: [*_meeting_frame(now), _status("other", 0.0)])
    # netmon restarts 30 s later; the meeting and the ad hoc call go on.
    async with _rig(tmp_path, start=T0 + 125) as again:
        assert {m.id for m in again.meetings()} == {MEETING_ID, "adhoc-20261205T0100Z"}
        await again.play(T0 + 200, lambda now: [*_meeting_frame(now), _status("other", 0.0)])
        meetings = {m.id: m for m in again.meetings()}
        assert len(meetings) == 2
        times = [s.t for s in again.samples(MEETING_ID, "hall")]
        assert times == [T0 + 10 * i for i in range(11)] + [T0 + 130 + 10 * i for i in range(8)]
        assert meetings["adhoc-20261205T0100Z"].end is None
    # A restart long after an ad hoc call ended closes it at its last sample.
    async with _rig(tmp_path, start=T0 + 900) as late:
        await late.play(T0 + 920, lambda now: [])
        adhoc = {m.id: m for m in late.meetings()}["adhoc-20261205T0100Z"]
        assert adhoc.end == T0 + 200
        assert not adhoc.in_progress(late.clock.now)


async def test_old_meetings_go_after_the_retention_and_beyond_the_size_bound(
    tmp_path: Path,
) -> None:
    db = MeetingDB(tmp_path / "m.sqlite")
    db.open()
    day = 86400.0
    rooms = (Room("hall"),)
    for age in (500, 300, 2):  # days ago
        start = T0 - age * day
        meeting = Meeting(f"m-{age}", f"{age} days ago", "scheduled", start, start + 600, rooms)
        db.write(
            [meeting], [(meeting.id, RoomSample("hall", start + 10 * i, True)) for i in range(600)]
        )
    try:
        assert db.prune(T0, 400 * day, max_samples=10_000) == 1
        assert [m.id for m in db.meetings()] == ["m-2", "m-300"]
        assert db.prune(T0, 400 * day, max_samples=1000) == 1  # 1,200 kept: the oldest goes
        assert [(m.id, m.samples) for m in db.meetings()] == [("m-2", 600)]
    finally:
        db.shutdown()


@asynccontextmanager
async def _served(rig: Rig) -> AsyncIterator[TestClient[Any, Any]]:
    db = MeetingDB(rig.path)
    recorder = MeetingRecorder(rig.store, rig.recorder.inventory, db)
    await db.call(db.open)
    app = build_app(
        store=rig.store,
        registry=build_registry(rig.store),
        is_ready=lambda: True,
        extra_routes=routes(recorder),
        access=Access(),
    )
    try:
        async with TestClient(TestServer(app)) as client:
            yield client
    finally:
        await recorder.close()


async def test_the_meetings_and_their_quality_as_json(tmp_path: Path) -> None:
    rig = await _recorded_meeting(tmp_path)
    async with _served(rig) as client:
        listing = await (await client.get("/api/v1/meetings")).json()
        assert listing == {
            "meetings": [
                {
                    "id": MEETING_ID,
                    "name": "Họp giao ban tỉnh",
                    "kind": "scheduled",
                    "start": "2026-12-05T01:00:00.000+00:00",
                    "end": "2026-12-05T01:10:00.000+00:00",
                    "in_progress": False,
                    "rooms": [
                        {"id": t, "name": ROOMS[t].name, "district": ROOMS[t].district}
                        for t in ("ep-a", "ep-b", "hall")
                    ],
                    "samples": 180,
                    "quality": f"/api/v1/meetings/{MEETING_ID}/quality",
                    "report": f"/api/v1/meetings/{MEETING_ID}/report",
                }
            ]
        }
        response = await client.get(f"/api/v1/meetings/{MEETING_ID}/quality")
        assert response.status == 200
        body = await response.json()
        assert body["meeting"]["id"] == MEETING_ID
        assert (body["interval"], body["poor_mos"]) == (10.0, 3.6)
        rooms = body["rooms"]
        assert [r["id"] for r in rooms] == ["ep-a", "ep-b", "hall"]  # worst first
        ep_a = rooms[0]["summary"]
        assert ep_a["poor_minutes"] == 3
        assert ep_a["poor_periods"] == [
            {
                "from": "2026-12-05T01:02:00.000+00:00",
                "to": "2026-12-05T01:05:00.000+00:00",
                "minutes": 3,
                "min_mos": ep_a["min_mos"],
            }
        ]
        assert ep_a["worst_loss"] == pytest.approx(0.10)
        assert ep_a["min_mos"] < 3.6 < ep_a["mean_mos"]
        assert ep_a["fault"] == "wan"
        # 18 poor samples, 20 echoes each since the one before, 1 in 10 lost.
        assert (ep_a["path_sent"], ep_a["path_lost"]) == (360, 36)
        assert ep_a["mean_path_loss"] == pytest.approx(0.10)
        assert ep_a["hint"].startswith("Likely the WAN path")
        ep_b = rooms[1]["summary"]
        assert (ep_b["poor_minutes"], ep_b["fault"]) == (1, "room")
        assert ep_b["mean_path_loss"] == 0.0
        assert ep_b["mean_call_loss"] == pytest.approx(0.15)
        assert (ep_b["path_sent"], ep_b["path_lost"]) == (120, 0)
        hall = rooms[2]["summary"]
        assert (hall["poor_minutes"], hall["fault"], hall["hint"]) == (0, None, None)
        assert len(rooms[2]["timeline"]) == 60
        first, second = rooms[2]["timeline"][:2]
        assert second == {
            "t": "2026-12-05T01:00:10.000+00:00",
            "in_call": True,
            "mos_rx": pytest.approx(hall["mean_mos"], abs=0.001),
            "mos_tx": first["mos_tx"],
            "loss": 0.0,
            "jitter": JITTER,
            "video": first["video"],
            "path_rtt": RTT,
            "path_loss": 0.0,
            "path_sent": 20,  # netmon's echoes since the sample before
            "path_lost": 0,
        }
        assert (first["path_sent"], first["path_lost"]) == (None, None)  # none before it
        one = await (await client.get(f"/api/v1/meetings/{MEETING_ID}/quality?room=hall")).json()
        assert [r["id"] for r in one["rooms"]] == ["hall"]


async def test_an_unknown_meeting_is_404_and_a_bad_language_400(tmp_path: Path) -> None:
    rig = await _recorded_meeting(tmp_path)
    async with _served(rig) as client:
        for path in ("/api/v1/meetings/nope/quality", "/api/v1/meetings/nope/report?lang=vi"):
            response = await client.get(path)
            assert response.status == 404
            assert (await response.json()) == {"error": "no recorded meeting 'nope'"}
        bad = await client.get(f"/api/v1/meetings/{MEETING_ID}/report?lang=fr")
        assert bad.status == 400


def _sections(page: str) -> list[str]:
    """The rooms of a report, in the order it shows them."""
    marker = 'data-room="'
    return [part.split('"', 1)[0] for part in page.split(marker)[1:]]


async def test_the_report_in_english_and_vietnamese_puts_the_worst_room_first(
    tmp_path: Path,
) -> None:
    rig = await _recorded_meeting(tmp_path)
    async with _served(rig) as client:
        english = await client.get(f"/api/v1/meetings/{MEETING_ID}/report?lang=en")
        assert english.status == 200
        assert english.content_type == "text/html"
        page = await english.text()
        vi_page = await (await client.get(f"/api/v1/meetings/{MEETING_ID}/report?lang=vi")).text()
        listed = await (await client.get("/meetings")).text()
    assert _sections(page) == _sections(vi_page) == ["ep-a", "ep-b", "hall"]
    first = page.split('data-room="ep-a"')[1].split("</section>")[0]
    # Local time (Asia/Ho_Chi_Minh): 01:02 UTC is 08:02.
    assert "08:02–08:05 (3 min, MOS down to" in first
    assert "Likely the WAN path" in first
    second = page.split('data-room="ep-b"')[1].split("</section>")[0]
    assert "08:06–08:07 (1 min" in second
    assert "room&#x27;s LAN or the endpoint" in second
    assert "Meeting quality report — Họp giao ban tỉnh" in page
    assert "2 of 3 rooms had poor minutes" in page
    assert "<svg" in first
    assert "<script" not in page
    # The room's name is escaped, never markup.
    assert "Xã &lt;b&gt;Đông&lt;/b&gt; &amp; &quot;Sơn&quot;" in page
    assert "<b>Đông" not in page
    assert "<b>Đông" not in vi_page
    assert '<html lang="vi">' in vi_page
    assert "Báo cáo chất lượng cuộc họp — Họp giao ban tỉnh" in vi_page
    assert "2/3 điểm cầu có phút chất lượng kém" in vi_page
    vi_first = vi_page.split('data-room="ep-a"')[1].split("</section>")[0]
    assert "08:02–08:05 (3 phút, MOS thấp nhất" in vi_first
    assert "Nhiều khả năng do đường truyền WAN" in vi_first
    assert "mạng LAN của phòng họp hoặc thiết bị đầu cuối" in vi_page
    assert f'href="/api/v1/meetings/{MEETING_ID}/report?lang=en"' in listed


async def test_the_report_from_the_command_line_reads_the_file_offline(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rig = await _recorded_meeting(tmp_path)
    out = tmp_path / "report.html"
    database = str(rig.path)
    assert main(["meetings", "list", "--database", database]) == 0
    assert capsys.readouterr().out.strip().split("\t") == [
        MEETING_ID,
        "Họp giao ban tỉnh",
        "3 rooms",
    ]
    code = main(
        ["meetings", "report", MEETING_ID, "--lang", "vi", "--database", database, "-o", str(out)]
    )
    assert code == 0
    page = out.read_text(encoding="utf-8")
    assert _sections(page) == ["ep-a", "ep-b", "hall"]
    assert "Báo cáo chất lượng cuộc họp" in page
    assert "mỗi 10 giây" in page
    assert main(["meetings", "report", "nope", "--database", database]) == 1
    assert "no recorded meeting 'nope'" in capsys.readouterr().err


async def test_the_service_records_meetings_beside_its_alert_database(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(
        'http: {listen: "127.0.0.1:0"}\ntargets: [{id: hall, address: 192.0.2.10, probes: []}]\n',
        encoding="utf-8",
    )
    service = Service(
        inventory=load_file(config), config_path=config, alert_db=tmp_path / "db" / "alerts.db"
    )
    seen: dict[str, Any] = {}

    async def on_ready(running: Service) -> None:
        try:
            async with aiohttp.ClientSession(running.http_url) as session:
                async with session.get("/api/v1/meetings") as response:
                    seen["meetings"] = (response.status, await response.json())
                async with session.get("/") as response:
                    seen["page"] = await response.text()
            seen["tasks"] = {t.get_name() for t in asyncio.all_tasks()}
        finally:
            running.stop()

    await service.run(on_ready=on_ready)
    assert seen["meetings"] == (200, {"meetings": []})
    assert 'href="/meetings"' in seen["page"]
    assert {"meeting-sampler", "meeting-writer"} <= seen["tasks"]
    assert (tmp_path / "db" / "netmon-meetings.sqlite").is_file()
    assert not {t.get_name() for t in asyncio.all_tasks()} & {"meeting-sampler", "meeting-writer"}


async def test_the_interval_is_configurable(tmp_path: Path) -> None:
    async with _rig(tmp_path, start=T0 - 5, inventory=_inventory(interval="30s")) as rig:
        await rig.play(T0 + 120, _meeting_frame)
        assert [s.t for s in rig.samples(MEETING_ID, "hall")] == [T0 + 30 * i for i in range(5)]


async def test_a_stalled_disk_never_holds_the_loop_and_keeps_the_newest_hour(
    tmp_path: Path,
) -> None:
    inventory = _inventory(duration=3 * 3600)
    async with _rig(tmp_path, start=T0 - 5, inventory=inventory) as rig:
        stalled = threading.Event()
        write = rig.recorder.db.write

        def stuck(*args: Any) -> None:
            stalled.wait(timeout=60)  # the disk hangs until the test lets it go
            write(*args)

        rig.recorder.db.write = stuck  # type: ignore[method-assign]
        # 80 minutes of samples while the first write hangs: time and the sampler go on.
        while rig.clock.now < T0 + 80 * 60:
            for observation in _meeting_frame(rig.clock.now):
                rig.store.record(observation)
            await rig.clock.advance(5)
        dropped = rig.recorder.dropped
        stalled.set()
        # 481 ticks (08:00:00 to 09:20:00): one being written, an hour (360) queued, the
        # oldest of the rest dropped.
        assert dropped == 481 - 1 - 360
        await rig.recorder.flush()
        times = [s.t for s in rig.samples(MEETING_ID, "hall")]
        # The batch being written when the disk hung, then the newest hour.
        assert times == [T0] + [T0 + 10 * i for i in range(121, 481)]


def test_too_few_pings_over_the_poor_minutes_cannot_tell_the_wan_from_the_room() -> None:
    poor = [
        RoomSample("ep-b", T0 + 10 * i, True, mos_rx=3.3, loss=0.05, path_sent=2, path_lost=0)
        for i in range(6)
    ]
    [room] = summarize(Meeting("m", "m", "scheduled", T0, T0 + 600, (Room("ep-b"),)), poor)
    assert (room.fault, room.path_sent) == ("unknown", 12)
    # 12 pings, none lost: a clean path and one losing 2.5 % would both do that.
    assert hint(room, "en") == (
        "WAN or the room's LAN: netmon's 12 pings to the site over those minutes cannot tell."
    )
    assert hint(room, "vi") == (
        "Do WAN hay mạng LAN của phòng họp: 12 gói ping của netmon tới điểm cầu trong những "
        "phút đó chưa đủ để phân biệt."
    )

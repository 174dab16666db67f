"""The outage journal as netmon writes it: changes with netmon's reasons, district links, service
probes, runs and heartbeats, on a fake clock and a real journal file."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import threading
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from netmon.availability.accounting import coverage, timeline
from netmon.availability.api import routes as availability_routes
from netmon.availability.db import Change, JournalDB, JournalSlice
from netmon.availability.monthly import MonthlyReports
from netmon.availability.recorder import JournalRecorder
from netmon.config.alerting import Silence
from netmon.config.errors import ConfigError
from netmon.config.loader import load_data
from netmon.inventory import Inventory
from netmon.model import EchoRound, Observation
from netmon.state import Clock, StateStore
from tests.fake_clock import FakeClock
from tests.test_email_channel import SmtpPeer, smtp  # noqa: F401 - its SMTP server fixture

START = 1_800_000_000.0
LOOPS = 3  # the recorder's: tick, heartbeat, prune


def _inventory() -> Inventory:
    return load_data(
        {
            "defaults": {"icmp": {"down_after": 2, "confirm": 0, "up_after": 1}},
            "targets": [
                {"id": "sw", "address": "192.0.2.1", "kind": "switch", "district": "D1"},
                {"id": "ep", "address": "192.0.2.2", "district": "D1", "parent": "sw",
                 "probes": {"icmp": {}, "tcp": {"port": 5060}}},
            ],
        }
    )  # fmt: skip


def _echo(target: str, reply: bool) -> EchoRound:
    return EchoRound(target=target, collector="icmp", ok=reply, duration=0.01,
                     rtts=(0.01,) if reply else (None,), address="192.0.2.1",
                     reason=None if reply else "timeout")  # fmt: skip


class Journal:
    def __init__(self, path: Path) -> None:
        self.clock = FakeClock(START)
        self.store = StateStore(clock=Clock(wall=self.clock, monotonic=self.clock))
        self.inventory = _inventory()
        self.store.apply_inventory(self.inventory)
        self.path = path
        self.recorder = self.new_recorder()

    def new_recorder(self, silences: Callable[[], list[Silence]] = list) -> JournalRecorder:
        return JournalRecorder(
            store=self.store,
            inventory=self.inventory,
            config=self.inventory.config.availability,
            db=JournalDB(self.path),
            clock=self.clock,
            sleep=self.clock.sleep,
            silences=silences,
        )

    async def advance(self, seconds: int) -> None:
        """Second by second, each time until the recorder's three loops sleep again: its writes
        go through a thread of their own, which the fake clock does not wait for."""
        await self.idle()
        for _ in range(seconds):
            await self.clock.advance(1)
            await self.idle()

    async def idle(self) -> None:
        async with asyncio.timeout(10):
            while self.clock.sleeping < LOOPS:
                await asyncio.sleep(0.001)

    def read(self, start: float = START - 1, end: float = START + 100_000) -> JournalSlice:
        """The journal file as `netmon report` reads it."""
        db = JournalDB(self.path)
        db.open(create=False)
        try:
            return db.read(start, end)
        finally:
            db.shutdown()

    def changes(self) -> list[tuple[str, float, str, str | None]]:
        return [(c.subject, c.at - START, c.state, c.reason) for c in self.read().changes]


@pytest.fixture
async def journal(tmp_path: Path) -> AsyncIterator[Journal]:
    running = Journal(tmp_path / "journal.sqlite")
    await running.recorder.start()
    await running.idle()
    try:
        yield running
    finally:
        await running.recorder.close()


async def test_reach_a_cut_link_and_a_service_probe_are_journaled_with_reasons(
    journal: Journal,
) -> None:
    store = journal.store
    store.record(_echo("sw", True))
    store.record(_echo("ep", True))
    store.record(Observation(target="ep", collector="tcp", ok=True, duration=0.01))
    await journal.advance(1)
    await journal.advance(9)  # ten seconds in: the switch stops answering
    for _ in range(2):
        store.record(_echo("sw", False))
        store.record(_echo("ep", False))
    store.record(
        Observation(target="ep", collector="tcp", ok=False, duration=1.0, reason="timeout")
    )
    await journal.advance(1)
    await journal.advance(29)  # forty seconds in: back
    store.record(_echo("sw", True))
    store.record(_echo("ep", True))
    await journal.advance(1)
    assert journal.changes() == [
        ("ep", 0, "up", None),
        ("ep", 10, "down", "timeout"),
        ("ep", 40, "up", None),
        ("ep/tcp", 1, "up", None),
        ("ep/tcp", 11, "down", "timeout"),
        ("link:sw", 1, "up", None),
        ("link:sw", 11, "down", "unreachable"),
        ("link:sw", 41, "up", None),
        ("sw", 0, "up", None),
        ("sw", 10, "down", "timeout"),
        ("sw", 40, "up", None),
    ]


async def test_a_crash_leaves_the_time_since_the_last_heartbeat_unknown(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "journal.sqlite")
    crashed = journal.recorder
    await crashed.start()
    await journal.advance(150)  # heartbeats at 60 and 120
    # The process dies: its timers stop, nothing notes the stop.
    for task in crashed._tasks:
        task.cancel()
    await crashed.db.call(crashed.db.close)
    crashed.db.shutdown()
    await journal.clock.advance(300)  # nobody runs: nothing to wait for
    restarted = journal.new_recorder()
    await restarted.start()
    await journal.advance(10)
    await restarted.close()
    runs = journal.read(START, START + 1000).runs
    spans = [(a - START, b - START) for a, b in coverage(runs, [])]
    assert spans == [(0, 120), (450, 460)]  # 120-450 nobody watched: unknown


async def test_a_journal_that_cannot_be_written_keeps_the_changes_for_the_next_try(
    journal: Journal, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = journal.recorder.db
    real: Callable[..., Any] = db.record
    failures = [RuntimeError("disk I/O error")]

    def flaky(*args: Any) -> None:
        if failures:
            raise failures.pop()
        real(*args)

    monkeypatch.setattr(db, "record", flaky)
    journal.store.record(_echo("sw", True))
    await journal.advance(1)
    assert journal.recorder.write_errors == 1
    assert journal.changes() == []
    await journal.advance(1)
    assert [c[:3] for c in journal.changes()] == [("link:sw", 1, "up"), ("sw", 0, "up")]


async def test_a_target_removed_by_a_reload_is_unknown_from_then(journal: Journal) -> None:
    journal.store.record(_echo("ep", True))
    await journal.advance(5)
    smaller = load_data({"targets": [{"id": "sw", "address": "192.0.2.1", "kind": "switch"}]})
    await journal.recorder.reload(smaller)
    await journal.advance(1)
    assert [c for c in journal.changes() if c[0] == "ep"] == [
        ("ep", 0, "up", None),
        ("ep", 5, "unknown", None),
    ]


def test_prune_keeps_the_state_each_subject_was_in(tmp_path: Path) -> None:
    db = JournalDB(tmp_path / "j.sqlite")
    db.open()
    try:
        db.record(
            [
                Change("a", 10, "up"),
                Change("a", 20, "down", "timeout"),
                Change("a", 30, "up"),
                Change("b", 5, "up"),
            ]
        )
        assert db.prune(25) == 1  # a's first change; a's 20 and b's 5 say where they stood
        assert [(c.subject, c.at) for c in db.read(25, 100).changes] == [
            ("a", 20),
            ("a", 30),
            ("b", 5),
        ]
    finally:
        db.shutdown()


def test_a_subject_without_a_verdict_in_a_run_is_unknown_all_through_it() -> None:
    line = timeline([Change("a", 5, "up"), Change("a", 8, "down", "timeout")], [(0, 10), (20, 30)])
    assert line.up == [(5, 8)]
    assert line.down == [(8, 10, "timeout")]  # not carried into the next run: unknown there


async def test_last_months_report_is_written_once_the_month_is_over(tmp_path: Path) -> None:
    zone = ZoneInfo("Asia/Ho_Chi_Minh")
    november = dt.datetime(2026, 11, 20, 9, tzinfo=zone).timestamp()
    journal = Journal(tmp_path / "journal.sqlite")
    journal.clock.now = november
    await journal.recorder.start()
    journal.store.record(_echo("ep", True))
    await journal.advance(2)
    monthly = MonthlyReports(journal.recorder, lambda: journal.inventory, tmp_path / "reports")
    assert await monthly.write_due() == []  # October: netmon did not run, nothing to say
    journal.clock.now = dt.datetime(2026, 12, 1, 0, 5, tzinfo=zone).timestamp()
    written = await monthly.write_due()
    assert sorted(path.name for path in written) == [
        f"availability-2026-11.{ext}" for ext in ("csv", "html", "json", "pdf")
    ]
    report = json.loads((tmp_path / "reports" / "availability-2026-11.json").read_text())
    assert report["period"]["from"] == "2026-11-01T00:00:00+07:00"
    assert [t["target"] for t in report["targets"]] == ["ep", "sw"]
    assert await monthly.write_due() == []  # written once: a restart does not write it again
    await journal.recorder.close()


async def test_the_monthly_report_is_mailed_once_with_its_csv_and_pdf(
    tmp_path: Path,
    smtp: SmtpPeer,  # noqa: F811 - the fixture imported above
) -> None:
    zone = ZoneInfo("Asia/Ho_Chi_Minh")
    journal = Journal(tmp_path / "journal.sqlite")
    journal.clock.now = dt.datetime(2026, 11, 20, 9, tzinfo=zone).timestamp()
    await journal.recorder.start()
    journal.store.record(_echo("ep", True))
    await journal.advance(2)
    reports = tmp_path / "reports"
    mailing = load_data({
        "targets": [{"id": "ep", "address": "192.0.2.2", "name": "Xã Tân Lập"}],
        "oncall": {"channels": [{
            "kind": "email", "name": "mail", "host": "127.0.0.1", "port": smtp.port,
            "security": "none", "from_address": "netmon NOC <noc@so.example.vn>",
        }]},
        "availability": {"reports": str(reports), "mail_to": ["giamdoc@so.example.vn"],
                         "mail_channel": "mail"},
    })  # fmt: skip
    monthly = MonthlyReports(journal.recorder, lambda: mailing, reports)
    journal.clock.now = dt.datetime(2026, 12, 1, 0, 5, tzinfo=zone).timestamp()
    await monthly.write_due()
    await monthly.write_due()  # the same month again: written and mailed already
    await journal.recorder.close()
    (mail,) = smtp.received
    assert mail.rcpt_tos == ["giamdoc@so.example.vn"]
    assert mail.message["Subject"] == "netmon: báo cáo khả dụng tháng 11/2026"
    attached = sorted(part.get_filename() for part in mail.message.iter_attachments())
    assert attached == ["availability-2026-11.csv", "availability-2026-11.pdf"]
    body = mail.message.get_body(("html",))
    assert body is not None
    assert "Xã Tân Lập" in body.get_content()


def test_a_report_mailed_through_a_channel_that_is_not_there_fails_at_load() -> None:
    with pytest.raises(ConfigError) as refused:
        load_data({"availability": {"reports": "r", "mail_to": ["a@b.vn"], "mail_channel": "x"}})
    assert [str(p) for p in refused.value.problems] == [
        "availability.mail_channel: no e-mail channel 'x' in oncall.channels (e-mail channels: [])"
    ]


async def test_link_quality_is_journaled_as_the_engine_judges_it(journal: Journal) -> None:
    journal.recorder.quality_changed("ep", ["HighLoss", "HighJitter"])
    await journal.advance(3)
    journal.recorder.quality_changed("ep", [])
    journal.recorder.quality_changed("ep", [])  # told again: no change, no row
    await journal.advance(1)
    assert [c for c in journal.changes() if c[0] == "ep~quality"] == [
        ("ep~quality", 0, "down", "HighJitter, HighLoss"),
        ("ep~quality", 3, "up", None),
    ]


async def test_maintenance_silences_are_journaled_and_one_lifted_early_ends_then(
    tmp_path: Path,
) -> None:
    journal = Journal(tmp_path / "journal.sqlite")
    starts = dt.datetime.fromtimestamp(START + 30, dt.UTC)
    silences = [
        Silence.model_validate({
            "matchers": {"district": "D1", "alertname": "*"}, "starts_at": starts.isoformat(),
            "ends_at": (starts + dt.timedelta(hours=2)).isoformat(), "comment": "thay UPS",
            "maintenance": True,
        }),
        Silence.model_validate({  # an ordinary silence: alerts muted, figures untouched
            "matchers": {"target": "ep"}, "ends_at": (starts + dt.timedelta(hours=1)).isoformat(),
        }),
    ]  # fmt: skip
    recorder = journal.new_recorder(silences=lambda: list(silences))  # the engine's, as given
    await recorder.start()
    await journal.advance(120)  # lifted through the API after two minutes
    silences.clear()
    await journal.advance(60)  # the next heartbeat finds it gone
    await recorder.close()
    windows = journal.read(START, START + 86400).windows
    assert [(w.starts - START, w.ends - START, w.matchers, w.comment) for w in windows] == [
        (30, 180, {"district": "D1"}, "thay UPS")
    ]


def test_a_maintenance_silence_needs_its_start() -> None:
    with pytest.raises(ValueError, match="a maintenance silence needs starts_at"):
        Silence.model_validate(
            {"matchers": {"target": "x"}, "ends_at": "2026-12-01T00:00:00+07:00",
             "maintenance": True}
        )  # fmt: skip


async def test_a_reload_keeps_a_firing_quality_alert_and_forgets_a_removed_probe(
    journal: Journal,
) -> None:
    journal.recorder.quality_changed("ep", ["HighLoss"])
    journal.store.record(Observation(target="ep", collector="tcp", ok=False, duration=1.0,
                                     reason="timeout"))  # fmt: skip
    await journal.advance(5)
    # The same targets, ep without its tcp probe: its quality alert still fires.
    without_tcp = load_data(
        {
            "defaults": {"icmp": {"down_after": 2, "confirm": 0, "up_after": 1}},
            "targets": [
                {"id": "sw", "address": "192.0.2.1", "kind": "switch", "district": "D1"},
                {"id": "ep", "address": "192.0.2.2", "district": "D1", "parent": "sw"},
            ],
        }
    )
    await journal.recorder.reload(without_tcp)
    await journal.advance(1)
    assert [c for c in journal.changes() if c[0] in ("ep~quality", "ep/tcp")] == [
        ("ep/tcp", 1, "down", "timeout"),
        ("ep/tcp", 5, "unknown", None),
        ("ep~quality", 0, "down", "HighLoss"),
    ]


async def test_a_change_being_written_when_netmon_stops_is_not_lost(journal: Journal) -> None:
    db = journal.recorder.db
    busy = asyncio.Event()
    release = threading.Event()
    db._executor.submit(lambda: (busy.set(), release.wait(10)))  # the journal's thread is busy
    journal.store.record(_echo("sw", True))
    await journal.clock.advance(1)  # the tick takes the change and waits for the thread
    for _ in range(100):
        await asyncio.sleep(0.001)
    closing = asyncio.create_task(journal.recorder.close())  # SIGTERM meanwhile
    for _ in range(100):
        await asyncio.sleep(0.001)
    release.set()
    await closing
    journal.recorder = journal.new_recorder()  # the fixture closes it again
    await journal.recorder.start()
    assert [c[:3] for c in journal.changes()] == [("link:sw", 1, "up"), ("sw", 0, "up")]


async def test_a_report_read_after_a_flush_knows_netmon_watched_until_then(
    journal: Journal,
) -> None:
    journal.store.record(_echo("sw", True))
    await journal.advance(30)  # the next heartbeat is at 60
    await journal.recorder.flush()  # what the API and the monthly report do before reading
    now = journal.recorder.now()
    spans = coverage(journal.read(START, now).runs, journal.read(START, now).changes)
    assert [(a - START, b - START) for a, b in spans] == [(0, 30)]


async def test_the_monthly_report_knows_netmon_ran_until_the_month_was_over(
    tmp_path: Path,
) -> None:
    zone = ZoneInfo("Asia/Ho_Chi_Minh")
    journal = Journal(tmp_path / "journal.sqlite")
    journal.clock.now = dt.datetime(2026, 11, 30, 23, 59, 30, tzinfo=zone).timestamp()
    await journal.recorder.start()
    journal.store.record(_echo("ep", True))
    await journal.advance(40)  # midnight passes; the next heartbeat is a minute after the start
    monthly = MonthlyReports(journal.recorder, lambda: journal.inventory, tmp_path / "reports")
    assert await monthly.write_due()
    report = json.loads((tmp_path / "reports" / "availability-2026-11.json").read_text())
    (ep,) = [t for t in report["targets"] if t["target"] == "ep"]
    assert ep["figures"]["up_seconds"] == 30
    await journal.recorder.close()


def _api(journal: Journal) -> TestClient[Any, Any]:
    app = web.Application()
    app.add_routes(availability_routes(journal.recorder, lambda: journal.inventory))
    return TestClient(TestServer(app))


async def test_the_api_refuses_a_month_out_of_range_with_a_400(journal: Journal) -> None:
    async with _api(journal) as client:
        answer = await client.get("/api/v1/reports/availability", params={"month": "9999-12"})
        assert answer.status == 400
        assert "9999-12" in (await answer.json())["error"]


async def test_a_csv_from_the_api_is_named_after_the_local_day_it_starts(
    journal: Journal, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TZ", "UTC")  # the server's clock; the report's zone is +07:00
    time.tzset()
    try:
        await journal.advance(1)
        async with _api(journal) as client:
            answer = await client.get(
                "/api/v1/reports/availability", params={"from": "2027-01-15", "format": "csv"}
            )
            assert answer.status == 200
            assert answer.headers["Content-Disposition"] == (
                'attachment; filename="availability-2027-01-15.csv"'
            )
    finally:
        monkeypatch.undo()
        time.tzset()


@pytest.mark.parametrize(
    ("params", "error"),
    [
        ({"month": "2026-11", "from": "2026-11-02"}, "give a month, or a first day"),
        ({"to": "2026-11-02"}, "a last day (to) needs a first day (from)"),
        ({"from": "0001-01-01"}, "a report covers at most 1000 days"),
        ({"district": "Bá Thươc"}, "no target of the config in district 'Bá Thươc'"),
    ],
)
async def test_the_api_refuses_a_period_or_scope_that_says_nothing_clearly(
    journal: Journal, params: dict[str, str], error: str
) -> None:
    async with _api(journal) as client:
        answer = await client.get("/api/v1/reports/availability", params=params)
        assert answer.status == 400
        assert error in (await answer.json())["error"]


def test_a_crashed_runs_changes_after_its_last_heartbeat_still_count(tmp_path: Path) -> None:
    """netmon noted itself alive at 100, saw a target go down at 130 and crashed: a report
    from 120 on knows the target was up 120-130 and down 130 until the crash's last sign."""
    db = JournalDB(tmp_path / "j.sqlite")
    db.open()
    try:
        db.start_run(0)
        db.heartbeat(0, 100)
        db.record([Change("a", 5, "up"), Change("a", 130, "down", "timeout")])
        found = db.read(120, 1000)
    finally:
        db.shutdown()
    runs = coverage(found.runs, found.changes)
    assert runs == [(0, 130)]
    line = timeline([c for c in found.changes if c.subject == "a"], runs)
    assert line.up == [(5, 130)]


async def test_a_switch_that_stops_answering_while_all_behind_it_answer_cuts_nobody_off(
    journal: Journal,
) -> None:
    """As DistrictUnreachable judges it: a link is down when its parent is cut and targets
    behind it are down, not when only the switch's own address goes quiet."""
    store = journal.store
    store.record(_echo("sw", True))
    store.record(_echo("ep", True))
    await journal.advance(1)
    for _ in range(2):
        store.record(_echo("sw", False))
        store.record(_echo("ep", True))
    await journal.advance(5)
    assert [c for c in journal.changes() if c[0] in ("sw", "link:sw")] == [
        ("link:sw", 1, "up", None),
        ("sw", 0, "up", None),
        ("sw", 1, "down", "timeout"),
    ]

"""The alert engine on a real state store and a real SQLite outbox, with a controlled clock."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import json
import sqlite3
from dataclasses import replace
from pathlib import Path
from typing import Any, ClassVar

import pytest
from pydantic import ValidationError

from collectors.base import Collector, CollectorSettings
from collectors.icmp import IcmpSettings
from collectors.traps import TrapEvent
from netmon.alerting.delivery import DeliveryWorker, NotificationStats
from netmon.alerting.engine import AlertEngine
from netmon.alerting.model import AlertEvent, Severity, Status
from netmon.alerting.rules import MAX_TRAP_PORTS
from netmon.alerting.sinks.base import SinkUnavailable
from netmon.alerting.store import AlertDB
from netmon.alerting.traps import TrapAlerts
from netmon.config.alerting import Silence
from netmon.config.errors import ConfigError
from netmon.config.loader import load_data
from netmon.config.rules import Rule
from netmon.confirm import Confirmer
from netmon.devices import DeviceState, InterfaceState
from netmon.inventory import Inventory
from netmon.meetings import meeting_windows
from netmon.model import (
    Call,
    EchoRound,
    EndpointStatus,
    InterfaceSample,
    MediaStream,
    Observation,
    ProbeTarget,
)
from netmon.scheduler import Scheduler
from netmon.state import Reach, StateStore
from tests.fake_clock import FakeClock


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


def inventory(extra: dict[str, Any] | None = None, targets: list[dict[str, Any]] | None = None):
    data: dict[str, Any] = {
        "targets": targets
        or [
            {"id": "ep1", "address": "192.0.2.10", "name": "Hội trường tỉnh", "district": "D1"},
            {"id": "ep2", "address": "192.0.2.11", "district": "D2"},
            {"id": "rtr", "address": "192.0.2.1", "kind": "router"},
        ]
    }
    data.update(extra or {})
    return load_data(data)


class Harness:
    def __init__(self, inv: Inventory, db: AlertDB, clock: Clock) -> None:
        self.store = StateStore()
        self.store.apply_inventory(inv)
        self.clock = clock
        self.db = db
        self.engine = AlertEngine(
            store=self.store,
            config=inv.config.alerting,
            rules=inv.rules,
            db=db,
            queues=lambda: ["test"],
            on_queued=lambda: None,
            clock=clock,
        )
        self.engine.apply_inventory(inv)
        self.store.on_record(lambda state, _obs: self.engine.observe(state))

    def echo(self, target: str, *rtts: float | None) -> None:
        for rtt in rtts:
            self.store.record(
                EchoRound(target=target, collector="icmp", ok=rtt is not None, duration=0.1,
                          address="192.0.2.10", rtts=(rtt,))
            )  # fmt: skip

    def lossy(self, target: str, lost: int, sent: int) -> None:
        """`sent` regular echoes, `lost` of them lost, spread evenly (never 5 in a row)."""
        step = sent / lost
        losses = {int(i * step) for i in range(lost)}
        self.echo(target, *(None if i in losses else 0.01 for i in range(sent)))

    def confirm_if_doubtful(self, target: str, rtt: float | None) -> None:
        """What netmon.confirm does after a doubtful echo: 10 quick echoes, here all alike."""
        icmp = self.store.targets[target].icmp
        if icmp is not None and icmp.doubtful:
            self.store.record(
                EchoRound(target=target, collector="icmp", ok=rtt is not None, duration=0.5,
                          address="192.0.2.10", rtts=(rtt,) * 10, confirmation=True)
            )  # fmt: skip

    def down(self, target: str) -> None:
        """A regular echo lost, and its confirmation too."""
        self.echo(target, None)
        self.confirm_if_doubtful(target, None)

    def up(self, target: str) -> None:
        """A regular echo answered, and its confirmation too when the target was down."""
        self.echo(target, 0.01)
        self.confirm_if_doubtful(target, 0.01)

    def advance(self, seconds: float, step: float = 1.0) -> None:
        end = self.clock.now + seconds
        while self.clock.now < end:
            self.clock.now = min(end, self.clock.now + step)
            self.engine.tick()

    async def events(self) -> list[AlertEvent]:
        await self.engine.flush()
        return [entry.event for entry in await self.db.call(self.db.pending, "test", 10_000)]


def transitions(events: list[AlertEvent]) -> list[tuple[str, str, str]]:
    return [(e.alertname, e.target, e.status.value) for e in events]


async def test_endpoint_down_fires_once_critical_and_resolves_once(db: AlertDB) -> None:
    h = Harness(inventory(), db, Clock())
    h.up("ep1")
    h.down("ep1")
    h.down("ep1")  # still down: no second notification
    h.advance(3)
    h.up("ep1")
    h.advance(1)
    assert len(await h.events()) == 1  # back, but not yet for the 2 s that clear it
    h.advance(2)
    events = await h.events()
    assert transitions(events) == [
        ("EndpointDown", "ep1", "firing"),
        ("EndpointDown", "ep1", "resolved"),
    ]
    assert events[0].severity is Severity.CRITICAL
    assert events[0].summary == "Hội trường tỉnh is unreachable (no reply to ping)"
    assert events[0].context["district"] == "D1"
    assert events[1].ends_at is not None
    assert events[1].starts_at == events[0].starts_at


class Echoes:
    """An ICMP collector on a fake clock: each round's echo is answered at once, unless the
    target is cut off; then the round waits out its timeout and counts the echo lost."""

    name: ClassVar[str] = "icmp"
    settings_model: ClassVar[type[CollectorSettings]] = IcmpSettings

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock
        self.cut: set[str] = set()

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        return None

    async def confirm(
        self, target: ProbeTarget, address: str, settings: CollectorSettings
    ) -> EchoRound:
        assert isinstance(settings, IcmpSettings)
        policy = settings.reach_policy()
        answered = target.id not in self.cut
        if not answered:
            await self.clock.sleep(
                (policy.confirm - 1) * policy.confirm_spacing + policy.confirm_timeout
            )
        rtt = 0.001 if answered else None
        return EchoRound(
            target=target.id, collector="icmp", ok=answered, duration=0.95, address=address,
            rtts=(rtt,) * policy.confirm, confirmation=True,
        )  # fmt: skip

    async def collect(self, target: ProbeTarget, settings: CollectorSettings) -> Observation:
        assert isinstance(settings, IcmpSettings)
        if target.id not in self.cut:
            return EchoRound(target=target.id, collector="icmp", ok=True, duration=0.001,
                             address=target.address, rtts=(0.001,))  # fmt: skip
        await self.clock.sleep(settings.timeout)
        return EchoRound(target=target.id, collector="icmp", ok=False, duration=settings.timeout,
                         address=target.address, rtts=(None,), reason="timeout")  # fmt: skip


@pytest.mark.parametrize("phase", [0.0, 0.25, 0.5, 0.75])
async def test_a_dead_endpoint_is_endpoint_down_within_3_s(db: AlertDB, phase: float) -> None:
    # docs/architecture.md, "Alert timing": an endpoint that stops answering is EndpointDown
    # once its next echo is lost (800 ms timeout) and the 10 confirmation echoes sent then are
    # lost too (50 ms apart, 500 ms timeout): 1.75 to 2.75 s after the cut, wherever it falls in
    # the second. The scheduler, the confirmations and the engine run on a fake clock here, so
    # the time is exact under any load; on real packets it is bench/alert_bench.py's figure.
    clock = FakeClock()
    inv = inventory()  # default ICMP settings
    h = Harness(inv, db, clock)  # type: ignore[arg-type]
    echoes = Echoes(clock)
    collectors: dict[str, Collector] = {"icmp": echoes}
    scheduler = Scheduler(
        store=h.store, collectors=collectors, max_concurrency=10, clock=clock, sleep=clock.sleep
    )
    confirmer = Confirmer(h.store, collectors)
    scheduler.apply(inv)

    def endpoint_down() -> bool:
        return any((e.alertname, e.target) == ("EndpointDown", "ep1") for e in h.engine.firing())

    try:
        await clock.advance_until(
            lambda: h.store.targets["ep1"].reach is Reach.UP, within=2, what="ep1 up"
        )
        await clock.advance(phase)
        echoes.cut.add("ep1")
        taken = await clock.advance_until(endpoint_down, within=5, what="EndpointDown")
    finally:
        await scheduler.stop()
        await confirmer.stop()
    assert 1.75 < taken <= 2.75 + 1e-9
    assert h.store.targets["ep2"].reach is Reach.UP  # only the cut one
    assert confirmer.confirmations == 1  # ep2 answered every echo: nothing to confirm


async def test_a_router_that_goes_down_is_target_down_major(db: AlertDB) -> None:
    h = Harness(inventory(), db, Clock())
    h.up("rtr")
    h.down("rtr")
    (event,) = await h.events()
    assert (event.alertname, event.severity) == ("TargetDown", Severity.MAJOR)


async def test_latency_hysteresis_raises_once_and_clears_only_below_the_clear_level(
    db: AlertDB,
) -> None:
    h = Harness(inventory(), db, Clock())
    h.echo("ep1", *[0.160] * 40)  # p95 160 ms > 150 ms warning level
    h.advance(5)
    assert await h.events() == []  # `for: 10s` not yet over
    h.advance(6)
    h.echo("ep1", 0.160)
    # The window spans real time, so it takes many samples to move its 95th percentile.
    h.echo("ep1", *[0.140] * 400)  # p95 between clear (120 ms) and raise (150 ms): stays
    h.advance(30)
    h.echo("ep1", *[0.100] * 10_000)  # p95 below the clear level: resolves after clear_for
    h.advance(4)
    assert transitions(await h.events()) == [("HighLatency", "ep1", "firing")]
    h.advance(7)
    events = await h.events()
    assert transitions(events) == [
        ("HighLatency", "ep1", "firing"),
        ("HighLatency", "ep1", "resolved"),
    ]
    assert events[0].severity is Severity.WARNING
    assert "160 ms > 150 ms" in events[0].summary


async def test_loss_that_gets_worse_raises_the_severity_of_the_same_alert(db: AlertDB) -> None:
    h = Harness(inventory(), db, Clock())
    h.up("ep1")
    # 10 lost in 200 (5 %): surely above the 1 % warning level, and measured above the 3 %
    # major one: one major alert, not a warning first.
    h.lossy("ep1", 10, 200)
    h.advance(59)
    assert await h.events() == []  # `for: 60s` not yet over
    h.advance(2)
    # Then 50 lost in 100 more: surely above the 10 % critical level.
    h.lossy("ep1", 50, 100)
    h.advance(61)
    events = await h.events()
    assert [(e.status.value, e.severity.value) for e in events] == [
        ("firing", "major"),
        ("firing", "critical"),
    ]
    assert events[1].previous_severity is Severity.MAJOR
    assert events[0].fingerprint == events[1].fingerprint


async def test_one_lost_echo_pages_nobody(db: AlertDB) -> None:
    h = Harness(inventory(), db, Clock())
    h.echo("ep1", *([0.01] * 30 + [None] + [0.01] * 29))
    h.advance(20)
    h.echo("ep1", 0.01)
    assert await h.events() == []


async def test_a_flapping_target_is_one_alert_marked_flapping(db: AlertDB) -> None:
    h = Harness(inventory(), db, Clock())
    h.up("ep1")
    for _ in range(15):  # down and up every second for half a minute
        h.down("ep1")
        h.advance(1)
        h.up("ep1")
        h.advance(1)
    events = await h.events()
    assert {e.fingerprint for e in events} == {events[0].fingerprint}
    assert [e.status for e in events].count(Status.RESOLVED) <= 1
    assert [e.flapping for e in events if e.firing][-1] is True
    assert len(events) == 2, transitions(events)  # fired, then marked flapping
    assert "flapping" in events[-1].summary
    h.advance(61)  # quiet for a minute: settles, and since it is up, resolves once
    events = await h.events()
    assert events[-1].status is Status.RESOLVED
    assert [e.status for e in events].count(Status.RESOLVED) == 1


async def test_silence_by_district_holds_notifications_until_it_ends(db: AlertDB) -> None:
    clock = Clock()
    h = Harness(inventory(), db, clock)
    ends = dt.datetime.fromtimestamp(clock.now + 60, dt.UTC)
    await h.engine.add_silence(
        Silence.model_validate({"matchers": {"district": "D1"}, "ends_at": ends.isoformat()})
    )
    h.up("ep1")
    h.up("ep2")
    h.down("ep1")
    h.down("ep2")
    assert transitions(await h.events()) == [("EndpointDown", "ep2", "firing")]
    assert any(a["target"] == "ep1" and a["silenced"] for a in h.engine.listing())
    h.advance(61)  # the maintenance is over and ep1 is still down: now it is news
    assert transitions(await h.events())[-1] == ("EndpointDown", "ep1", "firing")


async def test_a_silenced_alert_that_clears_is_never_heard_of(db: AlertDB) -> None:
    clock = Clock()
    h = Harness(inventory(), db, clock)
    ends = dt.datetime.fromtimestamp(clock.now + 600, dt.UTC)
    await h.engine.add_silence(
        Silence.model_validate({"matchers": {"target": "ep*"}, "ends_at": ends.isoformat()})
    )
    h.up("ep1")
    h.down("ep1")
    h.up("ep1")
    assert await h.events() == []


def district_inventory() -> Inventory:
    targets: list[dict[str, Any]] = [
        {"id": "sw-d1", "address": "192.0.2.100", "kind": "switch", "district": "D1"},
    ]
    targets += [
        {"id": f"d1-ep{i}", "address": f"192.0.2.{10 + i}", "district": "D1", "parent": "sw-d1"}
        for i in range(6)
    ]
    targets += [{"id": "d2-ep", "address": "192.0.2.50", "district": "D2", "parent": "sw-d2"}]
    targets += [{"id": "sw-d2", "address": "192.0.2.101", "kind": "switch", "district": "D2"}]
    return inventory(targets=targets)


async def test_endpoints_behind_a_cut_district_are_one_alert_with_the_list(db: AlertDB) -> None:
    h = Harness(district_inventory(), db, Clock())
    for i in range(6):
        h.up(f"d1-ep{i}")
    h.up("d2-ep")
    for i in range(6):  # the district's link is cut: all its endpoints lose an echo at once,
        h.echo(f"d1-ep{i}", None)
    for i in range(6):  # and then their confirmations
        h.confirm_if_doubtful(f"d1-ep{i}", None)
    h.down("d2-ep")  # a lone endpoint elsewhere among healthy neighbours: paged at once
    assert transitions(await h.events()) == [("EndpointDown", "d2-ep", "firing")]
    h.advance(3)
    events = await h.events()
    assert sorted(transitions(events)) == [
        ("DistrictUnreachable", "sw-d1", "firing"),
        ("EndpointDown", "d2-ep", "firing"),
    ]
    group = next(e for e in events if e.alertname == "DistrictUnreachable")
    assert group.severity is Severity.CRITICAL
    assert group.value == 6
    assert "6 endpoints" in group.summary
    assert "d1-ep0" in group.description
    for i in range(6):
        h.up(f"d1-ep{i}")
    h.advance(2)
    assert transitions(await h.events())[-1] == ("DistrictUnreachable", "sw-d1", "resolved")


async def test_restart_neither_repeats_firing_nor_forgets_to_resolve(
    db: AlertDB, tmp_path: Path
) -> None:
    clock = Clock()
    h = Harness(inventory(), db, clock)
    h.up("ep1")
    h.up("ep2")
    h.down("ep1")
    h.down("ep2")
    assert len(await h.events()) == 2
    for entry in await db.call(db.pending, "test", 100):
        await db.call(db.ack, entry.seq)

    # netmon restarts: a new store knows nothing yet, a new engine reads the database.
    h2 = Harness(inventory(), db, clock)
    assert await h2.engine.restore() == 2
    assert {a["target"] for a in h2.engine.listing()} == {"ep1", "ep2"}
    h2.down("ep1")  # still down: must not be announced again
    h2.up("ep2")  # cleared while netmon was away: resolved, once
    h2.advance(6)
    assert transitions(await h2.events()) == [("EndpointDown", "ep2", "resolved")]


def test_vietnamese_summaries_and_rule_config_errors_name_the_field() -> None:
    inv = inventory({"alerting": {"language": "vi"}})
    assert inv.config.alerting.language == "vi"
    with pytest.raises(ConfigError) as caught:
        inventory(
            {
                "alerting": {
                    "rules": {
                        "HighLatency": {"levels": [{"severity": "warning", "above": 0.1,
                                                    "clear": 0.2}]},
                        "MyRule": {"metric": "rtt_p95", "levels": [{"severity": "loud",
                                                                    "above": 1}]},
                        "Typo": {"metric": "rtt_p95", "levels": [{"severity": "info",
                                                                  "above": 1}], "fro": "1s"},
                    }
                }
            }
        )  # fmt: skip
    text = str(caught.value)
    assert "alerting.rules.HighLatency.levels.0: clear (0.2) must not be above" in text
    assert "alerting.rules.MyRule.levels.0.severity" in text
    assert "alerting.rules.Typo.fro: unknown key" in text


async def test_vietnamese_summary(db: AlertDB) -> None:
    h = Harness(inventory({"alerting": {"language": "vi"}}), db, Clock())
    h.up("ep1")
    h.down("ep1")
    (event,) = await h.events()
    assert event.summary == "Hội trường tỉnh mất kết nối (không phản hồi ping)"


async def test_alerts_of_a_target_removed_from_the_inventory_are_resolved(db: AlertDB) -> None:
    clock = Clock()
    h = Harness(inventory(), db, clock)
    h.up("ep2")
    h.down("ep2")
    smaller = inventory(targets=[{"id": "ep1", "address": "192.0.2.10"}])
    h.store.apply_inventory(smaller)
    h.engine.apply_inventory(smaller)
    assert transitions(await h.events()) == [
        ("EndpointDown", "ep2", "firing"),
        ("EndpointDown", "ep2", "resolved"),
    ]
    assert h.engine.listing() == []


def trap(target: str, name: str, oid: str, if_index: int | None = None) -> TrapEvent:
    return TrapEvent(
        target=target, source="192.0.2.1", version="2c", trap_oid=oid, trap=name, varbinds=(),
        if_index=if_index, uptime_ticks=None, received_at=0.0,
    )  # fmt: skip


async def test_vendor_traps_map_to_alerts_that_clear_by_trap_or_by_time(db: AlertDB) -> None:
    fan_fail, fan_ok = "1.3.6.1.4.1.9.9.13.3.0.5", "1.3.6.1.4.1.9.9.13.3.0.6"
    inv = inventory(
        {
            "alerting": {
                "trap_alerts": {
                    fan_fail: {"alertname": "FanFailure", "severity": "major", "hold": "1h",
                               "clear_trap": fan_ok},
                    "1.3.6.1.4.1.9.9.43.2.0.1": {"alertname": "ConfigChanged", "severity": "info",
                                                 "hold": "5m"},
                }
            }
        }
    )  # fmt: skip
    clock = Clock()
    h = Harness(inv, db, clock)
    # Traps reach the engine as every other fact does: recorded in the state store.
    h.store.on_trap(TrapAlerts(inv, h.engine).on_trap)
    h.store.record_trap(trap("rtr", fan_fail, fan_fail))
    h.store.record_trap(trap("rtr", fan_fail, fan_fail))  # the same incident again: no new alert
    h.store.record_trap(trap("rtr", "1.3.6.1.4.1.9.9.43.2.0.1", "1.3.6.1.4.1.9.9.43.2.0.1"))
    h.store.record_trap(trap("rtr", "warmStart", "1.3.6.1.6.3.1.1.5.2"))
    h.store.record_trap(trap("rtr", fan_ok, fan_ok))
    h.advance(301)  # ConfigChanged's 5 minutes are over
    events = await h.events()
    assert transitions(events) == [
        ("FanFailure", "rtr", "firing"),
        ("ConfigChanged", "rtr", "firing"),
        ("DeviceRebooted", "rtr", "firing"),
        ("FanFailure", "rtr", "resolved"),
        ("ConfigChanged", "rtr", "resolved"),
    ]
    assert [e.severity for e in events[:3]] == [Severity.MAJOR, Severity.INFO, Severity.WARNING]
    assert events[0].summary == "FanFailure on rtr"


# --- found by review: each of these once lost a resolve, repeated a page, or crashed ---------


async def test_an_announced_alert_that_changes_under_a_silence_still_resolves(
    db: AlertDB,
) -> None:
    clock = Clock()
    h = Harness(inventory(), db, clock)
    h.up("ep1")
    h.lossy("ep1", 10, 200)  # 5 %: major
    h.advance(61)
    ends = dt.datetime.fromtimestamp(clock.now + 600, dt.UTC)
    await h.engine.add_silence(
        Silence.model_validate({"matchers": {"target": "ep1"}, "ends_at": ends.isoformat()})
    )
    h.lossy("ep1", 50, 100)  # worse: surely above 10 %, critical, while silenced
    h.advance(61)
    # It ends (here: its rule is switched off by a reload) while the silence still runs.
    h.engine.set_rules(
        inventory({"alerting": {"rules": {"HighPacketLoss": {"enabled": False}}}}).rules
    )
    events = await h.events()
    assert [(e.status.value, e.severity.value) for e in events] == [
        ("firing", "major"),
        ("firing", "critical"),
        ("resolved", "critical"),  # under the severity the sinks know it by
    ]
    assert events[1].previous_severity is Severity.MAJOR


async def test_restart_keeps_district_interface_and_trap_alerts_as_they_were(
    db: AlertDB,
) -> None:
    clock = Clock()
    inv = district_inventory()
    h = Harness(inv, db, clock)
    for i in range(6):
        h.up(f"d1-ep{i}")
    for i in range(6):
        h.down(f"d1-ep{i}")
    h.engine.fire_event("DeviceRebooted", inv.targets["sw-d1"], severity=Severity.WARNING, hold=900)
    h.advance(3)
    fired = transitions(await h.events())
    assert ("DistrictUnreachable", "sw-d1", "firing") in fired
    assert ("DeviceRebooted", "sw-d1", "firing") in fired

    clock.now += 300  # netmon was away for a while; the district is still cut
    h2 = Harness(inv, db, clock)
    await h2.engine.restore()
    for i in range(6):
        h2.down(f"d1-ep{i}")
    h2.advance(400)  # past the restore grace: nothing may have been repeated or resolved
    assert transitions(await h2.events()) == fired
    clock.now += 200  # the reboot alert's own 15 minutes are over
    h2.advance(1)
    assert transitions(await h2.events())[-1] == ("DeviceRebooted", "sw-d1", "resolved")


async def test_a_rule_reloaded_with_fewer_levels_or_disabled_neither_crashes_nor_sticks(
    db: AlertDB,
) -> None:
    h = Harness(inventory(), db, Clock())
    h.up("ep1")
    h.lossy("ep1", 20, 100)  # 20 %: critical
    h.advance(61)
    two_levels = inventory(
        {"alerting": {"rules": {"HighPacketLoss": {"levels": [
            {"severity": "warning", "above": 0.001, "clear": 0},
            {"severity": "major", "above": 0.01, "clear": 0.005},
        ]}}}}
    )  # fmt: skip
    h.engine.set_rules(two_levels.rules)
    h.echo("ep1", 0.01)
    h.advance(11)
    assert h.engine.active_by_severity()["major"] == 1
    disabled = inventory({"alerting": {"rules": {"HighPacketLoss": {"enabled": False}}}})
    h.engine.set_rules(disabled.rules)
    events = await h.events()
    assert [(e.status.value, e.severity.value) for e in events] == [
        ("firing", "critical"),
        ("firing", "major"),
        ("resolved", "major"),
    ]


async def test_a_condition_that_never_outlasts_its_for_never_flaps(db: AlertDB) -> None:
    h = Harness(inventory({"alerting": {"rules": {"EndpointDown": {"for": "10s"}}}}), db, Clock())
    h.up("ep1")
    for _ in range(10):  # outages of 2 s, far shorter than the rule's `for: 10s`
        h.down("ep1")
        h.advance(2)
        h.up("ep1")
        h.advance(2)
    assert await h.events() == []


def test_an_empty_api_token_is_refused() -> None:
    with pytest.raises(ConfigError) as caught:
        inventory({"http": {"token": "   "}})
    assert "http.token: " in str(caught.value)


async def test_a_web_service_down_and_a_dead_sip_stack_are_alerts(db: AlertDB) -> None:
    inv = inventory(
        targets=[
            {"id": "portal", "address": "192.0.2.80", "kind": "service", "name": "Cổng DVC",
             "probes": {"http": {"url": "http://192.0.2.80/"}}},
            {"id": "room", "address": "192.0.2.81", "probes": {"icmp": {}, "sip": {}}},
        ]
    )  # fmt: skip
    h = Harness(inv, db, Clock())
    h.store.record(Observation("portal", "http", False, 0.2, "status", "HTTP 503"))
    h.up("room")
    h.store.record(Observation("room", "sip", False, 3.0, "timeout"))
    h.advance(61)
    h.store.record(Observation("room", "sip", False, 3.0, "timeout"))
    events = await h.events()
    assert sorted(transitions(events)) == [
        ("ProbeFailed", "room", "firing"),
        ("ServiceDown", "portal", "firing"),
    ]
    assert {e.summary for e in events} == {
        "Cổng DVC does not answer its checks",
        "room: the sip probe fails",
    }


async def test_faults_of_a_room_in_a_meeting_are_one_severity_higher(db: AlertDB) -> None:
    clock = Clock()
    start = dt.datetime.fromtimestamp(clock.now + 3600, dt.UTC)
    inv = inventory(
        {"meetings": [{"name": "Giao ban", "start": start.isoformat(), "targets": ["ep1"]}]}
    )
    h = Harness(inv, db, clock)
    h.engine.set_meetings(meeting_windows(inv))
    h.up("ep1")
    h.lossy("ep1", 10, 200)  # 5 %: major when idle
    h.advance(61)
    clock.now += 3600 - 1800  # half an hour before: the meeting's first check
    h.advance(1)
    events = await h.events()
    assert [(e.status.value, e.severity.value) for e in events] == [
        ("firing", "major"),
        ("firing", "critical"),  # the same alert, raised for the meeting
    ]
    assert events[1].previous_severity is Severity.MAJOR
    clock.now += 1800 + 7200  # the meeting is over
    h.advance(1)
    assert (await h.events())[-1].severity is Severity.MAJOR


async def test_an_event_alert_that_keeps_firing_and_clearing_is_damped_as_flapping(
    db: AlertDB,
) -> None:
    # A trap rule with a clear trap (a UPS on mains, on battery, on mains...): each pair would
    # be a page and its resolve; from the 6th change in 2 minutes it is one alert, flapping.
    clock = Clock()
    inv = inventory()
    h = Harness(inv, db, clock)
    ups = inv.targets["rtr"]
    for _ in range(10):
        h.engine.fire_event("OnBattery", ups, severity=Severity.MAJOR, hold=600)
        h.advance(5)
        h.engine.clear_event("OnBattery", ups, {})
        h.advance(5)
    events = await h.events()
    assert transitions(events) == [
        ("OnBattery", "rtr", "firing"),
        ("OnBattery", "rtr", "resolved"),
        ("OnBattery", "rtr", "firing"),
        ("OnBattery", "rtr", "resolved"),
        ("OnBattery", "rtr", "firing"),
        ("OnBattery", "rtr", "firing"),  # the 6th change (a clear): flapping, held from here
    ]
    assert events[-1].flapping
    h.advance(61)  # quiet for a minute, and cleared: it settles and resolves once
    assert transitions(await h.events())[-1] == ("OnBattery", "rtr", "resolved")
    assert len(await h.events()) == len(events) + 1


# --- issue 14: a decision that is not stored is not lost --------------------------------------


async def test_a_transition_the_database_refuses_is_retried_in_order_not_skipped(
    db: AlertDB, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The database locked past SQLite's timeout (or a full disk) for the first two writes: the
    # firing must still reach the sinks, and before its resolve.
    real_record = db.record
    refusals = iter([True, True])

    def record(*args: Any) -> dict[str, int]:
        if next(refusals, False):
            raise sqlite3.OperationalError("database is locked")
        return real_record(*args)

    monkeypatch.setattr(db, "record", record)
    h = Harness(inventory(), db, Clock())
    h.up("ep1")
    h.down("ep1")
    assert h.engine.unstored == 1
    h.up("ep1")
    h.advance(3)
    events = await h.events()
    assert transitions(events) == [
        ("EndpointDown", "ep1", "firing"),
        ("EndpointDown", "ep1", "resolved"),
    ]
    assert (h.engine.store_failures, h.engine.unstored) == (2, 0)


async def test_text_that_cannot_be_stored_is_stored_with_a_replacement_character(
    db: AlertDB,
) -> None:
    targets = [{"id": "ep1", "address": "192.0.2.10", "name": "Room"}]
    h = Harness(inventory(targets=targets), db, Clock())
    h.up("ep1")
    h.engine.fire_event(
        "OnBattery", h.store.targets["ep1"].target, severity=Severity.MAJOR, hold=600,
        summary="UPS of Room \udc80 on battery",
    )  # fmt: skip
    (event,) = await h.events()
    assert event.summary == "UPS of Room \ufffd on battery"
    assert h.engine.unstored == 0


def _stored_event(**changes: Any) -> str:
    event = {
        "alertname": "EndpointDown", "target": "ep1", "severity": "critical",
        "status": "firing", "starts_at": "2027-01-01T00:00:00+00:00", "labels": {},
    }  # fmt: skip
    return json.dumps({**event, **changes})


async def test_a_damaged_outbox_row_is_quarantined_not_blocking_its_queue(db: AlertDB) -> None:
    def damage() -> None:
        for text in (_stored_event(starts_at=None), "{not json", _stored_event()):
            db._db.execute(
                "INSERT INTO outbox (queue, event, created) VALUES ('test', ?, 0)", (text,)
            )

    await db.call(damage)
    entries = await db.call(db.pending, "test", 10)
    assert [(e.event.alertname, e.event.target) for e in entries] == [("EndpointDown", "ep1")]
    assert db.quarantined == 2
    rows = await db.call(lambda: db._db.execute("SELECT source FROM quarantine").fetchall())
    assert rows == [("outbox",), ("outbox",)]


async def test_an_alert_stored_by_another_version_does_not_stop_netmon_starting(
    db: AlertDB,
) -> None:
    # A downgrade: the newer version stored a severity this one does not know.
    def store() -> None:
        for fingerprint, text in (
            ("a", _stored_event(severity="emergency")),
            ("b", _stored_event()),
        ):
            db._db.execute(
                "INSERT INTO alerts (fingerprint, event, level, announced) VALUES (?, ?, 0, 1)",
                (fingerprint, text),
            )

    await db.call(store)
    h = Harness(inventory(), db, Clock())
    assert await h.engine.restore() == 1
    assert [e.target for e in h.engine.firing()] == ["ep1"]
    assert db.quarantined == 1


class LosesTheFirstAck:
    """A sink whose far side gets every event, but whose first acknowledgement is lost (a
    broker's PUBACK in flight when the connection drops): that event is sent again."""

    name = "test"
    queue = "test"

    def __init__(self) -> None:
        self.received: list[AlertEvent] = []

    async def start(self) -> None:
        pass

    async def send(self, event: AlertEvent) -> None:
        self.received.append(event)
        if len(self.received) == 1:
            raise SinkUnavailable("connection lost before the acknowledgement")

    async def close(self) -> None:
        pass


async def test_a_resent_transition_carries_the_same_event_id_and_a_restart_keeps_it(
    db: AlertDB, tmp_path: Path
) -> None:
    # Delivery is at least once: a consumer tells a re-send from a new transition by event_id.
    h = Harness(inventory(), db, Clock())
    h.up("ep1")
    h.down("ep1")
    h.up("ep1")
    h.advance(3)
    await h.engine.flush()
    # Stored, not yet delivered, when netmon stops: the next netmon (here another connection
    # to the same file) reads the same ids.
    queued = [entry.event.event_id for entry in await db.call(db.pending, "test", 10)]
    reopened = AlertDB(tmp_path / "alerts.sqlite")
    await reopened.call(reopened.open)
    try:
        sink = LosesTheFirstAck()
        worker = DeliveryWorker(sink, reopened, NotificationStats(), backoff_min=0.01)
        worker.start()
        try:
            while len(sink.received) < 3 or await reopened.call(reopened.pending, "test", 10):
                await asyncio.sleep(0.01)
        finally:
            await worker.stop()
    finally:
        reopened.shutdown()
    assert transitions(sink.received) == [
        ("EndpointDown", "ep1", "firing"),
        ("EndpointDown", "ep1", "firing"),  # the re-send
        ("EndpointDown", "ep1", "resolved"),
    ]
    firing, resent, resolved = (event.event_id for event in sink.received)
    assert firing == resent == queued[0]
    assert resolved == queued[1]
    assert firing
    assert resolved != firing
    assert json.loads(json.dumps(sink.received[1].to_json()))["event_id"] == firing


async def test_a_restored_alert_keeps_the_event_id_it_was_raised_with(db: AlertDB) -> None:
    # MQTT puts the retained alert topics back from the firing alerts after every reconnect:
    # they name the same transition the events topic carried.
    h = Harness(inventory(), db, Clock())
    h.up("ep1")
    h.down("ep1")
    (raised,) = await h.events()
    h2 = Harness(inventory(), db, Clock())
    assert await h2.engine.restore() == 1
    assert [event.event_id for event in h2.engine.firing()] == [raised.event_id]


async def test_an_event_queued_before_events_had_ids_gets_one_stable_id(db: AlertDB) -> None:
    await db.call(
        lambda: db._db.execute(
            "INSERT INTO outbox (queue, event, created) VALUES ('test', ?, 0)", (_stored_event(),)
        )
    )
    first = await db.call(db.pending, "test", 10)
    again = await db.call(db.pending, "test", 10)
    assert first[0].event.event_id
    assert first[0].event.event_id == again[0].event.event_id


async def test_forged_link_down_traps_cannot_flood_the_alerts(db: AlertDB) -> None:
    # linkDown traps with made-up ifIndexes, from a source and community that pass.
    targets = [
        {"id": "sw-polled", "address": "192.0.2.1", "kind": "switch"},
        {"id": "sw-traps", "address": "192.0.2.2", "kind": "switch"},
    ]
    inv = inventory(targets=targets)
    h = Harness(inv, db, Clock())
    port = InterfaceSample(
        index=1, name="Gi0/1", alias="", descr="", admin_up=True, oper_up=True, speed_bps=None,
        counter_bits=64, in_octets=None, out_octets=None, in_errors=None, out_errors=None,
        in_discards=None, out_discards=None,
    )  # fmt: skip
    unused = dataclasses.replace(port, index=2, name="Gi0/2", oper_up=False)
    h.store.targets["sw-polled"].devices["snmp"] = DeviceState(
        up=True,
        interfaces={1: InterfaceState(port), 2: InterfaceState(unused)},
        last_interfaces={1: port, 2: unused},
    )
    for index in range(1, 301):
        h.engine.interface_trap(inv.targets["sw-polled"], index, True)
        h.engine.interface_trap(inv.targets["sw-traps"], index, True)
    alerts = [(t.target, t.labels["ifname"]) for t in h.engine.tracked.values()]
    # The polled switch: not the ifIndexes its own table lacks, nor its never-used port; the
    # port in use (seen up by the engine once it evaluates the poll) would be paged.
    assert [a for a in alerts if a[0] == "sw-polled"] == []
    # A device netmon does not poll: traps are all it knows, at most 96 ports of them.
    assert len([a for a in alerts if a[0] == "sw-traps"]) == MAX_TRAP_PORTS
    h.engine.observe(h.store.targets["sw-polled"])  # Gi0/1 up in the poll: seen up
    h.engine.interface_trap(inv.targets["sw-polled"], 1, True)
    paged = [(t.target, t.labels["ifname"]) for t in h.engine.tracked.values()]
    assert ("sw-polled", "Gi0/1") in paged


def _call_status(target: str, loss: float) -> EndpointStatus:
    """A Cisco room in a call, receiving G.711 audio with `loss` over the last interval."""
    return EndpointStatus(
        target=target, collector="xapi", ok=True, duration=0.05,
        calls=(Call("connected", "sip", "outgoing", "sip:vp@conf.lab"),),
        streams=(MediaStream("1", "rx", "audio", codec="G711Mu", loss_ratio=loss, jitter=0.01),),
    )  # fmt: skip


def _rooms_with_api() -> Inventory:
    return inventory(
        {
            "credentials": {"codecs": {"user": "netmon", "password": "pw"}},
            "defaults": {"xapi": {"credential": "codecs"}},
        },
        [
            {"id": "wan", "address": "192.0.2.10", "name": "Huyện A", "vendor": "cisco"},
            {"id": "lan", "address": "192.0.2.11", "name": "Huyện B", "vendor": "cisco"},
        ],
    )


async def test_poor_call_quality_fires_below_its_mos_with_where_the_fault_lies(
    db: AlertDB,
) -> None:
    h = Harness(_rooms_with_api(), db, Clock())
    # Both rooms receive audio with 15 % loss (MOS about 2.9); netmon's own pings to "wan"
    # lose as much, to "lan" nothing: the WAN path, and the room's LAN or endpoint.
    h.lossy("wan", 9, 60)
    h.echo("lan", *[0.01] * 60)
    for room in ("wan", "lan"):
        h.store.record(_call_status(room, 0.15))
    h.advance(9)
    h.store.record(_call_status("wan", 0.15))
    h.store.record(_call_status("lan", 0.15))
    assert await h.events() == []  # CallQualityBad's `for: 10s` is not over
    h.advance(2)
    for room in ("wan", "lan"):
        h.store.record(_call_status(room, 0.15))
    firing = {(e.alertname, e.target): e for e in await h.events()}
    assert set(firing) == {("CallQualityBad", "wan"), ("CallQualityBad", "lan")}
    wan = firing["CallQualityBad", "wan"]
    assert wan.severity is Severity.MAJOR
    assert wan.value == pytest.approx(2.91, abs=0.02)  # the MOS, the right way up
    assert wan.summary == (
        "Call quality at Huyện A is bad: MOS 2.91 < 3.10 (WAN path: netmon's pings lose 15.0% too)"
    )
    assert firing["CallQualityBad", "lan"].summary.endswith(
        "(room LAN / endpoint: netmon's path to the site is clean)"
    )
    # The call ends: quality alerts resolve after their clear_for, not hang on.
    for room in ("wan", "lan"):
        h.store.record(replace(_call_status(room, 0.0), calls=(), streams=()))
    h.advance(31)
    h.store.record(replace(_call_status("wan", 0.0), calls=(), streams=()))
    h.store.record(replace(_call_status("lan", 0.0), calls=(), streams=()))
    resolved = [e for e in await h.events() if e.status.value == "resolved"]
    assert {(e.alertname, e.target) for e in resolved} >= {
        ("CallQualityBad", "wan"), ("CallQualityBad", "lan"),
    }  # fmt: skip


async def test_room_alerts_go_when_the_rooms_status_stops_being_read(db: AlertDB) -> None:
    h = Harness(_rooms_with_api(), db, Clock())
    h.echo("lan", *[0.01] * 60)
    h.store.record(_call_status("lan", 0.3))
    h.advance(11)
    h.store.record(_call_status("lan", 0.3))
    assert ("CallQualityBad", "lan", "firing") in transitions(await h.events())
    # The room's vendor leaves the config: its status is no longer read, nothing would clear
    # the alert, so it goes now.
    plain = inventory(None, [{"id": "lan", "address": "192.0.2.11", "name": "Huyện B"}])
    h.engine.apply_inventory(plain)
    assert ("CallQualityBad", "lan", "resolved") in transitions(await h.events())


async def test_a_restored_call_quality_alert_keeps_its_mos_the_right_way_up(
    db: AlertDB,
) -> None:
    clock = Clock()
    h = Harness(_rooms_with_api(), db, clock)
    h.echo("lan", *[0.01] * 60)
    h.store.record(_call_status("lan", 0.3))
    h.advance(11)
    h.store.record(_call_status("lan", 0.3))
    (fired,) = [e for e in await h.events() if e.alertname == "CallQualityBad"]
    for entry in await db.call(db.pending, "test", 100):
        await db.call(db.ack, entry.seq)
    # netmon restarts: the alert comes back from the database, its MOS as it was shown.
    h2 = Harness(_rooms_with_api(), db, clock)
    assert await h2.engine.restore() >= 1
    (listed,) = [a for a in h2.engine.listing() if a["alertname"] == "CallQualityBad"]
    assert listed["value"] == pytest.approx(fired.value)
    assert fired.value is not None
    assert 0 < fired.value < 3.1
    # Nothing more is heard of the room: after the restore grace the alert resolves, saying
    # the MOS it fired at, not its mirror image.
    h2.advance(301, step=10)
    (resolved,) = [e for e in await h2.events() if e.alertname == "CallQualityBad"]
    assert resolved.status.value == "resolved"
    assert resolved.value == pytest.approx(fired.value)


def test_a_level_bad_when_low_is_written_below_and_checked_like_the_others() -> None:
    rule = Rule.model_validate(
        {"metric": "call_mos", "levels": [{"severity": "major", "below": 3.6, "clear": 3.8}]}
    )
    assert rule.falling
    with pytest.raises(ValueError, match=r"clear \(3.4\) must not be below `below` \(3.6\)"):
        Rule.model_validate(
            {"metric": "call_mos", "levels": [{"severity": "major", "below": 3.6, "clear": 3.4}]}
        )
    for wrong in ({"severity": "major", "below": "3,1", "clear": 3.3},
                  {"severity": "major", "above": -3.1, "falling": True}):  # fmt: skip
        with pytest.raises(ValidationError):  # a config error naming the field, not a TypeError
            Rule.model_validate({"metric": "call_mos", "levels": [wrong]})
    with pytest.raises(ValueError, match="call_mos is bad when low"):
        Rule.model_validate({"metric": "call_mos", "levels": [{"severity": "major", "above": 3}]})
    with pytest.raises(ValueError, match="all `above` or all `below`"):
        Rule.model_validate(
            {
                "metric": "call_mos",
                "levels": [
                    {"severity": "warning", "above": 1},
                    {"severity": "major", "below": 3.1},
                ],
            }
        )

"""Acknowledgements (issue 18): someone is on a firing alert, and every reader sees it."""

from __future__ import annotations

from types import SimpleNamespace

from netmon.alerting.delivery import NotificationStats
from netmon.alerting.metrics import AlertingCollector
from netmon.alerting.store import AlertDB
from tests.test_alert_engine import Clock, Harness, inventory


async def test_an_acknowledged_alert_says_who_is_on_it_in_the_listing_and_to_the_sinks(
    db: AlertDB,
) -> None:
    clock = Clock()
    h = Harness(inventory(), db, clock)
    h.up("ep1")
    h.down("ep1")
    (firing,) = await h.events()
    clock.now += 60
    event = h.engine.acknowledge(firing.fingerprint, "Tuấn (trực ca)", "đang gọi nhà mạng")
    assert event is not None
    (listed,) = h.engine.listing()
    assert listed["acknowledged"] is True
    assert listed["acknowledged_by"] == "Tuấn (trực ca)"
    assert listed["acknowledged_comment"] == "đang gọi nhà mạng"
    assert listed["acknowledged_at"] == event.to_json()["acknowledged_at"]
    # The sinks hear it as the alert restated: still firing, same identity, its own event id.
    restated = (await h.events())[-1]
    assert (restated.status.value, restated.fingerprint) == ("firing", firing.fingerprint)
    assert restated.acknowledged_by == "Tuấn (trực ca)"
    assert restated.starts_at == firing.starts_at
    assert restated.event_id != firing.event_id
    assert h.engine.active_by_severity(acknowledged=True)["critical"] == 1
    assert h.engine.active_by_severity(acknowledged=False)["critical"] == 0


async def test_withdrawing_an_acknowledgement_leaves_the_alert_firing_untaken(
    db: AlertDB,
) -> None:
    h = Harness(inventory(), db, Clock())
    h.up("ep1")
    h.down("ep1")
    (firing,) = await h.events()
    h.engine.acknowledge(firing.fingerprint, "lan", "")
    withdrawn = h.engine.unacknowledge(firing.fingerprint)
    assert withdrawn is not None
    assert not withdrawn.acknowledged
    (listed,) = h.engine.listing()
    assert (listed["state"], listed["acknowledged"], listed["acknowledged_by"]) == (
        "firing",
        False,
        None,
    )


async def test_no_firing_alert_no_acknowledgement(db: AlertDB) -> None:
    h = Harness(inventory(), db, Clock())
    h.up("ep1")
    assert h.engine.acknowledge("0123456789abcdef", "lan") is None
    assert h.engine.unacknowledge("0123456789abcdef") is None
    assert await h.events() == []


async def test_a_resolve_ends_the_acknowledgement_and_the_next_outage_is_untaken(
    db: AlertDB,
) -> None:
    h = Harness(inventory(), db, Clock())
    h.up("ep1")
    h.down("ep1")
    (firing,) = await h.events()
    h.engine.acknowledge(firing.fingerprint, "lan")
    h.up("ep1")
    h.advance(6)
    resolved = (await h.events())[-1]
    assert resolved.status.value == "resolved"
    assert resolved.acknowledged_by == "lan"  # who had taken it, for the record
    h.down("ep1")
    again = (await h.events())[-1]
    assert again.status.value == "firing"
    assert not again.acknowledged
    assert h.engine.listing()[0]["acknowledged"] is False


async def test_a_rise_in_severity_clears_the_acknowledgement(
    db: AlertDB,
) -> None:
    h = Harness(inventory(), db, Clock())
    h.up("ep1")
    h.lossy("ep1", 10, 200)  # 5 %: major
    h.advance(61)
    (major,) = await h.events()
    assert major.severity.value == "major"
    h.engine.acknowledge(major.fingerprint, "lan", "watching it")
    h.lossy("ep1", 50, 100)  # surely above 10 %: critical
    h.advance(61)
    critical = (await h.events())[-1]
    assert (critical.severity.value, critical.acknowledged) == ("critical", False)
    assert h.engine.listing()[0]["acknowledged"] is False


async def test_a_fall_in_severity_keeps_the_acknowledgement(db: AlertDB) -> None:
    h = Harness(inventory(), db, Clock())
    h.echo("ep1", *[0.400] * 40)  # RTT p95 400 ms > 300 ms: major
    h.advance(11)
    h.echo("ep1", 0.400)
    (major,) = await h.events()
    assert major.severity.value == "major"
    h.engine.acknowledge(major.fingerprint, "hoa", "")
    h.echo("ep1", *[0.200] * 4000)  # p95 200 ms: under the major level's clear, a warning
    h.advance(11)
    h.echo("ep1", 0.200)
    warning = (await h.events())[-1]
    assert (warning.severity.value, warning.acknowledged_by) == ("warning", "hoa")


async def test_an_acknowledgement_survives_a_restart(db: AlertDB) -> None:
    clock = Clock()
    h = Harness(inventory(), db, clock)
    h.up("ep1")
    h.down("ep1")
    (firing,) = await h.events()
    h.engine.acknowledge(firing.fingerprint, "Tuấn", "on site at 9")
    await h.engine.flush()

    h2 = Harness(inventory(), db, clock)  # netmon restarted
    assert await h2.engine.restore() == 1
    (listed,) = h2.engine.listing()
    assert (listed["acknowledged_by"], listed["acknowledged_comment"]) == ("Tuấn", "on site at 9")
    assert h2.engine.active_by_severity(acknowledged=True)["critical"] == 1


async def test_metrics_split_the_firing_alerts_nobody_has_taken(db: AlertDB) -> None:
    h = Harness(inventory(), db, Clock())
    for target in ("ep1", "ep2"):
        h.up(target)
        h.down(target)
    first, _ = await h.events()
    h.engine.acknowledge(first.fingerprint, "lan")

    runtime = SimpleNamespace(
        engine=h.engine,
        stats=NotificationStats(),
        sinks=[],
        pending={},
        db=db,
        engine_errors=0,
        oncall=None,
    )
    families = {m.name: m for m in AlertingCollector(runtime).collect()}  # type: ignore[arg-type]
    active = {s.labels["severity"]: s.value for s in families["netmon_alerts_active"].samples}
    taken = {s.labels["severity"]: s.value for s in families["netmon_alerts_acknowledged"].samples}
    assert (active["critical"], taken["critical"]) == (2, 1)


async def test_withdrawing_when_nobody_had_it_announces_nothing(db: AlertDB) -> None:
    h = Harness(inventory(), db, Clock())
    h.up("ep1")
    h.down("ep1")
    (firing,) = await h.events()
    unchanged = h.engine.unacknowledge(firing.fingerprint)
    assert unchanged is not None
    assert not unchanged.acknowledged
    assert await h.events() == [firing]  # no "withdrawn" restatement to the sinks

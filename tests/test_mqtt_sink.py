"""The MQTT sink against a real Mosquitto: topics, retained state, outages, auth, TLS, last will.

What is checked is what a subscriber (a dashboard, Node-RED, the on-call's phone) sees, through
`mosquitto_sub`, a different client than the one under test.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import pytest
from pydantic import ValidationError

from netmon.alerting.model import AlertEvent, Severity, Status
from netmon.alerting.sinks.base import SinkRejected, SinkUnavailable
from netmon.alerting.sinks.mqtt import MqttSink
from netmon.config.sinks import MqttSettings

# The peer module is also a plugin (its fixtures): have its asserts rewritten before importing it.
pytest.register_assert_rewrite("tests.mqtt_peer")
from tests.mqtt_peer import CertAuthority, Mosquitto, MqttRecorder  # noqa: E402
from tests.mqtt_peer import retained as retained_snapshot  # noqa: E402

pytest_plugins = ["tests.mqtt_peer"]
pytestmark = pytest.mark.peer

T = TypeVar("T")
REPO = Path(__file__).resolve().parent.parent
STARTS = 1_767_225_600.0  # 2026-01-01T00:00:00Z
HANG = 30.0  # seconds: a hang guard, far beyond any timeout here; never a speed figure
# How a send fails fast when the broker is gone: the sink saw the connection end, or paho
# refused the publish at once. Never "Operation timed out", the publish timeout.
FAST_FAILURE = r"connection lost|not connected|Could not publish"


def alert(target: str = "T", name: str = "A", **labels: str) -> AlertEvent:
    return AlertEvent(
        alertname=name, target=target, severity=Severity.CRITICAL, status=Status.FIRING,
        starts_at=STARTS, ends_at=None, summary=f"{name} on {target}", labels=labels,
        event_at=STARTS,
    )  # fmt: skip


def settings_for(broker: Mosquitto, **options: Any) -> MqttSettings:
    # Short backoff so a restarted broker is found again within a fraction of a second.
    fast = {"reconnect_min": 0.05, "reconnect_max": 0.3, "connect_timeout": 2}
    return MqttSettings.model_validate(
        {"host": broker.host, "port": broker.port, **fast, **options}
    )


async def eventually(condition: Callable[[], T], *, timeout: float = 5.0, what: str = "") -> T:
    deadline = time.monotonic() + timeout
    while not (value := condition()):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what or condition}")
        await asyncio.sleep(0.02)
    return value


async def retained_now(broker: Mosquitto, topic: str = "netmon/#") -> dict[str, str]:
    """What a subscriber connecting now is replayed (off the loop: the sink keeps running)."""
    return await asyncio.to_thread(retained_snapshot, broker, topic)


async def retained_until(
    broker: Mosquitto, topic: str, condition: Callable[[dict[str, str]], bool], timeout: float = 5
) -> dict[str, str]:
    deadline = time.monotonic() + timeout
    while not condition(state := await retained_now(broker, topic)):
        if time.monotonic() > deadline:
            raise AssertionError(f"retained {topic} never as expected; last seen: {state}")
    return state


SinkFactory = Callable[..., Awaitable[MqttSink]]


@pytest.fixture
async def make_sink() -> AsyncIterator[SinkFactory]:
    sinks: list[MqttSink] = []

    async def make(
        settings: MqttSettings,
        *,
        instance: str = "test",
        active: Callable[[], Sequence[AlertEvent]] = list,
    ) -> MqttSink:
        sink = MqttSink(settings, instance=instance, active=active)
        await sink.start()
        sinks.append(sink)
        return sink

    yield make
    for sink in sinks:
        await sink.close()


async def connected(sink: MqttSink, timeout: float = 5.0) -> None:
    await eventually(lambda: sink.connected, timeout=timeout, what="the sink to connect")


async def test_alert_fires_and_resolves_on_the_broker(
    mosquitto: Mosquitto, mqtt_recorder: Callable[..., MqttRecorder], make_sink: SinkFactory
) -> None:
    events = mqtt_recorder(mosquitto, "netmon/events/alerts")
    sink = await make_sink(settings_for(mosquitto))
    await connected(sink)
    firing = alert()

    await sink.send(firing)

    seen = await events.until(lambda m: True)
    assert json.loads(seen.payload) == {**firing.to_json(), "instance": "test"}
    # A subscriber that connects later (a dashboard opened now) still gets the alert, but not
    # the transition: it would be replayed as news.
    later = await retained_now(mosquitto)
    assert json.loads(later["netmon/alerts/T/A"])["status"] == "firing"
    assert "netmon/events/alerts" not in later
    assert later["netmon/service/test"] == "online"

    await sink.send(firing.resolved(at=STARTS + 60))

    resolved = await events.until(lambda m: json.loads(m.payload)["status"] == "resolved")
    assert json.loads(resolved.payload)["ends_at"] == "2026-01-01T00:01:00.000+00:00"
    later = await retained_now(mosquitto)
    assert "netmon/alerts/T/A" not in later

    await sink.close()

    assert (await retained_now(mosquitto))["netmon/service/test"] == "offline"
    await asyncio.sleep(0)  # let aiomqtt's own socket callbacks run out
    left = [t for t in asyncio.all_tasks() if t is not asyncio.current_task() and not t.done()]
    assert left == []


async def test_alert_that_cannot_be_a_topic_is_rejected(
    mosquitto: Mosquitto, mqtt_recorder: Callable[..., MqttRecorder], make_sink: SinkFactory
) -> None:
    sink = await make_sink(settings_for(mosquitto))
    await connected(sink)
    events = mqtt_recorder(mosquitto, "netmon/#")

    with pytest.raises(SinkRejected):  # retrying would block the queue behind it for ever
        await sink.send(alert(name="Ping loss > 5%/min"))

    await sink.send(alert())  # the queue goes on
    delivered = await asyncio.to_thread(events.quiet)
    assert {m.topic for m in delivered if not m.retain} == {
        "netmon/events/alerts",
        "netmon/alerts/T/A",
    }


async def test_start_does_not_wait_for_the_broker(
    mosquitto: Mosquitto, make_sink: SinkFactory
) -> None:
    mosquitto.stop()
    # start() returns with the broker still down (it would wait for ever otherwise; the guard
    # only catches that hang), and a send then is refused at once, not queued behind a connect.
    async with asyncio.timeout(HANG):
        sink = await make_sink(settings_for(mosquitto))

    with pytest.raises(SinkUnavailable, match="not connected"):
        await sink.send(alert())

    mosquitto.start()
    await connected(sink)
    await sink.send(alert())
    assert "netmon/alerts/T/A" in await retained_now(mosquitto)


async def test_broker_restart(
    mosquitto: Mosquitto, make_sink: SinkFactory, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="netmon.alerting.sinks.mqtt")
    firing = alert("ep-001", "EndpointDown")
    sink = await make_sink(settings_for(mosquitto), active=lambda: [firing])
    for n in range(3):
        sink.publish_status(f"ep-00{n}", {"target": f"ep-00{n}", "state": "up", "rtt_ms": 1.5})
    await connected(sink)
    await retained_until(mosquitto, "netmon/status/#", lambda state: len(state) == 3)

    mosquitto.stop()
    # A dead broker must fail fast, not hang: the send fails because the connection is gone,
    # not by waiting out its 2 s publish timeout ("Operation timed out").
    async with asyncio.timeout(HANG):
        with pytest.raises(SinkUnavailable, match=FAST_FAILURE):
            await sink.send(alert("ep-002", "EndpointDown"))
    await eventually(lambda: not sink.connected, timeout=2)
    # Known to be down now: refused without trying the broker at all.
    async with asyncio.timeout(HANG):
        with pytest.raises(SinkUnavailable, match="not connected"):
            await sink.send(alert("ep-002", "EndpointDown"))
    # A change while the broker is away is what it gets once it is back.
    sink.publish_status("ep-000", {"target": "ep-000", "state": "down", "rtt_ms": None})

    mosquitto.start()  # same port, empty: no persistence

    await connected(sink, timeout=3)
    await sink.send(alert("ep-002", "EndpointDown"))
    state = await retained_now(mosquitto)
    assert state["netmon/service/test"] == "online"
    assert json.loads(state["netmon/alerts/ep-001/EndpointDown"]) == {
        **firing.to_json(),
        "instance": "test",
    }
    assert "netmon/alerts/ep-002/EndpointDown" in state
    statuses = {k: json.loads(v)["state"] for k, v in state.items() if "/status/" in k}
    assert statuses == {
        "netmon/status/ep-000": "down",
        "netmon/status/ep-001": "up",
        "netmon/status/ep-002": "up",
    }
    messages = [r.getMessage() for r in caplog.records if r.getMessage().startswith("MQTT broker")]
    assert messages == ["MQTT broker connected", "MQTT broker unreachable", "MQTT broker connected"]


async def test_reconnect_reconciles_retained_alerts(
    mosquitto: Mosquitto, make_sink: SinkFactory
) -> None:
    # What a previous run left behind: an alert that resolved while netmon was not connected,
    # and an old version of one that still fires.
    mosquitto.publish("netmon/alerts/ep-009/EndpointDown", '{"status": "firing"}', retain=True)
    mosquitto.publish("netmon/alerts/T/A", '{"summary": "old text"}', retain=True)
    still = alert()
    per_port = alert("sw-1", "LinkDown", ifname="ge-0/0/1")
    sink = await make_sink(settings_for(mosquitto), active=lambda: [still, per_port])

    await connected(sink)

    state = await retained_now(mosquitto, "netmon/alerts/#")
    per_port_topic = f"netmon/alerts/sw-1/LinkDown~{per_port.fingerprint}"
    assert state.keys() == {"netmon/alerts/T/A", per_port_topic}
    assert json.loads(state["netmon/alerts/T/A"]) == {**still.to_json(), "instance": "test"}


async def test_netmons_sharing_a_broker_never_erase_each_others_alerts(
    mosquitto: Mosquitto, make_sink: SinkFactory
) -> None:
    # Two shards (or an HA pair, or a test instance) on one broker and prefix: each one's
    # reconnect reconciles only the retained alerts it published itself.
    north = alert("ep-north", "EndpointDown")
    south = alert("ep-south", "EndpointDown")
    north_sink = await make_sink(settings_for(mosquitto), instance="north", active=lambda: [north])
    await connected(north_sink)
    await north_sink.send(north)
    south_sink = await make_sink(settings_for(mosquitto), instance="south", active=lambda: [south])
    await connected(south_sink)
    await south_sink.send(south)
    await north_sink.close()  # north restarts (a new connection reconciles again)
    north_again = await make_sink(settings_for(mosquitto), instance="north", active=list)
    await connected(north_again)  # north's alert resolved meanwhile; south's still fires

    state = await retained_now(mosquitto, "netmon/alerts/#")
    assert state.keys() == {"netmon/alerts/ep-south/EndpointDown"}
    assert json.loads(state["netmon/alerts/ep-south/EndpointDown"])["instance"] == "south"


async def test_the_status_of_a_target_removed_from_the_inventory_is_cleared(
    mosquitto: Mosquitto, make_sink: SinkFactory
) -> None:
    sink = await make_sink(settings_for(mosquitto))
    await connected(sink)
    for target in ("ep-kept", "ep-gone"):
        sink.publish_status(target, {"target": target, "state": "up", "rtt_ms": 1.0})
    await retained_until(mosquitto, "netmon/status/#", lambda s: len(s) == 2)
    sink.forget_statuses({"ep-kept"})
    state = await retained_until(mosquitto, "netmon/status/#", lambda s: len(s) == 1)
    assert state.keys() == {"netmon/status/ep-kept"}


async def test_status_of_215_targets(
    mosquitto: Mosquitto, mqtt_recorder: Callable[..., MqttRecorder], make_sink: SinkFactory
) -> None:
    sink = await make_sink(settings_for(mosquitto))
    await connected(sink)
    watcher = mqtt_recorder(mosquitto, "netmon/status/#")
    targets = [f"ep-{n:03}" for n in range(215)]

    for target in targets:  # a burst: every endpoint changes at once...
        sink.publish_status(target, {"target": target, "state": "down", "rtt_ms": None})
    for n, target in enumerate(targets):  # ...and again before anything was sent
        sink.publish_status(target, {"target": target, "state": "up", "rtt_ms": float(n)})

    # How long the burst takes to reach the broker is a bench figure (bench/service_bench.py),
    # not a bound here.
    state = await retained_until(mosquitto, "netmon/status/#", lambda s: len(s) == 215, HANG)
    assert {json.loads(v)["rtt_ms"] for v in state.values()} == {float(n) for n in range(215)}
    assert {json.loads(v)["state"] for v in state.values()} == {"up"}
    # Latest wins: the superseded "down" never went out.
    sent = await asyncio.to_thread(watcher.quiet)
    assert len(sent) == 215


async def test_username_and_password(
    mosquitto_factory: Callable[..., Mosquitto],
    mqtt_recorder: Callable[..., MqttRecorder],
    make_sink: SinkFactory,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    caplog.set_level(logging.DEBUG)
    broker = mosquitto_factory(users={"netmon": "Right-horse-battery-7"})
    events = mqtt_recorder(broker, "netmon/events/alerts")
    monkeypatch.setenv("NETMON_MQTT_PASSWORD", "Right-horse-battery-7")
    good = await make_sink(
        settings_for(broker, username="netmon", password={"env": "NETMON_MQTT_PASSWORD"}),
        instance="good",
    )
    wrong = settings_for(broker, username="netmon", password="Wrong-staple-42")  # noqa: S106
    bad = await make_sink(wrong, instance="bad")

    await connected(good)
    await good.send(alert())
    await events.until(lambda m: True)

    # Several refused attempts, one log line: an outage must not flood the log.
    await eventually(lambda: broker.log_text().count("not authorised") >= 3)
    assert not bad.connected
    with pytest.raises(SinkUnavailable):
        await bad.send(alert())
    refused = [r for r in caplog.records if r.getMessage() == "MQTT broker unreachable"]
    assert len(refused) == 1
    logged = "\n".join(f"{r.getMessage()} {r.__dict__}" for r in caplog.records)
    assert "Wrong-staple-42" not in logged
    assert "Right-horse-battery-7" not in logged
    assert "Wrong-staple-42" not in repr(wrong) + wrong.model_dump_json()


async def test_tls(
    mosquitto_factory: Callable[..., Mosquitto],
    mqtt_recorder: Callable[..., MqttRecorder],
    make_sink: SinkFactory,
    caplog: pytest.LogCaptureFixture,
    tmp_path: Path,
) -> None:
    broker = mosquitto_factory(tls=True)
    events = mqtt_recorder(broker, "netmon/events/alerts")
    sink = await make_sink(settings_for(broker, tls=True, ca_file=broker.ca_file))
    stranger = CertAuthority.create(tmp_path, "some other CA")
    unverified = await make_sink(
        settings_for(broker, tls=True, ca_file=stranger.cert_file), instance="unverified"
    )

    await connected(sink)
    await sink.send(alert())
    assert json.loads((await events.until(lambda m: True)).payload)["alertname"] == "A"

    refused = await eventually(
        lambda: [r for r in caplog.records if r.getMessage() == "MQTT broker unreachable"]
    )
    assert "certificate verify failed" in refused[0].__dict__["reason"]
    assert not unverified.connected


async def test_last_will_when_the_process_dies(
    mosquitto: Mosquitto, mqtt_recorder: Callable[..., MqttRecorder]
) -> None:
    script = (
        "import asyncio, sys\n"
        "from netmon.alerting.sinks.mqtt import MqttSink\n"
        "from netmon.config.sinks import MqttSettings\n"
        "async def main():\n"
        "    settings = MqttSettings(port=int(sys.argv[1]), keepalive=5)\n"
        "    sink = MqttSink(settings, instance='doomed', active=list)\n"
        "    await sink.start()\n"
        "    while not sink.connected:\n"
        "        await asyncio.sleep(0.02)\n"
        "    print('connected', flush=True)\n"
        "    await asyncio.sleep(60)\n"
        "asyncio.run(main())\n"
    )
    child = subprocess.Popen(  # noqa: ASYNC220 - a child to SIGKILL, not I/O to await
        [sys.executable, "-c", script, str(mosquitto.port)],
        stdout=subprocess.PIPE, text=True, cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)},
    )  # fmt: skip
    try:
        assert child.stdout is not None
        line = await asyncio.wait_for(asyncio.to_thread(child.stdout.readline), timeout=15)
        assert line.strip() == "connected"
        service = mqtt_recorder(mosquitto, "netmon/service/doomed")
        await service.until(lambda m: m.payload == "online")

        child.kill()  # no DISCONNECT, no close(): only the broker can tell
        child.wait()

        await service.until(lambda m: m.payload == "offline", timeout=10)
        assert (await retained_now(mosquitto))["netmon/service/doomed"] == "offline"
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
        if child.stdout is not None:
            child.stdout.close()


@pytest.mark.parametrize(
    ("config", "field", "message"),
    [
        ({"port": 0}, "port", "Input should be greater than or equal to 1"),
        ({"prefix": "netmon/#"}, "prefix", "no +, # or empty level"),
        ({"prefix": "/netmon"}, "prefix", "no +, # or empty level"),
        ({"password": "secret"}, "password", "needs a username"),
        ({"ca_file": __file__}, "ca_file", "needs tls: true"),
        ({"tls_insecure": True}, "tls_insecure", "needs tls: true"),
        ({"tls": True, "key_file": __file__}, "key_file", "needs cert_file"),
        ({"tls": True, "ca_file": "/no/ca.pem"}, "ca_file", "Path does not point to a file"),
        ({"keepalive": "1500ms"}, "keepalive", "must be whole seconds from 1 to 65535"),
        ({"reconnect_min": 5, "reconnect_max": 1}, "reconnect_max", "less than reconnect_min"),
        ({"connect_timeout": "soon"}, "connect_timeout", "not a duration: 'soon'"),
        ({"password": {"env": "NETMON_NO_SUCH_VAR"}, "username": "u"}, "password",
         "environment variable NETMON_NO_SUCH_VAR is not set"),
        ({"hots": "broker"}, "hots", "Extra inputs are not permitted"),
    ],
)  # fmt: skip
def test_settings_errors_name_the_field(config: dict[str, Any], field: str, message: str) -> None:
    with pytest.raises(ValidationError) as caught:
        MqttSettings.model_validate(config)
    [error] = caught.value.errors()
    assert error["loc"] == (field,)
    assert message in error["msg"]


def test_settings_defaults_and_durations() -> None:
    settings = MqttSettings.model_validate({"reconnect_max": "2m", "keepalive": "1m"})
    assert (settings.host, settings.port, settings.prefix, settings.tls) == (
        "127.0.0.1", 1883, "netmon", False,
    )  # fmt: skip
    assert (settings.reconnect_min, settings.reconnect_max, settings.keepalive) == (0.5, 120, 60)
    assert settings.connect_timeout == 5
    assert MqttSettings(tls=True).port == 1883  # 8883 only when asked for
    # Alerts are news within seconds of a broker coming back, however long it was away.
    assert MqttSettings().reconnect_max == 5


async def test_an_ha_pairs_replicas_keep_their_own_trees_and_never_clear_each_other(
    mosquitto: Mosquitto, make_sink: SinkFactory
) -> None:
    # Two replicas watch the same target from two vantage points: with `per_instance`, each
    # publishes under netmon/{instance}/, and a consumer merges them (README, "HA pair").
    down = alert("ep-1", "EndpointDown")
    settings = settings_for(mosquitto, per_instance=True)
    east = await make_sink(settings, instance="east", active=lambda: [down])
    west = await make_sink(settings, instance="west", active=lambda: [down])
    await connected(east)
    await connected(west)
    await east.send(down)
    await west.send(down)
    east.publish_status("ep-1", {"state": "down"})
    west.publish_status("ep-1", {"state": "down"})
    both = await retained_until(
        mosquitto, "netmon/#", lambda state: len([t for t in state if "/alerts/" in t]) == 2
    )
    assert {t for t in both if "/alerts/" in t} == {
        "netmon/east/alerts/ep-1/EndpointDown",
        "netmon/west/alerts/ep-1/EndpointDown",
    }
    # East sees the target answer again; west still cannot reach it.
    await east.send(down.resolved(at=STARTS + 60))
    east.publish_status("ep-1", {"state": "up"})
    state = await retained_until(
        mosquitto,
        "netmon/#",
        lambda state: (
            "netmon/east/alerts/ep-1/EndpointDown" not in state
            and json.loads(state.get("netmon/east/status/ep-1", "{}")).get("state") == "up"
        ),
    )
    assert json.loads(state["netmon/west/alerts/ep-1/EndpointDown"])["status"] == "firing"
    assert json.loads(state["netmon/west/status/ep-1"])["state"] == "down"
    assert state["netmon/service/east"] == state["netmon/service/west"] == "online"


async def test_a_shards_alerts_say_which_shard_raised_them(
    mosquitto: Mosquitto, make_sink: SinkFactory
) -> None:
    down = alert("ep-1", "EndpointDown")
    sink = MqttSink(settings_for(mosquitto), instance="north", active=lambda: [down], shard=2)
    await sink.start()
    try:
        await connected(sink)
        await sink.send(down)
        state = await retained_until(
            mosquitto, "netmon/alerts/#", lambda state: "netmon/alerts/ep-1/EndpointDown" in state
        )
        payload = json.loads(state["netmon/alerts/ep-1/EndpointDown"])
        assert (payload["instance"], payload["shard"]) == ("north", 2)
    finally:
        await sink.close()

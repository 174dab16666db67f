"""`make outage`: issue 14's outages against real programs, goal by goal.

The goals, as the issue states them: broker down 60 s with 3 faults raised and 1 cleared
meanwhile → every event delivered once, in order; Alertmanager down likewise; SIGKILL during a
burst of transitions → after restart no duplicate firing and nothing lost; disk full for the
state database → a critical self-alert, nothing announced that was not stored, recovery when
space returns.

How. Endpoints live in one network namespace of the lab's (`netmon_lab.netns.EndpointNetwork`,
one responder process): an endpoint "goes down" when the responder stops answering it. Each
scenario runs its own `netmon run` (default settings, its own alert database and MQTT prefix)
against real peers on ephemeral loopback ports: mosquitto, prometheus-alertmanager, Prometheus,
and webhook receivers in this process. The far sides record what they receive with its arrival
time, and `bench.outage_tally` counts it against the transitions each endpoint must go through.

1. Broker and Alertmanager down (`--broker-down`, 60 s): both are stopped together; meanwhile
   3 endpoints go down and 1 of them comes back (a: firing, resolved; b, c: firing), and a
   fourth fires, resolves and fires again (d), the sequence issue 14's defect 5 was about. Then
   both come back on the same ports. MQTT: a subscriber with a persistent session (QoS 1, the
   broker persists sessions) records `{prefix}/events/alerts`; every transition must arrive
   exactly once by event_id and in per-alert order, and the retained `alerts/` topics must be
   b, c and d. Alertmanager: its API must end with b, c and d active and a gone, d as exactly
   one alert, never missing once it appeared again (polled 4 times a second) and never
   notified resolved (its webhook receiver here records every notification).
2. SIGKILL during a burst (`--burst`, 24 endpoints): all go down at once, netmon is killed
   with SIGKILL once a third of the firings reached the MQTT subscriber, then restarted; once
   all are delivered they all come back and netmon is killed again a third of the way through
   the resolves, and restarted. MQTT and a webhook must each end with one firing and one
   resolve per endpoint: 0 duplicates by event_id, 0 lost; raw re-sends are reported (a kill
   between the far side's acknowledgement and the outbox's is a re-send, by design).
3. Disk full (`--disk-full`, 160 s, root): the alert database on a 4 MiB tmpfs, filled while
   netmon runs, and 3 endpoints go down. Nothing may be announced while the transitions are
   not stored; `netmon_alert_transitions_unstored` must show them, and a real Prometheus with
   netmon's own rules (deploy/prometheus/rules/netmon-alerts.yml) must raise the critical
   NetmonAlertsNotStored (`for: 2m`, its group evaluated every 30 s: due within 155 s; with a
   shorter `--disk-full` it is only pending).
   Then the filler is removed: time until stored, until delivered, until the self-alert clears.

Output: one table per scenario (figure | goal | measured | met/MISS) and one of the events
per sink; `--report FILE` writes the same text, and bench/results/outage-<UTC>.json the data.
Exit 0 whatever the verdicts (it is a report), 1 when the harness fails, 2 without root. Not
part of `make test` nor `make bench`; ~5 minutes with the defaults.

    make outage
    make outage ARGS="--broker-down 10 --burst 12 --disk-full 15"   # a quick self-check
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import aiomqtt
import yaml
from aiohttp import web
from prometheus_client.parser import text_string_to_metric_families
from rich.console import Console
from rich.table import Table

from bench.netmon_run import AlertReceiver, HarnessError, NetmonRun, write_config
from bench.outage_tally import Received, Tally, tally
from bench.peers import free_port
from netmon_lab import netns
from netmon_lab.netns import EndpointNetwork
from netmon_lab.responder import Impairment
from tests.alertmanager_peer import Alertmanager
from tests.mqtt_peer import Mosquitto, retained
from tests.peers import Prometheus

console = Console(record=True, width=150)

RULES = Path(__file__).resolve().parent.parent / "deploy/prometheus/rules/netmon-alerts.yml"
UP = Impairment()
DOWN = Impairment(loss=1.0)
ALERT = "EndpointDown"
# How long each wait may take before the harness gives up (a goal missed, not a hang).
START_TIMEOUT = 60.0
DECIDE_TIMEOUT = 30.0
DELIVERY_TIMEOUT = 90.0
SELF_ALERT = "NetmonAlertsNotStored"
SETTLE = 10.0  # watched after everything arrived, for a late duplicate or a false resolve


@dataclass
class Goal:
    figure: str
    goal: str
    measured: str
    met: bool | None  # None: a figure without a goal


@dataclass
class Scenario:
    title: str
    goals: list[Goal] = field(default_factory=list)
    sinks: dict[str, Tally] = field(default_factory=dict)
    delivery: dict[str, str] = field(default_factory=dict)  # sink → outage end → delivered
    figures: dict[str, Any] = field(default_factory=dict)

    def goal(self, figure: str, goal: str, measured: str, met: bool | None) -> None:
        self.goals.append(Goal(figure, goal, measured, met))


def _s(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds:.1f} s"


# --- the lab ---------------------------------------------------------------------------------


class Lab:
    """The endpoints' namespace; `down` says which stop answering."""

    def __init__(self, network: EndpointNetwork) -> None:
        self.network = network
        self.addresses = network.addresses

    async def down(self, targets: set[str]) -> None:
        await self.network.impair(
            {address: DOWN if t in targets else UP for t, address in self.addresses.items()}
        )


# --- the far sides -----------------------------------------------------------------------------


class EventSubscriber:
    """`topic` at QoS 1 with a persistent session, reconnecting across broker outages: what
    was published while it was away is queued for it by the broker."""

    def __init__(self, port: int, topic: str) -> None:
        self._port = port
        self.topic = topic
        self.received: list[Received] = []
        self._subscribed = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._identifier = f"outage-bench-{os.getpid()}-{topic.split('/')[0]}"

    async def __aenter__(self) -> EventSubscriber:
        self._task = asyncio.create_task(self._run(), name=f"subscriber-{self.topic}")
        try:
            async with asyncio.timeout(10):
                await self._subscribed.wait()
        except TimeoutError:
            await self.__aexit__()
            raise HarnessError(f"could not subscribe to {self.topic}") from None
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def _run(self) -> None:
        while True:
            try:
                async with aiomqtt.Client(
                    "127.0.0.1", self._port, identifier=self._identifier,
                    clean_session=False, timeout=5,
                ) as client:  # fmt: skip
                    await client.subscribe(self.topic, qos=1)
                    self._subscribed.set()
                    async for message in client.messages:
                        if isinstance(message.payload, bytes):
                            self.received.append((time.time(), json.loads(message.payload)))
            except aiomqtt.MqttError:
                await asyncio.sleep(0.2)  # the broker is down: back as soon as it is

    def count(self, status: str) -> int:
        return distinct(self.received, status)


def distinct(received: Sequence[Received], status: str) -> int:
    """Transitions of `status` received, each counted once however often it came."""
    return len({a.get("event_id") for _, a in received if a.get("status") == status})


class NotificationReceiver:
    """Alertmanager's webhook receiver: every notification, with its arrival time."""

    def __init__(self) -> None:
        self.notifications: list[tuple[float, dict[str, Any]]] = []
        self.url = ""
        self._runner: web.AppRunner | None = None

    async def __aenter__(self) -> NotificationReceiver:
        app = web.Application()
        app.router.add_post("/am", self._receive)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0).start()
        self.url = f"http://127.0.0.1:{self._runner.addresses[0][1]}/am"
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _receive(self, request: web.Request) -> web.Response:
        self.notifications.append((time.time(), await request.json()))
        return web.Response(text="ok")

    def resolved(self, target: str, since: float) -> int:
        return sum(
            1
            for at, body in self.notifications
            if at >= since
            for alert in body.get("alerts", [])
            if alert["labels"].get("target") == target and alert.get("status") == "resolved"
        )


def am_config(webhook: str) -> dict[str, Any]:
    # Every alert its own group, flushed at once: a notification tells of each change.
    return {
        "route": {
            "receiver": "bench", "group_by": ["..."], "group_wait": "0s",
            "group_interval": "1s", "repeat_interval": "1h",
        },
        "receivers": [
            {"name": "bench", "webhook_configs": [{"url": webhook, "send_resolved": True}]}
        ],
    }  # fmt: skip


def persistent_broker() -> Mosquitto:
    """mosquitto keeping sessions across a restart, so the subscriber misses nothing."""
    broker = Mosquitto()
    broker.stop()
    store = broker.workdir / "store"
    store.mkdir()
    shutil.chown(store, "mosquitto")  # as root it drops to user mosquitto
    with broker.config.open("a") as config:
        config.write(f"persistence true\npersistence_location {store}/\n")
    broker.start()
    return broker


# --- netmon --------------------------------------------------------------------------------


def config(
    workdir: Path,
    *,
    instance: str,
    port: int,
    addresses: Mapping[str, str],
    database: Path,
    alerting: Mapping[str, Any],
) -> Path:
    """The default config but for the inventory, the listen address and the sinks."""
    workdir.mkdir(parents=True, exist_ok=True)
    return write_config(
        workdir,
        {
            "instance": instance,
            "http": {"listen": f"127.0.0.1:{port}"},
            "alerting": {"enabled": True, "database": str(database), **alerting},
            "targets": [
                {"id": target, "address": address, "kind": "endpoint"}
                for target, address in addresses.items()
            ],
        },
    )


def metric(text: str, name: str, **labels: str) -> float:
    """The sum of the samples of `name` whose labels include `labels` (0 when none)."""
    total = 0.0
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                total += sample.value
    return total


class Netmon(NetmonRun):
    async def text(self, session: aiohttp.ClientSession, path: str) -> str:
        self.check_running()
        status, body = await self.get(session, path)
        if status != 200:
            raise HarnessError(f"netmon answered {status} to {path}")
        return body

    async def firing(self, session: aiohttp.ClientSession) -> set[str]:
        alerts = json.loads(await self.text(session, "/api/v1/alerts"))["alerts"]
        return {a["target"] for a in alerts if a["alertname"] == ALERT and a["state"] == "firing"}

    async def outbox(self, session: aiohttp.ClientSession) -> float:
        return metric(await self.text(session, "/metrics"), "netmon_alert_outbox_events")

    async def until(
        self,
        session: aiohttp.ClientSession,
        condition: Callable[[], Any],
        what: str,
        timeout: float,
        interval: float = 0.2,
    ) -> float:
        """Poll the (async) `condition` until true; the wall time it became so."""
        deadline = time.monotonic() + timeout
        while True:
            self.check_running()
            with contextlib.suppress(aiohttp.ClientError, TimeoutError):
                if await condition():
                    return time.time()
            if time.monotonic() > deadline:
                raise HarnessError(f"{what}: not within {timeout:g} s; netmon's log: {self.log}")
            await asyncio.sleep(interval)

    async def ready(self, session: aiohttp.ClientSession, targets: Sequence[str]) -> None:
        async def all_up() -> bool:
            listed = json.loads(await self.text(session, "/api/v1/targets"))["targets"]
            states = {t["id"]: t["state"] for t in listed}
            return all(states.get(t) == "up" for t in targets)

        await self.until(session, all_up, "every endpoint up", START_TIMEOUT, 0.5)

    async def decided(
        self, session: aiohttp.ClientSession, firing: set[str], timeout: float = DECIDE_TIMEOUT
    ) -> float:
        async def exactly() -> bool:
            return await self.firing(session) == firing

        return await self.until(session, exactly, f"firing exactly {sorted(firing)}", timeout)


async def drained(netmon: Netmon, session: aiohttp.ClientSession) -> None:
    """netmon's outbox empty for two readings in a row (its gauge is counted once a second)."""

    async def empty_twice() -> bool:
        if await netmon.outbox(session):
            return False
        await asyncio.sleep(1.2)
        return not await netmon.outbox(session)

    await netmon.until(session, empty_twice, "netmon's outbox empty", DELIVERY_TIMEOUT)


async def delivered(
    netmon: Netmon, session: aiohttp.ClientSession, received: Callable[[], Sequence[Received]],
    expected: Mapping[str, Sequence[str]], what: str,
) -> float:  # fmt: skip
    """Wait until every expected transition arrived; the time the last one did."""

    async def complete() -> bool:
        return tally(received(), expected).lost == 0

    await netmon.until(session, complete, what, DELIVERY_TIMEOUT)
    last = tally(received(), expected).last_arrival
    assert last is not None
    return last


# --- 1. broker and Alertmanager down -----------------------------------------------------------


async def am_alerts(session: aiohttp.ClientSession, am: Alertmanager) -> list[dict[str, Any]]:
    params = {"filter": f'alertname="{ALERT}"', "active": "true"}
    timeout = aiohttp.ClientTimeout(total=5)
    async with session.get(am.url + "/api/v2/alerts", params=params, timeout=timeout) as answer:
        found: list[dict[str, Any]] = await answer.json()
    return [a for a in found if a["status"]["state"] != "resolved"]


async def broker_and_am_down(
    args: argparse.Namespace, lab: Lab, workdir: Path, session: aiohttp.ClientSession
) -> Scenario:
    a, b, c, d = "out-a", "out-b", "out-c", "out-d"
    scenario = Scenario(
        f"1-2. MQTT broker and Alertmanager down {args.broker_down:g} s: a, b, c raised, a "
        "cleared; d fires, resolves, fires"
    )
    expected = {
        f"{ALERT}/{a}": ["firing", "resolved"],
        f"{ALERT}/{b}": ["firing"],
        f"{ALERT}/{c}": ["firing"],
        f"{ALERT}/{d}": ["firing", "resolved", "firing"],
    }
    broker = await asyncio.to_thread(persistent_broker)
    async with contextlib.AsyncExitStack() as stack:
        stack.callback(broker.cleanup)
        hook = await stack.enter_async_context(NotificationReceiver())
        am = await asyncio.to_thread(Alertmanager, workdir / "am", config=am_config(hook.url))
        stack.callback(am.stop)
        subscriber = await stack.enter_async_context(
            EventSubscriber(broker.port, "outage/events/alerts")
        )
        port = free_port()
        path = config(
            workdir / "broker", instance="outage-broker", port=port,
            addresses={t: lab.addresses[t] for t in (a, b, c, d)},
            database=workdir / "broker" / "alerts.sqlite",
            alerting={
                "mqtt": {"host": broker.host, "port": broker.port, "prefix": "outage"},
                "alertmanager": {"urls": [am.url]},
            },
        )  # fmt: skip
        netmon = await stack.enter_async_context(Netmon(path, workdir / "broker", port))
        await netmon.ready(session, [a, b, c, d])
        await asyncio.gather(asyncio.to_thread(broker.stop), asyncio.to_thread(am.stop))
        down_at = time.time()
        console.print(f"{time.strftime('%H:%M:%S')} broker and Alertmanager stopped")
        await lab.down({a, b, c, d})
        await netmon.decided(session, {a, b, c, d})
        await lab.down({b, c})
        await netmon.decided(session, {b, c})
        await lab.down({b, c, d})
        await netmon.decided(session, {b, c, d})
        faults_done = time.time() - down_at
        await asyncio.sleep(max(0.0, down_at + args.broker_down - time.time()))
        queued = await netmon.outbox(session)
        announced_while_down = len(subscriber.received)
        await asyncio.to_thread(broker.start)
        mqtt_back = time.time()
        await asyncio.to_thread(am.start)
        am_back = time.time()
        console.print(
            f"{time.strftime('%H:%M:%S')} both back after {mqtt_back - down_at:.1f} s "
            f"({queued:.0f} events queued in netmon's outbox)"
        )

        mqtt_last = await delivered(
            netmon, session, lambda: subscriber.received, expected, "every event on MQTT"
        )

        async def am_right() -> bool:
            active = {x["labels"]["target"] for x in await am_alerts(session, am)}
            return active == {b, c, d}

        am_done = await netmon.until(session, am_right, "Alertmanager showing b, c, d", 90)
        await drained(netmon, session)
        # Watched a while longer: a resolve of d's first incident arriving late would end the
        # live one (issue 14, defect 5); a late duplicate would show too.
        d_missing = d_count_max = 0
        watch_end = time.monotonic() + SETTLE
        while time.monotonic() < watch_end:
            ds = [x for x in await am_alerts(session, am) if x["labels"]["target"] == d]
            d_missing += not ds
            d_count_max = max(d_count_max, len(ds))
            await asyncio.sleep(0.25)
        final = sorted(x["labels"]["target"] for x in await am_alerts(session, am))
        kept = await asyncio.to_thread(retained, broker, "outage/alerts/#")
        d_resolved_notified = hook.resolved(d, am_back)

    mqtt = tally(subscriber.received, expected)
    scenario.sinks["mqtt"] = mqtt
    scenario.delivery["mqtt"] = _s(mqtt_last - mqtt_back)
    scenario.delivery["alertmanager"] = _s(am_done - am_back)
    scenario.figures = {
        "outage_s": mqtt_back - down_at, "faults_done_s": faults_done, "queued": queued,
        "am_final": final, "retained": sorted(kept), "d_missing_polls": d_missing,
        "d_resolved_notifications": d_resolved_notified,
    }  # fmt: skip
    scenario.goal(
        "outage: broker and Alertmanager stopped", f"{args.broker_down:g} s",
        f"{mqtt_back - down_at:.1f} s (faults raised and cleared in the first "
        f"{faults_done:.1f} s; {queued:.0f} events queued)", None,
    )  # fmt: skip
    scenario.goal("announced on MQTT while the broker was down", "0",
                  str(announced_while_down), announced_while_down == 0)  # fmt: skip
    scenario.goal(
        "MQTT: every transition, once by event_id, in per-alert order",
        f"{mqtt.expected} delivered, 0 dup, 0 out of order",
        f"{mqtt.delivered} delivered, {mqtt.duplicates_by_id} dup by event_id "
        f"({mqtt.duplicates_raw} raw), {mqtt.out_of_order} out of order",
        mqtt.lost == 0 and mqtt.duplicates_by_id == 0 and mqtt.out_of_order == 0,
    )
    scenario.goal("MQTT: broker back → last event delivered", "seconds",
                  scenario.delivery["mqtt"], None)  # fmt: skip
    want_retained = sorted(f"outage/alerts/{t}/{ALERT}" for t in (b, c, d))
    scenario.goal("MQTT: retained alerts/ topics", "b, c, d",
                  ", ".join(t.split("/")[2] for t in sorted(kept)) or "none",
                  sorted(kept) == want_retained)  # fmt: skip
    scenario.goal("Alertmanager: active after restore", "b, c, d (a resolved)",
                  ", ".join(final) or "none", final == [b, c, d])  # fmt: skip
    scenario.goal("Alertmanager back → its state right", "seconds",
                  scenario.delivery["alertmanager"], None)  # fmt: skip
    scenario.goal(
        "Alertmanager: d (fire, resolve, fire while down) live alerts",
        "exactly 1, no false resolve",
        f"at most {d_count_max}; missing in {d_missing} polls over {SETTLE:g} s; "
        f"{d_resolved_notified} resolved notifications",
        d_count_max == 1 and d_missing == 0 and d_resolved_notified == 0,
    )  # fmt: skip
    return scenario


# --- 2. SIGKILL during a burst -----------------------------------------------------------------


def at_kill(database: Path) -> dict[str, Any]:
    """What the killed netmon left in its database: stored firing alerts, queued events."""
    with contextlib.closing(sqlite3.connect(database)) as db:
        queued = dict(db.execute("SELECT queue, count(*) FROM outbox GROUP BY queue").fetchall())
        (stored,) = db.execute("SELECT count(*) FROM alerts").fetchone()
    return {"stored_firing": stored, "queued": queued}


async def kill_during_burst(
    args: argparse.Namespace, lab: Lab, workdir: Path, session: aiohttp.ClientSession
) -> Scenario:
    targets = [f"kill-{n:02d}" for n in range(1, args.burst + 1)]
    scenario = Scenario(
        f"3. SIGKILL during a burst: {args.burst} endpoints down at once, then back at once"
    )
    expected = {f"{ALERT}/{t}": ["firing", "resolved"] for t in targets}
    firing_only = {key: ["firing"] for key in expected}
    kill_after = max(1, args.burst // 3)
    base = workdir / "kill"
    database = base / "alerts.sqlite"
    broker = await asyncio.to_thread(persistent_broker)
    kills: list[dict[str, Any]] = []
    async with contextlib.AsyncExitStack() as stack:
        stack.callback(broker.cleanup)
        webhook = await stack.enter_async_context(AlertReceiver())
        subscriber = await stack.enter_async_context(
            EventSubscriber(broker.port, "kill/events/alerts")
        )
        port = free_port()
        path = config(
            base, instance="outage-kill", port=port,
            addresses={t: lab.addresses[t] for t in targets}, database=database,
            alerting={
                "mqtt": {"host": broker.host, "port": broker.port, "prefix": "kill"},
                "webhooks": [{"name": "bench", "url": webhook.url}],
            },
        )  # fmt: skip

        def hooked() -> list[Received]:
            return list(webhook.alerts)

        async def burst(down: set[str], status: str, run: int) -> tuple[Netmon, float]:
            """Make the change, SIGKILL netmon `kill_after` events into it, start it again."""
            logdir = base / f"run{run}"
            logdir.mkdir(exist_ok=True)
            before = subscriber.count(status)
            before_hook = distinct(hooked(), status)
            await lab.down(down)
            started = time.monotonic()
            while subscriber.count(status) - before < kill_after:
                current.check_running()
                if time.monotonic() - started > DECIDE_TIMEOUT:
                    raise HarnessError(f"no {status} events reached the subscriber")
                await asyncio.sleep(0.005)
            assert current.process is not None
            current.process.kill()
            await current.process.wait()
            left = await asyncio.to_thread(at_kill, database)
            kills.append({
                "during": status, "mqtt_delivered": subscriber.count(status) - before,
                "webhook_delivered": distinct(hooked(), status) - before_hook, **left,
            })  # fmt: skip
            console.print(f"{time.strftime('%H:%M:%S')} SIGKILL during the {status} burst: "
                          f"{kills[-1]}")  # fmt: skip
            restarted = time.time()
            return await stack.enter_async_context(Netmon(path, logdir, port)), restarted

        current = await stack.enter_async_context(Netmon(path, base, port))
        await current.ready(session, targets)
        restarts: dict[str, list[float]] = {"mqtt": [], "webhook": []}
        for down, status, want in ((set(targets), "firing", firing_only),
                                   (set(), "resolved", expected)):  # fmt: skip
            current, restarted = await burst(down, status, len(kills) + 1)
            for sink, received in (("mqtt", lambda: subscriber.received), ("webhook", hooked)):
                last = await delivered(current, session, received, want, f"{status}, {sink}")
                restarts[sink].append(last - restarted)
            await current.decided(session, down)
            await drained(current, session)
        await current.decided(session, set())
        await drained(current, session)
        await asyncio.sleep(SETTLE / 2)  # a late re-send would still be counted

    scenario.figures = {"kills": kills, "restart_to_delivered_s": restarts}
    for sink, got in (("mqtt", subscriber.received), ("webhook", hooked())):
        counted = scenario.sinks[sink] = tally(got, expected)
        scenario.delivery[sink] = " / ".join(_s(t) for t in restarts[sink]) + " (restart →)"
        scenario.goal(
            f"{sink}: {counted.expected} transitions over 2 kills", "0 dup by event_id, 0 lost",
            f"{counted.duplicates_by_id} dup by event_id, {counted.lost} lost "
            f"({counted.duplicates_raw} raw re-sends, {counted.out_of_order} out of order)",
            counted.duplicates_by_id == 0 and counted.lost == 0 and counted.out_of_order == 0,
        )  # fmt: skip
    for kill in kills:
        scenario.goal(
            f"at the SIGKILL during the {kill['during']} burst", "mid-burst",
            f"{kill['mqtt_delivered']} on MQTT, {kill['webhook_delivered']} by webhook; "
            f"{kill['stored_firing']} alerts stored firing, queued {kill['queued'] or 'none'}",
            None,
        )  # fmt: skip
    return scenario


# --- 3. disk full ------------------------------------------------------------------------------


def self_alert_due() -> float:
    """At most how long after the transitions are unstored the self-alert fires: the rule's
    `for` plus its group's evaluation interval (its group is evaluated every 30 s, not at
    Prometheus' global interval), plus a scrape or two."""
    groups = yaml.safe_load(RULES.read_text(encoding="utf-8"))["groups"]
    for group in groups:
        for rule in group["rules"]:
            if rule.get("alert") == SELF_ALERT:
                return seconds(rule["for"]) + seconds(group.get("interval", "1m")) + 5
    raise HarnessError(f"{SELF_ALERT} is not in {RULES}")


def seconds(duration: str) -> float:
    units = {"ms": 0.001, "s": 1, "m": 60, "h": 3600}
    for unit in sorted(units, key=len, reverse=True):
        if duration.endswith(unit):
            return float(duration[: -len(unit)]) * units[unit]
    raise HarnessError(f"a duration this campaign cannot read: {duration!r}")


def fill(directory: Path) -> int:
    """Write zeros until the file system is full; the bytes written."""
    written = 0
    with (directory / "filler").open("wb") as filler:
        try:
            while True:
                filler.write(b"\0" * 65536)
                filler.flush()
                written += 65536
        except OSError:
            pass
    return written


async def self_alert(
    session: aiohttp.ClientSession, prometheus: Prometheus
) -> tuple[str | None, float | None]:
    """NetmonAlertsNotStored in Prometheus: its state (pending, firing or None) and since when
    its condition holds by Prometheus' own account (activeAt, unix seconds)."""
    timeout = aiohttp.ClientTimeout(total=5)
    async with session.get(prometheus.url + "/api/v1/alerts", timeout=timeout) as answer:
        alerts = (await answer.json())["data"]["alerts"]
    ours = [a for a in alerts if a["labels"].get("alertname") == SELF_ALERT]
    if not ours:
        return None, None
    state = "firing" if any(a["state"] == "firing" for a in ours) else "pending"
    active = min(dt.datetime.fromisoformat(a["activeAt"]).timestamp() for a in ours)
    return state, active


async def disk_full(
    args: argparse.Namespace, lab: Lab, workdir: Path, session: aiohttp.ClientSession
) -> Scenario:
    targets = ["disk-a", "disk-b", "disk-c"]
    scenario = Scenario(
        f"4. Disk full under the alert database for {args.disk_full:g} s, 3 endpoints down"
    )
    expected = {f"{ALERT}/{t}": ["firing"] for t in targets}
    base = workdir / "disk"
    disk = base / "small-disk"
    disk.mkdir(parents=True)
    mounted = await asyncio.to_thread(
        subprocess.run,
        ["mount", "-t", "tmpfs", "-o", "size=4m,mode=0755", "tmpfs", str(disk)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    if mounted.returncode:
        raise HarnessError(f"cannot mount a tmpfs for the database: {mounted.stderr.strip()}")
    broker = await asyncio.to_thread(persistent_broker)
    async with contextlib.AsyncExitStack() as stack:
        stack.callback(subprocess.run, ["umount", "-l", str(disk)], check=False)
        stack.callback(broker.cleanup)
        webhook = await stack.enter_async_context(AlertReceiver())
        subscriber = await stack.enter_async_context(
            EventSubscriber(broker.port, "disk/events/alerts")
        )
        port = free_port()
        path = config(
            base, instance="outage-disk", port=port,
            addresses={t: lab.addresses[t] for t in targets}, database=disk / "alerts.sqlite",
            alerting={
                "mqtt": {"host": broker.host, "port": broker.port, "prefix": "disk"},
                "webhooks": [{"name": "bench", "url": webhook.url}],
            },
        )  # fmt: skip
        (base / "prometheus").mkdir()
        prometheus = await asyncio.to_thread(
            Prometheus, shutil.which("prometheus") or "prometheus", base / "prometheus",
            {"netmon": [f"127.0.0.1:{port}"]}, rule_files=[RULES],
        )  # fmt: skip
        stack.callback(prometheus.stop)
        netmon = await stack.enter_async_context(Netmon(path, base, port))
        await netmon.ready(session, targets)

        def announced() -> int:
            return len(subscriber.received) + len(webhook.alerts)

        async def unstored() -> float:
            text = await netmon.text(session, "/metrics")
            return metric(text, "netmon_alert_transitions_unstored")

        filled = await asyncio.to_thread(fill, disk)
        full_at = time.time()
        console.print(f"{time.strftime('%H:%M:%S')} disk full ({filled / 2**20:.1f} MiB filler)")
        await lab.down(set(targets))

        async def all_unstored() -> bool:
            return await unstored() == len(targets)

        decided_at = await netmon.until(session, all_unstored, "3 transitions unstored", 30)
        pending_at = firing_at = None
        most_unstored = 0.0
        announced_full = 0
        while time.time() < full_at + args.disk_full:
            state, active = await self_alert(session, prometheus)
            if state and pending_at is None:
                pending_at = active
            if state == "firing" and firing_at is None:
                firing_at = time.time()
            most_unstored = max(most_unstored, await unstored())
            announced_full = max(announced_full, announced())
            await asyncio.sleep(1.0)
        (disk / "filler").unlink()
        freed_at = time.time()
        console.print(f"{time.strftime('%H:%M:%S')} space back")

        async def none_unstored() -> bool:
            return await unstored() == 0

        stored_at = await netmon.until(session, none_unstored, "transitions stored", 60)
        mqtt_last = await delivered(netmon, session, lambda: subscriber.received, expected, "MQTT")
        hook_last = await delivered(netmon, session, lambda: list(webhook.alerts), expected,
                                    "webhook")  # fmt: skip

        async def self_alert_over() -> bool:
            return (await self_alert(session, prometheus))[0] is None

        cleared_at = await netmon.until(session, self_alert_over, "self-alert over", 60, 0.5)
        await drained(netmon, session)
        await asyncio.sleep(SETTLE / 2)
        text = await netmon.text(session, "/metrics")
        failures = metric(text, "netmon_alert_store_failures_total")
        log_errors = sum(
            "could not store an alert transition" in line
            for line in netmon.log.read_text(errors="replace").splitlines()
        )

    for sink, received in (("mqtt", subscriber.received), ("webhook", list(webhook.alerts))):
        scenario.sinks[sink] = tally(received, expected)
    scenario.delivery["mqtt"] = _s(mqtt_last - freed_at)
    scenario.delivery["webhook"] = _s(hook_last - freed_at)
    due = self_alert_due()
    awaited = args.disk_full >= due
    scenario.figures = {
        "filler_bytes": filled, "decided_s": decided_at - full_at,
        "self_alert_pending_s": pending_at and pending_at - decided_at,
        "self_alert_firing_s": firing_at and firing_at - decided_at,
        "stored_after_s": stored_at - freed_at, "self_alert_cleared_s": cleared_at - freed_at,
        "store_failures": failures, "log_errors": log_errors,
    }  # fmt: skip
    scenario.goal("announced while not stored", "0", str(announced_full), announced_full == 0)
    scenario.goal("netmon_alert_transitions_unstored while full", "3", f"{most_unstored:.0f}",
                  most_unstored == len(targets))  # fmt: skip
    self_goal = (
        f"firing (critical) within {due:.0f} s"
        if awaited
        else f"pending (firing is due within {due:.0f} s: not awaited)"
    )
    scenario.goal(
        f"{SELF_ALERT} in Prometheus (netmon's own rules)", self_goal,
        f"pending after {_s(pending_at and pending_at - decided_at)}, firing after "
        f"{_s(firing_at and firing_at - decided_at)}",
        firing_at is not None if awaited else pending_at is not None,
    )  # fmt: skip
    scenario.goal("store failures counted; ERROR log lines", "> 0; 1 per outage",
                  f"{failures:.0f}; {log_errors}", failures > 0 and log_errors == 1)  # fmt: skip
    scenario.goal("space back → every transition stored", "seconds",
                  _s(stored_at - freed_at), None)  # fmt: skip
    for sink, counted in scenario.sinks.items():
        scenario.goal(
            f"{sink}: the 3 firings after space returns", "3, once each",
            f"{counted.delivered}, {counted.duplicates_by_id} dup by event_id "
            f"({counted.duplicates_raw} raw), {scenario.delivery[sink]} after space returned",
            counted.lost == 0 and counted.duplicates_by_id == 0,
        )  # fmt: skip
    scenario.goal("space back → self-alert over", "seconds", _s(cleared_at - freed_at), None)
    return scenario


# --- the run -----------------------------------------------------------------------------------


async def campaign(args: argparse.Namespace, workdir: Path) -> list[Scenario]:
    names = (
        ["out-a", "out-b", "out-c", "out-d"]
        + [f"kill-{n:02d}" for n in range(1, args.burst + 1)]
        + ["disk-a", "disk-b", "disk-c"]
    )
    scenarios: list[Scenario] = []
    async with (
        EndpointNetwork(endpoints=dict.fromkeys(names, "lab"), slugs={"lab": "lab"}) as network,
        aiohttp.ClientSession() as session,
    ):
        lab = Lab(network)
        await lab.down(set())
        console.print(f"lab: {len(names)} endpoints in {network.namespace} ({network.block})")
        for run in (broker_and_am_down, kill_during_burst, disk_full):
            started = time.monotonic()
            scenarios.append(await run(args, lab, workdir, session))
            console.print(f"{scenarios[-1].title}: {time.monotonic() - started:.0f} s")
            await lab.down(set())
    return scenarios


def report(scenarios: Sequence[Scenario]) -> None:
    events = Table(title="Outages: alert events per sink (duplicates: raw / by event_id)")
    for column in ("scenario", "sink", "expected", "delivered", "dup raw", "dup by event_id",
                   "lost", "out of order", "outage end → delivered"):  # fmt: skip
        events.add_column(column)
    for scenario in scenarios:
        for sink, counted in scenario.sinks.items():
            events.add_row(
                scenario.title.split(".")[0], sink, str(counted.expected), str(counted.delivered),
                str(counted.duplicates_raw), str(counted.duplicates_by_id), str(counted.lost),
                str(counted.out_of_order), scenario.delivery.get(sink, "-"),
            )  # fmt: skip
    for scenario in scenarios:
        table = Table(title=scenario.title)
        for column in ("figure", "goal", "measured", ""):
            table.add_column(column)
        for goal in scenario.goals:
            verdict = "" if goal.met is None else ("met" if goal.met else "[red]MISS[/]")
            table.add_row(goal.figure, goal.goal, goal.measured, verdict)
        console.print(table)
        for counted in scenario.sinks.values():
            for line in counted.lost_detail + counted.order_detail:
                console.print(f"  [red]{line}[/]")
    console.print(events)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.outage",
                                     description=(__doc__ or "").splitlines()[0])  # fmt: skip
    parser.add_argument("--broker-down", type=float, default=60.0,
                        help="seconds the broker and Alertmanager are away")  # fmt: skip
    parser.add_argument("--burst", type=int, default=24, help="endpoints down at once")
    parser.add_argument("--disk-full", type=float, default=160.0,
                        help="seconds the database's disk stays full")  # fmt: skip
    parser.add_argument("--report", type=Path, help="also write the tables to this file")
    parser.add_argument("--keep", action="store_true", help="keep the run's directory")
    args = parser.parse_args(argv)
    if args.burst < 3:
        parser.error("--burst must be at least 3")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if os.geteuid() != 0:
        console.print("make outage needs root: the lab's namespace and the tmpfs")
        return 2
    reason = netns.unavailable_reason()
    if reason:
        console.print(f"the lab is unavailable: {reason}")
        return 2
    workdir = Path(tempfile.mkdtemp(prefix="netmon-outage-"))
    workdir.chmod(0o755)  # mosquitto and Alertmanager run as other users
    started = time.monotonic()
    try:
        scenarios = asyncio.run(campaign(args, workdir))
    except (HarnessError, netns.LabUnavailableError, OSError, subprocess.SubprocessError) as exc:
        console.print(f"[red]harness failed:[/] {exc}")
        return 1
    finally:
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    report(scenarios)
    console.print(f"the campaign took {(time.monotonic() - started) / 60:.1f} min")
    if args.report is not None:
        args.report.write_text(console.export_text(), encoding="utf-8")
    out = Path("bench/results")
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"outage-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}.json"
    data = [
        {"title": s.title, "goals": [g.__dict__ for g in s.goals], "delivery": s.delivery,
         "sinks": {k: v.as_dict() for k, v in s.sinks.items()}, "figures": s.figures}
        for s in scenarios
    ]  # fmt: skip
    path.write_text(json.dumps({"args": vars(args), "scenarios": data}, indent=2, default=str))
    console.print(f"written {path}" + (f"; run kept in {workdir}" if args.keep else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())

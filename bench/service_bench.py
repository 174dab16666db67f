"""Service benchmark: the speeds that `make test` checks only as outcomes.

1. Stop: `netmon run` (two loopback targets, an alert database, an MQTT sink to a Mosquitto the
   bench starts) gets SIGTERM once its targets are up; seconds until the process has exited,
   `--runs` times. README: SIGTERM / SIGINT stop netmon within two seconds. tests/test_service.py
   checks that it stops cleanly (exit 0, "netmon stopped", no traceback).
2. Statuses onto MQTT: 215 targets change at once, twice over (only the latest is sent), through
   netmon's MqttSink; seconds from the burst until a subscriber has the latest retained status
   of all 215. The same 215 retained QoS 1 messages from a plain aiomqtt client are the
   comparison. tests/test_mqtt_sink.py checks "latest wins" and that all 215 arrive.
3. Pages through the shipped Alertmanager routes (deploy/alertmanager.yml, its receivers pointed
   at a webhook of the bench): an EndpointDown (critical: group_wait 1s) and a
   DistrictUnreachable (group_wait 0s), each in a district of its own, sent by netmon's
   AlertmanagerSink; seconds from the send until the on-call receiver has it.
   tests/test_alertmanager_config.py checks the routing and the inhibition.

Run with `make bench` (no root needed). Figures depend on the machine and on what else runs on
it; compare them with the route's group_wait and with the plain client.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiomqtt
import yaml
from aiohttp import web
from rich.console import Console
from rich.table import Table

from bench import peers
from netmon.alerting.model import AlertEvent, Severity, Status
from netmon.alerting.sinks.alertmanager import AlertmanagerSink
from netmon.alerting.sinks.mqtt import MqttSink
from netmon.config.sinks import AlertmanagerSettings, MqttSettings
from tests.alertmanager_peer import Alertmanager
from tests.helpers import NetmonProcess, metric_value, wait_until, write_config

# Wide enough for the table when the output goes to a file or a pipe (80 columns then).
console = Console(width=max(Console().width, 110))
REPO = Path(__file__).resolve().parent.parent
STATUSES = 215


@dataclass
class Figures:
    samples: dict[str, list[float]] = field(default_factory=dict)

    def add(self, name: str, seconds: float) -> None:
        self.samples.setdefault(name, []).append(seconds)

    def median(self, name: str) -> float:
        return statistics.median(self.samples[name])


async def until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"gave up waiting for {what} after {timeout:g} s")
        await asyncio.sleep(0.002)


# --- 1. stop ---------------------------------------------------------------------------------


def stop_times(workdir: Path, mqtt_port: int, runs: int, figures: Figures) -> None:
    for run in range(runs):
        config = write_config(
            workdir / f"netmon-stop-{run}.yaml",
            {
                "instance": "bench",
                "defaults": {"icmp": {"interval": "200ms", "timeout": "150ms"}},
                "alerting": {
                    "database": str(workdir / f"alerts-{run}.sqlite"),
                    "mqtt": {"host": "127.0.0.1", "port": mqtt_port},
                },
                "targets": [
                    {"id": "a", "address": "127.0.3.1"},
                    {"id": "b", "address": "127.0.3.2"},
                ],
            },
        )
        netmon = NetmonProcess(config)

        def targets_up(netmon: NetmonProcess = netmon) -> bool:
            text = netmon.metrics()
            return all(metric_value(text, "netmon_target_up", target=t) == 1 for t in "ab")

        try:
            wait_until(targets_up, timeout=30, what="netmon's targets up")
            started = time.monotonic()
            netmon.signal(signal.SIGTERM)
            netmon.process.wait(timeout=60)
            figures.add("stop", time.monotonic() - started)
            if netmon.process.returncode != 0:
                raise SystemExit(f"netmon exited {netmon.process.returncode}")
        finally:
            netmon.stop()


# --- 2. statuses onto MQTT -------------------------------------------------------------------


class Watcher:
    """A subscriber that notes when each topic's wanted payload arrived."""

    def __init__(self, port: int, topic: str) -> None:
        self.port, self.topic = port, topic
        self.latest: dict[str, bytes] = {}
        self.ready = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Watcher:
        self._task = asyncio.create_task(self._listen())
        await asyncio.wait_for(self.ready.wait(), 10)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)

    async def _listen(self) -> None:
        async with aiomqtt.Client("127.0.0.1", self.port) as client:
            await client.subscribe(self.topic, qos=1)
            self.ready.set()
            async for message in client.messages:
                if isinstance(message.payload, bytes | bytearray):
                    self.latest[message.topic.value] = bytes(message.payload)

    def holds(self, wanted: dict[str, bytes]) -> bool:
        return all(self.latest.get(topic) == payload for topic, payload in wanted.items())


def _status(target: str, state: str, rtt: float | None) -> dict[str, object]:
    return {"target": target, "state": state, "rtt_ms": rtt}


async def status_bursts(mqtt_port: int, runs: int, figures: Figures) -> None:
    targets = [f"ep-{n:03}" for n in range(STATUSES)]
    for run in range(runs):
        prefix = f"bench{run}"
        settings = MqttSettings.model_validate(
            {"host": "127.0.0.1", "port": mqtt_port, "prefix": prefix}
        )
        sink = MqttSink(settings, instance="bench", active=list)
        await sink.start()
        try:
            await until(lambda sink=sink: sink.connected, 10, "the sink to connect")
            async with Watcher(mqtt_port, f"{prefix}/status/#") as watcher:
                wanted = {
                    f"{prefix}/status/{t}": json.dumps(_status(t, "up", float(n))).encode()
                    for n, t in enumerate(targets)
                }
                started = time.monotonic()
                for target in targets:
                    sink.publish_status(target, _status(target, "down", None))
                for n, target in enumerate(targets):
                    sink.publish_status(target, _status(target, "up", float(n)))
                await until(lambda w=watcher, x=wanted: w.holds(x), 60, "215 statuses")
                figures.add("statuses: netmon MqttSink", time.monotonic() - started)
        finally:
            await sink.close()

        raw = f"raw{run}"
        async with (
            aiomqtt.Client("127.0.0.1", mqtt_port, max_inflight_messages=100) as client,
            Watcher(mqtt_port, f"{raw}/status/#") as watcher,
        ):
            client.pending_calls_threshold = 2 * STATUSES  # 215 awaiting an ack is the point
            payloads = {
                f"{raw}/status/{t}": json.dumps(_status(t, "up", float(n))).encode()
                for n, t in enumerate(targets)
            }
            started = time.monotonic()
            await asyncio.gather(
                *(client.publish(t, p, qos=1, retain=True) for t, p in payloads.items())
            )
            await until(lambda w=watcher, x=payloads: w.holds(x), 60, "215 raw statuses")
            figures.add("statuses: plain aiomqtt client", time.monotonic() - started)


# --- 3. pages through the shipped Alertmanager routes ----------------------------------------


def _event(alertname: str, target: str, district: str, kind: str) -> AlertEvent:
    now = time.time()
    return AlertEvent(
        alertname=alertname, target=target, severity=Severity.CRITICAL, status=Status.FIRING,
        starts_at=now, ends_at=None, summary=f"{target} is down",
        context={"kind": kind, "district": district, "site": "", "group": ""},
        value=1.0, event_at=now,
    )  # fmt: skip


async def pages(workdir: Path, runs: int, figures: Figures) -> dict[str, str]:
    arrived: list[tuple[float, str, dict[str, Any]]] = []

    async def receive(request: web.Request) -> web.Response:
        stamp = time.monotonic()
        for alert in (await request.json()).get("alerts", []):
            arrived.append((stamp, request.match_info["receiver"], alert))
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_post("/{receiver}", receive)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]

    config = yaml.safe_load((REPO / "deploy" / "alertmanager.yml").read_text())
    for receiver in config["receivers"]:
        for hook in receiver["webhook_configs"]:
            hook["url"] = f"http://127.0.0.1:{port}/{receiver['name']}"

    def group_wait(alertname: str) -> str:
        """The group_wait of the first route whose matchers name `alertname`."""
        for route in config["route"]["routes"]:
            if any(alertname in matcher for matcher in route.get("matchers", [])):
                return str(route["group_wait"])
        return str(config["route"]["group_wait"])

    manager = await asyncio.to_thread(Alertmanager, workdir / "alertmanager", config=config)
    sink = AlertmanagerSink(
        manager.url,
        AlertmanagerSettings(urls=[manager.url]),
        active=list,
        generator_url="http://netmon.bench/",
    )
    try:
        async with sink:
            for run in range(runs):
                for alertname, kind in (("EndpointDown", "endpoint"),
                                        ("DistrictUnreachable", "switch")):  # fmt: skip
                    target = f"{kind}-{run}"
                    event = _event(alertname, target, f"District {alertname} {run}", kind)
                    sent = time.monotonic()
                    await sink.send(event)

                    def paged(target: str = target) -> bool:
                        return any(
                            receiver == "oncall" and alert["labels"].get("target") == target
                            for _, receiver, alert in arrived
                        )

                    await until(paged, 120, f"the page for {target}")
                    stamp = next(s for s, r, a in arrived if a["labels"].get("target") == target)
                    figures.add(f"page: {alertname}", stamp - sent)
    finally:
        await asyncio.to_thread(manager.stop)
        await runner.cleanup()
    return {name: group_wait(name) for name in ("EndpointDown", "DistrictUnreachable")}


# --- report ----------------------------------------------------------------------------------


def report(figures: Figures, group_waits: dict[str, str]) -> None:
    table = Table(title="netmon's service paths, seconds: median (min-max)")
    for column in ("what", "runs", "seconds", "compare"):
        table.add_column(column, justify="right")

    def row(name: str, compare: str) -> None:
        values: Sequence[float] = figures.samples[name]
        table.add_row(
            name, str(len(values)),
            f"{statistics.median(values):.3f} ({min(values):.3f}-{max(values):.3f})", compare,
        )  # fmt: skip

    row("stop", "README: within 2 s")
    ours, plain = "statuses: netmon MqttSink", "statuses: plain aiomqtt client"
    row(ours, f"{figures.median(ours) / figures.median(plain):.2f}x the plain client")
    row(plain, "")
    for alertname in ("EndpointDown", "DistrictUnreachable"):
        row(f"page: {alertname}", f"route's group_wait {group_waits[alertname]}")
    console.print(table)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else "")
    parser.add_argument("--runs", type=int, default=5, help="samples of each figure")
    args = parser.parse_args()
    figures = Figures()
    with tempfile.TemporaryDirectory(prefix="netmon-service-bench-") as tmp:
        workdir = Path(tmp)
        broker, mqtt_port = peers.mosquitto(workdir)
        try:
            with console.status("stop: SIGTERM to exit"):
                stop_times(workdir, mqtt_port, args.runs, figures)
            with console.status(f"{STATUSES} statuses onto MQTT"):
                asyncio.run(status_bursts(mqtt_port, args.runs, figures))
        finally:
            broker.stop()
        with console.status("pages through deploy/alertmanager.yml"):
            group_waits = asyncio.run(pages(workdir, args.runs, figures))
    report(figures, group_waits)
    out = Path("bench/results")
    out.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%dT%H%M%S")
    (out / f"service-{stamp}.json").write_text(json.dumps(figures.samples, indent=2))


if __name__ == "__main__":
    main()

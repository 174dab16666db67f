"""Alert latency: netmon against blackbox -> Prometheus -> Alertmanager, same faults, same run.

Lab hosts (network namespaces, tests/lab/netlab.py) are watched by both stacks at once:
- netmon, the real service (`netmon run`), with its default 1 s ping; the clock stops when the
  EndpointDown event (firing, then resolved) arrives on MQTT `netmon/events/alerts` through a
  Mosquitto the bench starts;
- the classic stack: Debian's blackbox_exporter (its shipped `icmp` module), Prometheus with
  the usual 15 s scrape and evaluation and a rule `probe_success == 0` with `for: 0s`,
  Alertmanager with its default timings (group_wait 30s, group_interval 5m) but one group per
  alert (`group_by: ['...']`), and a webhook receiver in this process (`send_resolved: true`).

Each host's link is cut once (`LabHost.link_down()`), the cuts staggered over one 15 s scrape
interval so that they fall at every phase of Prometheus's scrape and evaluation cycle (and of
netmon's pings); a host is restored once both stacks have announced its fault, i.e. a short
outage. Alertmanager sends a group's resolve only at its next group_interval, ~5 minutes after
the firing notification; netmon-only hosts are cut and restored in turn meanwhile, for more
netmon samples. Times run from the moment `ip link set eth0 down` / `up` has returned.

Run with `make bench` (root: namespaces, raw ICMP). Figures depend on the machine; compare the
ratios.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import json
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import aiomqtt
import yaml
from aiohttp import web
from prometheus_client.parser import text_string_to_metric_families
from rich.console import Console
from rich.table import Table

from bench import peers
from tests.lab import netlab

# Wide enough for the table when the output goes to a file or a pipe (80 columns then).
console = Console(width=max(Console().width, 110))
ALERT = "EndpointDown"
SCRAPE_INTERVAL = 15.0


@dataclass
class Cut:
    target: str
    address: str
    shared: bool  # watched by both stacks (else netmon only)
    down_at: float = 0.0
    down_command: float = 0.0  # how long `ip link set down` took
    up_at: float | None = None
    netmon_firing: float | None = None  # MQTT arrival
    netmon_resolved: float | None = None
    engine_firing: float | None = None  # netmon's log line "alert firing"
    engine_resolved: float | None = None
    classic_firing: float | None = None  # webhook arrival
    classic_resolved: float | None = None

    def latency(self, name: str) -> float | None:
        value = getattr(self, name)
        start = self.down_at if "firing" in name else self.up_at
        return None if value is None or start is None else value - start


@dataclass
class Recorder:
    """Every alert notification the bench saw, stamped on arrival (time.time())."""

    mqtt: list[tuple[float, dict[str, Any]]] = field(default_factory=list)
    webhook: list[tuple[float, dict[str, Any]]] = field(default_factory=list)
    log: list[tuple[float, dict[str, Any]]] = field(default_factory=list)
    service_online: bool = False

    def first(self, source: str, match: Callable[[dict[str, Any]], bool], after: float) -> float:
        for stamp, item in getattr(self, source):
            if stamp >= after and match(item):
                return float(stamp)
        return float("nan")


class Netmon:
    """`netmon run` as a child process; its JSON log is read by a thread."""

    def __init__(self, config: Path, recorder: Recorder, log_file: Path) -> None:
        self.recorder = recorder
        self.url: str | None = None
        self._ready = threading.Event()
        self._log_file = log_file
        netmon = Path(sys.executable).with_name("netmon")
        self.process = subprocess.Popen(
            [str(netmon), "run", "--config", str(config), "--log-format", "json"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        self._reader = threading.Thread(target=self._read, name="netmon-log", daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stderr is not None
        with self._log_file.open("w") as out:
            for line in self.process.stderr:
                out.write(line)
                try:
                    record = json.loads(line)
                except ValueError:
                    continue
                if record.get("msg") == "netmon running":
                    self.url = record.get("url")
                    self._ready.set()
                elif str(record.get("msg", "")).startswith("alert "):
                    stamp = dt.datetime.fromisoformat(record["ts"]).timestamp()
                    self.recorder.log.append((stamp, record))
        self._ready.set()

    def wait_running(self, timeout: float = 30.0) -> str:
        self._ready.wait(timeout)
        if self.url is None:
            raise RuntimeError(f"netmon did not start; its log: {self._log_file}")
        return self.url

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        self._reader.join(timeout=5)


def netmon_config(workdir: Path, mqtt_port: int | None, cuts: list[Cut]) -> Path:
    alerting: dict[str, Any] = {"database": str(workdir / "alerts.sqlite")}
    if mqtt_port is not None:
        alerting["mqtt"] = {"host": "127.0.0.1", "port": mqtt_port}
    config = {
        "instance": "bench",
        "http": {"listen": "127.0.0.1:0"},
        "alerting": alerting,
        "targets": [{"id": c.target, "address": c.address, "kind": "endpoint"} for c in cuts],
    }
    path = workdir / "netmon.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    result = subprocess.run(
        [str(Path(sys.executable).with_name("netmon")), "validate", "--config", str(path)],
        capture_output=True,
        text=True,
    )
    if result.returncode:
        raise RuntimeError(f"netmon rejects the bench's config:\n{result.stdout}{result.stderr}")
    return path


async def mqtt_listen(port: int, recorder: Recorder, connected: asyncio.Event) -> None:
    async with aiomqtt.Client("127.0.0.1", port, identifier="netmon-alert-bench") as client:
        await client.subscribe("netmon/events/alerts", qos=1)
        await client.subscribe("netmon/service/bench", qos=1)
        connected.set()
        async for message in client.messages:
            stamp = time.time()
            payload = message.payload
            if not isinstance(payload, bytes | bytearray):
                continue
            if message.topic.matches("netmon/service/bench"):
                recorder.service_online = payload == b"online"
                continue
            with contextlib.suppress(ValueError):
                recorder.mqtt.append((stamp, json.loads(payload)))


async def webhook_server(recorder: Recorder) -> tuple[web.AppRunner, int]:
    async def receive(request: web.Request) -> web.Response:
        stamp = time.time()
        body = await request.json()
        for alert in body.get("alerts", []):
            recorder.webhook.append((stamp, alert))
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_post("/", receive)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    server = site._server
    assert server is not None
    port = server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    return runner, int(port)


async def wait_for(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"gave up waiting for {what} after {timeout:g} s")
        await asyncio.sleep(0.05)


async def netmon_targets_up(session: aiohttp.ClientSession, url: str, targets: set[str]) -> bool:
    async with session.get(f"{url}/metrics") as response:
        text = await response.text()
    up = set()
    for family in text_string_to_metric_families(text):
        if family.name == "netmon_target_up":
            up |= {s.labels["target"] for s in family.samples if s.value == 1}
    return targets <= up


async def prometheus_all_up(session: aiohttp.ClientSession, port: int, count: int) -> bool:
    url = f"http://127.0.0.1:{port}/api/v1/query"
    async with session.get(url, params={"query": "probe_success == 1"}) as response:
        data = await response.json()
    return len(data["data"]["result"]) == count


def _match(target: str, status: str) -> Callable[[dict[str, Any]], bool]:
    def match(event: dict[str, Any]) -> bool:
        return bool(
            event.get("alertname") == ALERT
            and event.get("target") == target
            and event.get("status") == status
        )

    return match


def _match_classic(address: str, status: str) -> Callable[[dict[str, Any]], bool]:
    def match(alert: dict[str, Any]) -> bool:
        labels = alert.get("labels", {})
        return bool(
            labels.get("alertname") == ALERT
            and labels.get("instance") == address
            and alert.get("status") == status
        )

    return match


def _log_match(target: str, msg: str) -> Callable[[dict[str, Any]], bool]:
    def match(record: dict[str, Any]) -> bool:
        return bool(
            record.get("msg") == msg
            and record.get("alert") == ALERT
            and record.get("target") == target
        )

    return match


def _found(value: float) -> float | None:
    return None if value != value else value  # NaN: not seen


def update(cut: Cut, recorder: Recorder) -> None:
    """Fill in what has arrived for this cut so far."""
    if cut.netmon_firing is None:
        cut.netmon_firing = _found(recorder.first("mqtt", _match(cut.target, "firing"),
                                                  cut.down_at))  # fmt: skip
    if cut.engine_firing is None:
        cut.engine_firing = _found(
            recorder.first("log", _log_match(cut.target, "alert firing"), cut.down_at)
        )
    if cut.shared and cut.classic_firing is None:
        cut.classic_firing = _found(
            recorder.first("webhook", _match_classic(cut.address, "firing"), cut.down_at)
        )
    if cut.up_at is None:
        return
    if cut.netmon_resolved is None:
        cut.netmon_resolved = _found(
            recorder.first("mqtt", _match(cut.target, "resolved"), cut.up_at)
        )
    if cut.engine_resolved is None:
        cut.engine_resolved = _found(
            recorder.first("log", _log_match(cut.target, "alert resolved"), cut.up_at)
        )
    if cut.shared and cut.classic_resolved is None:
        cut.classic_resolved = _found(
            recorder.first("webhook", _match_classic(cut.address, "resolved"), cut.up_at)
        )


async def link(host: Any, up: bool) -> tuple[float, float]:
    started = time.time()
    await asyncio.to_thread(host.link_up if up else host.link_down)
    done = time.time()
    return done, done - started


async def shared_cut(cut: Cut, host: Any, at: float, recorder: Recorder, args: Any) -> None:
    await asyncio.sleep(max(0.0, at - time.time()))
    cut.down_at, cut.down_command = await link(host, up=False)

    def fired() -> bool:
        update(cut, recorder)
        ours = cut.engine_firing if args.no_mqtt else cut.netmon_firing
        return ours is not None and cut.classic_firing is not None

    with contextlib.suppress(TimeoutError):
        await wait_for(fired, args.fire_timeout, f"{cut.target} firing")
    await asyncio.sleep(1.0)  # restored right after the news is out: a short outage
    cut.up_at, _ = await link(host, up=True)

    def resolved() -> bool:
        update(cut, recorder)
        ours = cut.engine_resolved if args.no_mqtt else cut.netmon_resolved
        return ours is not None and cut.classic_resolved is not None

    with contextlib.suppress(TimeoutError):
        await wait_for(resolved, args.resolve_timeout, f"{cut.target} resolved")


async def netmon_only_cuts(
    cuts: list[Cut],
    hosts: list[Any],
    recorder: Recorder,
    until: asyncio.Event,
    out: list[Cut],
    no_mqtt: bool,
) -> None:
    """One netmon-only host at a time, round robin; a host is cut at most once a minute, so
    netmon's flap damping (6 changes in 120 s) never takes part."""
    last: dict[int, float] = {}
    index = 0
    while not until.is_set() and cuts:
        which = index % len(cuts)
        index += 1
        wait = last.get(which, 0.0) + 65.0 - time.monotonic()
        if wait > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(until.wait(), wait)
            if until.is_set():
                return
        template, host = cuts[which], hosts[which]
        cut = Cut(template.target, template.address, shared=False)
        last[which] = time.monotonic()
        cut.down_at, cut.down_command = await link(host, up=False)

        def fired(cut: Cut = cut) -> bool:
            update(cut, recorder)
            return (cut.engine_firing if no_mqtt else cut.netmon_firing) is not None

        with contextlib.suppress(TimeoutError):
            await wait_for(fired, 30, f"{cut.target} firing")
        await asyncio.sleep(1.0)
        cut.up_at, _ = await link(host, up=True)

        def resolved(cut: Cut = cut) -> bool:
            update(cut, recorder)
            return (cut.engine_resolved if no_mqtt else cut.netmon_resolved) is not None

        with contextlib.suppress(TimeoutError):
            await wait_for(resolved, 30, f"{cut.target} resolved")
        out.append(cut)


async def measure(lab: Any, workdir: Path, args: Any, stack: contextlib.ExitStack) -> list[Cut]:
    recorder = Recorder()
    with console.status("lab hosts"):
        shared_hosts = [await asyncio.to_thread(lab.add_host) for _ in range(args.hosts)]
        extra_hosts = [await asyncio.to_thread(lab.add_host) for _ in range(args.extra_hosts)]
    shared = [Cut(f"ep-{i + 1}", h.address, True) for i, h in enumerate(shared_hosts)]
    extra = [Cut(f"ep-x{i + 1}", h.address, False) for i, h in enumerate(extra_hosts)]

    with console.status("peers: Mosquitto, webhook receiver, Alertmanager, blackbox, Prometheus"):
        broker, mqtt_port = await asyncio.to_thread(peers.mosquitto, workdir)
        stack.callback(broker.stop)
        runner, webhook_port = await webhook_server(recorder)
        connected = asyncio.Event()
        listener = asyncio.create_task(mqtt_listen(mqtt_port, recorder, connected), name="mqtt")
        await asyncio.wait_for(connected.wait(), 10)
        manager, am_port = await asyncio.to_thread(
            peers.alertmanager, workdir, f"http://127.0.0.1:{webhook_port}/"
        )
        stack.callback(manager.stop)
        blackbox, bb_port = await asyncio.to_thread(peers.blackbox_exporter, workdir)
        stack.callback(blackbox.stop)
        prom, prom_port = await asyncio.to_thread(
            peers.prometheus,
            workdir,
            blackbox_port=bb_port,
            alertmanager_port=am_port,
            addresses=[c.address for c in shared],
        )
        stack.callback(prom.stop)

    with console.status("netmon"):
        config = await asyncio.to_thread(
            netmon_config, workdir, None if args.no_mqtt else mqtt_port, shared + extra
        )
        netmon = Netmon(config, recorder, workdir / "netmon.log")
        stack.callback(netmon.stop)
        url = await asyncio.to_thread(netmon.wait_running)

    targets = {c.target for c in shared + extra}
    async with aiohttp.ClientSession() as session:

        async def netmon_ready() -> bool:
            online = recorder.service_online or args.no_mqtt
            return online and await netmon_targets_up(session, url, targets)

        async def classic_ready() -> bool:
            return await prometheus_all_up(session, prom_port, len(shared))

        with console.status("waiting until both stacks see every host up"):
            deadline = time.monotonic() + 90
            while not (await netmon_ready() and await classic_ready()):
                for peer in (broker, manager, blackbox, prom):
                    peer.check_running()
                if netmon.process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(
                        f"not every host is up in both stacks (netmon log {workdir}/netmon.log)"
                    )
                await asyncio.sleep(0.5)

    spacing = SCRAPE_INTERVAL / max(1, len(shared))
    start = time.time() + 1.0
    done = asyncio.Event()
    extra_cuts: list[Cut] = []
    with console.status(
        f"{len(shared)} cuts {spacing:.1f} s apart; Alertmanager resolves come ~5 min after "
        f"its firing notifications ({len(extra)} netmon-only hosts cut meanwhile)"
    ):
        tasks = [
            asyncio.create_task(shared_cut(cut, host, start + i * spacing, recorder, args))
            for i, (cut, host) in enumerate(zip(shared, shared_hosts, strict=True))
        ]

        async def extras_once_restored() -> None:
            await wait_for(lambda: all(c.up_at is not None for c in shared), 600, "restores")
            await netmon_only_cuts(extra, extra_hosts, recorder, done, extra_cuts, args.no_mqtt)

        others = asyncio.create_task(extras_once_restored())
        await asyncio.gather(*tasks)
        done.set()
        await others

    listener.cancel()
    await asyncio.gather(listener, return_exceptions=True)
    await runner.cleanup()
    return shared + extra_cuts


def stats(values: list[float | None]) -> dict[str, float | int | None]:
    seen = [v for v in values if v is not None]
    if not seen:
        return {"median": None, "min": None, "max": None, "seen": 0, "missed": len(values)}
    return {
        "median": statistics.median(seen),
        "min": min(seen),
        "max": max(seen),
        "seen": len(seen),
        "missed": len(values) - len(seen),
    }


def report(cuts: list[Cut]) -> dict[str, Any]:
    shared = [c for c in cuts if c.shared]
    rows = {
        "netmon (MQTT)": (
            [c.latency("netmon_firing") for c in shared],
            [c.latency("netmon_resolved") for c in shared],
        ),
        "classic (webhook)": (
            [c.latency("classic_firing") for c in shared],
            [c.latency("classic_resolved") for c in shared],
        ),
        "netmon, incl. netmon-only": (
            [c.latency("netmon_firing") for c in cuts],
            [c.latency("netmon_resolved") for c in cuts],
        ),
        "netmon engine (log)": (
            [c.latency("engine_firing") for c in cuts],
            [c.latency("engine_resolved") for c in cuts],
        ),
    }
    summary = {name: {"detection": stats(d), "recovery": stats(r)} for name, (d, r) in rows.items()}
    table = Table(title=f"Link cut -> {ALERT} notification, seconds: median (min-max)")
    for column in ("stack", "cuts", "detection", "recovery"):
        table.add_column(column, justify="right")

    def cell(result: dict[str, float | int | None]) -> str:
        if result["median"] is None:
            return "-"
        return f"{result['median']:.2f} ({result['min']:.2f}-{result['max']:.2f})"

    for name, result in summary.items():
        d, r = result["detection"], result["recovery"]
        cuts_text = f"{d['seen']}" + (f" ({d['missed']} missed)" if d["missed"] else "")
        table.add_row(name, cuts_text, cell(d), cell(r))
    ours, theirs = summary["netmon (MQTT)"], summary["classic (webhook)"]
    ratios: dict[str, float | None] = {}
    for phase in ("detection", "recovery"):
        a, b = ours[phase]["median"], theirs[phase]["median"]
        ratios[phase] = a / b if a is not None and b else None
    table.add_row(
        "netmon / classic (medians)",
        "",
        f"{ratios['detection']:.3f}x" if ratios["detection"] else "-",
        f"{ratios['recovery']:.3f}x" if ratios["recovery"] else "-",
    )
    console.print(table)
    mqtt_lag = [
        c.netmon_firing - c.engine_firing
        for c in cuts
        if c.netmon_firing is not None and c.engine_firing is not None
    ]
    if mqtt_lag:
        lag_median, lag_max = statistics.median(mqtt_lag) * 1000, max(mqtt_lag) * 1000
        command = statistics.median(c.down_command for c in cuts) * 1000
        console.print(
            f"netmon engine decision -> MQTT arrival: median {lag_median:.0f} ms, "
            f"max {lag_max:.0f} ms; `ip link set` took {command:.0f} ms (median)"
        )
    return {"summary": summary, "ratios": ratios}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else "")
    parser.add_argument("--hosts", type=int, default=10, help="hosts cut under both stacks")
    parser.add_argument("--extra-hosts", type=int, default=5, help="netmon-only hosts")
    parser.add_argument("--fire-timeout", type=float, default=150.0)
    parser.add_argument(
        "--resolve-timeout",
        type=float,
        default=360.0,
        help="how long to wait for a resolve (Alertmanager's is ~5 min after its firing)",
    )
    parser.add_argument(
        "--no-mqtt",
        action="store_true",
        help="debugging only: no MQTT sink in netmon's config; netmon timed from its log",
    )
    parser.add_argument(
        "--keep", action="store_true", help="keep the working directory (configs, peer logs)"
    )
    args = parser.parse_args()

    netlab.check_available()
    netlab.remove_stale()
    netlab.guard_lab_range()
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="netmon-alert-bench-") as tmp:
        workdir = Path(tempfile.mkdtemp(prefix="netmon-alert-bench-")) if args.keep else Path(tmp)
        lab = netlab.NetLab(workdir=workdir)
        with contextlib.ExitStack() as stack:
            stack.callback(lab.close)
            cuts = asyncio.run(measure(lab, workdir, args, stack))
    result = report(cuts)
    if args.keep:
        console.print(f"configs and logs kept in {workdir}")
    console.print(f"whole run: {time.monotonic() - started:.0f} s")
    out = Path("bench/results")
    out.mkdir(parents=True, exist_ok=True)
    result["cuts"] = [asdict(c) for c in cuts]
    (out / f"alert-{time.strftime('%Y%m%dT%H%M%S')}.json").write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()

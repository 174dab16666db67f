"""Scrapes against probing (issue 17): `netmon run` at 5,000 and 10,000 loopback targets, 1 s ICMP,
alerting on, scraped like Prometheus every 15 s (and every 5 s), before and after.

For each (version, targets, scrape interval) one `netmon run` is started with the default
config (one ICMP probe a second per target, the default alert rules, an alert database in the
run's directory), left `--warmup` seconds, then measured for `--window` seconds while this
process scrapes /metrics as Prometheus does (its Accept header, gzip):

- scrape: wall time of each request until the last byte, and the bytes on the wire;
- scheduler lag: netmon's own `netmon_scheduler_lag_seconds` (how late each probe run started
  against its slot) over the window: the bucket its p99 falls in, and the share of runs later
  than 100 ms; and a 10 ms timer on netmon's event loop (`bench/lag_probe.py`) that writes down
  how late it fires (its max is the longest stall; its p99 counts a stall once, however long);
- skipped runs: the increase of `netmon_scheduler_skipped_runs_total` over the window;
- interval 0: probing alone, no scrape in the window but the one closing it, for the floor
  (its scheduler figures still count the runs the opening scrape delayed);
- echoes per second (`netmon_icmp_packets_sent_total`), and netmon's CPU from /proc.

"before" is the code of a git ref (`--baseline`, main by default) taken with `git archive` into
a temporary directory and run with the same interpreter; "after" is this checkout. Ratios are
after / before. No pass/fail: the figures go to the README (Performance). Needs root (raw
ICMP sockets); `make bench` runs 4 runs of about 75 s (5,000 and 10,000 targets, a 15 s
scrape, before and after); the README's figures: `--intervals 0,15,5 --window 60
--warmup 20`, with `--alerting off` for the second table.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import re
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import aiohttp
from rich.console import Console
from rich.table import Table

from bench.icmp_bench import loopback_set
from bench.netmon_run import NetmonRun, write_config
from bench.peers import free_port, proc_cpu

console = Console(width=180)
ROOT = Path(__file__).resolve().parents[1]
PROBE = ROOT / "bench" / "lag_probe.py"
# What Prometheus 2.x sends.
ACCEPT = (
    "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;"
    "q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1"
)
LAG_LIMIT = 0.1  # the goal: scheduler lag p99 under 100 ms


@dataclass
class Run:
    version: str
    targets: int
    interval: int
    scrapes: int
    scrape_median: float
    scrape_max: float
    megabytes: float
    listing: float  # GET /api/v1/targets once in the window, seconds
    lag_p99_ms: float
    lag_max_ms: float
    scheduler_p99: float  # the lag bucket bound 99 % of probe runs started within, seconds
    late_runs: float  # share of probe runs that started over 100 ms late
    skipped: float
    echoes_per_second: float
    cpu_percent: float
    load: str
    full_collections: int  # generation-2 garbage collections in the window
    full_collection_max_ms: float
    collection_share: float  # of the window's wall time, all generations


@dataclass(frozen=True)
class Collections:
    full: int
    full_max_ms: float
    share: float


def _collections(path: Path, start: float, end: float) -> Collections:
    full: list[float] = []
    total = 0.0
    for line in path.read_text().splitlines() if path.exists() else []:
        when, generation, seconds = line.split()
        if start <= float(when) <= end:
            total += float(seconds)
            if generation == "2":
                full.append(float(seconds))
    return Collections(len(full), 1000 * max(full, default=0.0), total / (end - start))


def _sum(text: str, name: str, labels: str = "") -> float:
    pattern = re.compile(rf"^{name}(?:{{[^}}\n]*{labels}[^}}\n]*}})? (\S+)$", re.M)
    return sum(float(v) for v in pattern.findall(text))


def _lag_buckets(text: str) -> dict[float, float]:
    pattern = re.compile(
        r'^netmon_scheduler_lag_seconds_bucket\{[^}]*le="([^"]+)"[^}]*\} (\S+)$', re.M
    )
    buckets: dict[float, float] = {}
    for le, value in pattern.findall(text):
        bound = float("inf") if le == "+Inf" else float(le)
        buckets[bound] = buckets.get(bound, 0.0) + float(value)
    return buckets


def _lag_window(first: str, last: str) -> dict[float, float]:
    """The scheduler-lag histogram's cumulative buckets over the window (all collectors)."""
    before, after = _lag_buckets(first), _lag_buckets(last)
    return {bound: count - before.get(bound, 0.0) for bound, count in sorted(after.items())}


def _late_share(window: dict[float, float]) -> float:
    runs = window.get(float("inf"), 0.0)
    return (runs - window.get(LAG_LIMIT, 0.0)) / runs if runs else float("nan")


def _p99_bound(window: dict[float, float]) -> float:
    """The bucket bound the 99th percentile of probe-run lag is under (seconds)."""
    runs = window.get(float("inf"), 0.0)
    return next((b for b, count in window.items() if count >= 0.99 * runs), float("nan"))


def _lags(path: Path, start: float, end: float) -> list[float]:
    lags = []
    for line in path.read_text().splitlines():
        when, lag = line.split()
        if start <= float(when) <= end:
            lags.append(float(lag))
    return lags


async def _scrape(session: aiohttp.ClientSession, url: str) -> tuple[float, int, str]:
    started = time.perf_counter()
    headers = {"Accept": ACCEPT, "Accept-Encoding": "gzip"}
    async with session.get(url, headers=headers, timeout=aiohttp.ClientTimeout(total=60)) as r:
        raw = await r.content.read()  # compressed as sent
        elapsed = time.perf_counter() - started
        if r.headers.get("Content-Encoding") == "gzip":
            text = await asyncio.to_thread(_gunzip, raw)
        else:
            text = raw.decode()
    return elapsed, len(raw), text


def _gunzip(raw: bytes) -> str:
    import gzip

    return gzip.decompress(raw).decode()


async def measure(
    version: str,
    tree: Path | None,
    targets: int,
    interval: int,
    warmup: int,
    window: int,
    alerting: bool,
) -> Run:
    with tempfile.TemporaryDirectory(prefix="netmon-scrape-") as tmp:
        workdir = Path(tmp)
        port = free_port()
        config = write_config(
            workdir,
            {
                "http": {"listen": f"127.0.0.1:{port}"},
                "alerting": {"enabled": alerting, "database": str(workdir / "alerts.sqlite")},
                "targets": [
                    {"id": f"t{i}", "address": a} for i, a in enumerate(loopback_set(targets))
                ],
            },
        )
        lag_file = workdir / "lag.txt"
        env = dict(os.environ)
        env["PYTHONPATH"] = str(tree or ROOT)
        command = [sys.executable, str(PROBE), str(lag_file)]
        async with (
            NetmonRun(config, workdir, port, command=command, env=env) as netmon,
            aiohttp.ClientSession(auto_decompress=False) as session,
        ):
            await netmon.until_ready(session, 120)
            await asyncio.sleep(warmup)
            url = netmon.url + "/metrics"
            _, _, first = await _scrape(session, url)
            start, cpu_start = time.time(), proc_cpu(netmon.pid)
            load = f"{os.getloadavg()[0]:.2f}"
            times: list[float] = []
            sizes: list[int] = []
            text = first
            listing = float("nan")
            probing_end = time.time()
            while time.time() - start < window:
                # Interval 0: no scrape in the window but one at its end (probing alone).
                pause = interval or window
                await asyncio.sleep(pause - (time.time() - start) % pause)
                probing_end = time.time()
                elapsed, size, text = await _scrape(session, url)
                times.append(elapsed)
                sizes.append(size)
                if interval and math.isnan(listing) and time.time() - start > window / 2:
                    await asyncio.sleep(interval / 2)
                    began = time.perf_counter()
                    listed = session.get(
                        netmon.url + "/api/v1/targets", timeout=aiohttp.ClientTimeout(total=60)
                    )
                    async with listed as answer:
                        await answer.read()
                    listing = time.perf_counter() - began
            end, cpu_end = time.time(), proc_cpu(netmon.pid)
            load += f"–{os.getloadavg()[0]:.2f}"
            netmon.check_running()
        # Probing alone: the timer up to the closing scrape, which is not part of it.
        lags = sorted(_lags(lag_file, start, end if interval else probing_end))
        collections = _collections(Path(f"{lag_file}.gc"), start, end)
    skipped_name = "netmon_scheduler_skipped_runs_total"
    sent_name = "netmon_icmp_packets_sent_total"
    return Run(
        version=version,
        targets=targets,
        interval=interval,
        scrapes=len(times),
        scrape_median=statistics.median(times),
        scrape_max=max(times),
        megabytes=statistics.median(sizes) / 1e6,
        listing=listing,
        lag_p99_ms=1000 * lags[int(0.99 * (len(lags) - 1))],
        lag_max_ms=1000 * lags[-1],
        scheduler_p99=_p99_bound(_lag_window(first, text)),
        late_runs=_late_share(_lag_window(first, text)),
        skipped=_sum(text, skipped_name) - _sum(first, skipped_name),
        echoes_per_second=(_sum(text, sent_name) - _sum(first, sent_name)) / (end - start),
        cpu_percent=100 * (cpu_end - cpu_start) / (end - start),
        load=load,
        full_collections=collections.full,
        full_collection_max_ms=collections.full_max_ms,
        collection_share=collections.share,
    )


def render_cpu(targets: int) -> dict[str, float]:
    """CPU of one scrape's store families in this process, the store holding 60 s of echoes
    per target: prometheus_client from scratch (the reference collector, the code main runs
    per scrape) and the kept lines, every target changed (1 s ICMP) and none changed."""
    import random

    from prometheus_client import generate_latest

    from netmon.config.loader import load_data
    from netmon.exporter import NetmonRegistry
    from netmon.exposition import Exposition
    from netmon.model import EchoRound
    from netmon.state import Clock, StateStore

    now = [1000.0]
    store = StateStore(clock=Clock(wall=lambda: now[0], monotonic=lambda: now[0]))
    addresses = loopback_set(targets)
    store.apply_inventory(
        load_data({"targets": [{"id": f"t{i}", "address": a} for i, a in enumerate(addresses)]})
    )
    registry = NetmonRegistry(store)
    exposition = Exposition(registry)
    for _ in range(60):
        now[0] += 1
        for i in range(targets):
            rtt = random.choice([None, *[random.uniform(0.0001, 0.003)] * 30])
            store.record(EchoRound(target=f"t{i}", collector="icmp", ok=rtt is not None,
                                   duration=0.001, address=addresses[i], rtts=(rtt,)))  # fmt: skip

    def cpu(work: object) -> float:
        assert callable(work)
        best = float("inf")
        for _ in range(3):
            started = time.process_time()
            work()
            best = min(best, time.process_time() - started)
        return best

    def all_changed() -> float:
        best = float("inf")
        for _ in range(3):
            for i in range(targets):
                store.record(EchoRound(target=f"t{i}", collector="icmp", ok=True, duration=0.001,
                                       address=addresses[i], rtts=(0.001,)))  # fmt: skip
            started = time.process_time()
            exposition.store_text(openmetrics=True)
            best = min(best, time.process_time() - started)
        return best

    return {
        "from scratch": cpu(lambda: generate_latest(registry)),
        "kept, all changed": all_changed(),
        "kept, none changed": cpu(lambda: exposition.store_text(openmetrics=True)),
    }


def baseline_tree(ref: str, into: Path) -> Path | None:
    """The netmon and collectors packages of `ref`, or None (with why) when git cannot say."""
    archive = into / "baseline.tar"
    try:
        subprocess.run(
            ["git", "-C", str(ROOT), "archive", "--format=tar", f"--output={archive}", ref,
             "netmon", "collectors"],
            check=True, capture_output=True, text=True,
        )  # fmt: skip
    except (OSError, subprocess.CalledProcessError) as error:
        detail = getattr(error, "stderr", "") or error
        console.print(f"[yellow]no baseline: git archive {ref} failed: {detail}[/]")
        return None
    with tarfile.open(archive) as tar:
        tar.extractall(into / "tree", filter="data")
    return into / "tree"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="5000,10000", help="target counts, comma-separated")
    parser.add_argument(
        "--intervals", default="15", help="scrape intervals in seconds (0: probing alone)"
    )
    parser.add_argument("--warmup", type=int, default=15, help="seconds after ready")
    parser.add_argument("--window", type=int, default=45, help="measured seconds per run")
    parser.add_argument("--baseline", default="main", help="git ref of 'before'; '' for none")
    parser.add_argument(
        "--alerting", choices=("on", "off"), default="on", help="the alert engine (default rules)"
    )
    parser.add_argument(
        "--render", action="store_true", help="only the in-process render CPU, then exit"
    )
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    if args.render:
        for size in sizes:
            figures = render_cpu(size)
            console.print(
                f"{size} targets, CPU s of one scrape's store families: "
                + ", ".join(f"{name} {value:.3f}" for name, value in figures.items())
                + f" ({figures['from scratch'] / figures['kept, all changed']:.1f}x less)"
            )
        return
    intervals = [int(s) for s in args.intervals.split(",")]

    runs: list[Run] = []
    with tempfile.TemporaryDirectory(prefix="netmon-baseline-") as tmp:
        versions: list[tuple[str, Path | None]] = [("after", None)]
        if args.baseline:
            tree = baseline_tree(args.baseline, Path(tmp))
            if tree is not None:
                versions.insert(0, (f"before ({args.baseline})", tree))
        for size in sizes:
            for interval in intervals:
                for version, tree in versions:
                    with console.status(f"{version}: {size} targets, scrape every {interval} s"):
                        run = asyncio.run(
                            measure(
                                version,
                                tree,
                                size,
                                interval,
                                args.warmup,
                                args.window,
                                args.alerting == "on",
                            )
                        )
                    runs.append(run)
                    console.print(run)

    table = Table(
        title=f"/metrics against probing, alerting {args.alerting}, {args.window} s per run "
        "(load: 1-min average at start and end)"
    )
    columns = ("targets", "scrape", "version", "scrape s (median / max)", "MB sent",
               "targets API s", "sched. lag p99 ≤", "runs >100 ms late", "10 ms timer p99 / max ms",
               "skipped runs",
               "echoes/s", "CPU %", "full GCs (max ms)", "GC % of time", "load")  # fmt: skip
    for column in columns:
        table.add_column(column, justify="right")
    for run in runs:
        table.add_row(
            str(run.targets), f"{run.interval} s" if run.interval else "none", run.version,
            f"{run.scrape_median:.3f} / {run.scrape_max:.3f}", f"{run.megabytes:.2f}",
            f"{run.listing:.2f}",
            f"{1000 * run.scheduler_p99:g} ms", f"{100 * run.late_runs:.2f} %",
            f"{run.lag_p99_ms:.1f} / {run.lag_max_ms:.0f}",
            f"{run.skipped:.0f}", f"{run.echoes_per_second:.0f}", f"{run.cpu_percent:.1f}",
            f"{run.full_collections} ({run.full_collection_max_ms:.0f})",
            f"{100 * run.collection_share:.1f}", run.load,
        )  # fmt: skip
    console.print(table)
    for size in sizes:
        for interval in intervals:
            pair = [r for r in runs if (r.targets, r.interval) == (size, interval)]
            if len(pair) == 2:
                before, after = pair
                console.print(
                    f"{size} targets, {interval} s scrape, after / before: scrape "
                    f"{after.scrape_median / before.scrape_median:.2f}x, longest loop stall "
                    f"{after.lag_max_ms / before.lag_max_ms:.2f}x, CPU "
                    f"{after.cpu_percent / before.cpu_percent:.2f}x, skipped runs "
                    f"{before.skipped:.0f} -> {after.skipped:.0f}"
                )
    out = Path(tempfile.gettempdir()) / "netmon-bench"
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"scrape-{time.strftime('%Y%m%dT%H%M%S')}.json"
    path.write_text(json.dumps([asdict(r) for r in runs], indent=2))
    console.print(f"results: {path}")


if __name__ == "__main__":
    main()

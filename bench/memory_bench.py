"""Memory per ICMP target (issue 17): `netmon run` at N loopback targets, scraped, RSS over time.

Two runs of `netmon run` with the default config (1 s ICMP, the default alert rules, an alert
database in the run's directory), each scraped as Prometheus does (its Accept header, gzip)
every `--scrape` seconds from the moment it is ready:

- a baseline with `--baseline-targets` targets (1 by default: the process with ~0 targets),
  held `--baseline-seconds`, its RSS read at the end;
- N targets (`--targets`, 10,000) for `--minutes`, VmRSS (/proc/PID/status) sampled every
  `--sample` seconds.

Printed: the table of samples (time since ready, RSS, scrapes so far, 1-min load), and the
per-target figures at the end: (RSS - baseline RSS) / N and RSS / N, and the slope of RSS over
the last `--slope-minutes` (least squares, MB per hour). Of the same N-target run, over the
measured window (first scrape to last): the share of echoes with an RTT above 1 ms and above
5 ms, from the difference of `netmon_icmp_rtt_seconds` summed over all targets between the two
scrapes (does "RTT p99.9 < 5 ms" hold on loopback under this load?), and every alert that fired
(netmon's log: its "alert firing" lines), by name. No pass/fail: the figures go to the README
(Performance). Needs root (raw ICMP sockets). `make bench` runs a shortened one
(`--minutes 3`); the README's figures: `--minutes 60`.

`--memory DIR` starts netmon through `bench/storm_memory.py` and asks it (SIGUSR2) for a
snapshot at each of `--snapshots` (minutes since ready): smaps_rollup and pymalloc's arenas,
and with `--tracemalloc` the Python heap too (tracemalloc on from the first import; it slows
netmon and disables pymalloc's statistics, so one run for each). The snapshots' diff (by line,
owner of the traceback) is printed at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
from rich.console import Console
from rich.table import Table

from bench import storm_memory
from bench.icmp_bench import loopback_set
from bench.netmon_run import NetmonRun, write_config
from bench.peers import free_port
from bench.scrape_bench import _scrape
from netmon import heap

console = Console(width=140)


def _uptime() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for {pid}")


_BUCKET = re.compile(r'^netmon_icmp_rtt_seconds_bucket\{[^}]*le="([^"]+)"[^}]*\} (\S+)', re.M)
_COUNT = re.compile(r"^netmon_icmp_rtt_seconds_count\{[^}]*\} (\S+)", re.M)


_SENT = re.compile(r"^netmon_icmp_packets_(sent|received)(?:_total)?\{[^}]*\} (\S+)", re.M)
SENT, RECEIVED = -1.0, -2.0  # rtt_buckets' keys for the regular echoes sent and answered


def rtt_buckets(exposition: str) -> dict[float, float]:
    """`netmon_icmp_rtt_seconds` summed over all targets: cumulative count by `le` (inf too);
    and the regular echoes sent and answered (`SENT`, `RECEIVED`)."""
    sums: dict[float, float] = {SENT: 0.0, RECEIVED: 0.0}
    for kind, value in _SENT.findall(exposition):
        sums[SENT if kind == "sent" else RECEIVED] += float(value)
    for le, value in _BUCKET.findall(exposition):
        bound = float(le)  # "+Inf" parses as inf
        sums[bound] = sums.get(bound, 0.0) + float(value)
    if float("inf") not in sums:
        sums[float("inf")] = sum(float(v) for v in _COUNT.findall(exposition))
    return sums


def rtt_shares(
    start: dict[float, float], end: dict[float, float]
) -> tuple[float, dict[float, float]]:
    """Echoes answered between the two scrapes, and the share of them above each bound."""
    echoes = end.get(float("inf"), 0.0) - start.get(float("inf"), 0.0)
    above = {
        le: (echoes - (end[le] - start.get(le, 0.0))) / echoes if echoes else float("nan")
        for le in sorted(end)
        if 0 < le < float("inf")
    }
    return echoes, above


def fired_alerts(log: Path) -> Counter[str]:
    """Alert name -> "alert firing" transitions in netmon's JSON log; and "name @ HH:MM" ->
    those of each minute (when they came: a load peak, a snapshot's pause)."""
    fired: Counter[str] = Counter()
    if not log.exists():
        return fired
    for line in log.read_text(errors="replace").splitlines():
        if '"alert firing' not in line:
            continue
        try:
            event = json.loads(line)
        except ValueError:
            continue
        if str(event.get("msg", "")).startswith("alert firing"):
            fired[str(event.get("alert", "?"))] += 1
            fired[f"{event.get('alert', '?')} @ {str(event.get('ts', ''))[11:16]}"] += 1
    return fired


@dataclass
class Result:
    samples: list[tuple[float, int, int, str]] = field(default_factory=list)
    rtt_start: dict[float, float] = field(default_factory=dict)
    rtt_end: dict[float, float] = field(default_factory=dict)
    window: tuple[float, float] = (0.0, 0.0)  # seconds since ready of the two scrapes
    alerts: Counter[str] = field(default_factory=Counter)
    snapshot_labels: list[str] = field(default_factory=list)


async def _snapshot(netmon: NetmonRun, directory: Path, n: int, timeout: float = 600) -> None:
    done = directory / f"snap-{n:02d}.done"
    assert netmon.process is not None
    netmon.process.send_signal(signal.SIGUSR2)
    deadline = time.monotonic() + timeout
    while not done.exists():
        if time.monotonic() > deadline:
            raise RuntimeError(f"no memory snapshot {n} in {timeout:g} s")
        await asyncio.sleep(0.5)


def _launch(
    memory: Path | None, trace: str, glibc_default: bool, objects: bool
) -> tuple[list[str], dict[str, str] | None]:
    """The command and environment netmon is started with (bench/storm_memory.py for
    snapshots; NETMON_MALLOC=default for glibc's malloc as it comes)."""
    command: list[str] = []
    env: dict[str, str] | None = None
    if glibc_default:
        env = {**os.environ, heap.ENV: "default"}
    if memory is not None:
        memory.mkdir(parents=True, exist_ok=True)
        env = {**(env or os.environ), storm_memory.ENV: str(memory.resolve()),
               "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}  # fmt: skip
        if trace:
            env[storm_memory.TRACE_ENV] = trace
        if objects:
            env[storm_memory.OBJECTS_ENV] = "1"
        command = [sys.executable, "-m", "bench.storm_memory"]
    return command, env


async def run(
    targets: int,
    seconds: float,
    sample: float,
    scrape: float,
    *,
    memory: Path | None = None,
    trace: str = "",
    snapshots: tuple[float, ...] = (),
    glibc_default: bool = False,
    objects: bool = False,
) -> Result:
    """(seconds since ready, RSS KB, scrapes so far, 1-min load) every `sample` seconds, the
    RTT histogram at the first and last scrape, the alerts fired, memory snapshots."""
    result = Result()
    command, env = _launch(memory, trace, glibc_default, objects)
    with tempfile.TemporaryDirectory(prefix="netmon-memory-") as tmp:
        workdir = Path(tmp)
        port = free_port()
        config = write_config(
            workdir,
            {
                "http": {"listen": f"127.0.0.1:{port}"},
                "alerting": {"enabled": True, "database": str(workdir / "alerts.sqlite")},
                "targets": [
                    {"id": f"t{i}", "address": a} for i, a in enumerate(loopback_set(targets))
                ],
            },
        )
        samples = result.samples
        async with (
            NetmonRun(config, workdir, port, command=command, env=env) as netmon,
            aiohttp.ClientSession(auto_decompress=False) as session,
        ):
            await netmon.until_ready(session, 900 if trace == "1" else 180)
            console.print(f"{targets} targets: ready, pid {netmon.pid}")
            scrapes = 0
            last = ""
            last_at = 0.0

            async def scraper() -> None:
                nonlocal scrapes, last, last_at
                while True:
                    try:
                        _, _, text = await _scrape(session, netmon.url + "/metrics")
                    except (aiohttp.ClientError, TimeoutError) as exc:
                        console.print(f"  scrape failed: {exc!r}")
                        await asyncio.sleep(scrape - (time.monotonic() - start) % scrape)
                        continue
                    at = time.monotonic() - start
                    if scrapes == 0:
                        result.rtt_start = await asyncio.to_thread(rtt_buckets, text)
                        result.window = (at, at)
                    last, last_at = text, at
                    scrapes += 1
                    await asyncio.sleep(scrape - (time.monotonic() - start) % scrape)

            pending = sorted(snapshots)
            start = time.monotonic()
            task = asyncio.create_task(scraper())
            try:
                while True:
                    due = pending and time.monotonic() - start >= 60 * pending[0]
                    if memory is not None and due:
                        label = f"{(time.monotonic() - start) / 60:.1f} min"
                        await _snapshot(netmon, memory, len(result.snapshot_labels))
                        result.snapshot_labels.append(label)
                        console.print(f"  snapshot at {label} (written by "
                                      f"{(time.monotonic() - start) / 60:.1f} min)")  # fmt: skip
                        pending.pop(0)
                    elapsed = time.monotonic() - start
                    netmon.check_running()
                    load = f"{os.getloadavg()[0]:.2f}"
                    samples.append((elapsed, rss_kb(netmon.pid), scrapes, load))
                    s = samples[-1]
                    console.print(f"  {s[0]:6.0f} s  RSS {s[1] / 1024:8.1f} MB  scrapes {s[2]}  "
                                  f"load {s[3]}")  # fmt: skip
                    if elapsed + sample > seconds + 1:
                        break
                    await asyncio.sleep(sample - (time.monotonic() - start) % sample)
            finally:
                task.cancel()
            if last:
                result.rtt_end = await asyncio.to_thread(rtt_buckets, last)
                result.window = (result.window[0], last_at)
        result.alerts = fired_alerts(workdir / "netmon.log")
    return result


def slope_mb_per_hour(samples: list[tuple[float, int, int, str]], minutes: float) -> float:
    end = samples[-1][0]
    tail = [(t, kb) for t, kb, _, _ in samples if t >= end - 60 * minutes - 1]
    if len(tail) < 2:
        return float("nan")
    fit = statistics.linear_regression([t for t, _ in tail], [kb for _, kb in tail])
    return fit.slope * 3600 / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else "")
    parser.add_argument("--targets", type=int, default=10_000)
    parser.add_argument("--minutes", type=float, default=10, help="length of the N-target run")
    parser.add_argument("--sample", type=float, default=30, help="seconds between RSS samples")
    parser.add_argument("--scrape", type=float, default=15, help="seconds between scrapes")
    parser.add_argument("--slope-minutes", type=float, default=5, help="slope over the last ...")
    parser.add_argument("--baseline-targets", type=int, default=1)
    parser.add_argument("--baseline-seconds", type=float, default=60)
    parser.add_argument("--memory", type=Path, help="directory for memory snapshots (see above)")
    parser.add_argument(
        "--tracemalloc", nargs="?", const="1", default="",
        help="with --memory: the Python heap; 'late': tracemalloc from the first snapshot on",
    )  # fmt: skip
    parser.add_argument("--snapshots", default="", help="minutes since ready, comma-separated")
    parser.add_argument(
        "--objects", action="store_true",
        help="with --memory: live objects by type at each snapshot (a pause of seconds at 10,000)",
    )  # fmt: skip
    parser.add_argument(
        "--glibc-default", action="store_true",
        help=f"{heap.ENV}=default: glibc's malloc untuned, not trimmed after scrapes (netmon.heap)",
    )  # fmt: skip
    args = parser.parse_args()
    snapshots = tuple(float(m) for m in args.snapshots.split(",") if m.strip())

    console.print(f"uptime: {_uptime()}")
    base = asyncio.run(run(args.baseline_targets, args.baseline_seconds, args.sample, args.scrape,
                           glibc_default=args.glibc_default, objects=args.objects))  # fmt: skip
    base_kb = base.samples[-1][1]
    console.print(f"uptime: {_uptime()}")
    result = asyncio.run(
        run(args.targets, 60 * args.minutes, args.sample, args.scrape,
            memory=args.memory, trace=args.tracemalloc, snapshots=snapshots,
            glibc_default=args.glibc_default, objects=args.objects)
    )  # fmt: skip
    samples = result.samples
    console.print(f"uptime: {_uptime()}")

    table = Table(title=f"netmon run, {args.targets} loopback targets, 1 s ICMP, default rules, "
                  f"scraped every {args.scrape:g} s")  # fmt: skip
    for column in ("s since ready", "RSS MB", "KB / target (RSS - base)", "scrapes", "load"):
        table.add_column(column, justify="right")
    for elapsed, kb, scrapes, load in samples:
        table.add_row(f"{elapsed:.0f}", f"{kb / 1024:.1f}",
                      f"{(kb - base_kb) / args.targets:.1f}", str(scrapes), load)  # fmt: skip
    console.print(table)
    final = samples[-1][1]
    console.print(
        f"baseline ({args.baseline_targets} target, {args.baseline_seconds:g} s): "
        f"{base_kb / 1024:.1f} MB; at {args.targets} targets after {samples[-1][0]:.0f} s: "
        f"{final / 1024:.1f} MB: (RSS - baseline) / N = {(final - base_kb) / args.targets:.1f} KB, "
        f"RSS / N = {final / args.targets:.1f} KB; slope over the last {args.slope_minutes:g} "
        f"min: {slope_mb_per_hour(samples, args.slope_minutes):+.1f} MB/h"
    )
    echoes, above = rtt_shares(result.rtt_start, result.rtt_end)
    first, end = result.window
    console.print(
        f"RTT, all {args.targets} targets, scrapes at {first:.0f} s and {end:.0f} s since ready: "
        f"{echoes:.0f} echoes answered ({echoes / max(end - first, 1e-9) / args.targets:.3f} "
        "a target a second)"
    )
    for le, share in above.items():
        console.print(f"  above {le * 1000:g} ms: {share * 100:.4f} % ({share * echoes:.0f})")
    totals = [(name, n) for name, n in result.alerts.most_common() if " @ " not in name]
    alerts = ", ".join(f"{name} {n}" for name, n in totals) or "none"
    console.print(f"alerts fired during the run (netmon's log, 'alert firing'): {alerts}")
    by_minute = sorted((name.split(" @ ")[1], name.split(" @ ")[0], n)
                       for name, n in result.alerts.items() if " @ " in name)  # fmt: skip
    for minute, name, n in by_minute:
        console.print(f"  {minute} UTC  {name} {n}")
    sent = result.rtt_end.get(SENT, 0.0) - result.rtt_start.get(SENT, 0.0)
    received = result.rtt_end.get(RECEIVED, 0.0) - result.rtt_start.get(RECEIVED, 0.0)
    console.print(
        f"regular echoes over the same window: {sent:.0f} sent "
        f"({sent / max(end - first, 1e-9) / args.targets:.3f} a target a second), "
        f"{sent - received:.0f} unanswered ({(sent - received) / max(sent, 1) * 100:.3f} %)"
    )
    if args.memory is not None:
        storm_memory.print_report(storm_memory.report(args.memory, result.snapshot_labels))


if __name__ == "__main__":
    main()

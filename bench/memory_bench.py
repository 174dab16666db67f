"""Memory per ICMP target (issue 17): `netmon run` at N loopback targets, scraped, RSS over time.

Two runs of `netmon run` with the default config (1 s ICMP, the default alert rules, an alert
database in the run's directory), each scraped as Prometheus does (its Accept header, gzip)
every `--scrape` seconds from the moment it is ready:

- a baseline with `--baseline-targets` targets (1 by default: the process with ~0 targets),
  held `--baseline-seconds`, its RSS read at the end;
- N targets (`--targets`, 10,000) for `--minutes`, VmRSS (/proc/PID/status) sampled every
  `--sample` seconds.

Printed: the table of samples (time since ready, RSS, scrapes so far), and the per-target
figures at the end: (RSS - baseline RSS) / N and RSS / N, and the slope of RSS over the last
`--slope-minutes` (least squares, MB per hour). No pass/fail: the figures go to the README
(Performance). Needs root (raw ICMP sockets). `make bench` runs a shortened one
(`--minutes 3`); the README's figures: `--minutes 10`.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import aiohttp
from rich.console import Console
from rich.table import Table

from bench.icmp_bench import loopback_set
from bench.netmon_run import NetmonRun, write_config
from bench.peers import free_port
from bench.scrape_bench import _scrape

console = Console(width=140)


def _uptime() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for {pid}")


async def run(
    targets: int, seconds: float, sample: float, scrape: float
) -> list[tuple[float, int, int, str]]:
    """(seconds since ready, RSS KB, scrapes so far, 1-min load) every `sample` seconds."""
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
        samples: list[tuple[float, int, int, str]] = []
        async with (
            NetmonRun(config, workdir, port) as netmon,
            aiohttp.ClientSession(auto_decompress=False) as session,
        ):
            await netmon.until_ready(session, 180)
            console.print(f"{targets} targets: ready, pid {netmon.pid}")
            scrapes = 0

            async def scraper() -> None:
                nonlocal scrapes
                while True:
                    await _scrape(session, netmon.url + "/metrics")
                    scrapes += 1
                    await asyncio.sleep(scrape - (time.monotonic() - start) % scrape)

            start = time.monotonic()
            task = asyncio.create_task(scraper())
            try:
                while True:
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
    return samples


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
    args = parser.parse_args()

    console.print(f"uptime: {_uptime()}")
    base = asyncio.run(run(args.baseline_targets, args.baseline_seconds, args.sample, args.scrape))
    base_kb = base[-1][1]
    console.print(f"uptime: {_uptime()}")
    samples = asyncio.run(run(args.targets, 60 * args.minutes, args.sample, args.scrape))
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


if __name__ == "__main__":
    main()

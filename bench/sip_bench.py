"""SIP OPTIONS benchmark: 215 endpoints probed at once, netmon against sipsak, same peer.

A Kamailio on loopback (tests/sip_peers.py, stateless 200 OK to OPTIONS) is asked by 215
probes at once, `--runs` times per transport: by netmon's real SIP collector (one process, one
event loop), and by sipsak as a monitoring system's check would run it, one process per probe,
all 215 started together. For each burst: the wall time until the last answer and the CPU
seconds (this process for netmon, its children for sipsak). `make test` checks that every one
of the 215 answers (tests/test_sip_probe.py); how long they take is this figure.

Run with `make bench` (no root needed). Plain figures depend on the machine and on what else
runs on it; compare the ratios.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import statistics
import subprocess
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from rich.console import Console
from rich.table import Table

from collectors.sip import SipCollector, SipSettings
from netmon.model import ProbeTarget
from tests.sip_peers import Kamailio, program

console = Console()
ENDPOINTS = 215


@dataclass
class Burst:
    tool: str
    transport: str
    answered: int
    wall_seconds: float
    cpu_seconds: float


def _cpu(who: int) -> float:
    usage = resource.getrusage(who)
    return usage.ru_utime + usage.ru_stime


async def netmon_burst(port: int, transport: str) -> Burst:
    collector = SipCollector()
    settings = SipSettings(port=port, transport=transport)
    targets = [ProbeTarget(f"ep-{i}", "127.0.0.1") for i in range(ENDPOINTS)]
    cpu, started = _cpu(resource.RUSAGE_SELF), time.monotonic()
    results = await asyncio.gather(
        *(collector.collect(target, settings) for target in targets), return_exceptions=True
    )
    wall, cpu = time.monotonic() - started, _cpu(resource.RUSAGE_SELF) - cpu
    answered = sum(1 for r in results if not isinstance(r, BaseException) and r.status_code)
    return Burst("netmon", transport, answered, wall, cpu)


async def sipsak_burst(port: int, transport: str) -> Burst:
    sipsak = program("sipsak")
    extra = ["-E", "tcp"] if transport == "tcp" else []

    async def one(i: int) -> int:
        process = await asyncio.create_subprocess_exec(
            sipsak, "-s", f"sip:ep-{i}@127.0.0.1:{port}", *extra,
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        return await process.wait()

    cpu, started = _cpu(resource.RUSAGE_CHILDREN), time.monotonic()
    codes = await asyncio.gather(*(one(i) for i in range(ENDPOINTS)))
    wall, cpu = time.monotonic() - started, _cpu(resource.RUSAGE_CHILDREN) - cpu
    return Burst("sipsak", transport, sum(1 for c in codes if c == 0), wall, cpu)


async def measure(port: int, runs: int) -> list[Burst]:
    bursts: list[Burst] = []
    for transport in ("udp", "tcp"):
        for run in range(runs):
            with console.status(f"{transport}: burst {run + 1} of {runs}"):
                bursts.append(await netmon_burst(port, transport))
                bursts.append(await sipsak_burst(port, transport))
    return bursts


def report(bursts: list[Burst]) -> dict[str, object]:
    table = Table(title=f"{ENDPOINTS} SIP OPTIONS at once against Kamailio, median (min-max)")
    for column in ("transport", "tool", "answered", "wall s", "CPU s"):
        table.add_column(column, justify="right")
    summary: dict[str, dict[str, float]] = {}
    for transport in ("udp", "tcp"):
        for tool in ("netmon", "sipsak"):
            rows = [b for b in bursts if (b.tool, b.transport) == (tool, transport)]
            walls, cpus = [b.wall_seconds for b in rows], [b.cpu_seconds for b in rows]
            summary[f"{tool} {transport}"] = {
                "wall": statistics.median(walls),
                "cpu": statistics.median(cpus),
            }
            table.add_row(
                transport, tool, f"{min(b.answered for b in rows)}/{ENDPOINTS}",
                f"{statistics.median(walls):.3f} ({min(walls):.3f}-{max(walls):.3f})",
                f"{statistics.median(cpus):.3f} ({min(cpus):.3f}-{max(cpus):.3f})",
            )  # fmt: skip
        ours, theirs = summary[f"netmon {transport}"], summary[f"sipsak {transport}"]
        table.add_row(
            transport, "netmon / sipsak", "",
            f"{ours['wall'] / theirs['wall']:.3f}x", f"{ours['cpu'] / theirs['cpu']:.3f}x",
        )  # fmt: skip
    console.print(table)
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else "")
    parser.add_argument("--runs", type=int, default=5, help="bursts per tool and transport")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="netmon-sip-bench-") as tmp:
        kamailio = Kamailio(Path(tmp))
        try:
            bursts = asyncio.run(measure(kamailio.port, args.runs))
        finally:
            kamailio.stop()
    summary = report(bursts)
    out = Path("bench/results")
    out.mkdir(parents=True, exist_ok=True)
    result = {"summary": summary, "bursts": [asdict(b) for b in bursts]}
    (out / f"sip-{time.strftime('%Y%m%dT%H%M%S')}.json").write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()

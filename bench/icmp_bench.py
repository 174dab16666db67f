"""ICMP benchmark: netmon against fping, same targets, same run, printed as ratios.

1. Load: the 215 lab endpoints and a 2,000-address loopback set, each probed once a second for
   `--seconds`; CPU seconds per 1,000 probes and false loss, for netmon's real scheduler +
   collector + state store (in a child process) and for `fping -C`.
2. Accuracy: a lab host in a network namespace whose responder answers after 20 ms; median RTT
   error of each tool against those 20 ms.

Run with `make bench` (needs root for raw sockets and namespaces). Absolute numbers depend on
the machine; the ratios are what to compare.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from rich.console import Console
from rich.table import Table

from netmon_lab.demo import demo_config

console = Console()


@dataclass
class LoadResult:
    tool: str
    targets: int
    probes: int
    lost: int
    cpu_seconds: float

    @property
    def cpu_per_1000(self) -> float:
        return 1000 * self.cpu_seconds / self.probes if self.probes else float("nan")


def loopback_set(count: int) -> list[str]:
    return [f"127.10.{i // 250}.{1 + i % 250}" for i in range(count)]


def demo_addresses() -> list[str]:
    return [target["address"] for target in demo_config("127.0.0.1:0")["targets"]]


def run_netmon(addresses: list[str], seconds: int) -> LoadResult:
    with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as handle:
        handle.write("\n".join(addresses))
    output = subprocess.run(
        [sys.executable, "-m", "bench.netmon_load", handle.name, str(seconds)],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    data = json.loads(output)
    return LoadResult("netmon", len(addresses), data["sent"], data["sent"] - data["received"],
                      data["cpu_seconds"])  # fmt: skip


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_fping(addresses: list[str], seconds: int) -> LoadResult:
    # -i spreads one round over at most half a second, as netmon spreads its start times.
    spacing_ms = max(0.1, min(10.0, 500.0 / len(addresses)))
    before = _children_cpu()
    result = subprocess.run(
        ["fping", "-C", str(seconds), "-p", "1000", "-i", f"{spacing_ms:g}", "-t", "800",
         "-r", "0", "-q", *addresses],
        capture_output=True,
        text=True,
    )  # fmt: skip
    cpu = _children_cpu() - before
    probes = lost = 0
    for line in result.stderr.splitlines():
        if " : " not in line:
            continue
        values = line.split(" : ", 1)[1].split()
        probes += len(values)
        lost += values.count("-")
    return LoadResult("fping", len(addresses), probes, lost, cpu)


def accuracy(seconds: int) -> dict[str, float]:
    from collectors.pinger import Pinger
    from tests.lab import netlab

    netlab.check_available()
    netlab.remove_stale()
    netlab.guard_lab_range()
    with tempfile.TemporaryDirectory() as workdir:
        lab = netlab.NetLab(workdir=Path(workdir))
        try:
            host = lab.add_host(delay=0.020)
            count = 25 * seconds

            async def netmon_rtts() -> list[float]:
                async with Pinger() as pinger:
                    rtts = await pinger.ping(host.address, count=count, spacing=0.04, timeout=1)
                return [rtt for rtt in rtts if rtt is not None]

            import asyncio

            ours = asyncio.run(netmon_rtts())
            fping = subprocess.run(
                ["fping", "-C", str(count), "-p", "40", "-q", host.address],
                capture_output=True,
                text=True,
            ).stderr
            theirs = [float(v) / 1000 for v in fping.split(" : ", 1)[1].split() if v != "-"]
        finally:
            lab.close()
    return {
        "netmon_median_error_ms": (statistics.median(ours) - 0.020) * 1000,
        "fping_median_error_ms": (statistics.median(theirs) - 0.020) * 1000,
        "netmon_lost": count - len(ours),
        "fping_lost": count - len(theirs),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=10, help="probing time per run")
    args = parser.parse_args()

    sets = {"215 lab endpoints": demo_addresses(), "2,000 loopback": loopback_set(2000)}
    table = Table(title=f"ICMP load: every target once a second for {args.seconds} s")
    for column in ("targets", "tool", "probes", "lost", "CPU s", "CPU s / 1000 probes",
                   "netmon / fping"):  # fmt: skip
        table.add_column(column, justify="right")
    results: list[dict[str, object]] = []
    for label, addresses in sets.items():
        with console.status(f"{label}: netmon"):
            ours = run_netmon(addresses, args.seconds)
        with console.status(f"{label}: fping"):
            theirs = run_fping(addresses, args.seconds)
        ratio = ours.cpu_per_1000 / theirs.cpu_per_1000 if theirs.cpu_per_1000 else float("inf")
        for result in (ours, theirs):
            table.add_row(
                label, result.tool, str(result.probes), str(result.lost),
                f"{result.cpu_seconds:.3f}", f"{result.cpu_per_1000:.4f}",
                f"{ratio:.2f}x" if result is ours else "",
            )  # fmt: skip
            results.append({"set": label, **asdict(result), "cpu_per_1000": result.cpu_per_1000})
    console.print(table)

    with console.status("accuracy against a 20 ms lab host"):
        acc = accuracy(args.seconds)
    console.print(
        f"RTT against a lab host with 20 ms delay: median error netmon "
        f"{acc['netmon_median_error_ms']:+.3f} ms, fping {acc['fping_median_error_ms']:+.3f} ms "
        f"(lost: netmon {acc['netmon_lost']}, fping {acc['fping_lost']})"
    )
    out = Path("bench/results")
    out.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%dT%H%M%S")
    (out / f"icmp-{stamp}.json").write_text(
        json.dumps({"load": results, "accuracy": acc}, indent=2)
    )


if __name__ == "__main__":
    main()

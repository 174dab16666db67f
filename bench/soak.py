"""`make soak`: the demo for half an hour with a fault injected every minute; does netmon stay flat?

What it measures (issue 14's soak): `netmon demo` (the whole lab: 215 endpoints in a network
namespace, snmpsim devices, one netmon) runs for `--minutes` (30). Every minute a fault of the
next kind is injected (an endpoint down, loss, delay, jitter, bursts, a district's uplink cut,
an interface down) and cleared 30 s later. Every minute netmon's own /metrics are read:
resident memory and open file descriptors (prometheus_client's process collector), asyncio
tasks (`netmon_asyncio_tasks`), and how many series it exports; and the demo's log is counted
for ERROR lines. A healthy process is flat: after the first minutes (caches, the lab's first
polls) memory, descriptors, tasks and series do not keep growing with every fault.

Verdicts: memory at the end within 10 % of the 5th minute; descriptors and tasks at the end
within 5 of the 5th minute; series at the end (every fault cleared) within 2 % of the 5th
minute; no ERROR line in the log. Each is printed as met or MISS; the samples go to
bench/results/soak-<UTC>.json. Needs root (the demo's namespaces). Not part of `make test`.

    make soak                                   # 30 minutes
    .venv/bin/python -m bench.soak --minutes 6  # a quick look
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import threading
import time
import urllib.request
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from prometheus_client.parser import text_string_to_metric_families
from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
NETMON = Path(sys.executable).with_name("netmon")
FAULT_PATH = "/api/v1/demo/faults"
WARM_UP = 5  # minutes before the baseline sample
FAULTS: tuple[dict[str, Any], ...] = (
    {"kind": "endpoint-down", "target": "ep-so-01"},
    {"kind": "loss", "target": "ep-so-02", "value": 0.05},
    {"kind": "delay", "target": "ep-so-03", "value": 0.2},
    {"kind": "jitter", "target": "ep-so-03", "value": 0.003},
    {"kind": "burst", "target": "ep-so-04", "every": "20s", "length": "5-10"},
    {"kind": "uplink-cut", "district": "cam-thuy"},
    {"kind": "interface-down", "device": "cpe-ep-so-08", "interface": "WAN"},
)
console = Console()


@dataclass
class Sample:
    minute: int
    rss_mib: float
    open_fds: float
    tasks: float
    series: int
    error_lines: int


class Demo:
    def __init__(self) -> None:
        self.lines: list[str] = []
        self.process = subprocess.Popen(
            [str(NETMON), "demo", "--listen", "127.0.0.1:0", "--mqtt", "", "--alertmanager", ""],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        threading.Thread(target=self._read, daemon=True).start()
        deadline = time.monotonic() + 60
        while not (match := re.search(r"metrics\s+(http://\S+)/metrics", "".join(self.lines))):
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise SystemExit("the demo did not start:\n" + "".join(self.lines))
            time.sleep(0.5)
        self.url = match.group(1)

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line)

    def call(self, method: str, suffix: str = "", body: object = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(  # noqa: S310 - the demo on loopback
            self.url + FAULT_PATH + suffix,
            data=data,
            method=method,
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=15) as response:  # noqa: S310
            return json.loads(response.read())

    def sample(self, minute: int) -> Sample:
        with urllib.request.urlopen(self.url + "/metrics", timeout=15) as response:  # noqa: S310
            text = response.read().decode()
        values: dict[str, float] = {}
        series = 0
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                series += 1
                values.setdefault(sample.name, sample.value)
        errors = sum(1 for line in self.lines if " ERROR " in line or '"level": "error"' in line)
        return Sample(
            minute=minute,
            rss_mib=values.get("process_resident_memory_bytes", 0.0) / 2**20,
            open_fds=values.get("process_open_fds", 0.0),
            tasks=values.get("netmon_asyncio_tasks", 0.0),
            series=series,
            error_lines=errors,
        )

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()


def verdicts(samples: list[Sample]) -> list[tuple[str, str, str, bool]]:
    base = samples[min(WARM_UP, len(samples) - 1)]
    end = samples[-1]
    return [
        ("memory (RSS)", f"{base.rss_mib:.1f} MiB", f"{end.rss_mib:.1f} MiB",
         end.rss_mib <= base.rss_mib * 1.10),
        ("open file descriptors", f"{base.open_fds:.0f}", f"{end.open_fds:.0f}",
         end.open_fds <= base.open_fds + 5),
        ("asyncio tasks", f"{base.tasks:.0f}", f"{end.tasks:.0f}", end.tasks <= base.tasks + 5),
        ("series on /metrics", f"{base.series}", f"{end.series}",
         end.series <= base.series * 1.02),
        ("ERROR lines in the log", "0", f"{end.error_lines}", end.error_lines == 0),
    ]  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.soak", description=__doc__)
    parser.add_argument("--minutes", type=int, default=30)
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("the soak runs the demo's lab: it needs root", file=sys.stderr)
        return 2
    if args.minutes <= WARM_UP:
        parser.error(f"--minutes must be more than the {WARM_UP}-minute warm-up")
    demo = Demo()
    samples: list[Sample] = []
    started = time.monotonic()
    try:
        console.print(f"demo at {demo.url}; {args.minutes} min, a fault every minute")
        for minute in range(args.minutes):
            due = started + minute * 60
            time.sleep(max(0.0, due - time.monotonic()))
            samples.append(demo.sample(minute))
            console.print(f"minute {minute}: {asdict(samples[-1])}")
            if minute < args.minutes - 1:
                fault = demo.call("POST", body=FAULTS[minute % len(FAULTS)])
                time.sleep(30)
                demo.call("DELETE", "/" + fault["id"])
        time.sleep(max(0.0, started + args.minutes * 60 - time.monotonic()))
        samples.append(demo.sample(args.minutes))  # every fault cleared a while ago
    finally:
        demo.stop()
    table = Table(title=f"Soak: the demo for {args.minutes} min, a fault a minute")
    for column in ("measure", f"minute {WARM_UP}", f"minute {args.minutes}", "flat"):
        table.add_column(column)
    results = verdicts(samples)
    for name, base, end, ok in results:
        table.add_row(name, base, end, "[green]met[/]" if ok else "[bold red]MISS[/]")
    console.print(table)
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"soak-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}.json"
    path.write_text(
        json.dumps(
            {"minutes": args.minutes, "samples": [asdict(s) for s in samples],
             "verdicts": [{"measure": n, "base": b, "end": e, "met": ok}
                          for n, b, e, ok in results]},
            indent=1,
        ),
        encoding="utf-8",
    )  # fmt: skip
    console.print(f"results: {path.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

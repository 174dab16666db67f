"""Readiness check benchmark: how long `netmon check` takes over the whole demo lab.

Starts `netmon demo` (215 endpoints in network namespaces, with its standing faults), waits until
every endpoint is up, then runs `netmon check --format json` over the demo's config `--runs`
times: the duration each report gives, the wall time of the command, and the verdict counts.
A run near the check's deadline (10 s by default) means verdicts cut short by it.

Run with `make bench` (needs root for namespaces). Plain figures: no peer tool does this check;
absolute numbers depend on the machine and on what else runs on it.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import subprocess
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from tests.demo_peer import Demo
from tests.helpers import netmon_command, wait_until
from tests.lab import netlab

console = Console()


def check(config: str) -> tuple[float, bool, dict[str, object]]:
    """(wall seconds, whether the check hit its deadline, the JSON report) of one check."""
    started = time.monotonic()
    result = subprocess.run(
        [*netmon_command(), "check", "--config", config, "--format", "json"],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    wall = time.monotonic() - started
    if result.returncode not in (0, 1):  # 1: something is NO-GO, as in the lab
        raise SystemExit(f"netmon check failed ({result.returncode}):\n{result.stderr}")
    report: dict[str, object] = json.loads(result.stdout)
    return wall, "hit its deadline" in result.stderr, report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="checks of the whole lab")
    args = parser.parse_args()

    netlab.check_available()
    netlab.remove_stale()
    netlab.guard_lab_range()
    with console.status("starting netmon demo"):
        demo = Demo(mqtt="", alertmanager="")
    try:
        with console.status("waiting for the 215 endpoints to be up"):
            wait_until(
                lambda: list(demo.up().values()) == [1.0] * 215,
                timeout=60, interval=0.5, what="215 endpoints up",
            )  # fmt: skip
        found = re.search(r"config\s+(\S+netmon-demo\.yaml)", demo.output)
        if found is None:
            raise SystemExit(f"no config path in the demo's banner:\n{demo.output}")
        runs: list[dict[str, object]] = []
        for run in range(args.runs):
            with console.status(f"netmon check, run {run + 1} of {args.runs}"):
                wall, cut_short, report = check(found.group(1))
            endpoints = report["endpoints"]
            assert isinstance(endpoints, list)
            runs.append(
                {"duration_seconds": report["duration_seconds"], "wall_seconds": round(wall, 3),
                 "hit_deadline": cut_short, "endpoints": len(endpoints),
                 "counts": report["counts"]}
            )  # fmt: skip
    finally:
        demo.stop()

    table = Table(title="netmon check over the demo lab (215 endpoints, 50 pings each)")
    columns = ("run", "endpoints", "check s (report)", "command s (wall)", "hit deadline",
               "GO/WARN/NO-GO")  # fmt: skip
    for column in columns:
        table.add_column(column, justify="right")
    for number, run in enumerate(runs, 1):
        counts = run["counts"]
        assert isinstance(counts, dict)
        table.add_row(
            str(number), str(run["endpoints"]), f"{run['duration_seconds']:.3f}",
            f"{run['wall_seconds']:.3f}", "yes" if run["hit_deadline"] else "no",
            f"{counts['GO']}/{counts['WARN']}/{counts['NO-GO']}",
        )  # fmt: skip
    console.print(table)
    durations = [float(str(run["duration_seconds"])) for run in runs]
    console.print(
        f"check duration: median {statistics.median(durations):.3f} s, "
        f"max {max(durations):.3f} s (its deadline: 10 s)"
    )
    out = Path("bench/results")
    out.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%dT%H%M%S")
    (out / f"check-{stamp}.json").write_text(json.dumps({"runs": runs}, indent=2))


if __name__ == "__main__":
    main()

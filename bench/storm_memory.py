"""Where netmon's memory goes during a trap storm: `make storm ARGS="--memory"` (issue 14).

The storm's RSS figures say how much netmon grows, not what grew. With `--memory`, bench/storm.py
starts netmon through this module instead of the `netmon` script: the same `netmon run`, with
tracemalloc on from the first import and a SIGUSR2 handler that writes, at each of the bench's
snapshots, the Python heap (a tracemalloc snapshot), the process's resident memory split as the
kernel sees it (/proc/self/smaps_rollup: anonymous, file-backed) and pymalloc's arenas
(`sys._debugmallocstats`). Nothing of this is in netmon itself: only the bench turns it on, and
tracemalloc slows every allocation, so the storm's lag figures of such a run are not the ones
to report.

`report()` then diffs the snapshots (before the first storm, after each, settled): the growth
by file and by line, the live arenas and their high-water mark, anonymous against file-backed.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import signal
import sys
import tracemalloc
from pathlib import Path
from types import FrameType
from typing import Any

FRAMES = 12  # enough to see past pyasn1 and the stdlib to who asked for the memory
ENV = "NETMON_BENCH_MEMORY_DIR"
# tracemalloc replaces pymalloc's entry points, so its arena counts are only there without it:
# one run for the arenas and the true RSS, another (--tracemalloc) for who holds the heap.
TRACE_ENV = "NETMON_BENCH_TRACEMALLOC"


def dump(directory: Path, label: str) -> None:
    """One snapshot's three views, as files named after `label`."""
    if tracemalloc.is_tracing():
        tracemalloc.take_snapshot().dump(str(directory / f"{label}.tracemalloc"))
    (directory / f"{label}.smaps").write_text(Path("/proc/self/smaps_rollup").read_text())
    # _debugmallocstats writes to the C stderr: point fd 2 at a file for the call.
    target = directory / f"{label}.pymalloc"
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with target.open("wb") as out:
            os.dup2(out.fileno(), 2)
            sys._debugmallocstats()
    finally:
        os.dup2(saved, 2)
        os.close(saved)
    (directory / f"{label}.done").touch()  # written last: the bench waits for it


def main() -> None:
    directory = Path(os.environ[ENV])
    count = iter(range(1_000_000))
    if os.environ.get(TRACE_ENV):
        tracemalloc.start(FRAMES)

    def on_signal(signum: int, frame: FrameType | None) -> None:
        dump(directory, f"snap-{next(count):02d}")

    signal.signal(signal.SIGUSR2, on_signal)
    from netmon.cli import main as netmon_main

    sys.argv = ["netmon", *sys.argv[1:]]
    sys.exit(netmon_main())


# --- reading them back ------------------------------------------------------------------------


def smaps(path: Path) -> dict[str, int]:
    """kB fields of smaps_rollup, in bytes."""
    fields = {}
    for line in path.read_text().splitlines():
        match = re.match(r"(\w+):\s+(\d+) kB", line)
        if match:
            fields[match[1]] = int(match[2]) * 1024
    return fields


def arenas(path: Path) -> dict[str, int]:
    """pymalloc's arena counts: allocated total, reclaimed, high-water mark, in use now."""
    out = {}
    for line in path.read_text(errors="replace").splitlines():
        match = re.match(r"# arenas (allocated total|reclaimed|highwater mark|allocated current)"
                         r"\s+=\s+([\d,]+)", line)  # fmt: skip
        if match:
            out[match[1]] = int(match[2].replace(",", ""))
    return out


def _where(frame: Any) -> str:
    name = frame.filename
    for marker in ("site-packages/", "/lib/python3", "/work/"):
        if marker in name:
            name = name.split(marker, 1)[1]
    return f"{name}:{frame.lineno}"


def _owner(trace: Any) -> str:
    """The innermost frame outside the stdlib and pyasn1: whose memory it is."""
    for frame in reversed(trace.traceback):  # stored oldest first
        name = frame.filename
        if "pyasn1/" in name or ("/lib/python3." in name and "site-packages" not in name):
            continue
        return _where(frame)
    return _where(trace.traceback[0])


def diff(before: Path, after: Path, top: int = 12) -> dict[str, Any]:
    old = tracemalloc.Snapshot.load(str(before)).filter_traces(
        [tracemalloc.Filter(False, tracemalloc.__file__)]
    )
    new = tracemalloc.Snapshot.load(str(after)).filter_traces(
        [tracemalloc.Filter(False, tracemalloc.__file__)]
    )
    total = sum(s.size for s in new.statistics("filename")) - sum(
        s.size for s in old.statistics("filename")
    )
    grown: dict[str, int] = {}
    for stat in new.compare_to(old, "traceback"):
        key = _owner(stat)
        grown[key] = grown.get(key, 0) + stat.size_diff
    ranked = sorted(grown.items(), key=lambda item: -abs(item[1]))[:top]
    return {"python_heap_delta": total, "by_owner": ranked}


def report(directory: Path, labels: list[str]) -> dict[str, Any]:
    """Each snapshot's views, and what the Python heap gained from one to the next."""
    bases = [path.with_suffix("") for path in sorted(directory.glob("snap-*.done"))]
    points = []
    for n, base in enumerate(bases):
        rollup = smaps(base.with_suffix(".smaps"))
        heap = base.with_suffix(".tracemalloc")
        points.append({
            "at": labels[n] if n < len(labels) else base.name,
            "rss": rollup.get("Rss", 0),
            "anonymous": rollup.get("Anonymous", 0),
            "file": rollup.get("Rss", 0) - rollup.get("Anonymous", 0),
            "arenas": arenas(base.with_suffix(".pymalloc")),
            "python_heap": sum(
                s.size for s in tracemalloc.Snapshot.load(str(heap)).statistics("filename")
            ) if heap.exists() else None,
        })  # fmt: skip
    heaps = [base.with_suffix(".tracemalloc") for base in bases]
    steps = [
        {"from": points[n - 1]["at"], "to": points[n]["at"], **diff(heaps[n - 1], heaps[n])}
        for n in range(1, len(heaps))
        if heaps[n].exists()
    ]
    return {"points": points, "steps": steps}


def print_report(result: dict[str, Any]) -> None:
    out = io.StringIO()
    mib = 2**20
    print("memory at each snapshot (MiB; arenas are pymalloc's 1 MiB arenas):", file=out)
    for point in result["points"]:
        a = point["arenas"]
        print(
            f"  {point['at']:<16} RSS {point['rss'] / mib:6.1f}  anonymous "
            f"{point['anonymous'] / mib:6.1f}  file-backed {point['file'] / mib:5.1f}  "
            + (
                f"python heap {point['python_heap'] / mib:6.1f}"
                if point["python_heap"]
                else f"arenas {a.get('allocated current', 0)} in use "
                f"(high-water {a.get('highwater mark', 0)}, "
                f"{a.get('allocated total', 0)} allocated and "
                f"{a.get('reclaimed', 0)} given back in all)"
            ),
            file=out,
        )
    for step in result["steps"]:
        print(f"python heap, {step['from']} → {step['to']}: "
              f"{step['python_heap_delta'] / mib:+.2f} MiB", file=out)  # fmt: skip
        for where, size in step["by_owner"]:
            print(f"  {size / 1024:+9.0f} KiB  {where}", file=out)
    print(out.getvalue(), end="")


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        main()

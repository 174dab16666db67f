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
import ctypes
import gc
import io
import os
import re
import signal
import sys
import tracemalloc
from collections import deque
from pathlib import Path
from types import FrameType
from typing import Any

FRAMES = 12  # enough to see past pyasn1 and the stdlib to who asked for the memory
ENV = "NETMON_BENCH_MEMORY_DIR"
# tracemalloc replaces pymalloc's entry points, so its arena counts are only there without it:
# one run for the arenas and the true RSS, another (--tracemalloc) for who holds the heap.
TRACE_ENV = "NETMON_BENCH_TRACEMALLOC"


# "late": tracemalloc starts at the first snapshot, not at import: the later snapshots then hold
# only what was allocated since and is still alive (what a steady state keeps growing), and
# netmon runs at full speed up to it (bench/memory_bench.py's long runs).
LATE = "late"
OBJECTS_ENV = "NETMON_BENCH_OBJECTS"  # "1": live objects by type too (seconds of gc walk at 10,000)


def objects(directory: Path, label: str) -> None:
    """Live gc-tracked objects by type, and the largest containers (type, length, id, a hint):
    the same id longer at each snapshot is a structure that keeps growing."""
    counts: dict[str, int] = {}
    big: list[tuple[int, str, int, str]] = []
    for obj in gc.get_objects():
        kind = type(obj)
        name = f"{kind.__module__}.{kind.__qualname__}"
        counts[name] = counts.get(name, 0) + 1
        if isinstance(obj, dict | list | set | deque):
            size = len(obj)
            if size >= 500:
                hint = repr(list(obj.items())[:2] if isinstance(obj, dict) else list(obj)[:2])
                big.append((size, name, id(obj), hint[:200]))
    lines = [f"{n}\t{name}" for name, n in sorted(counts.items(), key=lambda i: -i[1])]
    lines += ["--"] + [f"{size}\t{name}\t{ident}\t{hint}" for size, name, ident, hint in
                       sorted(big, reverse=True)]  # fmt: skip
    (directory / f"{label}.objects").write_text("\n".join(lines) + "\n")


def malloc_info(path: Path) -> None:
    """glibc's malloc_info(3) XML: per malloc arena, what it holds from the system and what of
    it is free (Python's objects over 512 bytes, and every C library's, live there)."""
    libc = ctypes.CDLL(None)
    libc.fopen.restype = ctypes.c_void_p
    libc.fopen.argtypes = [ctypes.c_char_p, ctypes.c_char_p]
    libc.malloc_info.argtypes = [ctypes.c_int, ctypes.c_void_p]
    libc.fclose.argtypes = [ctypes.c_void_p]
    stream = libc.fopen(str(path).encode(), b"w")
    if stream:
        libc.malloc_info(0, stream)
        libc.fclose(stream)


def dump(directory: Path, label: str) -> None:
    """One snapshot's views, as files named after `label`."""
    if tracemalloc.is_tracing():
        tracemalloc.take_snapshot().dump(str(directory / f"{label}.tracemalloc"))
    if os.environ.get(OBJECTS_ENV):
        objects(directory, label)
    malloc_info(directory / f"{label}.malloc")
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
    if os.environ.get(TRACE_ENV) == LATE and not tracemalloc.is_tracing():
        tracemalloc.start(FRAMES)
    (directory / f"{label}.done").touch()  # written last: the bench waits for it


def main() -> None:
    directory = Path(os.environ[ENV])
    count = iter(range(1_000_000))
    if os.environ.get(TRACE_ENV) not in (None, "", LATE):
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


def glibc_heaps(path: Path) -> dict[str, int]:
    """malloc_info's totals (bytes): heaps (arenas), their system memory, free in them, and
    the blocks served by mmap."""
    if not path.exists():
        return {}
    text = path.read_text(errors="replace")
    tail = text[text.rfind("</heap>") :]  # the totals over all heaps follow the last one
    out = {"heaps": text.count("<heap nr=")}
    for kind, key in (("rest", "free"), ("fast", "free_fast"), ("mmap", "mmap")):
        match = re.search(rf'<total type="{kind}" count="\d+" size="(\d+)"/>', tail)
        out[key] = int(match[1]) if match else 0
    match = re.search(r'<system type="current" size="(\d+)"/>', tail)
    out["system"] = int(match[1]) if match else 0
    return out


def pymalloc_used(path: Path) -> int:
    text = path.read_text(errors="replace")
    match = re.search(r"# bytes in allocated blocks\s+=\s+([\d,]+)", text)
    return int(match[1].replace(",", "")) if match else 0


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
            "pymalloc_used": pymalloc_used(base.with_suffix(".pymalloc")),
            "glibc": glibc_heaps(base.with_suffix(".malloc")),
            "python_heap": sum(
                s.size for s in tracemalloc.Snapshot.load(str(heap)).statistics("filename")
            ) if heap.exists() else None,
        })  # fmt: skip
    heaps = [base.with_suffix(".tracemalloc") for base in bases]
    steps = [
        {"from": points[n - 1]["at"], "to": points[n]["at"], **diff(heaps[n - 1], heaps[n])}
        for n in range(1, len(heaps))
        if heaps[n].exists() and heaps[n - 1].exists()
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
        if point.get("glibc"):
            g = point["glibc"]
            print(
                f"  {'':<16} pymalloc blocks in use {point['pymalloc_used'] / mib:6.1f}; glibc: "
                f"{g['heaps']} heaps, {g['system'] / mib:6.1f} from the system, "
                f"{(g['free'] + g['free_fast']) / mib:6.1f} of it free, "
                f"{g['mmap'] / mib:5.1f} in mmap'd blocks",
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

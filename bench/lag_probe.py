"""`netmon run` with a timer on its event loop that writes down how late it fires.

Usage: python bench/lag_probe.py LAG_FILE run --config ...  (the rest is netmon's command line)

Run by path, not as a module, so that the netmon it starts is whichever the environment puts
first (`PYTHONPATH`: the bench's baseline tree, or this checkout). A task on netmon's own loop
sleeps 10 ms at a time and appends, once a second, one line per wake-up to LAG_FILE:
`<unix time> <lateness in seconds>`. A loop held by a scrape shows as a late timer, exactly
as the probes' timers are late. Each garbage collection goes to LAG_FILE.gc as
`<unix time at its end> <generation> <seconds>`, so a late timer can be told from a collection.
"""

from __future__ import annotations

import asyncio
import gc
import os
import sys
import time
from collections.abc import Coroutine
from typing import Any

PERIOD = 0.010


async def _watch(path: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    lines: list[str] = []
    flushed = time.monotonic()
    try:
        while True:
            planned = time.monotonic() + PERIOD
            await asyncio.sleep(PERIOD)
            now = time.monotonic()
            lines.append(f"{time.time():.3f} {now - planned:.6f}\n")
            if now - flushed >= 1.0:
                os.write(fd, "".join(lines).encode())
                lines.clear()
                flushed = now
    finally:
        os.write(fd, "".join(lines).encode())
        os.close(fd)


def _time_collections(path: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    started = [0.0]
    lines: list[str] = []

    def callback(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            started[0] = time.perf_counter()
            return
        lines.append(
            f"{time.time():.3f} {info['generation']} {time.perf_counter() - started[0]:.6f}\n"
        )
        if len(lines) >= 64 or info["generation"] == 2:
            os.write(fd, "".join(lines).encode())
            lines.clear()

    gc.callbacks.append(callback)


def main() -> int:
    lag_file = sys.argv[1]
    _time_collections(lag_file + ".gc")
    sys.argv = ["netmon", *sys.argv[2:]]
    run = asyncio.run

    def watched_run(main: Coroutine[Any, Any, Any], **kwargs: Any) -> Any:
        async def both() -> Any:
            watcher = asyncio.create_task(_watch(lag_file))
            try:
                return await main
            finally:
                watcher.cancel()

        return run(both(), **kwargs)

    asyncio.run = watched_run  # type: ignore[assignment]
    from netmon.cli import main as netmon_main

    return netmon_main()


if __name__ == "__main__":
    sys.exit(main())

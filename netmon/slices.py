"""Work that grows with the inventory, done in slices with turns of the event loop between.

A scrape at 10,000 targets, or the targets listing, is a few hundred milliseconds of CPU; in
one piece it would hold up every probe timer that long. `Slices` says when a slice is over
(5 ms) and takes the turn. While the loop is so busy that a turn itself takes long (probes
queued up behind each other), a slice grows to a quarter of the last turn's wait, at most
50 ms: the work still ends, taking about a fifth of the loop, instead of waiting its turn a
hundred times behind a backlog.
"""

from __future__ import annotations

import asyncio
import time


class Slices:
    def __init__(self, base: float = 0.005, most: float = 0.05, share: float = 0.25) -> None:
        self._base = base
        self._most = most
        self._share = share
        self._until = time.perf_counter() + base

    def due(self) -> bool:
        """Whether the current slice is over."""
        return time.perf_counter() > self._until

    async def turn(self) -> None:
        """Let the event loop run, then start a new slice."""
        asked = time.perf_counter()
        await asyncio.sleep(0)
        now = time.perf_counter()
        length = min(self._most, max(self._base, self._share * (now - asked)))
        self._until = now + length

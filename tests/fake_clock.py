"""A clock for asyncio code that takes `clock` and `sleep` seams: time moves when a test says.

`FakeClock()` is the clock (call it for now), `.sleep` the sleep to hand over. `advance(seconds)`
moves time forward, waking each sleeper at its own time, in order, and letting every task that
can run, run before time moves on: what a second of polling does takes microseconds, and the
same every run.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
from collections.abc import Callable


class FakeClock:
    def __init__(self, start: float = 1000.0) -> None:
        self.now = start
        self._sleepers: list[tuple[float, int, asyncio.Future[None]]] = []
        self._order = itertools.count()

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        if seconds <= 0:
            await asyncio.sleep(0)
            return
        woken = asyncio.get_running_loop().create_future()
        heapq.heappush(self._sleepers, (self.now + seconds, next(self._order), woken))
        await woken

    @property
    def sleeping(self) -> int:
        """How many sleeps on this clock are pending: a task that waits for time to pass."""
        return sum(1 for _, _, woken in self._sleepers if not woken.done())

    async def advance(self, seconds: float) -> None:
        """Let `seconds` pass."""
        end = self.now + seconds
        await settle()
        while self._sleepers and self._sleepers[0][0] <= end:
            self._wake_next()
            await settle()
        self.now = max(self.now, end)

    async def advance_until(
        self, condition: Callable[[], object], *, within: float, what: str = ""
    ) -> float:
        """Let time pass, one wake-up at a time, until `condition()` holds; fail if it does not
        within `within` seconds. Returns the time it took."""
        start = self.now
        await settle()
        while not condition():
            if not self._sleepers or self._sleepers[0][0] > start + within:
                raise AssertionError(f"not within {within} s: {what or condition}")
            self._wake_next()
            await settle()
        return self.now - start

    def _wake_next(self) -> None:
        when, _, woken = heapq.heappop(self._sleepers)
        self.now = max(self.now, when)
        if not woken.done():  # a sleeper cancelled meanwhile
            woken.set_result(None)


async def settle() -> None:
    """Run every task that can run until all wait: on this clock, a future, or a cancelled
    await. (asyncio has no public "idle" test; its ready queue is one.)"""
    loop = asyncio.get_running_loop()
    for _ in range(100_000):
        await asyncio.sleep(0)
        if not loop._ready:  # type: ignore[attr-defined]
            return
    raise AssertionError("tasks never settle: something spins without waiting")

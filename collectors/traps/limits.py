"""Bounds on what one sender can cost: a token bucket per source, and a log gate.

Both are keyed by source address, which a hostile or broken sender controls (UDP is easy to
spoof), so both have a bounded size: entries that carry no information any more (a full
bucket, a log line long past) are swept out when the table is full.
"""

from __future__ import annotations

from collections.abc import Callable

Clock = Callable[[], float]


class TokenBuckets:
    """`allow(key)` is True for at most `burst` events at once and `rate` per second after."""

    def __init__(self, *, rate: float, burst: int, clock: Clock, max_keys: int = 65_536) -> None:
        self._rate = rate
        self._burst = float(burst)
        self._clock = clock
        self._max_keys = max_keys
        self._buckets: dict[str, list[float]] = {}  # key -> [tokens, last refill time]

    def allow(self, key: str) -> bool:
        now = self._clock()
        bucket = self._buckets.get(key)
        if bucket is None:
            if len(self._buckets) >= self._max_keys:
                self._sweep(now)
            self._buckets[key] = [self._burst - 1.0, now]
            return True
        tokens = bucket[0] + (now - bucket[1]) * self._rate
        if tokens > self._burst:
            tokens = self._burst
        bucket[1] = now
        if tokens < 1.0:
            bucket[0] = tokens
            return False
        bucket[0] = tokens - 1.0
        return True

    def _sweep(self, now: float) -> None:
        # A bucket that has refilled completely is the same as no bucket at all.
        full_after = self._burst / self._rate
        self._buckets = {
            key: bucket for key, bucket in self._buckets.items() if now - bucket[1] < full_after
        }
        if len(self._buckets) >= self._max_keys:
            # Everyone is sending at once: forgetting is fairer than refusing newcomers.
            self._buckets.clear()


class LogGate:
    """`open(key)` is True at most once per `interval` seconds for each key."""

    def __init__(self, *, interval: float, clock: Clock, max_keys: int = 4096) -> None:
        self._interval = interval
        self._clock = clock
        self._max_keys = max_keys
        self._last: dict[object, float] = {}

    def open(self, key: object) -> bool:
        now = self._clock()
        last = self._last.get(key)
        if last is not None and now - last < self._interval:
            return False
        if last is None and len(self._last) >= self._max_keys:
            self._last = {k: t for k, t in self._last.items() if now - t < self._interval}
            if len(self._last) >= self._max_keys:
                return False  # a flood of new senders: their counters still count them
        self._last[key] = now
        return True

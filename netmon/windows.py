"""Statistics of echoes: histograms, the sliding windows behind RTT, jitter and loss.

Plain data and arithmetic, no I/O and no clock of their own (time is passed in): the state
store keeps one set per target, the readiness checks use the same percentile and jitter.
"""

from __future__ import annotations

import bisect
import itertools
from collections import deque
from collections.abc import Iterable, Sequence

# Round trips from a LAN (sub-millisecond) to a congested rural broadband link (seconds).
RTT_BUCKETS = (
    0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.03, 0.05, 0.075,
    0.1, 0.15, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.0,
)  # fmt: skip


class Histogram:
    """Cumulative-bucket histogram in the Prometheus sense, kept as plain counts."""

    def __init__(self, buckets: Iterable[float]) -> None:
        self.bounds = tuple(buckets)
        self.counts = [0] * (len(self.bounds) + 1)  # the last one is +Inf
        self.sum = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect.bisect_left(self.bounds, value)] += 1
        self.sum += value

    @property
    def count(self) -> int:
        return sum(self.counts)

    def cumulative(self) -> list[tuple[str, int]]:
        running = 0
        out = []
        for bound, count in zip((*self.bounds, float("inf")), self.counts, strict=True):
            running += count
            out.append(("+Inf" if bound == float("inf") else repr(bound), running))
        return out


class EchoWindow:
    """Echo outcomes over the last `seconds`, in send order, for loss, jitter and percentiles."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._entries: deque[tuple[float, float | None]] = deque()

    def add(self, when: float, rtts: Iterable[float | None]) -> None:
        for rtt in rtts:
            self._entries.append((when, rtt))
        self.prune(when)

    def prune(self, now: float) -> None:
        horizon = now - self.seconds
        while self._entries and self._entries[0][0] < horizon:
            self._entries.popleft()

    @property
    def sent(self) -> int:
        return len(self._entries)

    def rtts(self) -> list[float]:
        return [rtt for _, rtt in self._entries if rtt is not None]

    def loss_ratio(self) -> float | None:
        if not self._entries:
            return None
        lost = sum(1 for _, rtt in self._entries if rtt is None)
        return lost / len(self._entries)

    def jitter(self) -> float | None:
        """Mean absolute difference of consecutive RTTs (RFC 3550's D), over the window."""
        return jitter(self.rtts())


class LossCounter:
    """Regular echoes sent and lost over the last `seconds`, kept as counts per 10 s bucket:
    ten minutes of a target's echoes in 60 small entries, not 600 (at 10,000 targets that
    difference is memory)."""

    BUCKET = 10.0

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._buckets: deque[list[float]] = deque()  # [start, sent, lost]

    def add(self, when: float, sent: int, lost: int) -> None:
        start = when - when % self.BUCKET
        if not self._buckets or self._buckets[-1][0] != start:
            self._buckets.append([start, 0, 0])
        bucket = self._buckets[-1]
        bucket[1] += sent
        bucket[2] += lost
        self.prune(when)

    def prune(self, now: float) -> None:
        horizon = now - self.seconds
        while self._buckets and self._buckets[0][0] + self.BUCKET <= horizon:
            self._buckets.popleft()

    def forget_lost(self, echoes: int) -> None:
        """Take the last `echoes` lost echoes out of the sample altogether (newest first)."""
        for bucket in reversed(self._buckets):
            taken = int(min(echoes, bucket[2]))
            bucket[1] -= taken
            bucket[2] -= taken
            echoes -= taken
            if echoes == 0:
                return

    def counts(self) -> tuple[int, int]:
        """(sent, lost) over the window."""
        return (
            int(sum(bucket[1] for bucket in self._buckets)),
            int(sum(bucket[2] for bucket in self._buckets)),
        )


def jitter(rtts: Sequence[float]) -> float | None:
    """Mean absolute difference of consecutive RTTs (RFC 3550's D); None below two.

    From ten differences on, the largest 5 % (and at least two) are left out: one late reply (a
    garbage-collection pause here, a busy CPU on the target) makes two large differences and
    would otherwise read as jitter for as long as it stays in the window. Jitter on a link is
    many replies wandering, which the trimmed mean keeps.
    """
    if len(rtts) < 2:
        return None
    differences = [abs(b - a) for a, b in itertools.pairwise(rtts)]
    if len(differences) >= 10:
        differences.sort()
        del differences[len(differences) - (2 + len(differences) // 20) :]
    return sum(differences) / len(differences)


def percentile_95(values: Sequence[float]) -> float:
    """The 95th percentile, rounded down to a sample: of 40 it leaves the two highest out."""
    ordered = sorted(values)
    return ordered[int(0.95 * (len(ordered) - 1))]

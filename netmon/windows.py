"""Statistics of echoes: histograms, the sliding windows behind RTT, jitter and loss.

Plain data and arithmetic, no I/O and no clock of their own (time is passed in): the state
store keeps one set per target, the readiness checks use the same percentile and jitter.
"""

from __future__ import annotations

import bisect
import itertools
from array import array
from bisect import bisect_left, insort
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
    """Echo outcomes over the last `seconds`, in send order, for loss, jitter and percentiles.

    The alert engine reads the 95th percentile and the jitter of every window on every echo
    round, so the statistics are kept as echoes come and go instead of recomputed over the
    window each time: the replies and the differences of consecutive replies in sorted arrays
    (an insertion and a removal per echo, in C; about 1 KB a target at one echo a second), the
    lost echoes counted. What they give is exactly what `percentile_95` and `jitter` give over
    `rtts()` (the same sums in the same order); tests/test_windows.py compares them over random
    sequences.
    """

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._entries = deque()

    @property
    def _entries(self) -> deque[tuple[float, float | None]]:
        return self._echoes

    @_entries.setter
    def _entries(self, entries: deque[tuple[float, float | None]]) -> None:
        """Replace the echoes outright (a test ageing them); the statistics follow."""
        self._echoes = entries
        rtts = [rtt for _, rtt in entries if rtt is not None]
        self._lost = len(entries) - len(rtts)
        # The replies' RTTs, and |b - a| of each two consecutive replies, ascending: in arrays
        # of doubles, which a search walks without chasing a pointer per float.
        self._sorted = array("d", sorted(rtts))
        self._sorted_differences = array(
            "d", sorted(abs(b - a) for a, b in itertools.pairwise(rtts))
        )
        self._last: float | None = rtts[-1] if rtts else None  # the newest reply's RTT
        self._jitter: float | None = None
        self._jitter_known = False

    def add(self, when: float, rtts: Iterable[float | None]) -> None:
        entries = self._echoes
        for rtt in rtts:
            entries.append((when, rtt))
            if rtt is None:
                self._lost += 1
                continue
            last = self._last
            if last is not None:
                insort(self._sorted_differences, abs(rtt - last))
            insort(self._sorted, rtt)
            self._last = rtt
            self._jitter_known = False
        self.prune(when)

    def prune(self, now: float) -> bool:
        """Drop the echoes older than the window; whether there were any."""
        horizon = now - self.seconds
        entries = self._echoes
        if not entries or entries[0][0] >= horizon:
            return False
        while entries and entries[0][0] < horizon:
            rtt = entries.popleft()[1]
            if rtt is None:
                self._lost -= 1
                continue
            ordered = self._sorted
            del ordered[bisect_left(ordered, rtt)]
            # The difference to the next reply goes with it (there is none if it was the last).
            following = entries[0][1] if entries else None
            if following is None:
                following = next((later for _, later in entries if later is not None), None)
            if following is None:
                self._last = None
            else:
                differences = self._sorted_differences
                del differences[bisect_left(differences, abs(following - rtt))]
            self._jitter_known = False
        return True

    @property
    def sent(self) -> int:
        return len(self._echoes)

    @property
    def replies(self) -> int:
        """How many echoes of the window were answered (`len(rtts())`, without the list)."""
        return len(self._sorted)

    def rtts(self) -> list[float]:
        return [rtt for _, rtt in self._echoes if rtt is not None]

    def loss_ratio(self) -> float | None:
        if not self._echoes:
            return None
        return self._lost / len(self._echoes)

    def jitter(self) -> float | None:
        """Mean absolute difference of consecutive RTTs (RFC 3550's D), over the window: what
        `jitter(self.rtts())` says, kept until the window changes."""
        if not self._jitter_known:
            self._jitter = self._trimmed_jitter()
            self._jitter_known = True
        return self._jitter

    def _trimmed_jitter(self) -> float | None:
        # `jitter`'s trimmed mean: the same differences, summed in the same (ascending) order.
        differences = self._sorted_differences
        if len(differences) < 10:
            return jitter(self.rtts())  # in send order, as `jitter` sums them
        kept = len(differences) - (2 + len(differences) // 20)
        return sum(differences[:kept]) / kept

    def percentile_95(self) -> float | None:
        """`percentile_95(self.rtts())`; None without a reply."""
        ordered = self._sorted
        return ordered[int(0.95 * (len(ordered) - 1))] if ordered else None


class LossCounter:
    """Regular echoes sent and lost over the last `seconds`, kept as counts per 10 s bucket:
    ten minutes of a target's echoes in 60 small entries, not 600 (at 10,000 targets that
    difference is memory).

    The buckets are three arrays (start, sent, lost), not an object per bucket: a bucket lives
    the whole window (10 minutes), and one new list and float per target every 10 s, freed 10
    minutes later among everything shorter-lived, kept pymalloc's arenas from ever emptying
    (issue 17: RSS up 17 MB in 9 minutes at 10,000 targets while the live objects shrank).
    Opening a bucket now reuses the arrays' room; a full window is ~1.5 KB a target instead of
    6.6 KB.
    """

    BUCKET = 10.0

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._starts = array("d")
        self._sent_in = array("q")
        self._lost_in = array("q")
        # The buckets' sums, kept as they change (the loss signal reads them every round).
        self._sent = 0
        self._lost = 0

    def buckets(self) -> list[tuple[float, int, int]]:
        """(start, sent, lost) of each bucket, oldest first (tests, inspection)."""
        return list(zip(self._starts, self._sent_in, self._lost_in, strict=True))

    def add(self, when: float, sent: int, lost: int) -> None:
        start = when - when % self.BUCKET
        starts = self._starts
        if not starts or starts[-1] != start:
            starts.append(start)
            self._sent_in.append(0)
            self._lost_in.append(0)
        self._sent_in[-1] += sent
        self._lost_in[-1] += lost
        self._sent += sent
        self._lost += lost
        self.prune(when)

    def prune(self, now: float) -> bool:
        """Drop the buckets older than the window; whether there were any."""
        horizon = now - self.seconds
        starts = self._starts
        if not starts or starts[0] + self.BUCKET > horizon:
            return False
        old = 1
        while old < len(starts) and starts[old] + self.BUCKET <= horizon:
            old += 1
        self._sent -= sum(self._sent_in[:old])
        self._lost -= sum(self._lost_in[:old])
        del starts[:old], self._sent_in[:old], self._lost_in[:old]
        return True

    def forget_lost(self, echoes: int) -> None:
        """Take the last `echoes` lost echoes out of the sample altogether (newest first)."""
        sent_in, lost_in = self._sent_in, self._lost_in
        for i in range(len(lost_in) - 1, -1, -1):
            taken = min(echoes, lost_in[i])
            sent_in[i] -= taken
            lost_in[i] -= taken
            self._sent -= taken
            self._lost -= taken
            echoes -= taken
            if echoes == 0:
                return

    def counts(self) -> tuple[int, int]:
        """(sent, lost) over the window."""
        return self._sent, self._lost


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

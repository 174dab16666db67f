"""The windows keep their statistics as echoes come and go: what they say must be exactly what
the statistics recomputed over the whole window say, whatever the sequence."""

from __future__ import annotations

import tracemalloc
from collections import deque

from hypothesis import given, settings
from hypothesis import strategies as st

from netmon.windows import EchoWindow, LossCounter, jitter, percentile_95

# A round: seconds since the last one, its echoes (an RTT or None for a lost echo).
rtt = st.one_of(st.none(), st.floats(min_value=0.0, max_value=2.0), st.sampled_from([0.01, 0.02]))
rounds = st.lists(
    st.tuples(st.floats(min_value=0.0, max_value=7.0), st.lists(rtt, min_size=0, max_size=4)),
    max_size=120,
)


def _same(window: EchoWindow) -> None:
    rtts = window.rtts()
    assert window.replies == len(rtts)
    assert window.jitter() == jitter(rtts)
    assert window.percentile_95() == (percentile_95(rtts) if rtts else None)
    entries = window._entries
    lost = sum(1 for _, value in entries if value is None)
    assert window.loss_ratio() == (lost / len(entries) if entries else None)


@settings(max_examples=300, deadline=None)
@given(rounds, st.sampled_from([10.0, 30.0, 60.0]))
def test_echo_window_statistics_are_those_of_the_whole_window(
    sequence: list[tuple[float, list[float | None]]], seconds: float
) -> None:
    window = EchoWindow(seconds)
    now = 1000.0
    for gap, rtts in sequence:
        now += gap
        window.add(now, rtts)
        _same(window)
        if gap > 5.0:  # the exporter prunes between rounds too
            window.prune(now + gap)
            _same(window)


@settings(max_examples=100, deadline=None)
@given(rounds)
def test_replacing_the_echoes_recomputes_the_statistics(
    sequence: list[tuple[float, list[float | None]]],
) -> None:
    window = EchoWindow(60.0)
    now = 1000.0
    for gap, rtts in sequence:
        now += gap
        window.add(now, rtts)
    window._entries = deque((when - 30.0, value) for when, value in window._entries)
    _same(window)
    window.prune(now)
    _same(window)
    window.add(now, [0.01])
    _same(window)


class _Recount(LossCounter):
    def recount(self) -> tuple[int, int]:
        return (
            sum(sent for _, sent, _ in self.buckets()),
            sum(lost for _, _, lost in self.buckets()),
        )


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.floats(min_value=0.0, max_value=30.0),
            st.integers(min_value=0, max_value=3),
            st.integers(min_value=0, max_value=3),
            st.integers(min_value=0, max_value=12),
        ),
        max_size=150,
    )
)
def test_loss_counts_are_the_sums_of_the_buckets(
    sequence: list[tuple[float, int, int, int]],
) -> None:
    counter = _Recount(120.0)
    now = 1000.0
    for gap, sent, lost, forget in sequence:
        now += gap
        counter.add(now, sent + lost, lost)
        assert counter.counts() == counter.recount()
        if forget > 9:
            counter.forget_lost(forget - 9)
            assert counter.counts() == counter.recount()
        if gap > 20.0:
            counter.prune(now + gap)
            assert counter.counts() == counter.recount()


def test_a_full_loss_window_holds_its_buckets_and_no_object_per_bucket() -> None:
    """Ten minutes of one echo a second are 61 buckets at most, hours later too; and what
    opening a bucket allocates does not live on with it (issue 17: a list and a float per
    bucket, alive for the whole window, kept pymalloc's arenas from emptying)."""
    counter = LossCounter(600.0)
    now = 1000.0
    for _ in range(3600):  # an hour
        now += 1.0
        counter.add(now, 1, 0)
    assert len(counter.buckets()) <= 61
    tracemalloc.start()
    try:
        for _ in range(600):  # 60 more buckets opened, 60 dropped
            now += 1.0
            counter.add(now, 1, 0)
        alive, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert alive < 512  # a list and a float per bucket: 1.5 KB for these 60 (measured)
    assert len(counter.buckets()) <= 61
    assert counter.counts() == (sum(s for _, s, _ in counter.buckets()), 0)

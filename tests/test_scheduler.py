"""Scheduler: spread start times, no drift, hung probes isolated, jobs follow the inventory.

The scheduler runs on a fake clock (tests/fake_clock.py): its slots, deadlines and the fake
collectors' busy time are exact, and a test's seconds of polling take milliseconds.
"""

from __future__ import annotations

import asyncio
import itertools
import random
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from typing import ClassVar

import pytest

from collectors.base import CollectError, CollectorSettings
from netmon.config.loader import load_data
from netmon.inventory import Inventory
from netmon.model import Observation, ProbeTarget
from netmon.scheduler import Scheduler, next_slot, phase_fraction, start_phase
from netmon.state import StateStore
from tests.fake_clock import FakeClock


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


class FakeCollector:
    """Records when (on the fake clock) it was called; hangs or fails for chosen targets."""

    name: ClassVar[str] = "icmp"
    settings_model: ClassVar[type[CollectorSettings]] = CollectorSettings

    def __init__(
        self, clock: FakeClock, *, hang: Iterable[str] = (), fail: Iterable[str] = (),
        busy: float = 0.0,
    ) -> None:  # fmt: skip
        self.clock = clock
        self.starts: dict[str, list[float]] = defaultdict(list)
        self.hang = set(hang)
        self.fail = set(fail)
        self.busy = busy

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        return None

    async def collect(self, target: ProbeTarget, settings: CollectorSettings) -> Observation:
        self.starts[target.id].append(self.clock())
        if target.id in self.hang:
            await asyncio.Event().wait()
        if target.id in self.fail:
            raise CollectError("refused", "connection refused")
        if self.busy:  # a collector's own round: time passes on the scheduler's clock
            await self.clock.sleep(random.uniform(0, self.busy))
        return Observation(target=target.id, collector="icmp", ok=True, duration=0.0)


def _inventory(count: int, *, interval: float) -> Inventory:
    return load_data(
        {
            "defaults": {"icmp": {"interval": interval, "timeout": interval / 2}},
            "targets": [{"id": f"t{i}", "address": "127.0.0.1"} for i in range(count)],
        }
    )


def _scheduler(
    store: StateStore, collector: FakeCollector, *, max_concurrency: int = 10
) -> Scheduler:
    return Scheduler(
        store=store, collectors={"icmp": collector}, max_concurrency=max_concurrency,
        clock=collector.clock, sleep=collector.clock.sleep,
    )  # fmt: skip


async def _run(
    collector: FakeCollector, inventory: Inventory, seconds: float, *, max_concurrency: int = 10
) -> StateStore:
    """Poll `inventory` with `collector` for `seconds` of the fake clock, stop, and return the
    filled store."""
    store = StateStore()
    store.apply_inventory(inventory)
    scheduler = _scheduler(store, collector, max_concurrency=max_concurrency)
    scheduler.apply(inventory)
    await collector.clock.advance(seconds)
    await scheduler.stop()
    return store


def test_start_times_spread_over_the_interval() -> None:
    phases = sorted(phase_fraction(f"ep-{i}", "icmp") for i in range(215))
    deciles = [sum(1 for p in phases if k / 10 <= p < (k + 1) / 10) for k in range(10)]
    assert all(8 <= n <= 36 for n in deciles), deciles
    starts = Counter(round(start_phase(f"ep-{i}", "icmp", 1.0), 3) for i in range(215))
    assert len(starts) == 20  # every 50 ms tick of the second is used
    assert max(starts.values()) <= 20  # so no more than a few percent start together


def test_a_target_keeps_its_start_time() -> None:
    assert start_phase("ep-1", "icmp", 5.0) == start_phase("ep-1", "icmp", 5.0)
    assert 0 <= start_phase("ep-1", "icmp", 0.2) < 0.2


@pytest.mark.parametrize(
    ("now", "phase", "interval", "expected"),
    [(10.0, 0.25, 1.0, 10.25), (10.25, 0.25, 1.0, 10.25), (10.3, 0.25, 1.0, 11.25)],
)
def test_next_slot(now: float, phase: float, interval: float, expected: float) -> None:
    assert next_slot(now, phase, interval) == pytest.approx(expected)


async def test_intervals_do_not_drift(clock: FakeClock) -> None:
    collector = FakeCollector(clock, busy=0.03)
    inventory = _inventory(5, interval=0.1)
    await _run(collector, inventory, 2.05)
    assert sorted(collector.starts) == [f"t{i}" for i in range(5)]
    for target, starts in collector.starts.items():
        # Every start stays on its grid: drift would accumulate the run times (~15 ms each).
        offsets = [(s - starts[0]) - round((s - starts[0]) / 0.1) * 0.1 for s in starts]
        assert max(abs(o) for o in offsets) < 0.02, (target, offsets)
        assert len(starts) >= 18


async def test_hung_probe_does_not_delay_other_targets(clock: FakeClock) -> None:
    collector = FakeCollector(clock, hang={"t0"})
    inventory = _inventory(3, interval=0.2)
    store = await _run(collector, inventory, 1.3)
    assert len(collector.starts["t1"]) >= 6
    assert len(collector.starts["t2"]) >= 6
    # The hung run is cut at one interval and the job goes on with its next slots.
    assert len(collector.starts["t0"]) >= 3
    assert store.stats.collector_errors[("icmp", "timeout")] >= 2
    assert store.targets["t0"].probes["icmp"].reason == "timeout"
    assert store.targets["t1"].probes["icmp"].success


async def test_failures_are_recorded_with_their_reason(clock: FakeClock) -> None:
    collector = FakeCollector(clock, fail={"t1"})
    inventory = _inventory(2, interval=0.1)
    store = await _run(collector, inventory, 0.35)
    probe = store.targets["t1"].probes["icmp"]
    assert (probe.success, probe.reason, probe.detail) == (False, "refused", "connection refused")
    assert store.stats.collector_errors[("icmp", "refused")] >= 2


async def test_internal_errors_are_counted_from_zero_before_the_first_result(
    clock: FakeClock,
) -> None:
    """Prometheus sees no increase in a counter that first appears at 1: a collector's
    "internal" errors exist, at 0, as soon as its first run starts, and stay 0 on failures
    of other reasons."""
    collector = FakeCollector(clock, hang={"t0"}, fail={"t1"})
    inventory = _inventory(2, interval=0.5)
    store = StateStore()
    store.apply_inventory(inventory)
    scheduler = _scheduler(store, collector)
    scheduler.apply(inventory)
    try:
        await clock.advance_until(lambda: collector.starts["t0"], within=2, what="t0's first run")
        assert store.targets["t0"].probes.get("icmp") is None  # its first run is still going
        assert store.stats.collector_errors[("icmp", "internal")] == 0
        await clock.advance_until(
            lambda: ("icmp", "refused") in store.stats.collector_errors,
            within=2, what="t1's refusal",
        )  # fmt: skip
        assert store.stats.collector_errors[("icmp", "internal")] == 0
    finally:
        await scheduler.stop()


async def test_concurrency_is_bounded(clock: FakeClock) -> None:
    running = 0
    peak = 0

    class Slow(FakeCollector):
        async def collect(self, target: ProbeTarget, settings: CollectorSettings) -> Observation:
            nonlocal running, peak
            running += 1
            peak = max(peak, running)
            await self.clock.sleep(0.05)
            running -= 1
            return Observation(target=target.id, collector="icmp", ok=True, duration=0.05)

    inventory = _inventory(50, interval=0.2)
    await _run(Slow(clock), inventory, 0.5, max_concurrency=4)
    assert peak == 4


async def test_jobs_follow_the_inventory(clock: FakeClock) -> None:
    store = StateStore()
    collector = FakeCollector(clock)
    scheduler = _scheduler(store, collector)
    first = _inventory(3, interval=0.1)
    store.apply_inventory(first)
    scheduler.apply(first)
    await clock.advance(0.35)
    second = load_data(
        {
            "defaults": {"icmp": {"interval": 0.1, "timeout": 0.05}},
            "targets": [
                {"id": "t0", "address": "127.0.0.1"},
                {"id": "t1", "address": "127.0.0.1"},
                {"id": "t9", "address": "127.0.0.1"},
            ],
        }
    )
    store.apply_inventory(second)
    scheduler.apply(second)
    removed_runs = len(collector.starts["t2"])
    assert scheduler.jobs() == {("t0", "icmp"), ("t1", "icmp"), ("t9", "icmp")}
    await clock.advance(0.35)
    await scheduler.stop()
    assert collector.starts["t9"]
    assert len(collector.starts["t2"]) == removed_runs  # t2 stopped
    # t0 was unchanged: it went on on its grid, with no extra run at the reload.
    starts = collector.starts["t0"]
    assert len(starts) >= 6  # before and after the reload
    gaps = [b - a for a, b in itertools.pairwise(starts)]
    assert all(abs(gap - 0.1) < 0.03 for gap in gaps), gaps
    assert scheduler.job_count == 0


async def test_batch_collectors_get_every_target_of_a_tick_in_one_call(clock: FakeClock) -> None:
    calls: list[tuple[float, int]] = []

    class Batch(FakeCollector):
        async def collect_batch(
            self, items: Sequence[tuple[ProbeTarget, CollectorSettings]]
        ) -> list[Observation]:
            calls.append((self.clock(), len(items)))
            return [
                Observation(target=t.id, collector="icmp", ok=True, duration=0.0) for t, _ in items
            ]

    inventory = load_data(
        {
            "defaults": {"icmp": {"interval": "1s"}},
            "targets": [{"id": f"ep-{i}", "address": "127.0.0.1"} for i in range(215)],
        }
    )
    store = await _run(Batch(clock), inventory, 1.5)
    first_second = [size for when, size in calls if when < calls[0][0] + 0.99]
    assert sum(first_second) == 215  # each target once a second
    assert len(first_second) == 20  # in one call per 50 ms tick
    assert all(state.probes["icmp"].success for state in store.targets.values())


async def test_stop_cancels_everything_quickly(clock: FakeClock) -> None:
    store = StateStore()
    inventory = _inventory(200, interval=0.5)
    store.apply_inventory(inventory)
    collector = FakeCollector(clock, hang={f"t{i}" for i in range(200)})
    scheduler = _scheduler(store, collector, max_concurrency=500)
    scheduler.apply(inventory)
    await clock.advance(0.6)
    assert sum(map(len, collector.starts.values())) >= 200  # runs are hanging now
    started = clock()
    # Stop waits for no deadline or slot: on a clock that stands still, it returns at once
    # (the real-time bound only keeps a regression from hanging the suite).
    async with asyncio.timeout(30):
        await scheduler.stop()
    assert clock() - started < 0.5
    assert not [
        t for t in asyncio.all_tasks() if t.get_name().startswith("collect:") and not t.done()
    ]


async def test_slow_targets_are_named_once(
    caplog: pytest.LogCaptureFixture, clock: FakeClock
) -> None:
    class Slow(FakeCollector):
        async def collect(self, target: ProbeTarget, settings: CollectorSettings) -> Observation:
            duration = 0.09 if target.id == "t0" else 0.0
            return Observation(target=target.id, collector="icmp", ok=True, duration=duration)

    with caplog.at_level("INFO", logger="netmon.scheduler"):
        await _run(Slow(clock), _inventory(2, interval=0.1), 0.5)
    slow = [r for r in caplog.records if r.getMessage() == "probe slow"]
    assert [r.__dict__["target"] for r in slow] == ["t0"]


async def test_an_unexpected_error_never_shows_its_text(clock: FakeClock) -> None:
    class Leaky(FakeCollector):
        async def collect(self, target: ProbeTarget, settings: CollectorSettings) -> Observation:
            raise UnicodeEncodeError("latin-1", "the-secret-key", 0, 1, "no")

    inventory = _inventory(1, interval=0.1)
    store = await _run(Leaky(clock), inventory, 0.25)
    probe = store.targets["t0"].probes["icmp"]
    assert probe.reason == "internal"
    assert probe.detail == "unexpected UnicodeEncodeError (see the log)"

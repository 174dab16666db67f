"""Periodic collection: one job per (target, collector), on netmon's own timers.

Each job runs on a fixed grid `phase + k x interval` of a monotonic clock, so intervals
never drift however long a run takes; the phase is a hash of (target, collector), so 215 targets
spread over the interval and a target keeps its phase across reloads. Jobs whose runs fall on
the same tick are woken together by one task (a "tick group"), and a collector that can probe
many targets in one call (ICMP) gets them all at once: waking is most of the CPU cost of
probing. A run that overruns its slot skips the missed slots (counted) rather than bunching up.
Every run has a deadline, a global semaphore bounds concurrency, and every task is owned here
and cancelled on stop.

A run's deadline is one and a half intervals: a safety net for a collector that hangs, well
above the round a collector times itself (which must end inside the interval).

Slots, deadlines and durations are on the scheduler's clock and sleep: `time.monotonic` (the
event loop's own clock) and `asyncio.sleep` unless a test passes fakes.

The runner around each collector owns what all collectors share: deadline, timing and error
reasons (`netmon.collect`, shared with the readiness checks), self-metrics, and logging only when
a probe starts failing or recovers.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
import zlib
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field

from collectors.base import BatchCollector, Collector, CollectorSettings
from netmon.collect import collect_many, collect_one
from netmon.inventory import Inventory, Target
from netmon.model import Observation, ProbeTarget
from netmon.state import StateStore

log = logging.getLogger(__name__)

TICK = 0.050
DEADLINE_INTERVALS = 1.5
SLOW_SHARE = 0.8  # a run longer than this share of its interval is logged as slow


def phase_fraction(target_id: str, collector: str) -> float:
    """A stable pseudo-random fraction in [0, 1) for spreading start times."""
    return zlib.crc32(f"{collector}/{target_id}".encode()) / 2**32


def start_phase(target_id: str, collector: str, interval: float) -> float:
    """Where in the interval a job starts: spread by hash, on a grid of ticks.

    The grid (50 ms, or 1/20 of shorter intervals) lets jobs that share a tick run in one pass:
    215 targets on a 1 s interval start in 20 groups of about 11, not all at once, and at a
    fraction of the CPU that 215 separate wake-ups cost (bench/icmp_bench.py).
    """
    tick = min(TICK, interval / 20)
    return round(phase_fraction(target_id, collector) * interval / tick) * tick % interval


def next_slot(now: float, phase: float, interval: float) -> float:
    """The first time on the grid `phase + k x interval` that is not before `now`."""
    return phase + math.ceil((now - phase) / interval) * interval


@dataclass(frozen=True, slots=True)
class JobSpec:
    target: Target
    collector: str
    settings: CollectorSettings
    # What the collector is handed on every run: built once here, not per run.
    probe_target: ProbeTarget = field(init=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "probe_target", self.target.probe_target)


GroupKey = tuple[str, float, float]  # collector, interval, phase


@dataclass(eq=False)
class _TickGroup:
    key: GroupKey
    members: dict[str, JobSpec] = field(default_factory=dict)  # by target id
    task: asyncio.Task[None] | None = None


class Scheduler:
    def __init__(
        self,
        *,
        store: StateStore,
        collectors: Mapping[str, Collector],
        max_concurrency: int,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._store = store
        self._collectors = collectors
        self._clock = clock
        self._sleep = sleep
        self._semaphore = asyncio.Semaphore(max_concurrency)
        self._specs: dict[tuple[str, str], JobSpec] = {}
        self._groups: dict[GroupKey, _TickGroup] = {}
        self._failing: dict[tuple[str, str], str] = {}
        self._slow: set[tuple[str, str]] = set()

    @property
    def job_count(self) -> int:
        return len(self._specs)

    def jobs(self) -> set[tuple[str, str]]:
        """The (target, collector) pairs being polled."""
        return set(self._specs)

    @staticmethod
    def _group_key(spec: JobSpec) -> GroupKey:
        interval = spec.settings.interval
        return (spec.collector, interval, start_phase(spec.target.id, spec.collector, interval))

    def apply(self, inventory: Inventory) -> None:
        """Start, stop and restart jobs so that they match the inventory.

        A job whose target and settings did not change is left alone: same phase, same group,
        no extra run.
        """
        wanted: dict[tuple[str, str], JobSpec] = {}
        for target in inventory.targets.values():
            for name, settings in target.probes:
                if name in self._collectors:
                    wanted[(target.id, name)] = JobSpec(target, name, settings)
        for key, spec in list(self._specs.items()):
            if wanted.get(key) != spec:
                group = self._groups[self._group_key(spec)]
                del group.members[spec.target.id]
                del self._specs[key]
                self._failing.pop(key, None)
                self._slow.discard(key)
        for key, spec in wanted.items():
            if key in self._specs:
                continue
            self._specs[key] = spec
            group_key = self._group_key(spec)
            if group_key not in self._groups:
                group = self._groups[group_key] = _TickGroup(key=group_key)
                collector, interval, phase = group_key
                group.task = asyncio.create_task(
                    self._group_loop(group), name=f"collect:{collector}:{interval:g}s@{phase:g}"
                )
            self._groups[group_key].members[spec.target.id] = spec
        for group_key, group in list(self._groups.items()):
            if not group.members:
                if group.task is not None:
                    group.task.cancel()
                del self._groups[group_key]

    async def stop(self) -> None:
        tasks = [group.task for group in self._groups.values() if group.task is not None]
        self._groups.clear()
        self._specs.clear()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _group_loop(self, group: _TickGroup) -> None:
        name, interval, phase = group.key
        collector = self._collectors[name]
        slot = next_slot(self._clock(), phase, interval)
        while True:
            await self._sleep(max(0.0, slot - self._clock()))
            members = list(group.members.values())
            if isinstance(collector, BatchCollector):
                async with self._semaphore:
                    self._store.stats.observe_lag(name, max(0.0, self._clock() - slot))
                    await self._run_batch(collector, members, interval)
            else:
                await asyncio.gather(*(self._run_one(collector, spec, slot) for spec in members))
            following = next_slot(self._clock(), phase, interval)
            if following <= slot:
                following = slot + interval
            missed = round((following - slot) / interval) - 1
            if missed > 0:
                self._store.stats.skipped(name, missed * len(members))
            slot = following

    async def _run_one(self, collector: Collector, spec: JobSpec, slot: float) -> None:
        async with self._semaphore:
            self._store.stats.observe_lag(spec.collector, max(0.0, self._clock() - slot))
            observation = await collect_one(
                collector,
                spec.collector,
                spec.probe_target,
                spec.settings,
                deadline=spec.settings.interval * DEADLINE_INTERVALS,
                clock=self._clock,
                sleep=self._sleep,
            )
        self._record(spec, observation)

    async def _run_batch(
        self, collector: BatchCollector, members: Sequence[JobSpec], interval: float
    ) -> None:
        observations = await collect_many(
            collector,
            members[0].collector,
            [(spec.probe_target, spec.settings) for spec in members],
            deadline=interval * DEADLINE_INTERVALS,
            clock=self._clock,
            sleep=self._sleep,
        )
        for spec, observation in zip(members, observations, strict=True):
            self._record(spec, observation)

    def _record(self, spec: JobSpec, observation: Observation) -> None:
        self._store.stats.observe_run(spec.collector, observation.duration, observation.reason)
        if self._specs.get((spec.target.id, spec.collector)) is not spec:
            return  # removed or changed by a reload while this run was in flight
        try:
            self._store.record(observation)
        except Exception:  # a bad value must not stop the polling of a whole tick group
            log.exception(
                "could not record a result",
                extra={"target": spec.target.id, "collector": spec.collector},
            )
            return
        self._log_transition(spec, observation)

    def _log_transition(self, spec: JobSpec, observation: Observation) -> None:
        # Called for every probe: the log context is built only when there is something to log.
        key = (spec.target.id, spec.collector)
        if observation.ok:
            if self._failing and self._failing.pop(key, None) is not None:
                log.info("probe recovered", extra=_context(spec))
        elif observation.reason is not None and self._failing.get(key) != observation.reason:
            self._failing[key] = observation.reason
            detail = {"detail": observation.detail} if observation.detail else {}
            log.warning(
                "probe failing",
                extra={**_context(spec), "reason": observation.reason, **detail},
            )
        # A run that takes most of its interval is about to miss slots: name the target once.
        # (Only answers count: a silent target is slow because it is failing, logged above.)
        slow = observation.ok and observation.duration > SLOW_SHARE * spec.settings.interval
        if slow and key not in self._slow:
            self._slow.add(key)
            log.warning(
                "probe slow",
                extra={**_context(spec), "duration": round(observation.duration, 3),
                       "interval": spec.settings.interval},
            )  # fmt: skip
        elif not slow and self._slow and key in self._slow:
            self._slow.discard(key)
            log.info("probe no longer slow", extra=_context(spec))


def _context(spec: JobSpec) -> dict[str, object]:
    return {"target": spec.target.id, "collector": spec.collector}

"""Periodic collection: one job per (target, collector), on netmon's own timers.

Each job runs on a fixed grid `phase + k x interval` of the loop's monotonic clock, so intervals
never drift however long a run takes; the phase is a hash of (target, collector), so 215 targets
spread evenly over the interval and a target keeps its phase across reloads. A run that
overruns its slot skips the missed slots (counted) rather than bunching up. Every run has a
deadline of one interval, a global semaphore bounds concurrency, and every task is owned here
and cancelled on stop.

The runner around each collector owns what all collectors share: deadline, timing, error
reasons, self-metrics, and logging only when a probe starts failing or recovers.
"""

from __future__ import annotations

import asyncio
import logging
import math
import zlib
from collections.abc import Mapping
from dataclasses import dataclass

from collectors.base import CollectError, Collector, CollectorSettings, Observation
from netmon.config import Inventory, Target
from netmon.state import StateStore

log = logging.getLogger(__name__)

TICK = 0.050


def phase_fraction(target_id: str, collector: str) -> float:
    """A stable pseudo-random fraction in [0, 1) for spreading start times."""
    return zlib.crc32(f"{collector}/{target_id}".encode()) / 2**32


def start_phase(target_id: str, collector: str, interval: float) -> float:
    """Where in the interval a job starts: spread by hash, on a grid of ticks.

    The grid (50 ms, or 1/20 of shorter intervals) lets jobs that share a tick wake in one
    pass of the event loop: waking is most of the CPU cost of probing, and a 10 ms grid cost
    twice the CPU per probe of this one at 215 targets (bench/icmp_bench.py). 215 targets on
    a 1 s interval still start in 20 groups of about 11, not all at once.
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


class Scheduler:
    def __init__(
        self,
        *,
        store: StateStore,
        collectors: Mapping[str, Collector],
        max_concurrency: int,
    ) -> None:
        self._store = store
        self._collectors = collectors
        self._semaphore = asyncio.Semaphore(max_concurrency)
        self._jobs: dict[tuple[str, str], tuple[JobSpec, asyncio.Task[None]]] = {}
        self._failing: dict[tuple[str, str], str] = {}

    @property
    def job_count(self) -> int:
        return len(self._jobs)

    def apply(self, inventory: Inventory) -> None:
        """Start, stop and restart jobs so that they match the inventory."""
        wanted: dict[tuple[str, str], JobSpec] = {}
        for target in inventory.targets.values():
            for name, settings in target.probes:
                if name in self._collectors:
                    wanted[(target.id, name)] = JobSpec(target, name, settings)
        for key in list(self._jobs):
            spec, task = self._jobs[key]
            if wanted.get(key) != spec:
                task.cancel()
                del self._jobs[key]
                self._failing.pop(key, None)
        for key, spec in wanted.items():
            if key not in self._jobs:
                task = asyncio.create_task(self._job(spec), name=f"collect:{key[1]}:{key[0]}")
                self._jobs[key] = (spec, task)

    async def stop(self) -> None:
        tasks = [task for _, task in self._jobs.values()]
        self._jobs.clear()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _job(self, spec: JobSpec) -> None:
        loop = asyncio.get_running_loop()
        interval = spec.settings.interval
        phase = start_phase(spec.target.id, spec.collector, interval)
        slot = next_slot(loop.time(), phase, interval)
        collector = self._collectors[spec.collector]
        while True:
            await asyncio.sleep(max(0.0, slot - loop.time()))
            async with self._semaphore:
                self._store.stats.observe_lag(spec.collector, max(0.0, loop.time() - slot))
                await self._run_once(collector, spec)
            following = next_slot(loop.time(), phase, interval)
            if following <= slot:
                following = slot + interval
            missed = round((following - slot) / interval) - 1
            if missed > 0:
                self._store.stats.skipped(spec.collector, missed)
            slot = following

    async def _run_once(self, collector: Collector, spec: JobSpec) -> None:
        loop = asyncio.get_running_loop()
        started = loop.time()
        target = spec.target
        try:
            async with asyncio.timeout(spec.settings.interval):
                observation = await collector.collect(target.probe_target, spec.settings)
        except CollectError as exc:
            observation = self._failure(spec, loop.time() - started, exc.reason, exc.detail)
        except TimeoutError:
            observation = self._failure(
                spec, loop.time() - started, "timeout", "no result within one interval"
            )
        except Exception as exc:  # a collector bug must not kill the job
            log.exception(
                "collector crashed", extra={"target": target.id, "collector": spec.collector}
            )
            observation = self._failure(spec, loop.time() - started, "internal", repr(exc))
        self._store.stats.observe_run(spec.collector, observation.duration, observation.reason)
        self._store.record(observation)
        self._log_transition(spec, observation)

    @staticmethod
    def _failure(spec: JobSpec, duration: float, reason: str, detail: str) -> Observation:
        return Observation(
            target=spec.target.id,
            collector=spec.collector,
            ok=False,
            duration=duration,
            reason=reason,
            detail=detail,
        )

    def _log_transition(self, spec: JobSpec, observation: Observation) -> None:
        key = (spec.target.id, spec.collector)
        context = {"target": spec.target.id, "collector": spec.collector}
        if observation.ok:
            if self._failing.pop(key, None) is not None:
                log.info("probe recovered", extra=context)
        elif observation.reason is not None and self._failing.get(key) != observation.reason:
            self._failing[key] = observation.reason
            log.warning(
                "probe failing",
                extra={**context, "reason": observation.reason, "detail": observation.detail},
            )

"""One run of a collector, as every caller runs it: deadline, timing and error reasons.

The scheduler's periodic jobs and the readiness checks both call a collector through here, so
a failure is the same observation wherever it happens: a CollectError keeps its reason and
detail, a run past its deadline is "timeout", and a collector that crashes is "internal" (the
traceback goes to the log once, the text of the exception nowhere else: it may hold anything).
Nothing here schedules, records or logs a probe's failures: that is the caller's.

Deadlines and durations are on the caller's clock and sleep (`time.monotonic`, the event loop's
own clock, and `asyncio.sleep` unless given): the scheduler's tests run it on a fake clock.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence

from collectors.base import (
    BatchCollector,
    CollectError,
    Collector,
    CollectorSettings,
    MediaCollector,
)
from netmon.model import Observation, ProbeTarget

log = logging.getLogger(__name__)

DEADLINE_DETAIL = "no result within the deadline"

Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]


def failure(target: str, collector: str, duration: float, reason: str, detail: str) -> Observation:
    return Observation(
        target=target, collector=collector, ok=False, duration=duration, reason=reason,
        detail=detail,
    )  # fmt: skip


def crash_detail(exc: BaseException) -> str:
    # Only the type: an unexpected exception's text may hold anything, a key included.
    return f"unexpected {type(exc).__name__} (see the log)"


@contextlib.asynccontextmanager
async def _deadline(seconds: float | None, sleep: Sleep) -> AsyncIterator[None]:
    """`asyncio.timeout(seconds)` measured by `sleep`: TimeoutError once it has slept them."""
    if sleep is asyncio.sleep:
        # The loop's own timer: no task per run (thousands of runs a second at scale).
        async with asyncio.timeout(seconds):
            yield
        return
    async with asyncio.timeout(None) as timeout:
        timer = None if seconds is None else asyncio.create_task(_expire(timeout, seconds, sleep))
        try:
            yield
        finally:
            if timer is not None:
                timer.cancel()


async def _expire(timeout: asyncio.Timeout, seconds: float, sleep: Sleep) -> None:
    await sleep(seconds)
    timeout.reschedule(asyncio.get_running_loop().time())  # expire now


async def collect_one(
    collector: Collector,
    name: str,
    target: ProbeTarget,
    settings: CollectorSettings,
    *,
    deadline: float,
    clock: Clock = time.monotonic,
    sleep: Sleep = asyncio.sleep,
) -> Observation:
    """One `collect()` within `deadline` seconds; never raises but for cancellation."""
    return await _guarded(
        lambda: collector.collect(target, settings), name, target, deadline, clock, sleep
    )


async def collect_media(
    collector: MediaCollector,
    name: str,
    target: ProbeTarget,
    settings: CollectorSettings,
    *,
    deadline: float,
    clock: Clock = time.monotonic,
    sleep: Sleep = asyncio.sleep,
) -> Observation:
    """One `collect_media()` within `deadline` seconds: a CallMedia, or a failure as
    `collect_one` gives it; never raises but for cancellation."""
    return await _guarded(
        lambda: collector.collect_media(target, settings), name, target, deadline, clock, sleep
    )


async def _guarded(
    run: Callable[[], Awaitable[Observation]],
    name: str,
    target: ProbeTarget,
    deadline: float,
    clock: Clock,
    sleep: Sleep,
) -> Observation:
    started = clock()
    try:
        async with _deadline(deadline, sleep):
            return await run()
    except CollectError as exc:
        return failure(target.id, name, clock() - started, exc.reason, exc.detail)
    except TimeoutError:
        return failure(target.id, name, clock() - started, "timeout", DEADLINE_DETAIL)
    except Exception as exc:  # a collector bug must not kill the job
        log.exception("collector crashed", extra={"target": target.id, "collector": name})
        return failure(target.id, name, clock() - started, "internal", crash_detail(exc))


async def collect_many(
    collector: BatchCollector,
    name: str,
    items: Sequence[tuple[ProbeTarget, CollectorSettings]],
    *,
    deadline: float | None,
    clock: Clock = time.monotonic,
    sleep: Sleep = asyncio.sleep,
) -> list[Observation]:
    """One `collect_batch()` within `deadline` seconds (None: no deadline of its own): one
    observation per item, in order; an item the batch gave no result for is a failure."""
    started = clock()
    reason, detail = "internal", "the collector returned no result"
    observations: Sequence[Observation] = ()
    try:
        async with _deadline(deadline, sleep):
            observations = await collector.collect_batch(items)
    except CollectError as exc:
        reason, detail = exc.reason, exc.detail
    except TimeoutError:
        reason, detail = "timeout", DEADLINE_DETAIL
    except Exception as exc:  # a collector bug must not kill the job
        log.exception("collector crashed", extra={"collector": name})
        reason, detail = "internal", crash_detail(exc)
    by_target = {observation.target: observation for observation in observations}
    elapsed = clock() - started
    return [
        by_target.get(target.id) or failure(target.id, name, elapsed, reason, detail)
        for target, _ in items
    ]

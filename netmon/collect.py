"""One run of a collector, as every caller runs it: deadline, timing and error reasons.

The scheduler's periodic jobs and the readiness checks both call a collector through here, so
a failure is the same observation wherever it happens: a CollectError keeps its reason and
detail, a run past its deadline is "timeout", and a collector that crashes is "internal" (the
traceback goes to the log once, the text of the exception nowhere else: it may hold anything).
Nothing here schedules, records or logs a probe's failures: that is the caller's.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

from collectors.base import BatchCollector, CollectError, Collector, CollectorSettings
from netmon.model import Observation, ProbeTarget

log = logging.getLogger(__name__)

DEADLINE_DETAIL = "no result within the deadline"


def failure(target: str, collector: str, duration: float, reason: str, detail: str) -> Observation:
    return Observation(
        target=target, collector=collector, ok=False, duration=duration, reason=reason,
        detail=detail,
    )  # fmt: skip


def crash_detail(exc: BaseException) -> str:
    # Only the type: an unexpected exception's text may hold anything, a key included.
    return f"unexpected {type(exc).__name__} (see the log)"


async def collect_one(
    collector: Collector,
    name: str,
    target: ProbeTarget,
    settings: CollectorSettings,
    *,
    deadline: float,
) -> Observation:
    """One `collect()` within `deadline` seconds; never raises but for cancellation."""
    loop = asyncio.get_running_loop()
    started = loop.time()
    try:
        async with asyncio.timeout(deadline):
            return await collector.collect(target, settings)
    except CollectError as exc:
        return failure(target.id, name, loop.time() - started, exc.reason, exc.detail)
    except TimeoutError:
        return failure(target.id, name, loop.time() - started, "timeout", DEADLINE_DETAIL)
    except Exception as exc:  # a collector bug must not kill the job
        log.exception("collector crashed", extra={"target": target.id, "collector": name})
        return failure(target.id, name, loop.time() - started, "internal", crash_detail(exc))


async def collect_many(
    collector: BatchCollector,
    name: str,
    items: Sequence[tuple[ProbeTarget, CollectorSettings]],
    *,
    deadline: float | None,
) -> list[Observation]:
    """One `collect_batch()` within `deadline` seconds (None: no deadline of its own): one
    observation per item, in order; an item the batch gave no result for is a failure."""
    loop = asyncio.get_running_loop()
    started = loop.time()
    reason, detail = "internal", "the collector returned no result"
    observations: Sequence[Observation] = ()
    try:
        async with asyncio.timeout(deadline):
            observations = await collector.collect_batch(items)
    except CollectError as exc:
        reason, detail = exc.reason, exc.detail
    except TimeoutError:
        reason, detail = "timeout", DEADLINE_DETAIL
    except Exception as exc:  # a collector bug must not kill the job
        log.exception("collector crashed", extra={"collector": name})
        reason, detail = "internal", crash_detail(exc)
    by_target = {observation.target: observation for observation in observations}
    elapsed = loop.time() - started
    return [
        by_target.get(target.id) or failure(target.id, name, elapsed, reason, detail)
        for target, _ in items
    ]

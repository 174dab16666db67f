"""Confirmation echoes: a doubtful echo is checked at once, so one stray loss never decides.

On a link that loses a few echoes per thousand, two lost in a row happen many times a day
across 215 sites; declaring "down" on them pages people for nothing. When a target that is up
loses an echo (or one that is down answers), the state store calls it doubtful
(`IcmpState.doubtful`) and this module sends the target `ReachPolicy.confirm` quick echoes at
once, over the reach probe's own collector, and records them as a confirmation round: down only
when they are all lost too, up only when they answer. A real cut is still news in about 2.2 s
(median), while the chance of a false down at 5 % loss becomes 0.05^11 per echo.

One confirmation per target at a time; every task is owned here and cancelled on `stop()`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import Protocol, runtime_checkable

from collectors.base import CollectError, Collector, CollectorSettings
from netmon.model import EchoRound, Observation, ProbeTarget
from netmon.state import StateStore, TargetState

log = logging.getLogger(__name__)

# Beyond the confirmation's own timing: the pinger's timers are exact, this only catches a bug.
SLACK = 1.0


@runtime_checkable
class Confirming(Protocol):
    """A reach collector that can send confirmation echoes (ICMP)."""

    async def confirm(
        self, target: ProbeTarget, address: str, settings: CollectorSettings
    ) -> EchoRound: ...


class Confirmer:
    def __init__(self, store: StateStore, collectors: Mapping[str, Collector]) -> None:
        self._store = store
        self._collectors = collectors
        self._running: dict[str, asyncio.Task[None]] = {}
        self.confirmations = 0
        store.on_record(self._on_record)

    def _on_record(self, state: TargetState, observation: Observation) -> None:
        if not isinstance(observation, EchoRound) or observation.confirmation:
            return  # a confirmation that ends doubtful waits for the next regular round
        icmp = state.icmp
        target_id = state.target.id
        if icmp is None or not icmp.doubtful or not observation.address:
            return
        if target_id in self._running:
            return
        settings = state.target.probe(observation.collector)
        collector = self._collectors.get(observation.collector)
        if settings is None or not isinstance(collector, Confirming):
            return
        policy = icmp.policy  # resolved once with the inventory
        if policy.confirm == 0:
            return
        budget = policy.confirm_timeout + (policy.confirm - 1) * policy.confirm_spacing + SLACK
        task = asyncio.create_task(
            self._confirm(state, collector, observation.address, settings, budget),
            name=f"confirm:{target_id}",
        )
        self._running[target_id] = task
        task.add_done_callback(lambda _: self._running.pop(target_id, None))

    async def _confirm(
        self,
        state: TargetState,
        collector: Confirming,
        address: str,
        settings: CollectorSettings,
        budget: float,
    ) -> None:
        target = state.target
        try:
            async with asyncio.timeout(budget):
                round_ = await collector.confirm(target.probe_target, address, settings)
        except (CollectError, TimeoutError) as exc:
            log.debug("confirmation not sent", extra={"target": target.id, "error": str(exc)})
            return
        except Exception:
            log.exception("confirmation failed", extra={"target": target.id})
            return
        if self._store.targets.get(target.id) is not state:
            return  # removed, or readdressed by a reload: these echoes describe another host
        self.confirmations += 1
        self._store.record(round_)

    async def stop(self) -> None:
        tasks = list(self._running.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._running.clear()

"""Alerting while netmon runs: the database, the engine, the sinks and their delivery workers.

The engine is fed from the state store's record hook, and a one-second tick drives what only
time changes. An exception in the engine is logged and counted, never raised into the
collectors' path.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from netmon.alerting.delivery import DeliveryWorker, NotificationStats
from netmon.alerting.engine import AlertEngine
from netmon.alerting.model import iso
from netmon.alerting.sinks.base import ActiveAlerts, Sink, StatusPublisher
from netmon.alerting.store import AlertDB
from netmon.alerting.traps import TrapIntake
from netmon.api import ms
from netmon.config import Inventory, meeting_windows
from netmon.model import Observation
from netmon.state import ReachChange, StateStore, TargetState, live_status

log = logging.getLogger(__name__)

TICK = 1.0


class Alerting:
    def __init__(
        self,
        *,
        store: StateStore,
        inventory: Inventory,
        db_path: str | Path,
        sinks: Callable[[ActiveAlerts], Sequence[Sink]] = lambda active: (),
    ) -> None:
        self._store = store
        self.inventory = inventory
        self.db = AlertDB(db_path)
        self.stats = NotificationStats()
        self.engine = AlertEngine(
            store=store,
            config=inventory.config.alerting,
            rules=inventory.rules,
            db=self.db,
            queues=lambda: [sink.queue for sink in self.sinks],
            on_queued=self._wake_workers,
        )
        self.sinks = list(sinks(self.engine.firing))
        self.workers = [DeliveryWorker(sink, self.db, self.stats) for sink in self.sinks]
        self.engine_errors = 0
        self.pending: dict[str, int] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._publishers = [s for s in self.sinks if isinstance(s, StatusPublisher)]
        trap_settings = inventory.config.trap_receiver
        self.traps = (
            TrapIntake(trap_settings, inventory, self.engine, self.db)
            if trap_settings is not None
            else None
        )

    async def start(self) -> None:
        await self.db.call(self.db.open)
        forgotten = await self.db.call(self.db.forget_queues, [s.queue for s in self.sinks])
        if forgotten:
            log.warning(
                "dropped queued notifications of sinks no longer configured",
                extra={"events": forgotten},
            )
        restored = await self.engine.restore()
        if restored:
            log.info("alerts restored from the last run", extra={"alerts": restored})
        self.engine.apply_inventory(self.inventory)
        self.engine.set_meetings(meeting_windows(self.inventory))
        self._store.on_record(self._on_record)
        self._store.on_reach_change(self._on_reach)
        self.engine.on_status_change(self._publish_status)
        for sink in self.sinks:
            await sink.start()
        for worker in self.workers:
            worker.start()
        if self.traps is not None:
            await self.traps.start()
        self._tasks.append(asyncio.create_task(self._tick(), name="alert-tick"))
        if self._publishers:
            self._tasks.append(asyncio.create_task(self._refresh_status(), name="alert-status"))

    async def stop(self) -> None:
        if self.traps is not None:
            await self.traps.close()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()
        await self.engine.flush()
        for worker in self.workers:
            await worker.stop()
        for sink in self.sinks:
            try:
                await sink.close()
            except Exception:
                log.exception("closing an alert sink failed", extra={"sink": sink.queue})
        await asyncio.to_thread(self.db.shutdown)

    def apply_inventory(self, inventory: Inventory) -> None:
        """A reload: new rules, thresholds and topology apply now; sinks at the next restart."""
        self.inventory = inventory
        self.engine.set_config(inventory.config.alerting)
        self.engine.set_rules(inventory.rules)
        self.engine.apply_inventory(inventory)
        self.engine.set_meetings(meeting_windows(inventory))
        if self.traps is not None:
            self.traps.apply_inventory(inventory)

    # --- feeding the engine ----------------------------------------------------------------

    def _on_record(self, state: TargetState, observation: Observation) -> None:
        try:
            self.engine.observe(state, observation)
        except Exception:
            self.engine_errors += 1
            log.exception("alert evaluation failed", extra={"target": state.target.id})

    def _on_reach(self, change: ReachChange) -> None:
        self._publish_status(change.target.id)

    async def _tick(self) -> None:
        while True:
            await asyncio.sleep(TICK)
            try:
                self.engine.tick()
                self.pending = await self.db.call(self.db.pending_counts)
            except Exception:
                self.engine_errors += 1
                log.exception("alert tick failed")

    def _wake_workers(self) -> None:
        for worker in self.workers:
            worker.wake()

    # --- live status (MQTT retained status topics) ---------------------------------------

    def degraded(self, target_id: str) -> bool:
        return any(t.level >= 0 for t in self.engine.quality_alerts(target_id))

    def status_json(self, state: TargetState) -> dict[str, Any]:
        icmp = state.icmp
        text = live_status(state.reach, self.degraded(state.target.id))
        return {
            "target": state.target.id,
            "name": state.target.name,
            "district": state.target.district,
            "state": text,
            "since": iso(icmp.since) if icmp else None,
            "rtt_ms": ms(icmp.last_rtt) if icmp else None,
            "loss_ratio": icmp.window.loss_ratio() if icmp else None,
            "jitter_ms": ms(icmp.window.jitter()) if icmp else None,
            "updated": iso(time.time()),
        }

    def _publish_status(self, target_id: str) -> None:
        state = self._store.targets.get(target_id)
        if state is None or not self._publishers:
            return
        status = self.status_json(state)
        for publisher in self._publishers:
            publisher.publish_status(target_id, status)

    async def _refresh_status(self) -> None:
        # The first round soon after start, so every target has a retained status quickly.
        await asyncio.sleep(min(5.0, self.inventory.config.alerting.status_interval))
        while True:
            with contextlib.suppress(Exception):
                for target_id in list(self._store.targets):
                    self._publish_status(target_id)
            await asyncio.sleep(self.inventory.config.alerting.status_interval)

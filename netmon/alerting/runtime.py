"""Alerting while netmon runs: the database, the engine, the sinks and their delivery workers.

Everything reaches the engine through the state store's listeners: observations, reach
changes, traps and finished readiness checks. A one-second tick drives what only time changes.
An exception in the engine is logged and counted, never raised into the collectors' path.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from netmon.alerting.delivery import DeliveryWorker, NotificationStats
from netmon.alerting.engine import AlertEngine
from netmon.alerting.model import Severity
from netmon.alerting.sinks.base import ActiveAlerts, ReportPublisher, Sink, StatusPublisher
from netmon.alerting.store import AlertDB, EngineIdTable
from netmon.alerting.traps import TrapAlerts
from netmon.checks.model import Verdict
from netmon.inventory import Inventory
from netmon.meetings import meeting_windows
from netmon.model import Observation, TrapEvent
from netmon.oncall.service import OnCall
from netmon.state import CheckDone, ReachChange, StateStore, TargetState
from netmon.status import status_message

log = logging.getLogger(__name__)

TICK = 1.0
# At shutdown, how long to wait for the database to take the last transitions.
STOP_FLUSH = 5.0


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
        self.oncall: OnCall | None = None
        oncall = inventory.config.oncall
        if oncall is not None and oncall.policies:
            self.oncall = OnCall(
                oncall, db=self.db, engine=self.engine, language=inventory.config.alerting.language
            )
            self.sinks.append(self.oncall.escalator)  # its own durable queue of transitions
        self.workers = [DeliveryWorker(sink, self.db, self.stats) for sink in self.sinks]
        self.engine_errors = 0
        self.pending: dict[str, int] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._publishers = [s for s in self.sinks if isinstance(s, StatusPublisher)]
        self._report_publishers = [s for s in self.sinks if isinstance(s, ReportPublisher)]
        self.traps = TrapAlerts(inventory, self.engine)
        self.engine_ids = EngineIdTable(self.db)

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
        self._store.on_trap(self._on_trap)
        self._store.on_check(self._on_check)
        self.engine.on_status_change(self._publish_status)
        for sink in self.sinks:
            await sink.start()
        for worker in self.workers:
            worker.start()
        if self.oncall is not None:
            await self.oncall.start()
        self._tasks.append(asyncio.create_task(self._tick(), name="alert-tick"))
        if self._publishers:
            self._tasks.append(asyncio.create_task(self._refresh_status(), name="alert-status"))

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()
        if not await self.engine.flush(timeout=STOP_FLUSH):
            log.error(
                "alert transitions not stored at shutdown: the database refused them",
                extra={"unstored": self.engine.unstored},
            )
        await self.engine.stop()
        for worker in self.workers:
            await worker.stop()
        if self.oncall is not None:
            await self.oncall.stop()
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
        self.traps.apply_inventory(inventory)
        if self.oncall is not None and inventory.config.oncall is not None:
            self.oncall.set_config(inventory.config.oncall)
        # A target that moved to another shard keeps its retained status: its new owner
        # publishes over it.
        keep = {*inventory.targets, *inventory.shard_map}
        for publisher in self._publishers:
            publisher.forget_statuses(keep)

    # --- feeding the engine ----------------------------------------------------------------

    def _on_record(self, state: TargetState, observation: Observation) -> None:
        try:
            self.engine.observe(state, observation)
        except Exception:
            self.engine_errors += 1
            log.exception("alert evaluation failed", extra={"target": state.target.id})

    def _on_reach(self, change: ReachChange) -> None:
        self._publish_status(change.target.id)

    def _on_trap(self, state: TargetState, event: TrapEvent) -> None:
        try:
            self.traps.on_trap(state, event)
        except Exception:
            self.engine_errors += 1
            log.exception("trap evaluation failed", extra={"target": state.target.id})

    def _on_check(self, done: CheckDone) -> None:
        try:
            self._check_done(done)
        except Exception:
            self.engine_errors += 1
            log.exception("readiness report evaluation failed", extra={"check": done.report.id})

    def _check_done(self, done: CheckDone) -> None:
        """A check finished: its report to the sinks that carry reports, and for a meeting
        about to start, an alert for every endpoint that is NO-GO (it ends 10 minutes into
        the meeting)."""
        report, meeting = done.report, done.meeting
        for publisher in self._report_publishers:
            publisher.publish_report(report.id, report.to_json())
        if meeting is None:
            return
        hold = max(60.0, meeting.start.timestamp() + 600 - time.time())
        for endpoint in report.endpoints:
            state = self._store.targets.get(endpoint.target)
            if endpoint.verdict is not Verdict.NO_GO or state is None:
                continue
            self.engine.fire_event(
                "EndpointNotReady",
                state.target,
                severity=Severity.CRITICAL,
                hold=hold,
                labels={"meeting": meeting.name},
                extra={"meeting": meeting.name, "reasons": "; ".join(endpoint.reasons)},
            )

    async def _tick(self) -> None:
        while True:
            await asyncio.sleep(TICK)
            try:
                self.engine.tick()
                self.pending = await self.db.call(self.db.pending_counts)
                if self.oncall is not None:
                    await self.oncall.tick()
                    await self.oncall.refresh_counts(self.db)
            except Exception:
                self.engine_errors += 1
                log.exception("alert tick failed")

    def _wake_workers(self) -> None:
        for worker in self.workers:
            worker.wake()

    # --- live status (MQTT retained status topics) ---------------------------------------

    def degraded(self, target_id: str) -> bool:
        return any(t.level >= 0 for t in self.engine.quality_alerts(target_id))

    def _publish_status(self, target_id: str) -> None:
        state = self._store.targets.get(target_id)
        if state is None or not self._publishers or not state.target.owned:
            return  # a target another shard owns is its to publish
        status = status_message(state, self.degraded(target_id), time.time())
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

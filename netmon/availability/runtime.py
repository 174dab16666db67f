"""The availability journal as `netmon run` wires it: the recorder, its routes, and the monthly
report when `availability.reports` names a directory."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

from aiohttp import web

from netmon.alerting.engine import AlertEngine
from netmon.alerting.tracked import Tracked
from netmon.availability.api import routes
from netmon.availability.db import JournalDB
from netmon.availability.monthly import MonthlyReports
from netmon.availability.recorder import JournalRecorder
from netmon.config.alerting import Silence
from netmon.inventory import Inventory
from netmon.meeting_quality.db import MeetingDB
from netmon.state import StateStore

log = logging.getLogger(__name__)

# The metrics of a link's quality (the rest say a target is down, or something of its devices).
QUALITY_METRICS = frozenset({"rtt_p95", "loss_ratio", "jitter", "loss_bursts"})


class Availability:
    def __init__(
        self,
        *,
        store: StateStore,
        inventory: Callable[[], Inventory],
        path: Path,
        reports: Path | None,
        alerts: Mapping[str, Tracked] | None,
        meeting_record: Callable[[], MeetingDB | None] = lambda: None,
        silences: Callable[[], Iterable[Silence]] = tuple,
    ) -> None:
        current = inventory()
        self.recorder = JournalRecorder(
            store=store,
            inventory=current,
            config=current.config.availability,
            db=JournalDB(path),
            alerts=alerts,
            topology=current.config.alerting.topology,
            silences=silences,
        )
        self._inventory = inventory
        self._meeting_record = meeting_record
        self.monthly = (
            MonthlyReports(self.recorder, inventory, reports, meeting_record) if reports else None
        )
        self._monthly_task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self.recorder.start()
        if self.monthly is not None:
            self._monthly_task = asyncio.create_task(self.monthly.run(), name="monthly-report")

    def listen_to(self, engine: AlertEngine) -> None:
        """Journal each target's link quality as the engine judges it (`degraded`)."""
        recorder = self.recorder

        def changed(target: str) -> None:
            firing = [
                t.alertname
                for t in engine.tracked.values()
                if t.target == target
                and t.metric in QUALITY_METRICS
                and t.emitted is not None
                and t.announced
                and (t.level >= 0 or t.flapping)
            ]
            recorder.quality_changed(target, firing)

        engine.on_status_change(changed)

    def routes(self) -> list[web.RouteDef]:
        return routes(self.recorder, self._inventory, self._meeting_record)

    async def reload(self, inventory: Inventory) -> None:
        await self.recorder.reload(inventory)

    async def close(self) -> None:
        if self._monthly_task is not None:
            self._monthly_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._monthly_task
        await self.recorder.close()

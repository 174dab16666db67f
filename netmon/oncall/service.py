"""The on-call loop while netmon runs: the escalator (a sink of the alert engine), the
channels with their page workers, and what a person's answer from a channel does."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from netmon.alerting.engine import AlertEngine
from netmon.alerting.store import AlertDB
from netmon.channels.base import Action, ActionKind, Channel
from netmon.config.alerting import Language
from netmon.config.oncall import OncallConfig
from netmon.oncall.channels import build_channels
from netmon.oncall.delivery import PageStats, PageWorker
from netmon.oncall.escalation import Escalator

log = logging.getLogger(__name__)

SNOOZE = 3600.0  # the "Silence 1 h" button
ORPHAN_AFTER = 120.0


class OnCall:
    def __init__(
        self,
        config: OncallConfig,
        *,
        db: AlertDB,
        engine: AlertEngine,
        language: Language,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._engine = engine
        self._clock = clock
        self.stats = PageStats()
        self.escalator = Escalator(
            config,
            channels=config.channel_kinds(),
            db=db,
            language=language,
            clock=clock,
            on_paged=self._wake,
        )
        self.channels: list[Channel] = build_channels(config, on_action=self.act)
        self.workers = [PageWorker(channel, db, self.stats) for channel in self.channels]
        self.pending: dict[str, int] = {}
        self._missing: dict[str, float] = {}  # escalated alerts not firing, since when

    async def start(self) -> None:
        """The escalator starts as a sink (with the others); here the channels and workers."""
        for channel in self.channels:
            await channel.start()
        for worker in self.workers:
            worker.start()

    async def stop(self) -> None:
        for worker in self.workers:
            await worker.stop()
        for channel in self.channels:
            try:
                await channel.close()
            except Exception:
                log.exception("closing a page channel failed", extra={"channel": channel.name})

    def set_config(self, config: OncallConfig) -> None:
        """A reload: people, rotas and policies now; channels at the next restart."""
        self.escalator.set_config(config, {c.name: c.kind for c in self.channels})

    def _wake(self) -> None:
        for worker in self.workers:
            worker.wake()

    async def act(self, action: Action) -> str:
        """A person's answer from a channel (a Telegram button): the text shown back."""
        by = self._who(action)
        if action.kind is ActionKind.ACKNOWLEDGE:
            event = self._engine.acknowledge(action.fingerprint, by)
            if event is None:
                return "Cảnh báo đã kết thúc / This alert is no longer firing"
            return f"Đã nhận / Acknowledged: {by}"
        tracked = self._engine.tracked.get(action.fingerprint)
        if tracked is None or tracked.emitted is None:
            return "Cảnh báo đã kết thúc / This alert is no longer firing"
        # Pages stop for an hour; the alert itself stays as it is for every sink (a silence
        # of the engine would match all of a device's interfaces, not this one).
        log.info("escalation snoozed for 1 h", extra={"fingerprint": action.fingerprint, "by": by})
        await self.escalator.snooze(action.fingerprint, until=self._clock() + SNOOZE)
        return "Tắt 1 giờ / No pages for 1 h"

    def _who(self, action: Action) -> str:
        """The person's name when the channel's user is one of `oncall.people`."""
        config = self.escalator.config
        if config.channel_kinds().get(action.channel) != "telegram":
            return action.by
        for person_id, person in config.people.items():
            if person.telegram == action.user_id:
                return f"{person.name or person_id} ({action.by})"
        return action.by

    async def tick(self) -> None:
        await self.escalator.tick()
        await self._forget_orphans()

    async def _forget_orphans(self) -> None:
        """Escalations of alerts that stopped firing without the escalator hearing of it (a
        move to another shard is not announced; a full queue drops its oldest): ended once
        they have been missing from the engine's firing alerts for ORPHAN_AFTER seconds, so
        a resolve on its way through the queue is told to those paged first."""
        now = self._clock()
        firing = {event.fingerprint for event in self._engine.firing()}
        escalating = set(self.escalator.escalations)
        for fingerprint in list(self._missing):
            if fingerprint in firing or fingerprint not in escalating:
                del self._missing[fingerprint]
        for fingerprint in escalating - firing:
            self._missing.setdefault(fingerprint, now)
        gone = [fp for fp, since in self._missing.items() if now - since >= ORPHAN_AFTER]
        if gone:
            await self.escalator.forget(gone)
            for fingerprint in gone:
                del self._missing[fingerprint]

    async def refresh_counts(self, db: AlertDB) -> None:
        self.pending = await db.call(db.page_counts)

"""The on-call loop while netmon runs: the escalator (a sink of the alert engine), the
channels with their page workers, and what a person's answer from a channel does."""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Callable

from netmon.alerting.engine import AlertEngine
from netmon.alerting.store import AlertDB
from netmon.channels.base import Action, ActionKind, Channel
from netmon.config.alerting import Language, Silence
from netmon.config.oncall import OncallConfig
from netmon.oncall.channels import build_channels
from netmon.oncall.delivery import PageStats, PageWorker
from netmon.oncall.escalation import Escalator

log = logging.getLogger(__name__)

SNOOZE = 3600.0  # the "Silence 1 h" button


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
        now = self._clock()
        silence = Silence(
            matchers={"alertname": tracked.alertname, "target": tracked.target},
            ends_at=dt.datetime.fromtimestamp(now + SNOOZE, dt.UTC),
            comment=f"silenced for 1 h from {action.channel}",
            created_by=by,
        )
        await self._engine.add_silence(silence)
        await self.escalator.snooze(action.fingerprint, until=now + SNOOZE)
        return "Tắt 1 giờ / Silenced for 1 h"

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

    async def refresh_counts(self, db: AlertDB) -> None:
        self.pending = await db.call(db.page_counts)

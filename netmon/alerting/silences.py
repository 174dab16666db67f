"""Silences: which alert events are muted now.

The config's silences (replaced on each reload) and those made through the API (kept in the
alert database, so they outlive a restart), until they end. This answers "is this event
silenced?"; what a silence does to an alert (mute a new incident, never one the sinks already
heard of) is the lifecycle's business.
"""

from __future__ import annotations

from collections.abc import Callable

from netmon.alerting.model import AlertEvent
from netmon.alerting.store import AlertDB
from netmon.config.alerting import AlertingConfig, Silence


class Silences:
    def __init__(self, *, db: AlertDB, clock: Callable[[], float]) -> None:
        self._db = db
        self._clock = clock
        self.by_id: dict[str, Silence] = {}
        self._static: set[str] = set()

    async def restore(self, now: float) -> None:
        """Those made through the API that have not ended yet."""
        for silence in await self._db.call(self._db.load_silences, now):
            loaded = Silence.model_validate(silence)
            self.by_id[loaded.id] = loaded

    def set_config(self, config: AlertingConfig) -> None:
        """The config's silences replace the previous config's; those made through the API
        stay."""
        for silence_id in self._static:
            self.by_id.pop(silence_id, None)
        static = config.static_silences()
        self._static = {s.id for s in static}
        self.by_id.update({s.id: s for s in static})

    def silenced(self, event: AlertEvent) -> bool:
        now = self._clock()
        labels = event.all_labels()
        return any(s.active(now) and s.matches(labels) for s in self.by_id.values())

    async def add(self, silence: Silence) -> None:
        self.by_id[silence.id] = silence
        await self._db.call(
            self._db.save_silence, silence.id, silence.model_dump(mode="json"), silence.ends_at
        )

    async def delete(self, silence_id: str) -> bool:
        if self.by_id.pop(silence_id, None) is None:
            return False
        await self._db.call(self._db.delete_silence, silence_id)
        return True

    def expire(self, now: float) -> None:
        expired = [s.id for s in self.by_id.values() if s.ends_at <= now]
        for silence_id in expired:
            del self.by_id[silence_id]

"""The outbox: each alert transition written to the alert database with its delivery rows.

A transition is logged and written off the loop, with one outbox row per sink queue when it
is announced (none when it is only recorded, e.g. silenced); the delivery workers are woken
once it is on disk, and notifications dropped from a full queue are counted. It decides
nothing about alerts and delivers nothing itself.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from typing import Any

from netmon.alerting.model import AlertEvent
from netmon.alerting.store import AlertDB

# The engine's logger: operators filter its transitions by it, whichever room writes them.
log = logging.getLogger("netmon.alerting.engine")


class Outbox:
    def __init__(
        self,
        *,
        db: AlertDB,
        queues: Callable[[], Sequence[str]],
        on_queued: Callable[[], None],
    ) -> None:
        self._db = db
        self._queues = queues
        self._on_queued = on_queued
        self._writes: set[asyncio.Future[Any]] = set()
        self.dropped: dict[str, int] = {}  # notifications dropped from a full queue, by queue

    def record(self, event: AlertEvent, level: int, announce: bool) -> None:
        """Store the transition (`level`: the index it fired at, -1 resolved); queue it for
        every sink if `announce`."""
        queues = list(self._queues()) if announce else []
        log.log(
            logging.WARNING if event.firing else logging.INFO,
            f"alert {event.status.value}" + ("" if announce else " (not announced)"),
            extra={
                "alert": event.alertname,
                "target": event.target,
                "severity": event.severity.value,
                "summary": event.summary,
            },
        )
        future = asyncio.ensure_future(
            self._db.call(self._db.record, event, level, announce, queues)
        )
        self._writes.add(future)
        future.add_done_callback(self._written)

    def _written(self, future: asyncio.Future[Any]) -> None:
        self._writes.discard(future)
        if future.cancelled():
            return
        exc = future.exception()
        if exc is not None:
            log.error("could not store an alert transition", exc_info=exc)
            return
        for queue, count in future.result().items():
            self.dropped[queue] = self.dropped.get(queue, 0) + count
            log.error("outbox full; oldest notifications dropped", extra={"queue": queue})
        self._on_queued()

    async def flush(self) -> None:
        """Wait until every transition recorded so far is on disk."""
        while self._writes:
            await asyncio.gather(*list(self._writes), return_exceptions=True)

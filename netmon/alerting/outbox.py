"""The outbox: each alert transition written to the alert database with its delivery rows.

A transition is logged and written off the loop, with one outbox row per sink queue when it
is announced (none when it is only recorded, e.g. silenced); the delivery workers are woken
once it is on disk, and notifications dropped from a full queue are counted. It decides
nothing about alerts and delivers nothing itself.

Transitions are written one after the other, in the order they were decided, and a write that
fails (the database locked past SQLite's timeout, a full disk) is retried with backoff until it
is stored: a "firing" that could not be written is never skipped for the "resolved" after it.
Text that cannot be stored at all (a lone surrogate; the config loader rejects those) is stored
with U+FFFD in its place rather than retried for ever. `unstored` and `store_failures` are
exported (netmon_alert_transitions_unstored, netmon_alert_store_failures_total).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

from netmon.alerting.model import AlertEvent, new_event_id
from netmon.alerting.store import AlertDB

# The engine's logger: operators filter its transitions by it, whichever room writes them.
log = logging.getLogger("netmon.alerting.engine")

RETRY_MIN = 0.5
RETRY_MAX = 10.0


@dataclass(frozen=True, slots=True)
class _Transition:
    event: AlertEvent
    level: int
    announce: bool
    queues: tuple[str, ...]


class Outbox:
    def __init__(
        self,
        *,
        db: AlertDB,
        queues: Callable[[], Sequence[str]],
        on_queued: Callable[[], None],
        retry_min: float = RETRY_MIN,
        retry_max: float = RETRY_MAX,
    ) -> None:
        self._db = db
        self._queues = queues
        self._on_queued = on_queued
        self._retry_min = retry_min
        self._retry_max = retry_max
        self._unstored: deque[_Transition] = deque()
        self._writer: asyncio.Task[None] | None = None
        self._stored = asyncio.Event()
        self.dropped: dict[str, int] = {}  # notifications dropped from a full queue, by queue
        self.store_failures = 0

    @property
    def unstored(self) -> int:
        """Transitions decided but not yet on disk."""
        return len(self._unstored)

    def record(
        self, event: AlertEvent, level: int, announce: bool, *, change: str = ""
    ) -> AlertEvent:
        """Store the transition (`level`: the index it fired at, -1 resolved); queue it for
        every sink if `announce`. Returns the event as stored: with its own `event_id`, which
        every delivery of it carries, however often it is re-sent. `change` names a change
        that is not a transition (an acknowledgement) for the log."""
        event = replace(event, event_id=new_event_id())
        queues = tuple(self._queues()) if announce else ()
        extra: dict[str, object] = {
            "alert": event.alertname,
            "target": event.target,
            "severity": event.severity.value,
            "summary": event.summary,
        }
        if change:
            extra["by"] = event.acknowledged_by or None
            log.info(f"alert {change}", extra=extra)
        else:
            log.log(
                logging.WARNING if event.firing else logging.INFO,
                f"alert {event.status.value}" + ("" if announce else " (not announced)"),
                extra=extra,
            )
        self._unstored.append(_Transition(event, level, announce, queues))
        self._stored.clear()
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._write_all(), name="alert-outbox")
        return event

    async def _write_all(self) -> None:
        delay = self._retry_min
        failing = False
        while self._unstored:
            transition = self._unstored[0]
            try:
                dropped = await self._db.call(
                    self._db.record,
                    transition.event,
                    transition.level,
                    transition.announce,
                    list(transition.queues),
                )
            except UnicodeEncodeError:
                log.error(
                    "alert text cannot be stored as UTF-8; stored with U+FFFD in its place",
                    extra={"alert": transition.event.alertname},
                )
                self._unstored[0] = replace(transition, event=_encodable(transition.event))
                continue
            except Exception as exc:
                self.store_failures += 1
                if not failing:
                    log.error(
                        "could not store an alert transition; retrying until it is stored",
                        extra={"alert": transition.event.alertname,
                               "target": transition.event.target, "error": str(exc)},
                    )  # fmt: skip
                failing = True
                await asyncio.sleep(delay)
                delay = min(delay * 2, self._retry_max)
                continue
            if failing:
                log.info("alert transitions are stored again")
                failing = False
            delay = self._retry_min
            self._unstored.popleft()
            for queue, count in dropped.items():
                self.dropped[queue] = self.dropped.get(queue, 0) + count
                log.error("outbox full; oldest notifications dropped", extra={"queue": queue})
            self._on_queued()
        self._stored.set()

    async def flush(self, timeout: float | None = None) -> bool:
        """Wait until every transition recorded so far is on disk (at most `timeout` s);
        whether they all are."""
        if not self._unstored:
            return True
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                await self._stored.wait()
        return not self._unstored

    async def stop(self) -> None:
        if self._writer is not None:
            self._writer.cancel()
            await asyncio.gather(self._writer, return_exceptions=True)
            self._writer = None


def _encodable(event: AlertEvent) -> AlertEvent:
    """The event with every text field made storable: unpaired surrogates become U+FFFD."""

    def clean(value: object) -> object:
        if isinstance(value, str):
            return "".join("\ufffd" if 0xD800 <= ord(c) <= 0xDFFF else c for c in value)
        if isinstance(value, dict):
            return {clean(k): clean(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return type(value)(clean(v) for v in value)
        return value

    return AlertEvent.from_json(clean(event.to_json()))  # type: ignore[arg-type]

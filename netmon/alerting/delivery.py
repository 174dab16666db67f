"""One worker per sink: reads the sink's outbox queue in order and delivers it, with backoff.

A sink that is slow or dead only ever holds up its own queue; the engine, the collectors and
the other sinks go on. An event leaves the outbox only after the sink confirmed it.
"""

from __future__ import annotations

import asyncio
import logging
import random

from netmon.alerting.sinks.base import Sink, SinkRejected, SinkUnavailable
from netmon.alerting.store import AlertDB

log = logging.getLogger(__name__)

BATCH = 100


class NotificationStats:
    """Counts behind netmon_alert_notifications_total{sink,result}."""

    def __init__(self) -> None:
        self.results: dict[tuple[str, str], int] = {}

    def count(self, sink: str, result: str, n: int = 1) -> None:
        key = (sink, result)
        self.results[key] = self.results.get(key, 0) + n


class QueueWorker:
    """What every worker over a durable queue shares: one task, woken when its queue grows,
    kept alive through database hiccups, and a log line when its far side stops or starts
    taking deliveries again. Subclasses deliver in `_work`, which runs until cancelled."""

    FAILED = "delivery failed; retrying"
    UNAVAILABLE = "unavailable; retried"
    AGAIN = "delivering again"

    def __init__(
        self,
        name: str,
        context: dict[str, str],
        db: AlertDB,
        stats: NotificationStats,
        *,
        send_timeout: float,
        backoff_min: float,
        backoff_max: float,
    ) -> None:
        self._name = name
        self._context = context  # what names the queue in the log
        self._db = db
        self._stats = stats
        self._send_timeout = send_timeout
        self._backoff_min = backoff_min
        self._backoff_max = backoff_max
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.failing = False

    def wake(self) -> None:
        self._wake.set()

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=self._name)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    async def _run(self) -> None:
        while True:
            try:
                await self._work()
            except asyncio.CancelledError:
                raise
            except Exception:
                # The database hiccuped (locked, disk full): the queue stays as it is; a
                # worker that died here would leave its far side silent for good.
                log.exception(self.FAILED, extra=self._context)
                await asyncio.sleep(self._backoff_max / 6)

    async def _work(self) -> None:
        raise NotImplementedError

    def _set_failing(self, failing: bool, reason: str) -> None:
        if failing == self.failing:
            return
        self.failing = failing
        if failing:
            log.warning(self.UNAVAILABLE, extra={**self._context, "reason": reason})
        else:
            log.info(self.AGAIN, extra=self._context)


class DeliveryWorker(QueueWorker):
    FAILED = "alert delivery failed; retrying"
    UNAVAILABLE = "alert sink unavailable; notifications are queued and retried"
    AGAIN = "alert sink delivering again"

    def __init__(
        self,
        sink: Sink,
        db: AlertDB,
        stats: NotificationStats,
        *,
        send_timeout: float = 15.0,
        backoff_min: float = 0.5,
        backoff_max: float = 30.0,
    ) -> None:
        super().__init__(
            f"deliver-{sink.queue}", {"sink": sink.queue}, db, stats,
            send_timeout=send_timeout, backoff_min=backoff_min, backoff_max=backoff_max,
        )  # fmt: skip
        self.sink = sink

    async def _work(self) -> None:
        await self._deliver()

    async def _deliver(self) -> None:
        backoff = self._backoff_min
        while True:
            self._wake.clear()
            entries = await self._db.call(self._db.pending, self.sink.queue, BATCH)
            if not entries:
                await self._wake.wait()
                continue
            for entry in entries:
                try:
                    await asyncio.wait_for(self.sink.send(entry.event), self._send_timeout)
                except SinkRejected as exc:
                    self._stats.count(self.sink.name, "rejected")
                    log.error(
                        "alert notification rejected; dropped",
                        extra={"sink": self.sink.queue, "alert": entry.event.alertname,
                               "target": entry.event.target, "reason": str(exc)},
                    )  # fmt: skip
                except (SinkUnavailable, TimeoutError, OSError) as exc:
                    self._stats.count(self.sink.name, "failure")
                    self._set_failing(True, str(exc) or type(exc).__name__)
                    # Jitter, so several netmon instances do not hammer a sink in step; and
                    # never sooner than the sink asked (Retry-After).
                    pause = backoff * random.uniform(0.8, 1.2)
                    asked = exc.retry_after if isinstance(exc, SinkUnavailable) else None
                    await self._pause(max(pause, asked or 0.0))
                    backoff = min(backoff * 2, self._backoff_max)
                    break
                except Exception:
                    # A sink bug must not kill delivery for good; the event is retried.
                    self._stats.count(self.sink.name, "failure")
                    log.exception("alert sink failed", extra={"sink": self.sink.queue})
                    await asyncio.sleep(backoff)
                    backoff = min(backoff * 2, self._backoff_max)
                    break
                else:
                    self._stats.count(self.sink.name, "success")
                    self._set_failing(False, "")
                    backoff = self._backoff_min
                await self._db.call(self._db.ack, entry.seq)

    async def _pause(self, seconds: float) -> None:
        """Back off, but not past the moment a sink that keeps its own connection (MQTT) is
        connected again: queued alerts go out then, not up to 30 s later."""
        loop = asyncio.get_running_loop()
        end = loop.time() + seconds
        # Only a reconnection cuts the pause short: a sink that is connected and still
        # failing must not be retried in a tight loop.
        was_connected = getattr(self.sink, "connected", True)
        while (left := end - loop.time()) > 0:
            if not was_connected and getattr(self.sink, "connected", False):
                return
            await asyncio.sleep(min(left, 0.2))

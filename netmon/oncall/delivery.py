"""One worker per channel: reads the channel's page queue in order and hands it the pages.

As the sinks' delivery workers (`netmon.alerting.delivery`): a channel that is slow or dead
holds up only its own queue; a page leaves the queue only once the channel says the far side
has it. A channel may take fewer pages than offered (a rate limit, a message full): the rest
is offered again at once, and the channel's own limiter decides when they go.
"""

from __future__ import annotations

import asyncio
import logging
import random

from netmon.alerting.delivery import NotificationStats, QueueWorker
from netmon.alerting.store import AlertDB
from netmon.channels.base import Channel, SinkRejected, SinkUnavailable
from netmon.oncall.pages import page_from_json
from netmon.oncall.records import page_queue

log = logging.getLogger(__name__)

# A batch is offered under one timeout (`send_timeout`): small enough that a slow provider
# (an SMS gateway answering in seconds, one request a page) ends it well within it, so the
# pages it sent are counted and never sent again.
BATCH = 10
RESULTS = ("success", "failure", "rejected")


# Counts behind netmon_pages_total{channel,result}: the sinks' kind of tally, by channel.
PageStats = NotificationStats


class PageWorker(QueueWorker):
    FAILED = "page delivery failed; retrying"
    UNAVAILABLE = "page channel unavailable; pages are queued and retried"
    AGAIN = "page channel delivering again"

    def __init__(
        self,
        channel: Channel,
        db: AlertDB,
        stats: PageStats,
        *,
        send_timeout: float = 300.0,
        backoff_min: float = 0.5,
        backoff_max: float = 30.0,
    ) -> None:
        super().__init__(
            f"pages-{channel.name}", {"channel": channel.name}, db, stats,
            send_timeout=send_timeout, backoff_min=backoff_min, backoff_max=backoff_max,
        )  # fmt: skip
        self.channel = channel
        self.queue = page_queue(channel.name)

    async def _work(self) -> None:
        backoff = self._backoff_min
        while True:
            backoff = await self._round(backoff)

    async def _round(self, backoff: float) -> float:
        self._wake.clear()
        rows = await self._db.call(self._db.pending_pages, self.queue, BATCH)
        if not rows:
            await self._wake.wait()
            return backoff
        pages, seqs = [], []
        for seq, data in rows:
            try:
                pages.append(page_from_json(data))
                seqs.append(seq)
            except (KeyError, TypeError, ValueError) as exc:
                await self._db.call(self._db.quarantine, "pages", data, exc)
                await self._db.call(self._db.done_pages, [seq])
        if not pages:
            return backoff
        name = self.channel.name
        try:
            done = await asyncio.wait_for(self.channel.deliver(pages), self._send_timeout)
        except SinkRejected as exc:
            self._stats.count(name, "rejected")
            log.error(
                "page rejected by the channel; dropped",
                extra={"channel": name, "to": pages[0].recipient, "reason": str(exc)},
            )
            await self._db.call(self._db.done_pages, seqs[:1])
            return self._backoff_min
        except (SinkUnavailable, TimeoutError, OSError) as exc:
            self._stats.count(name, "failure")
            self._set_failing(True, str(exc) or type(exc).__name__)
            asked = exc.retry_after if isinstance(exc, SinkUnavailable) else None
            await asyncio.sleep(max(backoff * random.uniform(0.8, 1.2), asked or 0.0))
            return min(backoff * 2, self._backoff_max)
        except Exception:
            self._stats.count(name, "failure")
            log.exception("page channel failed", extra={"channel": name})
            await asyncio.sleep(backoff)
            return min(backoff * 2, self._backoff_max)
        done = max(0, min(done, len(seqs)))
        if not done:  # nothing taken and nothing said: not a reason to spin
            await asyncio.sleep(backoff)
            return min(backoff * 2, self._backoff_max)
        self._stats.count(name, "success", done)
        self._set_failing(False, "")
        await self._db.call(self._db.done_pages, seqs[:done])
        return self._backoff_min

"""The recorder: a sample per room every `interval` while a meeting is on, written off the loop.

Two tasks, both owned and cancelled by `close()`:
- the sampler, on a fixed grid of wall time (10 s by default): reads the store (no I/O) and
  queues one batch per tick;
- the writer: writes each batch in one transaction on the database's own thread. The queue is
  bounded (an hour of batches); if the disk stalls longer, the oldest batches are dropped and
  counted, and the loop never waits.

Meetings: the config's (and the imported calendar's) while start <= now < start + duration,
each with all its rooms; and **ad hoc** ones: rooms in a call outside any scheduled meeting of
theirs open one (id "adhoc-YYYYMMDDTHHMMZ", its first call's UTC minute), rooms joining it are
added, only rooms in a call are sampled, and it ends (at its last sample with a room in a
call) once no room of it has been in a call for `adhoc_idle` (60 s). An ad hoc meeting left open
by a stop is resumed after a restart if its calls go on, else closed at its last sample.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import math
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from netmon.call_quality import echo_counts
from netmon.config.schema import MeetingRecordConfig
from netmon.inventory import Inventory
from netmon.meeting_quality.db import MeetingDB
from netmon.meeting_quality.model import Meeting, RoomSample, adhoc_id
from netmon.meeting_quality.sample import in_call, sample_room
from netmon.meeting_quality.schedule import in_progress, room_of
from netmon.state import StateStore

log = logging.getLogger(__name__)

Sleep = Callable[[float], Awaitable[None]]
PRUNE_EVERY = 3600.0  # seconds between retention passes
CLOSE_WAIT = 1.0  # seconds a stop waits for queued samples (netmon stops within 2 s)
DAY = 86400.0


@dataclass(slots=True)
class _Adhoc:
    meeting: Meeting
    last_in_call: float


@dataclass(frozen=True, slots=True)
class _Batch:
    meetings: tuple[Meeting, ...]
    samples: tuple[tuple[str, RoomSample], ...]


class MeetingRecorder:
    def __init__(
        self,
        store: StateStore,
        inventory: Inventory,
        db: MeetingDB,
        *,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self.store = store
        self.inventory = inventory
        self.db = db
        self._sleep = sleep
        self._adhoc: _Adhoc | None = None
        self._last_adhoc_id = ""
        self._written: dict[str, Meeting] = {}  # meetings as last written, by id
        self._echoes: dict[str, tuple[int, int]] = {}  # (sent, lost) per room at the last tick
        self._queue: deque[_Batch] = deque()
        self._wake = asyncio.Event()
        self._writing = False
        self._idle = asyncio.Event()
        self._idle.set()
        self._tasks: list[asyncio.Task[None]] = []
        self._last_prune = -math.inf
        self.dropped = 0  # batches dropped while the disk stalled
        self._dropping = False
        self.write_errors = 0

    @property
    def settings(self) -> MeetingRecordConfig:
        return self.inventory.config.meeting_record

    def now(self) -> float:
        return self.store.clock.wall()

    async def start(self) -> None:
        await self.db.call(self.db.open)
        restored = await self.db.call(self.db.open_adhoc)
        if restored is not None:
            meeting, last = restored
            self._adhoc = _Adhoc(meeting, last)
            self._last_adhoc_id = self._written_as(meeting).id
        await self._prune_now_and_then()
        self._tasks = [
            asyncio.create_task(self._sample_forever(), name="meeting-sampler"),
            asyncio.create_task(self._write_forever(), name="meeting-writer"),
        ]

    def _written_as(self, meeting: Meeting) -> Meeting:
        self._written[meeting.id] = meeting
        return meeting

    async def close(self) -> None:
        """Stop sampling, give the writer a moment for what is queued, stop it."""
        sampler, writer = self._tasks or (None, None)
        if sampler is not None:
            sampler.cancel()
        if writer is not None and not writer.done():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.flush(), CLOSE_WAIT)
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
        await asyncio.to_thread(self.db.shutdown)

    def apply_inventory(self, inventory: Inventory) -> None:
        self.inventory = inventory

    async def flush(self) -> None:
        """Wait until every queued sample is written (tests; a clean stop)."""
        while self._queue or self._writing:
            self._idle.clear()
            await self._idle.wait()

    # --- sampling ------------------------------------------------------------------------

    async def _sample_forever(self) -> None:
        interval = self.settings.interval
        due = math.ceil(self.now() / interval) * interval
        while True:
            await self._sleep(max(0.0, due - self.now()))
            now = self.now()
            try:
                self.tick(now)
            except Exception:  # a bug in one tick must not end the record
                log.exception("meeting record: sampling failed")
            interval = self.settings.interval
            due += interval
            if due <= self.now():  # late (a stalled loop): the next point of the grid ahead
                due = (math.floor(self.now() / interval) + 1) * interval

    def tick(self, now: float) -> None:
        """Sample every room of every meeting on now, and queue it for the writer."""
        meetings: list[Meeting] = []
        samples: list[tuple[str, RoomSample]] = []
        covered: set[str] = set()
        targets = self.store.targets
        self.store.prune_windows()
        pings = self._pings()

        def sample(tid: str) -> RoomSample:
            return sample_room(targets[tid], now, pings.get(tid))

        for meeting in in_progress(self.inventory, now):
            meetings.append(meeting)
            for room in meeting.rooms:
                if room.id in targets:
                    covered.add(room.id)
                    samples.append((meeting.id, sample(room.id)))
        calling = sorted(
            tid
            for tid, state in targets.items()
            if state.target.is_room and tid not in covered and in_call(state)
        )
        adhoc = self._adhoc
        if adhoc is not None and now - adhoc.last_in_call >= self.settings.adhoc_idle:
            meetings.append(dataclasses.replace(adhoc.meeting, end=adhoc.last_in_call))
            log.info("ad hoc meeting over", extra={"meeting": adhoc.meeting.id})
            adhoc = self._adhoc = None
        if adhoc is None and calling and self.settings.adhoc:
            meeting_id = adhoc_id(now)
            if meeting_id == self._last_adhoc_id:
                meeting_id += f"-{int(now) % 60:02d}"
            self._last_adhoc_id = meeting_id
            meeting = Meeting(meeting_id, "ad hoc", "adhoc", now, None, ())
            adhoc = self._adhoc = _Adhoc(meeting, now)
            log.info("ad hoc meeting started", extra={"meeting": meeting_id, "rooms": calling})
        if adhoc is not None and calling:
            known = {room.id for room in adhoc.meeting.rooms}
            joined = tuple(room_of(targets[tid].target) for tid in calling if tid not in known)
            if joined:
                rooms = tuple(sorted((*adhoc.meeting.rooms, *joined), key=lambda r: r.id))
                adhoc.meeting = dataclasses.replace(adhoc.meeting, rooms=rooms)
            adhoc.last_in_call = now
            samples += [(adhoc.meeting.id, sample(tid)) for tid in calling]
            meetings.append(adhoc.meeting)
        changed = tuple(m for m in meetings if self._written.get(m.id) != m)
        for meeting in changed:
            self._written_as(meeting)
        if changed or samples:
            self._enqueue(_Batch(changed, tuple(samples)))

    def _pings(self) -> dict[str, tuple[int, int]]:
        """(sent, lost) of netmon's echoes to each room since the previous tick."""
        since: dict[str, tuple[int, int]] = {}
        counts: dict[str, tuple[int, int]] = {}
        for tid, state in self.store.targets.items():
            now = echo_counts(state) if state.target.is_room else None
            if now is None:
                continue
            counts[tid] = now
            before = self._echoes.get(tid)
            if before is not None and now[0] >= before[0] and now[1] >= before[1]:
                since[tid] = (now[0] - before[0], now[1] - before[1])
        self._echoes = counts
        return since

    def _enqueue(self, batch: _Batch) -> None:
        limit = max(1, round(3600 / self.settings.interval))
        while len(self._queue) >= limit:
            self._queue.popleft()
            if not self._dropping:  # once per stall, not once per batch
                log.warning("meeting record: the disk is behind; oldest samples dropped")
            self._dropping = True
            self.dropped += 1
        self._queue.append(batch)
        self._wake.set()

    # --- writing -------------------------------------------------------------------------

    async def _write_forever(self) -> None:
        while True:
            if not self._queue:
                self._dropping = False
                self._idle.set()
                self._wake.clear()
                await self._wake.wait()
                continue
            batch = self._queue.popleft()
            self._writing = True
            try:
                await self.db.call(self.db.write, batch.meetings, batch.samples)
            except Exception:
                self.write_errors += 1
                for meeting in batch.meetings:  # written again with the next batch
                    self._written.pop(meeting.id, None)
                log.exception("meeting record: writing samples failed")
            finally:
                self._writing = False
            await self._prune_now_and_then()

    async def _prune_now_and_then(self) -> None:
        now = self.now()
        if now - self._last_prune < PRUNE_EVERY:
            return
        self._last_prune = now
        settings = self.settings
        try:
            gone = await self.db.call(
                self.db.prune, now, settings.retention_days * DAY, settings.max_samples
            )
        except Exception:
            log.exception("meeting record: pruning failed")
            return
        if gone:
            log.info("meeting record: old meetings dropped", extra={"meetings": gone})

"""The outage journal's writer: every change of a target's reach, of a district link and of a
service probe, with netmon's reason, as it happens; when netmon runs; the maintenance windows;
the verdicts of pre-meeting checks.

Changes are queued on the loop and written once a second in one transaction, off the loop (the
journal's own thread). A failed write keeps them queued for the next; a stop writes what is
queued and notes the run's end. Reach changes of ICMP targets come from the state store as they
happen; the rest (district links, targets without ICMP, service probes) is looked at once a
second, a few hundred subjects at most even at 10,000 targets.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import replace

from netmon.alerting.topology import CutOff, Topology
from netmon.alerting.tracked import Tracked
from netmon.availability.accounting import LINK, QUALITY
from netmon.availability.db import Change, CheckVerdict, JournalDB, Window
from netmon.config.alerting import Silence
from netmon.config.availability import AvailabilityConfig
from netmon.config.rules import TopologyConfig
from netmon.inventory import Inventory
from netmon.state import CheckDone, Reach, ReachChange, StateStore, TargetState

log = logging.getLogger(__name__)

FLUSH_EVERY = 1.0
PRUNE_EVERY = 86400.0
MAX_QUEUED = 1_000_000  # beyond, the oldest changes go (a journal that cannot be written)
STATES = {Reach.UP: "up", Reach.DOWN: "down", Reach.UNKNOWN: "unknown"}
# A silence's matchers that select targets (alertname and severity select alerts).
TARGET_LABELS = frozenset({"target", "district", "group", "kind", "site"})


class JournalRecorder:
    def __init__(
        self,
        *,
        store: StateStore,
        inventory: Inventory,
        config: AvailabilityConfig,
        db: JournalDB,
        alerts: Mapping[str, Tracked] | None = None,
        topology: TopologyConfig | None = None,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        silences: Callable[[], Iterable[Silence]] = tuple,
    ) -> None:
        self._silences = silences
        self._silence_windows: dict[str, Window] = {}
        self.db = db
        self._sleep = sleep
        self.config = config
        self._store = store
        self._clock = clock
        self._topology = Topology(
            store=store, alerts=alerts or {}, settings=topology or TopologyConfig()
        )
        self._last: dict[str, str] = {}  # each subject's state as last queued in this run
        self._queue: list[Change] = []
        self._checks: list[CheckVerdict] = []
        self._tasks: list[asyncio.Task[None]] = []
        self._started = 0.0
        self._parents: list[str] = []
        self._service: list[tuple[str, str]] = []
        self._without_icmp: list[str] = []
        self.write_errors = 0
        self._listening = False
        self.apply_inventory(inventory)

    def apply_inventory(self, inventory: Inventory) -> None:
        self._topology.apply_inventory(inventory)
        targets = inventory.targets
        self._parents = sorted({t.parent for t in targets.values() if t.parent in targets})  # type: ignore[misc]
        self._service = [(t.id, name) for t in targets.values() for name, _ in t.service_probes()]
        # ICMP targets are told by the store as their reach changes; only the others are looked
        # at each second (a few at most of 10,000).
        self._without_icmp = [t.id for t in targets.values() if t.probe("icmp") is None]
        self._windows = [Window.configured(w) for w in self.config.maintenance]

    async def start(self) -> None:
        await self.db.call(self.db.open)
        self._started = self._clock()
        await self.db.call(self.db.start_run, self._started)
        await self.db.call(self.db.keep_windows, self._windows)
        await self._sync_silences()
        if not self._listening:  # once: the store has no way to stop telling
            self._store.on_reach_change(self._on_reach)
            self._store.on_check(self._on_check)
            self._listening = True
        self._tasks = [
            asyncio.create_task(self._every(FLUSH_EVERY, self._tick), name="journal-tick"),
            asyncio.create_task(
                self._every(self.config.heartbeat, self._heartbeat), name="journal-heartbeat"
            ),
            asyncio.create_task(
                self._every(PRUNE_EVERY, self._prune, at_once=True), name="journal-prune"
            ),
        ]

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
        try:
            await self._flush()
            if self._started:
                await self.db.call(self.db.stop_run, self._started, self._clock())
        except Exception:
            log.exception("the availability journal could not note netmon's stop")
        await asyncio.get_running_loop().run_in_executor(None, self.db.shutdown)

    async def reload(self, inventory: Inventory) -> None:
        """A new config: its targets, its `availability:` and topology settings."""
        self.config = inventory.config.availability
        self._topology.settings = inventory.config.alerting.topology
        self.apply_inventory(inventory)
        now = self._clock()
        targets = inventory.targets
        watched = {*targets, *(t + QUALITY for t in targets), *(LINK + p for p in self._parents)}
        watched.update(f"{t}/{name}" for t, name in self._service)
        for subject in list(self._last):
            if subject not in watched:
                self._queue_change(subject, "unknown", None, now)  # no longer watched
                del self._last[subject]
        await self.db.call(self.db.keep_windows, self._windows)

    # --- what happens ------------------------------------------------------------------------

    def _queue_change(self, subject: str, state: str, reason: str | None, at: float) -> None:
        if self._last.get(subject, "unknown") == state:
            return
        self._last[subject] = state
        self._queue.append(Change(subject, at, state, reason if state == "down" else None))
        if len(self._queue) > MAX_QUEUED:
            del self._queue[: len(self._queue) - MAX_QUEUED]

    def _on_reach(self, change: ReachChange) -> None:
        state = self._store.targets.get(change.target.id)
        reason = _reason(state) if state is not None else None
        self._queue_change(change.target.id, STATES[change.reach], reason, self._clock())

    def quality_changed(self, target_id: str, firing: list[str]) -> None:
        """The link-quality alerts firing on a target now (the alert engine's word): the
        target is degraded while there is one."""
        state = "down" if firing else "up"
        self._queue_change(target_id + QUALITY, state, ", ".join(sorted(firing)), self._clock())

    def _on_check(self, done: CheckDone) -> None:
        if done.meeting is None:
            return
        now = self._clock()
        self._checks += [
            CheckVerdict(done.meeting.name, now, e.target, str(e.verdict), tuple(e.reasons))
            for e in done.report.endpoints
        ]

    def look(self) -> None:
        """Links, targets without ICMP and service probes, as they are now."""
        now = self._clock()
        targets = self._store.targets
        for target_id in self._without_icmp:
            state = targets.get(target_id)
            if state is not None and state.reach is not Reach.UNKNOWN:
                self._queue_change(target_id, STATES[state.reach], _reason(state), now)
        for cut in self._topology.cut_off():
            self._queue_link(cut, now)
        for target_id, probe_name in self._service:
            found = targets.get(target_id)
            probe = found.probes.get(probe_name) if found is not None else None
            if probe is not None:
                word = "up" if probe.success else "down"
                self._queue_change(f"{target_id}/{probe_name}", word, probe.reason, now)

    def _queue_link(self, cut: CutOff, now: float) -> None:
        """A link is down as DistrictUnreachable judges it: its parent cut (down, its uplink
        down, most of what hangs off it down) with targets behind it down. A parent whose
        uplink reads down while everything behind it answers has not cut anyone off."""
        parent = cut.parent.id
        if cut.behind:
            state = self._store.targets.get(parent)
            down = state is not None and state.reach is Reach.DOWN
            self._queue_change(LINK + parent, "down", "unreachable" if down else "cut off", now)
        elif any(self._up(t) for t in (parent, *self._topology.children(parent))):
            self._queue_change(LINK + parent, "up", None, now)

    def _up(self, target_id: str) -> bool:
        state = self._store.targets.get(target_id)
        return state is not None and state.reach is Reach.UP

    # --- writing ----------------------------------------------------------------------------

    async def _tick(self) -> None:
        self.look()
        await self._flush()

    def now(self) -> float:
        return self._clock()

    async def flush(self) -> None:
        """Write what is queued, and note that netmon watched until now (a report reads the
        journal after this: without the note, the time since the last heartbeat is unknown)."""
        await self._flush()
        if self._started:
            await self.db.call(self.db.heartbeat, self._started, self._clock())

    async def _flush(self) -> None:
        if not self._queue and not self._checks:
            return
        changes, checks = self._queue, self._checks
        self._queue, self._checks = [], []
        try:
            await self.db.call(self.db.record, changes, checks)
        except asyncio.CancelledError:  # close() cancels the tick: it writes them (again: a
            self._queue[:0], self._checks[:0] = changes, checks  # repeated key replaces)
            raise
        except Exception:
            self.write_errors += 1
            log.exception("the availability journal could not be written; kept for the next try")
            self._queue[:0], self._checks[:0] = changes, checks

    async def _heartbeat(self) -> None:
        await self.db.call(self.db.heartbeat, self._started, self._clock())
        await self._sync_silences()

    async def _sync_silences(self) -> None:
        """Silences marked maintenance (the config's and the API's) as windows: kept as they
        are; one deleted before its end ends when it was found gone."""
        now = self._clock()
        current = {}
        for silence in self._silences():
            if silence.maintenance and silence.starts_at is not None:
                matchers = {str(k): v for k, v in silence.matchers.items() if k in TARGET_LABELS}
                comment = silence.comment or "silence"
                window = Window("silence:" + silence.id, silence.starts_at.timestamp(),
                                silence.ends_at, matchers, comment)  # fmt: skip
                current[window.id] = window
        changed = [w for w in current.values() if self._silence_windows.get(w.id) != w]
        for gone in set(self._silence_windows) - set(current):
            window = self._silence_windows[gone]
            if window.ends > now > window.starts:
                changed.append(replace(window, ends=now))
        self._silence_windows = current
        if changed:
            await self.db.call(self.db.keep_windows, changed)

    async def _prune(self) -> None:
        before = self._clock() - self.config.retention_days * 86400.0
        gone = await self.db.call(self.db.prune, before)
        if gone:
            log.info("availability journal pruned", extra={"rows": gone})

    async def _every(
        self, seconds: float, work: Callable[[], object], *, at_once: bool = False
    ) -> None:
        if not at_once:
            await self._sleep(seconds)
        while True:
            try:
                result = work()
                if asyncio.iscoroutine(result):
                    await result
            except Exception:
                log.exception("availability journal: %s failed", getattr(work, "__name__", work))
            await self._sleep(seconds)


def _reason(state: TargetState) -> str | None:
    """netmon's word on why the target is down: its failing probes' reasons."""
    reasons = sorted({p.reason for p in state.probes.values() if not p.success and p.reason})
    return ", ".join(reasons) or None

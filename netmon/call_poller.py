"""A call's media statistics, read often while the call lasts and never otherwise.

An endpoint's status probe (Cisco xAPI, Poly REST) reads its whole status every `interval`
(30 s by default), its media statistics included while it is in a call. Call quality wants
fresher figures than that, and only during calls: so while a target's last status says it is in
a call, a `CallPoller` task reads its media statistics alone every `call_interval` (10 s by
default; the settings' `media_interval()`), through the collector's optional `collect_media`
(`collectors.base.MediaCollector`: one getxml of MediaChannels, one GET of mediastats). The
store puts them in place of the last status's streams (`StateStore.record_media`), so /metrics
and the alert engine see them at once.

What starts and stops a target's task is the state store's word, heard through its listener:
a status read that says "in a call" starts it; one that says the call is over, a failed status
read, a reload that removes the target or changes its probe, or netmon stopping, cancel it.
Nothing polls media while no call is up. A collector without `collect_media` (baresip's, whose
statistics arrive as events) is left alone, and so is a probe whose `call_interval` is not
shorter than its `interval` (its status polls read the media already).

A read comes a `call_interval` after the last one, a status read's included (each status read
in a call reads the media too): on a grid from the last status read, with no drift. The read
that would fall within half a `call_interval` of the next status read is left to it, so a room
in a call costs one media request per `call_interval`, not one more per status poll (with the
defaults: reads at +10 s and +20 s, then the status poll at +30 s). A read that overruns skips
the slots it missed (counted). Every read has
a deadline of one `call_interval` over the collector's own timeout, and counts in netmon's
collector statistics under `<probe>_media` (duration, errors by reason, lag), so
`netmon_collector_errors_total{collector="xapi_media"}` says how media reads fail. A failed
read changes nothing in the store: the status probe's own success is the status poll's to say.
Time is on the given clock and sleep, so tests drive it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass

from collectors.base import Collector, CollectorSettings, MediaCollector
from netmon.collect import collect_media
from netmon.model import CallMedia, EndpointStatus, Observation, ProbeTarget
from netmon.state import StateStore, TargetState

log = logging.getLogger(__name__)


def stats_name(probe: str) -> str:
    """The `collector` label of a probe's media reads in netmon's own statistics."""
    return f"{probe}_media"


@dataclass(frozen=True, slots=True)
class _Want:
    """What a target's media task reads, and how often: another one, another task."""

    probe: str
    settings: CollectorSettings
    target: ProbeTarget
    interval: float  # call_interval
    status_interval: float  # the status probe's: each of its reads reads the media too


@dataclass(eq=False)
class _Poll:
    state: TargetState  # the store's entry it was started for (a readdressed target gets anew)
    want: _Want
    collector: MediaCollector
    read_at: float = 0.0  # when the media were last read (or due), a status read's included
    status_at: float = 0.0  # when the last status read came
    task: asyncio.Task[None] | None = None
    failing: str | None = None


class CallPoller:
    """One media-polling task per target in a call; all owned here and cancelled on stop."""

    def __init__(
        self,
        store: StateStore,
        collectors: Mapping[str, Collector],
        *,
        max_concurrency: int,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._store = store
        self._collectors = collectors
        self._clock = clock
        self._sleep = sleep
        self._semaphore = asyncio.Semaphore(max_concurrency)
        self._polls: dict[str, _Poll] = {}
        self._stopped = False
        self.reads = 0  # media reads taken into the store
        store.on_record(self._on_record)

    def polling(self) -> set[str]:
        """The ids of the targets whose media are being read."""
        return set(self._polls)

    def _on_record(self, state: TargetState, observation: Observation) -> None:
        if isinstance(observation, CallMedia):
            return  # its own reads change no call's state
        probe = state.target.status_probe()
        if probe is None or observation.collector != probe[0]:
            return
        self._consider(state)
        poll = self._polls.get(state.target.id)
        if poll is not None and isinstance(observation, EndpointStatus):
            # It read the media too: the next read is a call_interval from now.
            poll.read_at = poll.status_at = self._clock()

    def apply(self) -> None:
        """After a reload (the store already matches the new inventory): tasks of targets gone
        or changed end, and each target is judged again with its new settings."""
        for target_id, poll in list(self._polls.items()):
            if self._store.targets.get(target_id) is not poll.state:
                self._end(target_id)
        for state in self._store.targets.values():
            self._consider(state)

    def _consider(self, state: TargetState) -> None:
        target_id = state.target.id
        want = self._want(state)
        poll = self._polls.get(target_id)
        now = self._clock()
        read_at = status_at = now
        if poll is not None and (want != poll.want or poll.state is not state):
            if poll.state is state:  # new settings: the same call, read as recently
                read_at, status_at = poll.read_at, poll.status_at
            self._end(target_id)
            poll = None
        if want is None or poll is not None or self._stopped:
            return
        collector = self._collectors.get(want.probe)
        if not isinstance(collector, MediaCollector):
            return
        poll = self._polls[target_id] = _Poll(
            state=state, want=want, collector=collector, read_at=read_at, status_at=status_at
        )
        poll.task = asyncio.create_task(self._run(poll), name=f"call-media:{target_id}")
        log.debug("call media polling started", extra={"target": target_id})

    def _want(self, state: TargetState) -> _Want | None:
        """What to read of a target, or None when its media are not to be read now."""
        probe = state.target.status_probe()
        if probe is None:
            return None
        name, settings = probe
        interval = settings.media_interval()
        last = state.probes.get(name)
        status = state.status
        if interval is None or last is None or not last.success:
            return None
        if status is None or not status.calls:
            return None
        if not isinstance(self._collectors.get(name), MediaCollector):
            return None
        return _Want(name, settings, state.target.probe_target, interval, settings.interval)

    def _end(self, target_id: str) -> None:
        poll = self._polls.pop(target_id, None)
        if poll is not None and poll.task is not None:
            poll.task.cancel()
            log.debug("call media polling stopped", extra={"target": target_id})

    async def stop(self) -> None:
        self._stopped = True
        tasks = [poll.task for poll in self._polls.values() if poll.task is not None]
        self._polls.clear()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    @staticmethod
    def _next_slot(poll: _Poll) -> float:
        """A call_interval after the last read; but a read that would fall within half a
        call_interval of the next status read is left to that one (it reads the media too),
        and comes a call_interval after it should it be late."""
        interval = poll.want.interval
        slot = poll.read_at + interval
        status_due = poll.status_at + poll.want.status_interval
        if abs(slot - status_due) < interval / 2:
            slot = status_due + interval
        return slot

    async def _run(self, poll: _Poll) -> None:
        want = poll.want
        name = stats_name(want.probe)
        while True:
            slot = self._next_slot(poll)
            now = self._clock()
            if slot > now:
                await self._sleep(slot - now)
                continue  # a status read may have moved the slot meanwhile
            poll.read_at = slot  # the slot, not the time it ran: no drift
            async with self._semaphore:
                self._store.stats.observe_lag(name, max(0.0, self._clock() - slot))
                observation = await collect_media(
                    poll.collector,
                    want.probe,
                    want.target,
                    want.settings,
                    deadline=want.interval,
                    clock=self._clock,
                    sleep=self._sleep,
                )
            self._record(poll, name, observation)
            late = self._clock() - (poll.read_at + want.interval)
            if late > 0:  # overran: skip the slots missed, and count them
                missed = int(late // want.interval) + 1
                self._store.stats.skipped(name, missed)
                poll.read_at += missed * want.interval

    def _record(self, poll: _Poll, name: str, observation: Observation) -> None:
        self._store.stats.observe_run(name, observation.duration, observation.reason)
        target_id = poll.want.target.id
        if self._polls.get(target_id) is not poll:
            return  # ended while the read was in flight (the call, a reload)
        context = {"target": target_id, "collector": name}
        if isinstance(observation, CallMedia):
            if poll.failing is not None:
                poll.failing = None
                log.info("call media read recovered", extra=context)
            try:
                if self._store.record_media(observation):
                    self.reads += 1
            except Exception:  # a bad value must not end the polling of this call
                log.exception("could not record call media", extra=context)
        elif observation.reason is not None and observation.reason != poll.failing:
            poll.failing = observation.reason
            detail = {"detail": observation.detail} if observation.detail else {}
            log.warning(
                "call media read failing", extra={**context, "reason": observation.reason, **detail}
            )

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

Each task runs on a fixed grid from the status read that started it (`start + k x
call_interval`: no drift; a read that overruns skips the missed slots, counted). Every read has
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
from dataclasses import dataclass, field

from collectors.base import Collector, CollectorSettings, MediaCollector
from netmon.collect import collect_media
from netmon.model import CallMedia, Observation, ProbeTarget
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
    interval: float


@dataclass(eq=False)
class _Poll:
    state: TargetState  # the store's entry it was started for (a readdressed target gets anew)
    want: _Want
    collector: MediaCollector
    task: asyncio.Task[None] | None = None
    failing: str | None = field(default=None)


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
        if probe is not None and observation.collector == probe[0]:
            self._consider(state)

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
        if poll is not None and (want != poll.want or poll.state is not state):
            self._end(target_id)
            poll = None
        if want is None or poll is not None or self._stopped:
            return
        collector = self._collectors.get(want.probe)
        if not isinstance(collector, MediaCollector):
            return
        poll = self._polls[target_id] = _Poll(state=state, want=want, collector=collector)
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
        return _Want(name, settings, state.target.probe_target, interval)

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

    async def _run(self, poll: _Poll) -> None:
        want = poll.want
        name = stats_name(want.probe)
        start = self._clock()  # the status read that found the call has just read the media
        slot = start + want.interval
        while True:
            await self._sleep(max(0.0, slot - self._clock()))
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
            following = slot + want.interval
            now = self._clock()
            if following < now:  # overran: skip the slots missed, and count them
                missed = int((now - following) // want.interval) + 1
                self._store.stats.skipped(name, missed)
                following += missed * want.interval
            slot = following

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

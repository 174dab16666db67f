"""The state store: the one source of truth for what netmon currently knows.

Collectors' observations are folded in here (counters, histograms, sliding windows, up/down
state); the exporter, the API and the alert engine read it, and the alert engine hears of each
change through the store's listeners. Everything runs on the event loop, so there is no locking;
nothing here does I/O. Time comes from an injectable `Clock`, so tests drive it.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from enum import StrEnum

from netmon.checks.model import CheckReport, Verdict
from netmon.config.schema import MeetingConfig
from netmon.devices import DeviceState
from netmon.endpoints import EndpointView, RegistrarTable, RegistrarWord, registrar_says
from netmon.inventory import Inventory, Target
from netmon.model import (
    CallMedia,
    DeviceSample,
    EchoRound,
    EndpointStatus,
    HttpAnswer,
    Observation,
    ProbeRole,
    ReachPolicy,
    RegistrarContacts,
    TrapEvent,
)
from netmon.windows import RTT_BUCKETS, EchoWindow, Histogram, LossCounter

DURATION_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
LAG_BUCKETS = (0.0005, 0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0)


class Reach(StrEnum):
    UNKNOWN = "unknown"
    UP = "up"
    DOWN = "down"


def live_status(reach: Reach, degraded: bool) -> str:
    """up, down, degraded or unknown: the reach, with "degraded" for a target that answers
    while a quality alert (latency, loss, jitter) is pending or firing for it."""
    return "degraded" if reach is Reach.UP and degraded else reach.value


@dataclass(frozen=True, slots=True)
class Clock:
    """Wall time for people (since, updated) and monotonic time for ages and windows."""

    wall: Callable[[], float] = time.time
    monotonic: Callable[[], float] = time.monotonic


SYSTEM_CLOCK = Clock()


# For echoes of a target whose inventory entry has no ICMP probe (a check's burst, a test).
DEFAULT_REACH = ReachPolicy()


# A run of this many lost echoes in a row (confirmation echoes included) that ends in a reply
# before the target is declared down is a loss burst: a link that drops out for a moment.
# At 5 % independent loss a run of 5 happens once in 3 million echoes; a radio link's bursts
# of 5-10 are every one of them. A burst's regular echoes leave the loss sample: the loss
# statistics describe a link's steady loss, and a link that drops out now and then is another
# fault, with its own alert (LinkUnstable); no echo counts for both.
BURST_ECHOES = 5


@dataclass(slots=True)
class IcmpState:
    window: EchoWindow
    loss: LossCounter
    policy: ReachPolicy
    since: float
    since_monotonic: float
    rtt: Histogram = field(default_factory=lambda: Histogram(RTT_BUCKETS))
    sent_total: int = 0
    received_total: int = 0
    confirm_sent_total: int = 0
    confirm_received_total: int = 0
    reach: Reach = Reach.UNKNOWN
    consecutive_lost: int = 0
    consecutive_lost_regular: int = 0  # of those, the regular echoes (in the loss sample)
    consecutive_received: int = 0
    last_rtt: float | None = None
    address: str = ""
    bursts: deque[float] = field(default_factory=deque)  # when each loss burst was seen
    burst_seen_at: float = -math.inf
    # Bumped whenever `prune` drops something: what was derived from the windows (loss,
    # jitter, bursts) changed without a new observation (the exposition's cache asks).
    pruned: int = 0

    def apply(self, policy: ReachPolicy) -> None:
        self.window.seconds = policy.window
        self.loss.seconds = policy.loss_window
        self.policy = policy

    @property
    def doubtful(self) -> bool:
        """Whether the last echoes contradict the reach, without yet overturning it: a loss
        from a target that is up (or not yet known), a reply from one that is down."""
        if self.reach is Reach.DOWN:
            return 0 < self.consecutive_received < self.policy.up_after
        return 0 < self.consecutive_lost < self.policy.down_after

    def prune(self, now: float) -> None:
        dropped = self.window.prune(now)
        dropped = self.loss.prune(now) or dropped
        if self._prune_bursts(now) or dropped:
            self.pruned += 1

    def _prune_bursts(self, now: float) -> bool:
        horizon = now - self.policy.loss_window
        dropped = False
        while self.bursts and self.bursts[0] < horizon:
            self.bursts.popleft()
            dropped = True
        return dropped

    def fold(self, echo: EchoRound, now: float, now_wall: float) -> Reach | None:
        """Add one round; return the new reachability if it changed."""
        self.address = echo.address
        if echo.confirmation:
            self.confirm_sent_total += echo.sent
            self.confirm_received_total += echo.received
        else:
            self.window.add(now, echo.rtts)
            if echo.received or now - echo.duration >= self.burst_seen_at:
                self.loss.add(now, echo.sent, echo.sent - echo.received)
            # else sent while a burst was under way and judged after its end: the burst's echo
            self.sent_total += echo.sent
            self.received_total += echo.received
        self._prune_bursts(now)
        previous = self.reach
        for rtt in echo.rtts:
            if rtt is None:
                self.consecutive_lost += 1
                self.consecutive_lost_regular += not echo.confirmation
                self.consecutive_received = 0
                if self.consecutive_lost >= self.policy.down_after and self.reach is not Reach.DOWN:
                    self.reach = Reach.DOWN
            else:
                if not echo.confirmation:
                    self.rtt.observe(rtt)
                if self.consecutive_lost >= BURST_ECHOES and self.reach is Reach.UP:
                    self.bursts.append(now)
                    self.burst_seen_at = now
                    self.loss.forget_lost(self.consecutive_lost_regular)
                elif self.reach is Reach.DOWN:
                    # An outage is not packet loss: its echoes leave the sample, the link's
                    # history before it stays (a fresh sample after every outage would be
                    # judged on few echoes, and wrongly, as often as there are outages).
                    self.loss.forget_lost(self.consecutive_lost_regular)
                self.last_rtt = rtt
                self.consecutive_received += 1
                self.consecutive_lost = self.consecutive_lost_regular = 0
                # From unknown the first reply is proof enough; from down, wait for up_after.
                if self.reach is Reach.UNKNOWN or (
                    self.reach is Reach.DOWN and self.consecutive_received >= self.policy.up_after
                ):
                    self.reach = Reach.UP
        if self.reach is previous:
            return None
        self.since = now_wall
        self.since_monotonic = now
        return self.reach


@dataclass(slots=True)
class ProbeState:
    success: bool
    duration: float
    reason: str | None
    detail: str | None
    updated: float  # wall clock, for people
    updated_monotonic: float  # for ages
    # From the last run of an HTTP probe; None when it got no answer (or no certificate).
    http_status: int | None = None
    tls_not_after: float | None = None  # unix seconds


@dataclass(frozen=True, slots=True)
class Readiness:
    """The last readiness check's word on an endpoint."""

    verdict: Verdict
    reasons: tuple[str, ...]
    check_id: str


@dataclass(slots=True)
class TargetState:
    target: Target
    icmp: IcmpState | None = None
    probes: dict[str, ProbeState] = field(default_factory=dict)
    devices: dict[str, DeviceState] = field(default_factory=dict)  # by collector
    readiness: Readiness | None = None
    traps_received: dict[str, int] = field(default_factory=dict)  # by TrapEvent.counted_as
    status: EndpointStatus | None = None  # the endpoint's last answer over its API
    registrar_table: RegistrarTable | None = None  # a registrar's: its last poll
    registrar_word: RegistrarWord | None = None  # an endpoint's: what its registrar says

    @property
    def path_rtt(self) -> float | None:
        """netmon's last RTT to the site while it answers: the network's share of a call's
        delay (None while it does not answer, or is not pinged)."""
        icmp = self.icmp
        return icmp.last_rtt if icmp is not None and icmp.reach is Reach.UP else None

    def endpoint_view(self) -> EndpointView | None:
        """The room's own status, for a target with an API status probe or a registrar."""
        status_probe = self.target.status_probe()
        if status_probe is None and self.target.registrar is None:
            return None
        status: EndpointStatus | None = None
        problem: str | None = None
        if status_probe is not None:
            last = self.probes.get(status_probe[0])
            if last is None:
                problem = "not read yet"
            elif not last.success:
                problem = last.detail or last.reason or "failed"
            else:
                status = self.status
        registrar = self.registrar_word
        if registrar is None and self.target.registrar is not None:
            registrar = RegistrarWord(self.target.registrar, known=False, reason="not read yet")
        return EndpointView(
            has_api=status_probe is not None,
            status=status,
            status_problem=problem,
            registrar=registrar,
        )

    @property
    def reach(self) -> Reach:
        """ICMP's verdict; for a target polled only by SNMP, whether its agent answers; for one
        watched only by TCP/SIP/HTTP probes (a web service), whether its probes succeed."""
        if self.icmp is not None:
            return self.icmp.reach
        if self.devices:
            return Reach.UP if any(d.up for d in self.devices.values()) else Reach.DOWN
        probes = self._reach_probes()
        if probes:
            return Reach.UP if all(p.success for p in probes) else Reach.DOWN
        return Reach.UNKNOWN

    def _reach_probes(self) -> list[ProbeState]:
        # A room's status API failing says nothing of whether the room answers calls.
        return [
            probe
            for name, probe in self.probes.items()
            if self.target.probe_role(name) is not ProbeRole.STATUS
        ]

    @property
    def probes_only(self) -> bool:
        return self.icmp is None and not self.devices and bool(self._reach_probes())


@dataclass(frozen=True, slots=True)
class ReachChange:
    target: Target
    reach: Reach
    previous: Reach


class SelfStats:
    """netmon's own health: how long collectors take, how they fail, how late the scheduler is."""

    def __init__(self) -> None:
        self.collector_duration: dict[str, Histogram] = {}
        self.collector_errors: dict[tuple[str, str], int] = {}
        self.scheduler_lag: dict[str, Histogram] = {}
        self.skipped_runs: dict[str, int] = {}
        self.reloads: dict[str, int] = {"success": 0, "failure": 0}

    def observe_run(self, collector: str, duration: float, reason: str | None) -> None:
        self.collector_duration.setdefault(collector, Histogram(DURATION_BUCKETS)).observe(duration)
        if reason is not None:
            key = (collector, reason)
            self.collector_errors[key] = self.collector_errors.get(key, 0) + 1

    def observe_lag(self, collector: str, lag: float) -> None:
        # The scheduler reports a run's lag as it starts the run, before any result: from here
        # on the collector's crashes are exported, at 0 until the first one. A series that
        # first appears at 1 is no increase to Prometheus, and NetmonInternalErrors would
        # never hear of that crash.
        self.collector_errors.setdefault((collector, "internal"), 0)
        self.scheduler_lag.setdefault(collector, Histogram(LAG_BUCKETS)).observe(lag)

    def skipped(self, collector: str, runs: int) -> None:
        self.skipped_runs[collector] = self.skipped_runs.get(collector, 0) + runs


@dataclass(frozen=True, slots=True)
class CheckDone:
    """A readiness check finished; `meeting` is the meeting it was run for, if any."""

    report: CheckReport
    meeting: MeetingConfig | None


ReachListener = Callable[[ReachChange], None]
RecordListener = Callable[[TargetState, Observation], None]
TrapListener = Callable[[TargetState, TrapEvent], None]
CheckListener = Callable[[CheckDone], None]


class StateStore:
    def __init__(self, *, clock: Clock = SYSTEM_CLOCK) -> None:
        self.clock = clock
        self.targets: dict[str, TargetState] = {}
        # Targets another shard owns, kept here for the targets behind them (netmon/sharding.py).
        self._watched: frozenset[str] = frozenset()
        self.stats = SelfStats()
        self._reach_listeners: list[ReachListener] = []
        self._record_listeners: list[RecordListener] = []
        self._trap_listeners: list[TrapListener] = []
        self._check_listeners: list[CheckListener] = []

    def on_reach_change(self, listener: ReachListener) -> None:
        self._reach_listeners.append(listener)

    def on_record(self, listener: RecordListener) -> None:
        """Called after every observation is folded in (the alert engine evaluates there)."""
        self._record_listeners.append(listener)

    def on_trap(self, listener: TrapListener) -> None:
        """Called for every trap from an inventory target, after it is counted."""
        self._trap_listeners.append(listener)

    def on_check(self, listener: CheckListener) -> None:
        """Called when a readiness check is done, after its verdicts are recorded."""
        self._check_listeners.append(listener)

    def apply_inventory(self, inventory: Inventory) -> tuple[set[str], set[str], set[str]]:
        """Make the store match the inventory; return the ids (added, removed, changed).

        Unchanged targets keep their state and history; a changed address starts afresh, since
        the old numbers described another host.
        """
        new = inventory.targets
        added = set(new) - set(self.targets)
        removed = set(self.targets) - set(new)
        changed = {
            tid for tid in set(new) & set(self.targets) if new[tid] != self.targets[tid].target
        }
        for tid in removed:
            del self.targets[tid]
        for tid in added:
            self.targets[tid] = TargetState(target=new[tid])
        for tid in changed:
            state = self.targets[tid]
            if state.target.address != new[tid].address:
                self.targets[tid] = TargetState(target=new[tid])
            else:
                if new[tid].registrar != state.target.registrar or new[tid].aor != state.target.aor:
                    state.registrar_word = None
                state.target = new[tid]
                state.probes = {n: p for n, p in state.probes.items() if new[tid].probe(n)}
                if new[tid].status_probe() is None:
                    state.status = None
                if not any(s.role is ProbeRole.REGISTRAR for _, s in new[tid].probes):
                    state.registrar_table = None
                state.devices = {n: d for n, d in state.devices.items() if new[tid].probe(n)}
                policy = new[tid].reach_policy
                if policy is None:
                    state.icmp = None
                elif state.icmp is not None:
                    state.icmp.apply(policy)
        self._watched = frozenset(tid for tid, target in new.items() if not target.owned)
        return added, removed, changed

    def exported_targets(self) -> dict[str, TargetState]:
        """The targets whose series this instance exports: all of them, but for the ones it
        only watches for another shard (their owner exports them, once)."""
        if not self._watched:
            return self.targets
        return {tid: state for tid, state in self.targets.items() if tid not in self._watched}

    def record(self, observation: Observation) -> None:
        state = self.targets.get(observation.target)
        if state is None:
            return  # the target was removed while its probe was in flight
        probe = state.probes[observation.collector] = ProbeState(
            success=observation.ok,
            duration=observation.duration,
            reason=observation.reason,
            detail=observation.detail,
            updated=self.clock.wall(),
            updated_monotonic=self.clock.monotonic(),
        )
        if isinstance(observation, HttpAnswer):
            probe.http_status = observation.status_code
            probe.tls_not_after = observation.cert_not_after
        if isinstance(observation, EchoRound):
            self._record_echo(state, observation)
        elif isinstance(observation, DeviceSample):
            state.devices.setdefault(observation.collector, DeviceState()).fold(observation)
        elif isinstance(observation, EndpointStatus):
            state.status = observation
        elif isinstance(observation, RegistrarContacts):
            state.registrar_table = RegistrarTable.of(observation)
        else:
            role = state.target.probe_role(observation.collector)
            if role is ProbeRole.DEVICE:
                state.devices.setdefault(observation.collector, DeviceState()).failed(observation)
            elif role is ProbeRole.REGISTRAR:
                state.registrar_table = None
        for listener in self._record_listeners:
            listener(state, observation)
        if state.target.probe_role(observation.collector) is ProbeRole.REGISTRAR:
            self._tell_registered(state, observation)

    def record_media(self, media: CallMedia) -> bool:
        """A call's media statistics read between two status polls: they replace the streams of
        the target's last status while that status says it is in a call (a status read since
        that found the call over wins). Listeners hear of it as of any observation. Whether
        they were taken."""
        state = self.targets.get(media.target)
        status = state.status if state is not None else None
        if state is None or status is None or not status.calls:
            return False
        state.status = replace(status, streams=media.streams)
        for listener in self._record_listeners:
            listener(state, media)
        return True

    def _tell_registered(self, registrar: TargetState, observation: Observation) -> None:
        """Give every endpoint of a registrar what the registrar now says of it, and let the
        listeners (the alert engine) judge them: one poll covers them all."""
        registrar_id = registrar.target.id
        for state in self.targets.values():
            target = state.target
            if target.registrar != registrar_id:
                continue
            state.registrar_word = registrar_says(
                registrar_id, target.aor, registrar.registrar_table, observation
            )
            for listener in self._record_listeners:
                listener(state, observation)

    def _record_echo(self, state: TargetState, echo: EchoRound) -> None:
        icmp = state.icmp
        if icmp is None:
            policy = state.target.reach_policy or DEFAULT_REACH
            icmp = state.icmp = IcmpState(
                window=EchoWindow(policy.window),
                loss=LossCounter(policy.loss_window),
                policy=policy,
                since=self.clock.wall(),
                since_monotonic=self.clock.monotonic(),
            )
        previous = icmp.reach
        new_reach = icmp.fold(echo, self.clock.monotonic(), self.clock.wall())
        if new_reach is not None:
            change = ReachChange(target=state.target, reach=new_reach, previous=previous)
            for listener in self._reach_listeners:
                listener(change)

    def record_trap(self, event: TrapEvent) -> None:
        state = self.targets.get(event.target or "")
        if state is None:
            return  # from an unknown sender (the receiver counts those) or a removed target
        name = event.counted_as
        state.traps_received[name] = state.traps_received.get(name, 0) + 1
        for listener in self._trap_listeners:
            listener(state, event)

    def record_check(self, report: CheckReport, meeting: MeetingConfig | None = None) -> None:
        for endpoint in report.endpoints:
            state = self.targets.get(endpoint.target)
            if state is not None:
                state.readiness = Readiness(endpoint.verdict, tuple(endpoint.reasons), report.id)
        done = CheckDone(report, meeting)
        for listener in self._check_listeners:
            listener(done)

    def devices_answering(self) -> tuple[int, int]:
        """(answering, polled) over every SNMP-polled device."""
        devices = [d for state in self.targets.values() for d in state.devices.values()]
        return sum(d.up for d in devices), len(devices)

    def prune_windows(self) -> None:
        now = self.clock.monotonic()
        for state in self.targets.values():
            if state.icmp is not None:
                state.icmp.prune(now)

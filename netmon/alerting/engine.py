"""The alert engine: rules evaluated on each target's state as observations arrive.

It ties the rooms together and is what the rest of netmon uses: it reads each enabled rule's
signal (signals.py) and feeds the values to the lifecycle (lifecycle.py: pending -> firing ->
resolved, hysteresis, flapping, holds); it drives DistrictUnreachable from the topology
(topology.py), one-off alerts through events.py, and time through `tick`. Every announced
transition is written to the database with its outbox rows (outbox.py); after a restart,
firing alerts come back without being announced again (`restore`), and those whose condition
is found cleared are resolved once. Deciding transitions, rendering, silences and the read
views live in their own modules, not here.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from netmon.alerting import views
from netmon.alerting.events import Events, event_rule, hold_for
from netmon.alerting.lifecycle import Lifecycle
from netmon.alerting.meetings import Meetings
from netmon.alerting.model import AlertEvent, Fingerprints, Severity, Status, fingerprint
from netmon.alerting.outbox import Outbox
from netmon.alerting.relevance import Plans, Step, reboots_changed
from netmon.alerting.rendering import listed
from netmon.alerting.signals import (
    ROOM_METRICS,
    interfaces_complete,
    interfaces_seen_up,
)
from netmon.alerting.silences import Silences
from netmon.alerting.store import AlertDB
from netmon.alerting.topology import GROUP_ALERT, Topology, group_rule
from netmon.alerting.tracked import Acknowledgement, Estimate, Tracked, acknowledgement_of
from netmon.config.alerting import AlertingConfig, Silence
from netmon.config.rules import Rule
from netmon.inventory import Inventory, Target
from netmon.model import Observation
from netmon.state import StateStore, TargetState

# A restored alert whose condition cannot be judged again (the target went away, its probe
# was removed) is resolved after this long rather than left firing for ever.
RESTORE_GRACE = 300.0


class AlertEngine:
    def __init__(
        self,
        *,
        store: StateStore,
        config: AlertingConfig,
        rules: Mapping[str, Rule],
        db: AlertDB,
        queues: Callable[[], Sequence[str]],
        on_queued: Callable[[], None],
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.config = config
        self.rules = dict(rules)
        self._db = db
        self._clock = clock
        self.tracked: dict[str, Tracked] = {}  # by fingerprint
        # (target, ifname) of interfaces seen up, polled or by linkUp: only_seen_up's memory.
        self._seen_up: set[tuple[str, str]] = set()
        self._plans = Plans()  # which rules each observation can change
        self._keys = Fingerprints()  # the same identities come back on every observation
        self._outbox = Outbox(db=db, queues=queues, on_queued=on_queued)
        self._silences = Silences(db=db, clock=clock)
        self._meetings = Meetings()
        self._topology = Topology(store=store, alerts=self.tracked, settings=config.topology)
        self._lifecycle = Lifecycle(
            alerts=self.tracked,
            config=config,
            topology=self._topology,
            meetings=self._meetings,
            silences=self._silences,
            outbox=self._outbox,
        )
        self._events = Events(
            lifecycle=self._lifecycle, store=store, seen_up=self._seen_up, clock=clock
        )
        self.set_config(config)

    # --- set-up --------------------------------------------------------------------------

    async def restore(self) -> int:
        """Bring back what was firing when netmon stopped; nothing is announced again."""
        stored = await self._db.call(self._db.load_alerts)
        now = self._clock()
        for item in stored:
            event = item.event
            is_event = event.alertname not in self.rules and event.alertname != GROUP_ALERT
            if event.alertname == GROUP_ALERT:
                rule = group_rule(self.rules)
            elif is_event:
                # The rendered summary stands in for the template it came from.
                text = event.summary.replace("{", "{{").replace("}", "}}")
                rule = event_rule(event.severity).model_copy(update={"summary": text})
            else:
                rule = self.rules[event.alertname]
            level = min(item.level, len(rule.levels) - 1)
            tracked = Tracked(
                alertname=event.alertname,
                target=event.target,
                labels=dict(event.labels),
                rule=rule,
                metric=rule.metric,
                level=level,
                started=event.starts_at,
                # Events carry a `below` rule's value the right way up; tracked, it is mirrored.
                value=-event.value if rule.falling and event.value is not None else event.value,
                raw_active=True,
                announced=item.announced,
                emitted=event,
                ack=acknowledgement_of(event),
            )
            if is_event:
                started = event.starts_at or now
                tracked.hold_until = started + hold_for(self.config, event.alertname)
            else:
                tracked.restored_until = now + RESTORE_GRACE
            if event.alertname == "InterfaceDown" and "ifname" in event.labels:
                self._seen_up.add((event.target, event.labels["ifname"]))
            self.tracked[tracked.key] = tracked
        await self._silences.restore(now)
        return len(stored)

    def set_config(self, config: AlertingConfig) -> None:
        """The `alerting:` section (again, on reload): its silences replace the previous
        config's; those made through the API stay."""
        self.config = config
        self._lifecycle.config = config
        self._topology.settings = config.topology
        self._silences.set_config(config)

    def set_rules(self, rules: Mapping[str, Rule]) -> None:
        """New rule set (a reload): firing alerts follow their changed rule; those whose rule
        is gone or disabled are resolved rather than left firing for ever."""
        self.rules = dict(rules)
        now = self._clock()
        for tracked in list(self.tracked.values()):
            if tracked.alertname == GROUP_ALERT or tracked.hold_until is not None:
                continue
            rule = self.rules.get(tracked.alertname)
            if rule is None or not rule.enabled:
                self._lifecycle.drop(tracked, now)
                continue
            tracked.rule = rule
            top = len(rule.levels) - 1
            tracked.level = min(tracked.level, top)
            tracked.peak = min(tracked.peak, top)
            if tracked.candidate is not None:
                tracked.candidate = min(tracked.candidate, top)
            emitted = tracked.emitted
            if emitted is not None and tracked.level >= 0 and emitted.severity != tracked.severity:
                # The level it stood at is gone: say where it is now.
                self._lifecycle.fire(tracked, now)

    def apply_inventory(self, inventory: Inventory) -> None:
        """New topology; alerts of targets that left the inventory, or that a rule no longer
        covers, are resolved, once."""
        now = self._clock()
        for tracked in list(self.tracked.values()):
            target = inventory.targets.get(tracked.target)
            kinds = tracked.rule.kinds
            if (target is None or not target.owned) and tracked.target in inventory.shard_map:
                # Another shard owns it now (re-sharding): it takes the alert over.
                self._lifecycle.hand_over(tracked, now)
            elif target is None or (
                tracked.hold_until is None and kinds is not None and target.kind not in kinds
            ):
                self._lifecycle.drop(tracked, now)
            elif tracked.metric in ROOM_METRICS and (
                target.status_probe() is None and target.registrar is None
            ):
                # The room's status is no longer read (its vendor or registrar left the
                # config): nothing will ever clear what it said.
                self._lifecycle.drop(tracked, now)
        self._plans.clear()
        self._keys.clear()
        known = set(inventory.targets)
        # In place: the events room adds to the same set.
        self._seen_up.difference_update({key for key in self._seen_up if key[0] not in known})
        self._events.forget(known)
        self._topology.apply_inventory(inventory)

    def set_meetings(self, windows: Sequence[tuple[float, float, frozenset[str]]]) -> None:
        """(from, until, endpoints) of each meeting: its endpoints' faults are raised one
        severity higher then (a lossy link in an idle room is a warning; in the room of the
        provincial meeting in ten minutes it is critical)."""
        self._meetings.set_windows(windows)

    def on_status_change(self, listener: Callable[[str], None]) -> None:
        """Told the target id whenever an alert that colours its status changes."""
        self._lifecycle.on_status_change(listener)

    # --- evaluation ----------------------------------------------------------------------

    def observe(self, state: TargetState, observation: Observation | None = None) -> None:
        """Evaluate the rules on the target's state, just after an observation was folded in.

        Only the rules whose metric an observation of this kind can change (relevance.py:
        an echo round does not touch an interface table); all of them without `observation`.
        A pending change does not wait for the next evaluation: `tick` takes it when its
        `for` has passed.
        """
        target = state.target
        if not target.owned:
            return  # watched for the targets behind it; its owner shard alerts on it
        kind = None if observation is None else type(observation)
        now = self._clock()
        for step in self._plans.steps(self.rules, target, kind):
            if step.needs_devices and not state.devices:
                continue  # no SNMP reading: nothing to say, no interface gone
            self._evaluate(step, state, now)
        if reboots_changed(kind):
            self._events.check_reboot(state)

    def _evaluate(self, step: Step, state: TargetState, now: float) -> None:
        name, rule, signal, details, per_interface, falling, _, raise_at = step
        target = state.target
        produced: set[str] | None = set() if per_interface else None
        alerts = self.tracked
        for labels, value in signal(state, rule, self._seen_up):
            key = self._keys.of(name, target.id, labels)
            if produced is not None:
                produced.add(key)
            if falling and isinstance(value, float):
                value = -value  # a `below` level is kept mirrored (Level._below)
            if key not in alerts and (
                value is None or (value.low if isinstance(value, Estimate) else value) <= raise_at
            ):
                # Quiet and not tracked, as nearly every reading is: nothing to decide
                # (Lifecycle.update would find the same, at several times the cost).
                continue
            # Words that explain the value, while it has one worth explaining; an empty
            # answer keeps the words of the last (a resolve says why it fired).
            extra = (details(state, labels) or None) if details and value else None
            self._lifecycle.update(name, rule, target, labels, value, now, extra=extra, key=key)
        if produced is None:
            return
        self._seen_up |= interfaces_seen_up(state, rule)
        if interfaces_complete(state):
            # A full interface table without this interface: it is gone (a module out,
            # a renamed port). Its alert has nothing left to watch.
            for tracked in list(self.tracked.values()):
                if (
                    tracked.target == target.id
                    and tracked.alertname == name
                    and tracked.key not in produced
                    and tracked.hold_until is None
                ):
                    self._lifecycle.drop(tracked, now)

    def tick(self) -> None:
        """Time-driven changes: `for` and `clear_for` elapsing between observations, holds
        expiring, flapping settling, topology waits, silences ending, meetings beginning."""
        now = self._clock()
        self._update_groups(now)
        self._lifecycle.tick(now)
        self._silences.expire(now)

    def _update_groups(self, now: float) -> None:
        """DistrictUnreachable of each parent: as many as are down behind it while it is cut."""
        rule = group_rule(self.rules)
        if not rule.enabled:
            return
        for cut in self._topology.cut_off():
            parent, behind = cut.parent, cut.behind
            self._lifecycle.update(
                GROUP_ALERT,
                rule,
                parent,
                {},
                float(len(behind)),
                now,
                extra={"count": len(behind), "targets": listed(cut.names), "affected": behind},
            )
            group = self.tracked.get(fingerprint(GROUP_ALERT, parent.id, {}))
            if (
                group is not None
                and group.emitted is not None
                and group.level >= 0
                and not group.flapping
                and len(behind) > (group.emitted.value or 0)
            ):
                self._lifecycle.fire(group, now)  # more endpoints are cut off than first reported

    # --- events (traps, reboots, checks) -------------------------------------------------

    def fire_event(
        self,
        alertname: str,
        target: Target,
        *,
        severity: Severity,
        hold: float,
        labels: dict[str, str] | None = None,
        extra: dict[str, object] | None = None,
        summary: str | None = None,
    ) -> None:
        """A one-off alert (a reboot, a vendor trap): fires now, resolves after `hold`."""
        self._events.fire(
            alertname,
            target,
            severity=severity,
            hold=hold,
            labels=labels,
            extra=extra,
            summary=summary,
        )

    def clear_event(self, alertname: str, target: Target, labels: dict[str, str]) -> None:
        self._events.clear(alertname, target, labels)

    def interface_trap(self, target: Target, if_index: int | None, down: bool) -> None:
        """linkDown/linkUp: the same InterfaceDown alert the polls drive, only sooner."""
        self._events.interface_trap(self.rules.get("InterfaceDown"), target, if_index, down)

    # --- acknowledgements ----------------------------------------------------------------

    def acknowledge(self, key: str, by: str, comment: str = "") -> AlertEvent | None:
        """`by` is on the firing alert whose fingerprint is `key` (None: nobody is any more);
        None if no alert fires so. Acknowledged again, the latest stands."""
        tracked = self.tracked.get(key)
        if tracked is None or tracked.emitted is None:
            return None
        if not by and tracked.ack is None:
            return tracked.emitted  # nobody had it: nothing to withdraw, nothing to announce
        now = self._clock()
        ack = Acknowledgement(by, now, comment, tracked.emitted.severity) if by else None
        return self._lifecycle.acknowledge(tracked, ack, now)

    def unacknowledge(self, key: str) -> AlertEvent | None:
        return self.acknowledge(key, "")

    # --- silences and the outbox ---------------------------------------------------------

    @property
    def silences(self) -> dict[str, Silence]:
        return self._silences.by_id

    async def add_silence(self, silence: Silence) -> None:
        await self._silences.add(silence)

    async def delete_silence(self, silence_id: str) -> bool:
        return await self._silences.delete(silence_id)

    async def flush(self, timeout: float | None = None) -> bool:
        """Wait until every transition decided so far is on disk (at most `timeout` s);
        whether they all are."""
        return await self._outbox.flush(timeout)

    async def stop(self) -> None:
        await self._outbox.stop()

    @property
    def dropped(self) -> dict[str, int]:
        """Notifications dropped from a full queue, by queue."""
        return self._outbox.dropped

    @property
    def unstored(self) -> int:
        """Transitions decided but not yet on disk (the database refuses them for now)."""
        return self._outbox.unstored

    @property
    def store_failures(self) -> int:
        return self._outbox.store_failures

    # --- reading -------------------------------------------------------------------------

    def firing(self) -> list[AlertEvent]:
        """Alerts the sinks should consider active (announced and still firing)."""
        return views.firing(self.tracked.values())

    def active_by_severity(self, *, acknowledged: bool | None = None) -> dict[str, int]:
        return views.active_by_severity(self.tracked.values(), acknowledged=acknowledged)

    def quality_alerts(self, target_id: str) -> list[Tracked]:
        return views.quality_alerts(self.tracked.values(), target_id)

    def listing(self) -> list[dict[str, Any]]:
        """Every tracked alert with its state, for the API."""
        now = self._clock()
        return views.listing(
            self.tracked.values(),
            render=lambda tracked: self._lifecycle.render(tracked, now, Status.FIRING),
            silenced=self._silences.silenced,
        )

"""The alert engine: rules evaluated as observations arrive, and each alert's lifecycle.

pending -> firing -> resolved, with hysteresis (levels clear below their raise point, and a
change must hold for `for` / `clear_for`), flap damping (a condition that keeps changing is one
alert marked flapping, not a storm), silences, and topology (endpoints behind a cut district
are one DistrictUnreachable alert). Every announced transition is written to the database
together with its outbox rows; after a restart, firing alerts come back without being announced
again, and those whose condition is found cleared are resolved once.
"""

from __future__ import annotations

import fnmatch
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from typing import Any

from netmon.alerting.meetings import Meetings
from netmon.alerting.model import AlertEvent, Severity, Status, fingerprint
from netmon.alerting.outbox import Outbox
from netmon.alerting.rendering import listed, render
from netmon.alerting.rules import INTERFACE_METRICS, REBOOT_HOLD
from netmon.alerting.signals import (
    SIGNALS,
    interface_names,
    interfaces_complete,
    interfaces_seen_up,
)
from netmon.alerting.silences import Silences
from netmon.alerting.store import AlertDB
from netmon.alerting.topology import GROUP_ALERT, Topology, group_rule
from netmon.alerting.tracked import Tracked, desired_level
from netmon.config.alerting import AlertingConfig, Silence
from netmon.config.rules import Level, Rule
from netmon.inventory import Inventory, Target
from netmon.state import StateStore, TargetState

log = logging.getLogger(__name__)

DOWN_METRIC = "down"
QUALITY_ALERTS = frozenset({"HighLatency", "HighPacketLoss", "HighJitter"})
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
        self._store = store
        self.config = config
        self.rules = dict(rules)
        self._db = db
        self._clock = clock
        self._outbox = Outbox(db=db, queues=queues, on_queued=on_queued)
        self._silences = Silences(db=db, clock=clock)
        self.tracked: dict[str, Tracked] = {}
        self._seen_up: set[tuple[str, str]] = set()
        self._reboots: dict[str, int] = {}
        self._topology = Topology(store=store, alerts=self.tracked, settings=config.topology)
        self.set_config(config)
        self._status_listeners: list[Callable[[str], None]] = []
        self._meetings = Meetings()

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
                rule = self._event_rule(event.severity).model_copy(update={"summary": text})
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
                value=event.value,
                raw_active=True,
                announced=item.announced,
                emitted=event,
            )
            if is_event:
                started = event.starts_at or now
                tracked.hold_until = started + self._hold_for(event.alertname)
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
                self._drop(tracked, now)
                continue
            tracked.rule = rule
            top = len(rule.levels) - 1
            tracked.level = min(tracked.level, top)
            tracked.peak = min(tracked.peak, top)
            if tracked.candidate is not None:
                tracked.candidate = min(tracked.candidate, top)
            emitted = tracked.emitted
            if emitted is not None and tracked.level >= 0 and emitted.severity != tracked.severity:
                self._fire(tracked, now)  # the level it stood at is gone: say where it is now

    def _drop(self, tracked: Tracked, now: float) -> None:
        """Resolve (once, if it was heard of) and forget: its source is gone."""
        tracked.level = -1
        tracked.flapping = False
        self._resolve(tracked, now)
        self.tracked.pop(tracked.key, None)

    def apply_inventory(self, inventory: Inventory) -> None:
        """New topology; alerts of targets that left the inventory, or that a rule no longer
        covers, are resolved, once."""
        now = self._clock()
        for tracked in list(self.tracked.values()):
            target = inventory.targets.get(tracked.target)
            kinds = tracked.rule.kinds
            if target is None or (
                tracked.hold_until is None and kinds is not None and target.kind not in kinds
            ):
                self._drop(tracked, now)
        known = set(inventory.targets)
        self._seen_up = {key for key in self._seen_up if key[0] in known}
        self._reboots = {k: v for k, v in self._reboots.items() if k in known}
        self._topology.apply_inventory(inventory)

    def on_status_change(self, listener: Callable[[str], None]) -> None:
        """Told the target id whenever an alert that colours its status changes."""
        self._status_listeners.append(listener)

    # --- evaluation ----------------------------------------------------------------------

    def observe(self, state: TargetState) -> None:
        """Evaluate every rule on the target's state, just after an observation was folded in.

        All of them, whatever the observation was: a signal may change with any of them (an
        echo round decides whether SNMPUnreachable is worth saying, a web service's probes are
        its `down`), and a pending change is due at the first evaluation after its `for`.
        """
        now = self._clock()
        target = state.target
        for name, rule in self.rules.items():
            if not rule.enabled or (rule.kinds is not None and target.kind not in rule.kinds):
                continue
            produced = set()
            for labels, value in SIGNALS[rule.metric](state, rule, self._seen_up):
                produced.add(fingerprint(name, target.id, labels))
                self._update(name, rule, target, labels, value, now)
            self._seen_up |= interfaces_seen_up(state, rule)
            if rule.metric in INTERFACE_METRICS and interfaces_complete(state):
                # A full interface table without this interface: it is gone (a module out,
                # a renamed port). Its alert has nothing left to watch.
                for tracked in list(self.tracked.values()):
                    if (
                        tracked.target == target.id
                        and tracked.alertname == name
                        and tracked.key not in produced
                        and tracked.hold_until is None
                    ):
                        self._drop(tracked, now)
        self._check_reboot(state, now)

    def _update(
        self,
        name: str,
        rule: Rule,
        target: Target,
        labels: dict[str, str],
        value: float | None,
        now: float,
        extra: dict[str, object] | None = None,
    ) -> None:
        key = fingerprint(name, target.id, labels)
        tracked = self.tracked.get(key)
        if value is None:
            if tracked is not None:
                tracked.candidate = None  # unknown: hold what is announced, decide nothing
            return
        desired = desired_level(rule.levels, tracked.level if tracked else -1, value)
        if tracked is None:
            if desired < 0:
                return
            tracked = Tracked(name, target.id, labels, rule, rule.metric)
            self.tracked[key] = tracked
        tracked.rule = rule
        tracked.value = value
        tracked.restored_until = None
        if extra is not None:
            tracked.extra = extra
        active = desired >= 0
        if active != tracked.raw_active:
            tracked.raw_active = active
            tracked.toggles.append(now)
            self._check_flapping(tracked, target, now)
        self._advance(tracked, desired, now)

    def _advance(self, tracked: Tracked, desired: int, now: float) -> None:
        if desired == tracked.level:
            tracked.candidate = None
            return
        if tracked.candidate != desired:
            tracked.candidate, tracked.candidate_since = desired, now
        wait = tracked.rule.for_ if desired > tracked.level else tracked.rule.clear_for
        if now - tracked.candidate_since >= wait:
            self._transition(tracked, desired, now)

    def _transition(self, tracked: Tracked, level: int, now: float) -> None:
        previous = tracked.level
        tracked.level, tracked.candidate = level, None
        if tracked.flapping:
            tracked.peak = max(tracked.peak, level)
            return  # announced state stays put until the flapping settles
        target = self._topology.target(tracked.target)
        if level >= 0 and previous < 0:
            tracked.started = now
            if (
                tracked.metric == DOWN_METRIC
                and target is not None
                and self.config.topology.wait > 0
                and self._topology.district_suspect(target)
            ):
                tracked.held_until = now + self.config.topology.wait
                return
            self._fire(tracked, now)
        elif level >= 0:
            self._fire(tracked, now)
        else:
            self._resolve(tracked, now)

    def _check_flapping(self, tracked: Tracked, target: Target, now: float) -> None:
        settings = self.config.flapping
        while tracked.toggles and tracked.toggles[0] < now - settings.window:
            tracked.toggles.popleft()
        if tracked.flapping or len(tracked.toggles) < settings.changes:
            return
        if tracked.emitted is None or not tracked.announced:
            # Only what was announced can flap: a condition still inside its `for`, or held
            # back by the district grouping, has told nobody anything yet.
            return
        tracked.flapping = True
        tracked.peak = max(tracked.level, tracked.candidate or 0, 0)
        tracked.held_until = None
        if tracked.emitted is None:
            tracked.started = now
        log.warning(
            "alert flapping; further changes are held back until it settles",
            extra={"alert": tracked.alertname, "target": tracked.target},
        )
        self._fire(tracked, now)

    # --- periodic work -------------------------------------------------------------------

    def set_meetings(self, windows: Sequence[tuple[float, float, frozenset[str]]]) -> None:
        """(from, until, endpoints) of each meeting: its endpoints' faults are raised one
        severity higher then (a lossy link in an idle room is a warning; in the room of the
        provincial meeting in ten minutes it is critical)."""
        self._meetings.set_windows(windows)

    def tick(self) -> None:
        """Time-driven changes: `for` and `clear_for` elapsing between observations, holds
        expiring, flapping settling, topology waits, silences ending, meetings beginning."""
        now = self._clock()
        self._update_groups(now)
        for tracked in list(self.tracked.values()):
            emitted = tracked.emitted
            if (
                emitted is not None
                and tracked.announced
                and tracked.level >= 0
                and emitted.severity != self._meetings.severity(tracked, now)
            ):
                self._fire(tracked, now)  # a meeting began or ended around this fault
            if tracked.flapping:
                self._settle_flapping(tracked, now)
                continue
            if tracked.candidate is not None:
                self._advance(tracked, tracked.candidate, now)
            if tracked.hold_until is not None and now >= tracked.hold_until and tracked.level >= 0:
                tracked.level = -1
                self._resolve(tracked, now)
            elif tracked.restored_until is not None and now >= tracked.restored_until:
                log.info(
                    "restored alert could not be re-evaluated; resolving it",
                    extra={"alert": tracked.alertname, "target": tracked.target},
                )
                tracked.level = -1
                self._resolve(tracked, now)
            elif tracked.held_until is not None and tracked.level >= 0:
                self._release_held(tracked, now)
            elif (
                tracked.level >= 0
                and not tracked.announced
                and tracked.emitted is not None
                and not self._silences.silenced(tracked.emitted)
                and tracked.suppressed_by is None
            ):
                self._announce(tracked)  # its silence ended while it still fires
        self._forget_settled(now)
        self._silences.expire(now)

    def _forget_settled(self, now: float) -> None:
        """Drop identities with nothing left to say; their recent changes are kept until the
        flapping window has passed, or a flapping alert would be forgotten at each resolve."""
        horizon = now - self.config.flapping.window
        settled = [
            key
            for key, t in self.tracked.items()
            if t.level < 0
            and t.emitted is None
            and t.candidate is None
            and not t.flapping
            and (not t.toggles or t.toggles[-1] < horizon)
        ]
        for key in settled:
            del self.tracked[key]

    def _settle_flapping(self, tracked: Tracked, now: float) -> None:
        quiet = self.config.flapping.quiet
        if tracked.toggles and tracked.toggles[-1] > now - quiet:
            return
        tracked.flapping = False
        tracked.toggles.clear()
        tracked.peak = -1
        if tracked.candidate is not None:
            tracked.level, tracked.candidate = tracked.candidate, None
        if tracked.level >= 0:
            self._fire(tracked, now)
        else:
            self._resolve(tracked, now)

    def _release_held(self, tracked: Tracked, now: float) -> None:
        assert tracked.held_until is not None
        cut = self._topology.cut_ancestor(tracked.target)
        if cut is not None:
            tracked.suppressed_by = cut
            tracked.held_until = now  # re-checked every tick until the ancestor is back
            return
        if tracked.candidate == -1:
            return  # already recovering: it is resolved quietly, never paged
        if now < tracked.held_until and tracked.suppressed_by is None:
            return
        tracked.held_until = None
        tracked.suppressed_by = None
        self._fire(tracked, now)

    # --- topology ------------------------------------------------------------------------

    def _update_groups(self, now: float) -> None:
        rule = group_rule(self.rules)
        if not rule.enabled:
            return
        for cut in self._topology.cut_off():
            parent, behind = cut.parent, cut.behind
            self._update(
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
                self._fire(group, now)  # more endpoints are cut off than first reported

    # --- events (traps, reboots) ---------------------------------------------------------

    def _event_rule(self, severity: Severity) -> Rule:
        return Rule(metric="down", levels=[Level(severity=severity, above=0.5)], clear_for=0)

    def _hold_for(self, alertname: str) -> float:
        for rule in self.config.trap_alerts.values():
            if rule.alertname == alertname:
                return rule.hold
        return REBOOT_HOLD

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
        now = self._clock()
        labels = labels or {}
        key = fingerprint(alertname, target.id, labels)
        tracked = self.tracked.get(key)
        if tracked is not None and tracked.level >= 0:
            tracked.hold_until = now + hold  # still the same incident: extend, do not repeat
            return
        rule = self._event_rule(severity)
        if summary is not None:
            rule = rule.model_copy(update={"summary": summary})
        tracked = Tracked(alertname, target.id, labels, rule, "event", value=1.0)
        tracked.extra = extra or {}
        tracked.hold_until = now + hold
        self.tracked[key] = tracked
        tracked.level, tracked.started = 0, now
        self._fire(tracked, now)

    def clear_event(self, alertname: str, target: Target, labels: dict[str, str]) -> None:
        tracked = self.tracked.get(fingerprint(alertname, target.id, labels))
        if tracked is not None and tracked.level >= 0 and tracked.hold_until is not None:
            tracked.level = -1
            self._resolve(tracked, self._clock())

    def interface_trap(self, target: Target, if_index: int | None, down: bool) -> None:
        """linkDown/linkUp: the same InterfaceDown alert the polls drive, only sooner."""
        rule = self.rules.get("InterfaceDown")
        if rule is None or not rule.enabled or if_index is None:
            return
        if rule.kinds is not None and target.kind not in rule.kinds:
            return
        ifname: str | None = None
        state = self._store.targets.get(target.id)
        for device in state.devices.values() if state is not None else ():
            # The last complete reading: it survives polls that fail while the link is down.
            ifname = interface_names(device.last_interfaces).get(if_index, ifname)
        known = ifname is not None
        ifname = ifname if ifname is not None else str(if_index)
        if not any(fnmatch.fnmatchcase(ifname, glob) for glob in rule.interfaces):
            return
        if not down:
            self._seen_up.add((target.id, ifname))
        now = self._clock()
        self._update("InterfaceDown", rule, target, {"ifname": ifname}, float(down), now)
        tracked = self.tracked.get(fingerprint("InterfaceDown", target.id, {"ifname": ifname}))
        if not known and tracked is not None and tracked.level >= 0:
            # Named by index only (never polled): no poll will ever speak for it, so it ends
            # by itself unless a linkUp comes first.
            tracked.hold_until = tracked.hold_until or now + REBOOT_HOLD

    def _check_reboot(self, state: TargetState, now: float) -> None:
        reboots = sum(device.reboots for device in state.devices.values())
        known = self._reboots.get(state.target.id)
        self._reboots[state.target.id] = reboots
        if known is not None and reboots > known:
            self.fire_event(
                "DeviceRebooted", state.target, severity=Severity.WARNING, hold=REBOOT_HOLD
            )

    # --- announcing ----------------------------------------------------------------------

    def _render(self, tracked: Tracked, now: float, status: Status) -> AlertEvent:
        return render(
            tracked,
            target=self._topology.target(tracked.target),
            config=self.config,
            status=status,
            severity=self._meetings.severity(tracked, now),
            now=now,
        )

    def _fire(self, tracked: Tracked, now: float) -> None:
        event = self._render(tracked, now, Status.FIRING)
        before = tracked.emitted
        if before is not None and tracked.announced and before.severity != event.severity:
            event = replace(event, previous_severity=before.severity)
        tracked.emitted = event
        tracked.suppressed_by = None
        # A silence mutes new incidents; what the sinks already heard of stays in step.
        announce = tracked.announced or not self._silences.silenced(event)
        tracked.announced = announce
        level = tracked.peak if tracked.flapping else tracked.level
        self._outbox.record(event, max(level, 0), announce)
        self._status_changed(tracked)

    def _resolve(self, tracked: Tracked, now: float) -> None:
        tracked.held_until = None
        tracked.suppressed_by = None
        if tracked.emitted is not None:
            # Under the severity the sinks know it by (they may key alerts on it).
            event = replace(
                self._render(tracked, now, Status.RESOLVED), severity=tracked.emitted.severity
            )
            # The resolve goes out if and only if the sinks heard of the firing.
            self._outbox.record(event, -1, tracked.announced)
        tracked.announced = False
        tracked.emitted = None
        tracked.hold_until = tracked.restored_until = None
        self._status_changed(tracked)

    def _announce(self, tracked: Tracked) -> None:
        assert tracked.emitted is not None
        tracked.announced = True
        level = tracked.peak if tracked.flapping else tracked.level
        self._outbox.record(tracked.emitted, max(level, 0), True)

    async def flush(self) -> None:
        """Wait until every transition decided so far is on disk."""
        await self._outbox.flush()

    @property
    def dropped(self) -> dict[str, int]:
        """Notifications dropped from a full queue, by queue."""
        return self._outbox.dropped

    def _status_changed(self, tracked: Tracked) -> None:
        for listener in self._status_listeners:
            listener(tracked.target)

    # --- silences ------------------------------------------------------------------------

    @property
    def silences(self) -> dict[str, Silence]:
        return self._silences.by_id

    async def add_silence(self, silence: Silence) -> None:
        await self._silences.add(silence)

    async def delete_silence(self, silence_id: str) -> bool:
        return await self._silences.delete(silence_id)

    # --- reading -------------------------------------------------------------------------

    def firing(self) -> list[AlertEvent]:
        """Alerts the sinks should consider active (announced and still firing)."""
        return [
            t.emitted
            for t in self.tracked.values()
            if t.emitted is not None and t.announced and (t.level >= 0 or t.flapping)
        ]

    def active_by_severity(self) -> dict[str, int]:
        counts = {severity.value: 0 for severity in Severity}
        for tracked in self.tracked.values():
            if tracked.emitted is not None and (tracked.level >= 0 or tracked.flapping):
                counts[tracked.emitted.severity.value] += 1
        return counts

    def quality_alerts(self, target_id: str) -> list[Tracked]:
        return [
            t
            for t in self.tracked.values()
            if t.target == target_id and t.alertname in QUALITY_ALERTS and t.emitted is not None
        ]

    def listing(self) -> list[dict[str, Any]]:
        """Every tracked alert with its state, for the API."""
        now = self._clock()
        out = []
        for tracked in self.tracked.values():
            if tracked.emitted is not None:
                state = "firing"
            elif tracked.held_until is not None or tracked.suppressed_by is not None:
                state = "held"
            elif tracked.candidate is not None and tracked.candidate >= 0:
                state = "pending"
            else:
                continue
            event = tracked.emitted or self._render(tracked, now, Status.FIRING)
            item = event.to_json()
            item["state"] = state
            item["silenced"] = self._silences.silenced(event)
            item["announced"] = tracked.announced
            item["suppressed_by"] = tracked.suppressed_by
            out.append(item)
        out.sort(key=lambda a: (-Severity(a["severity"]).rank, a["target"], a["alertname"]))
        return out

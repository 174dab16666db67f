"""The lifecycle of each alert: pending -> firing -> resolved, as values arrive and time passes.

Hysteresis (a change of level must hold for `for` / `clear_for`), flap damping (a condition that
keeps changing is one alert marked flapping until it settles, not a storm), the topology wait
(a down target that may be part of a cut district is held, to be grouped), holds of event
alerts, the grace of restored alerts, and a silence ending or a meeting changing a severity.
Each decided transition is rendered and handed to the outbox. It does not read signals, rules
or the inventory: it is given values (`update`) and the time (`tick`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import replace

from netmon.alerting.meetings import Meetings
from netmon.alerting.model import AlertEvent, Status, fingerprint
from netmon.alerting.outbox import Outbox
from netmon.alerting.rendering import render
from netmon.alerting.silences import Silences
from netmon.alerting.topology import Topology
from netmon.alerting.tracked import Acknowledgement, Estimate, Tracked, desired_level
from netmon.config.alerting import AlertingConfig
from netmon.config.rules import Rule
from netmon.inventory import Target

# The engine's logger: operators filter its transitions by it, whichever room writes them.
log = logging.getLogger("netmon.alerting.engine")

DOWN_METRIC = "down"


class Lifecycle:
    def __init__(
        self,
        *,
        alerts: dict[str, Tracked],
        config: AlertingConfig,
        topology: Topology,
        meetings: Meetings,
        silences: Silences,
        outbox: Outbox,
    ) -> None:
        self.alerts = alerts  # by fingerprint; the engine's, shared with the topology
        self.config = config
        self._topology = topology
        self._meetings = meetings
        self._silences = silences
        self._outbox = outbox
        self._status_listeners: list[Callable[[str], None]] = []

    def on_status_change(self, listener: Callable[[str], None]) -> None:
        """Told the target id whenever an alert that colours its status changes."""
        self._status_listeners.append(listener)

    # --- values ------------------------------------------------------------------------

    def update(
        self,
        name: str,
        rule: Rule,
        target: Target,
        labels: dict[str, str],
        value: float | Estimate | None,
        now: float,
        extra: dict[str, object] | None = None,
        key: str | None = None,
    ) -> None:
        """A value of one alert identity, None when it cannot be judged now; `key` its
        fingerprint, when the caller has it already."""
        if key is None:
            key = fingerprint(name, target.id, labels)
        tracked = self.alerts.get(key)
        if value is None:
            if tracked is not None:
                tracked.candidate = None  # unknown: hold what is announced, decide nothing
            return
        desired = desired_level(rule.levels, tracked.level if tracked else -1, value)
        if tracked is None:
            if desired < 0:
                return
            tracked = Tracked(name, target.id, labels, rule, rule.metric)
            self.alerts[key] = tracked
        tracked.rule = rule
        tracked.value = value.value if isinstance(value, Estimate) else value
        tracked.restored_until = None
        if extra is not None:
            tracked.extra = extra
        self.toggle(tracked, desired >= 0, now)
        self._advance(tracked, desired, now)

    def toggle(self, tracked: Tracked, active: bool, now: float) -> None:
        """The alert's condition is now `active` or not: count a change toward flapping."""
        if active != tracked.raw_active:
            tracked.raw_active = active
            tracked.toggles.append(now)
            self._check_flapping(tracked, now)

    def _advance(self, tracked: Tracked, desired: int, now: float) -> None:
        if desired == tracked.level:
            tracked.candidate = None
            return
        if tracked.candidate != desired:
            # A change of heart in the same direction (a pending warning that turns out to be
            # a major) keeps its start: the condition has held since then.
            rising = desired > tracked.level
            if tracked.candidate is None or (tracked.candidate > tracked.level) != rising:
                tracked.candidate_since = now
            tracked.candidate = desired
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
            self.fire(tracked, now)
        elif level >= 0:
            self.fire(tracked, now)
        else:
            self.resolve(tracked, now)

    def _check_flapping(self, tracked: Tracked, now: float) -> None:
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
        log.warning(
            "alert flapping; further changes are held back until it settles",
            extra={"alert": tracked.alertname, "target": tracked.target},
        )
        self.fire(tracked, now)

    # --- time --------------------------------------------------------------------------

    def tick(self, now: float) -> None:
        """Time-driven changes: `for` and `clear_for` elapsing between values, holds expiring,
        flapping settling, topology waits, silences ending, meetings beginning."""
        for tracked in list(self.alerts.values()):
            emitted = tracked.emitted
            if (
                emitted is not None
                and tracked.announced
                and tracked.level >= 0
                and emitted.severity != self._meetings.severity(tracked, now)
            ):
                self.fire(tracked, now)  # a meeting began or ended around this fault
            if tracked.flapping:
                self._settle_flapping(tracked, now)
                continue
            if tracked.candidate is not None:
                self._advance(tracked, tracked.candidate, now)
            if tracked.hold_until is not None and now >= tracked.hold_until and tracked.level >= 0:
                tracked.level = -1
                self.resolve(tracked, now)
            elif tracked.restored_until is not None and now >= tracked.restored_until:
                log.info(
                    "restored alert could not be re-evaluated; resolving it",
                    extra={"alert": tracked.alertname, "target": tracked.target},
                )
                tracked.level = -1
                self.resolve(tracked, now)
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

    def _forget_settled(self, now: float) -> None:
        """Drop identities with nothing left to say; their recent changes are kept until the
        flapping window has passed, or a flapping alert would be forgotten at each resolve."""
        horizon = now - self.config.flapping.window
        settled = [
            key
            for key, t in self.alerts.items()
            if t.level < 0
            and t.emitted is None
            and t.candidate is None
            and not t.flapping
            and (not t.toggles or t.toggles[-1] < horizon)
        ]
        for key in settled:
            del self.alerts[key]

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
            self.fire(tracked, now)
        else:
            self.resolve(tracked, now)

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
        self.fire(tracked, now)

    # --- transitions -------------------------------------------------------------------

    def render(self, tracked: Tracked, now: float, status: Status) -> AlertEvent:
        return render(
            tracked,
            target=self._topology.target(tracked.target),
            config=self.config,
            status=status,
            severity=self._meetings.severity(tracked, now),
            now=now,
        )

    def fire(self, tracked: Tracked, now: float) -> None:
        """Announce (or, if silenced, record) the alert firing as it now stands."""
        ack = tracked.ack
        if ack is not None and self._meetings.severity(tracked, now).rank > ack.severity.rank:
            # Worse than what was taken on: news for whoever is on call, paged again.
            tracked.ack = None
            log.info(
                "alert acknowledgement cleared: its severity rose",
                extra={"alert": tracked.alertname, "target": tracked.target, "by": ack.by},
            )
        event = self.render(tracked, now, Status.FIRING)
        before = tracked.emitted
        if before is not None and tracked.announced and before.severity != event.severity:
            event = replace(event, previous_severity=before.severity)
        tracked.suppressed_by = None
        # A silence mutes new incidents; what the sinks already heard of stays in step.
        announce = tracked.announced or not self._silences.silenced(event)
        tracked.announced = announce
        level = tracked.peak if tracked.flapping else tracked.level
        # Kept as stored, event_id included: the retained MQTT topic a reconnect puts back
        # names the transition that raised it.
        tracked.emitted = self._outbox.record(event, max(level, 0), announce)
        self._status_changed(tracked)

    def resolve(self, tracked: Tracked, now: float) -> None:
        """The alert is over: resolved once, and only to the sinks that heard of it firing."""
        tracked.held_until = None
        tracked.suppressed_by = None
        if tracked.emitted is not None:
            # Under the severity the sinks know it by (they may key alerts on it).
            event = replace(
                self.render(tracked, now, Status.RESOLVED), severity=tracked.emitted.severity
            )
            # The resolve goes out if and only if the sinks heard of the firing.
            self._outbox.record(event, -1, tracked.announced)
        tracked.ack = None  # a new firing is a new incident: nobody is on it yet
        tracked.announced = False
        tracked.emitted = None
        tracked.hold_until = tracked.restored_until = None
        self._status_changed(tracked)

    def drop(self, tracked: Tracked, now: float) -> None:
        """Resolve (once, if it was heard of) and forget: its source is gone."""
        tracked.level = -1
        tracked.flapping = False
        self.resolve(tracked, now)
        self.alerts.pop(tracked.key, None)

    def hand_over(self, tracked: Tracked, now: float) -> None:
        """Forget an alert whose target another shard now owns: stored as over, but never
        announced (the new owner raises it again, under the same fingerprint, if it still
        holds): a move between shards must not look like a recovery."""
        log.info(
            "alert handed over to another shard",
            extra={"alert": tracked.alertname, "target": tracked.target},
        )
        tracked.level = -1
        tracked.flapping = False
        tracked.announced = False
        self.resolve(tracked, now)
        self.alerts.pop(tracked.key, None)

    def acknowledge(self, tracked: Tracked, ack: Acknowledgement | None, now: float) -> AlertEvent:
        """Someone is on the firing alert (`ack`), or no longer (None): restated to the sinks
        that heard of it, as it stands, with who took it. Not a transition: its level, timers
        and summary stay as they are."""
        assert tracked.emitted is not None, "only a firing alert is acknowledged"
        tracked.ack = ack
        event = replace(
            tracked.emitted,
            acknowledged_by=ack.by if ack else "",
            acknowledged_at=ack.at if ack else None,
            acknowledged_comment=ack.comment if ack else "",
            event_at=now,
            previous_severity=None,
        )
        level = tracked.peak if tracked.flapping else tracked.level
        change = "acknowledged" if ack else "acknowledgement withdrawn"
        tracked.emitted = self._outbox.record(
            event, max(level, 0), tracked.announced, change=change
        )
        self._status_changed(tracked)
        return tracked.emitted

    def _announce(self, tracked: Tracked) -> None:
        assert tracked.emitted is not None
        tracked.announced = True
        level = tracked.peak if tracked.flapping else tracked.level
        tracked.emitted = self._outbox.record(tracked.emitted, max(level, 0), True)

    def _status_changed(self, tracked: Tracked) -> None:
        for listener in self._status_listeners:
            listener(tracked.target)

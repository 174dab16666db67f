"""Event alerts: one-off alerts that fire at once and end by themselves, and interface traps.

A reboot (a sysUpTime reset), a trap the mapping names (coldStart, a vendor's fan failure), a
meeting check's NO-GO: each fires now and resolves when its hold ends, or at its clear trap;
the same event again while it fires extends the hold. linkDown/linkUp drive the InterfaceDown
alert the polls drive, only sooner. What the alerts then do is the lifecycle's business; this
does not receive traps (alerting/traps.py does) or evaluate rules.
"""

from __future__ import annotations

import fnmatch
import logging
from collections.abc import Callable, Collection

from netmon.alerting.lifecycle import Lifecycle
from netmon.alerting.model import Severity, fingerprint
from netmon.alerting.rules import MAX_TRAP_PORTS, REBOOT_HOLD
from netmon.alerting.signals import interface_names
from netmon.alerting.tracked import Tracked
from netmon.config.alerting import AlertingConfig
from netmon.config.rules import Level, Rule
from netmon.inventory import Target
from netmon.state import StateStore, TargetState

log = logging.getLogger(__name__)


def event_rule(severity: Severity) -> Rule:
    """The rule an event alert stands on: one level, firing at once, resolving at once."""
    return Rule(metric="down", levels=[Level(severity=severity, above=0.5)], clear_for=0)


def hold_for(config: AlertingConfig, alertname: str) -> float:
    """How long an event alert of this name lasts (its trap mapping's hold, else a reboot's)."""
    for rule in config.trap_alerts.values():
        if rule.alertname == alertname:
            return rule.hold
    return REBOOT_HOLD


class Events:
    def __init__(
        self,
        *,
        lifecycle: Lifecycle,
        store: StateStore,
        seen_up: set[tuple[str, str]],
        clock: Callable[[], float],
    ) -> None:
        self._lifecycle = lifecycle
        self._store = store
        self._seen_up = seen_up  # the engine's: a linkUp counts as seeing the interface up
        self._clock = clock
        self._reboots: dict[str, int] = {}  # by target: reboots seen in its SNMP polls
        # By target: interfaces known from traps alone (a device netmon does not poll).
        self._trap_ports: dict[str, set[str]] = {}
        self._trap_ports_full: set[str] = set()  # said so in the log already

    def forget(self, known: Collection[str]) -> None:
        """Keep what is known of these targets only (the others left the inventory)."""
        self._reboots = {k: v for k, v in self._reboots.items() if k in known}
        self._trap_ports = {k: v for k, v in self._trap_ports.items() if k in known}
        self._trap_ports_full &= set(known)

    def fire(
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
        now = self._clock()
        labels = labels or {}
        key = fingerprint(alertname, target.id, labels)
        tracked = self._lifecycle.alerts.get(key)
        if tracked is not None and tracked.level >= 0:
            tracked.hold_until = now + hold  # still the same incident: extend, do not repeat
            return
        rule = event_rule(severity)
        if summary is not None:
            rule = rule.model_copy(update={"summary": summary})
        if tracked is None:  # else it ended lately: its recent changes count toward flapping
            tracked = Tracked(alertname, target.id, labels, rule, "event")
            self._lifecycle.alerts[key] = tracked
        tracked.rule, tracked.value = rule, 1.0
        tracked.extra = extra or {}
        tracked.hold_until = now + hold
        tracked.level, tracked.started = 0, now
        self._lifecycle.toggle(tracked, True, now)
        if tracked.flapping:
            tracked.peak = max(tracked.peak, 0)
            return  # announced as flapping; it stays so until it settles
        if self._flaps(tracked, now):
            return
        self._lifecycle.fire(tracked, now)

    def _flaps(self, tracked: Tracked, now: float) -> bool:
        """An event alert that fires and clears at once cannot go through the lifecycle's
        flapping check (nothing is left announced in between): start flapping here, announced
        once with the mark, when it came back this often within the flapping window."""
        settings = self._lifecycle.config.flapping
        recent = [t for t in tracked.toggles if t >= now - settings.window]
        if len(recent) < settings.changes:
            return False
        tracked.flapping, tracked.peak = True, 0
        self._lifecycle.fire(tracked, now)
        return True

    def clear(self, alertname: str, target: Target, labels: dict[str, str]) -> None:
        tracked = self._lifecycle.alerts.get(fingerprint(alertname, target.id, labels))
        if tracked is not None and tracked.level >= 0 and tracked.hold_until is not None:
            now = self._clock()
            tracked.level = -1
            self._lifecycle.toggle(tracked, False, now)
            if not tracked.flapping:
                self._lifecycle.resolve(tracked, now)

    def interface_trap(
        self, rule: Rule | None, target: Target, if_index: int | None, down: bool
    ) -> None:
        """linkDown/linkUp, under the InterfaceDown `rule` (None: there is none)."""
        if rule is None or not rule.enabled or if_index is None:
            return
        if rule.kinds is not None and target.kind not in rule.kinds:
            return
        ifname: str | None = None
        state = self._store.targets.get(target.id)
        polled = False
        for device in state.devices.values() if state is not None else ():
            # The last complete reading: it survives polls that fail while the link is down.
            polled = polled or bool(device.last_interfaces)
            ifname = interface_names(device.last_interfaces).get(if_index, ifname)
        known = ifname is not None
        if polled and not known:
            return  # an ifIndex the device's own table does not have: a forgery, or garbage
        ifname = ifname if ifname is not None else str(if_index)
        if not any(fnmatch.fnmatchcase(ifname, glob) for glob in rule.interfaces):
            return
        if not known and not self._trap_port(target.id, ifname):
            return
        if not down:
            self._seen_up.add((target.id, ifname))
        elif known and rule.only_seen_up and (target.id, ifname) not in self._seen_up:
            return  # as the polls do: a port never seen up is unused, and stays quiet
        now = self._clock()
        labels = {"ifname": ifname}
        self._lifecycle.update("InterfaceDown", rule, target, labels, float(down), now)
        tracked = self._lifecycle.alerts.get(fingerprint("InterfaceDown", target.id, labels))
        if not known and tracked is not None and tracked.level >= 0:
            # Named by index only (never polled): no poll will ever speak for it, so it ends
            # by itself unless a linkUp comes first.
            tracked.hold_until = tracked.hold_until or now + REBOOT_HOLD

    def _trap_port(self, target_id: str, ifname: str) -> bool:
        """Whether an interface known only from traps may be tracked: at most
        MAX_TRAP_PORTS per device, so a flood of traps with made-up ifIndexes (from a source
        and community that pass) is not thousands of alerts crowding real ones out."""
        ports = self._trap_ports.setdefault(target_id, set())
        if ifname in ports:
            return True
        if len(ports) < MAX_TRAP_PORTS:
            ports.add(ifname)
            return True
        if target_id not in self._trap_ports_full:
            self._trap_ports_full.add(target_id)
            log.warning(
                "linkDown/linkUp for more interfaces than a device has; further ones ignored",
                extra={"target": target_id, "limit": MAX_TRAP_PORTS},
            )
        return False

    def check_reboot(self, state: TargetState) -> None:
        """DeviceRebooted when the target's SNMP polls counted a reboot since the last look."""
        reboots = sum(device.reboots for device in state.devices.values())
        known = self._reboots.get(state.target.id)
        self._reboots[state.target.id] = reboots
        if known is not None and reboots > known:
            self.fire("DeviceRebooted", state.target, severity=Severity.WARNING, hold=REBOOT_HOLD)

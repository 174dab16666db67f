"""Which rules an observation can change: the engine evaluates only those.

At 5,000 ICMP targets the engine hears 5,000 echo rounds a second; an echo round cannot change
an interface's state or an SNMP agent's answer to our credentials, so evaluating those rules on
it is work for nothing. `CHANGED_BY` says, for every signal metric (signals.SIGNALS), which
kinds of observation can change what the signal reads, from what the state store folds each
kind into (StateStore.record):

- every observation but `CallMedia` replaces `probes[collector]`, the probe's last result;
- `EchoRound` folds into `icmp` (reach, RTT window, loss, bursts); `DeviceSample` and an SNMP
  failure (a plain `Observation`) into `devices`; `EndpointStatus` and `CallMedia` into
  `status`; `RegistrarContacts` into the registrar's table, and, through it, every endpoint of
  that registrar hears the same observation with its `registrar_word` changed.

A metric that reads the target's reach (`TargetState.reach` falls back on devices and probes
when there is no ICMP) or any probe's result is changed by any observation. When in doubt it
is "any" (None): a rule evaluated for nothing costs microseconds, a rule not evaluated when it
should be is a missed alert. An observation of a kind not listed here (a collector's own
subclass, such as a SIP response) changes everything.

Skipping an evaluation that cannot change a value delays nothing: `for` and `clear_for`
elapse in the engine's tick (Lifecycle.tick), not at the next observation.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import NamedTuple

from netmon.alerting.rules import INTERFACE_METRICS
from netmon.alerting.signals import DETAILS, ROOM_METRICS, SIGNALS, RoomDetails, Signal
from netmon.config.rules import Rule
from netmon.inventory import Target
from netmon.model import (
    CallMedia,
    DeviceSample,
    EchoRound,
    EndpointStatus,
    HttpAnswer,
    Observation,
    RegistrarContacts,
)

# Every kind of observation the state store's record listeners are given.
KNOWN: frozenset[type[Observation]] = frozenset(
    {Observation, EchoRound, HttpAnswer, DeviceSample, EndpointStatus, CallMedia, RegistrarContacts}
)
# What changes a device's state: a poll, or a poll that failed (a plain Observation).
_DEVICE: frozenset[type[Observation]] = frozenset({DeviceSample, Observation})

# Metric -> the kinds of observation that can change its readings; None: any.
CHANGED_BY: Mapping[str, frozenset[type[Observation]] | None] = {
    # The reach: ICMP's, else the devices' agents, else the probes' results (a web service).
    "down": None,
    # The ICMP window, its loss sample and bursts, and ICMP's reach: echoes alone fold there.
    "rtt_p95": frozenset({EchoRound}),
    "loss_ratio": frozenset({EchoRound}),
    "jitter": frozenset({EchoRound}),
    "loss_bursts": frozenset({EchoRound}),
    # The devices and their probes' results, cleared while ICMP says the target is down.
    "snmp_down": _DEVICE | {EchoRound},
    "snmp_auth": _DEVICE,
    # The devices' interface tables (and the interfaces seen up, which the polls remember and
    # linkUp traps add to; a trap drives its alert itself, events.py).
    "interface_down": _DEVICE,
    "interface_errors": _DEVICE,
    "interface_utilization": _DEVICE,
    # Every service probe's result, and whether the target is watched by its probes alone.
    "probe_failed": None,
    # The room's status (its status probe's result, the status, its registrar's word) and its
    # reach: any observation. Only rooms have them (`has_room_status`).
    "unregistered": None,
    "peripheral_disconnected": None,
    "diagnostic_error": None,
    "one_sided_registration": None,
    # The room's received streams, scored with netmon's last RTT to it, and its reach.
    "call_mos": None,
}
# DeviceRebooted counts the reboots the devices' polls saw (events.Events.check_reboot).
REBOOTS_CHANGED_BY = _DEVICE


def changes(metric: str, kind: type[Observation] | None) -> bool:
    """Whether an observation of this kind (None: not known) can change the metric."""
    kinds = CHANGED_BY.get(metric)
    return kind is None or kinds is None or kind in kinds or kind not in KNOWN


def reboots_changed(kind: type[Observation] | None) -> bool:
    return kind is None or kind in REBOOTS_CHANGED_BY or kind not in KNOWN


# Metrics whose signals read the devices alone (nothing without an SNMP reading), and those
# that read service probes alone (nothing on a target without one in its inventory entry).
DEVICE_METRICS = frozenset(
    {"snmp_down", "snmp_auth", "interface_down", "interface_errors", "interface_utilization"}
)
SERVICE_METRICS = frozenset({"probe_failed"})


def has_room_status(target: Target) -> bool:
    """Whether the target has a room's own status to read (`TargetState.endpoint_view` is
    not None): without it the room-status signals and call_mos read nothing."""
    return target.status_probe() is not None or target.registrar is not None


def has_service_probe(target: Target) -> bool:
    """Without a service probe in its entry no probe of the target is one (`probe_failed`)."""
    return bool(target.service_probes())


class Step(NamedTuple):
    """One rule to evaluate, with what its evaluation looks up, looked up once."""

    name: str
    rule: Rule
    signal: Signal
    details: RoomDetails | None
    per_interface: bool  # evaluated per interface: gone interfaces are dropped
    falling: bool  # a `below` rule: its values are kept mirrored
    needs_devices: bool  # reads nothing before an SNMP reading
    raise_at: float  # the lowest level's `above`: a value at or below it raises nothing


class Plans:
    """The steps to evaluate, by (target kind, observation kind, target traits): a handful
    of keys, each a short list, built once per rule set."""

    def __init__(self) -> None:
        self._rules: Mapping[str, Rule] = {}
        self._plans: dict[tuple[str, type[Observation] | None, bool, bool], list[Step]] = {}
        self._traits: dict[str, tuple[Target, bool, bool]] = {}

    def clear(self) -> None:
        """The inventory changed: targets' traits are read again."""
        self._traits.clear()

    def steps(
        self, rules: Mapping[str, Rule], target: Target, kind: type[Observation] | None
    ) -> list[Step]:
        """The rules to evaluate on the target after an observation of `kind` (None: every
        rule that applies to the target)."""
        if rules is not self._rules:
            self._rules, self._plans = rules, {}
        traits = self._traits.get(target.id)
        if traits is None or traits[0] is not target:
            traits = (target, has_room_status(target), has_service_probe(target))
            self._traits[target.id] = traits
        key = (target.kind, kind, traits[1], traits[2])
        plan = self._plans.get(key)
        if plan is None:
            plan = self._plans[key] = self._plan(rules, key)
        return plan

    @staticmethod
    def _plan(
        rules: Mapping[str, Rule], key: tuple[str, type[Observation] | None, bool, bool]
    ) -> list[Step]:
        target_kind, kind, room, service = key
        return [
            Step(
                name,
                rule,
                SIGNALS[rule.metric],
                DETAILS.get(rule.metric),
                rule.metric in INTERFACE_METRICS,
                rule.falling,
                rule.metric in DEVICE_METRICS,
                rule.levels[0].above,
            )
            for name, rule in rules.items()
            if rule.enabled
            and (rule.kinds is None or target_kind in rule.kinds)
            and changes(rule.metric, kind)
            and (room or rule.metric not in ROOM_METRICS)
            and (service or rule.metric not in SERVICE_METRICS)
        ]

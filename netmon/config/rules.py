"""Alert rules as configured: what is watched, at which levels, for how long; the defaults.

A rule reads one metric of the state store per target (or per interface) and compares it with
one or more levels. Each level raises at `above` and clears only below `clear` (hysteresis), and
a change of level must hold for `for` (raising) or `clear_for` (falling) before it is announced.

The default quality levels are the interactive-video profile (`netmon.config.thresholds`):
ITU-T G.114 (one-way delay up to 150 ms is fine for interactive use), ITU-T Y.1541 class 0
(jitter 50 ms, loss 1e-3 as the network objective) and Cisco's guidance for interactive video
marked AF41 (one-way latency <= 150 ms, jitter <= 30 ms, loss <= 1 %). The clear levels sit
below the raise levels so that a value hovering at a limit raises once, not every minute; and,
as Poly's MCU clears a quality alarm only after 5 s stable, a fall must hold for `clear_for`.

`Severity` is declared here because levels name it; alert events use the same one. This module
is schema and defaults only: it must not import alerting (the engine's evaluation constants are
in `netmon.alerting.rules`).
"""

from __future__ import annotations

import itertools
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from netmon.config.thresholds import Thresholds
from netmon.model import Duration


class Severity(StrEnum):
    INFO = "info"
    WARNING = "warning"
    MAJOR = "major"
    CRITICAL = "critical"

    @property
    def rank(self) -> int:
        return _RANK[self]


_RANK = {Severity.INFO: 0, Severity.WARNING: 1, Severity.MAJOR: 2, Severity.CRITICAL: 3}


Metric = Literal[
    "down",  # ICMP says the target is down (1) or up (0)
    "rtt_p95",  # seconds, 95th percentile of the ICMP window
    "loss_ratio",  # 0..1 over the loss window, judged with its confidence interval
    "loss_bursts",  # loss bursts (5+ echoes lost in a row, not an outage) in the loss window
    "jitter",  # seconds, RFC 3550 mean absolute RTT difference over the ICMP window
    "snmp_down",  # the SNMP agent does not answer (1), answers (0)
    "snmp_auth",  # the SNMP agent refuses our credentials (1)
    "interface_down",  # per interface: admin up and oper down (1)
    "interface_errors",  # per interface: errors + discards, in and out, per second
    "interface_utilization",  # per interface: the larger of in and out, 0..1
    "probe_failed",  # per TCP/SIP/HTTP probe of a pinged target: its last run failed (1)
    "unregistered",  # per protocol (sip, h323): the room cannot be called over it (1)
    "peripheral_disconnected",  # per camera, microphone, display: reported unplugged (1)
    "diagnostic_error",  # diagnostics the room raises at Error or Critical (a count)
    "one_sided_registration",  # the room and its registrar disagree on its SIP registration (1)
    "call_mos",  # the worst estimated MOS of the audio the room receives in its calls (1-4.5)
]
TargetKind = Literal[
    "endpoint", "mcu", "router", "switch", "olt", "cpe", "firewall", "server", "service"
]


class StrictModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class Level(StrictModel):
    """A level raises when the value is above `above` (loss, RTT), or below `below` for a
    value that is bad when low (a MOS). A `below` level is kept as its mirror image, `above`
    the negated threshold with `falling` set: the engine negates the rule's values, and the
    summaries show them the right way up."""

    severity: Severity
    above: float = Field(description="raise when the value is above this")
    clear: float | None = Field(
        default=None, description="clear only at or below this (default: `above`)"
    )
    falling: bool = Field(default=False, exclude=True)

    @model_validator(mode="before")
    @classmethod
    def _below(cls, data: Any) -> Any:
        if isinstance(data, dict) and "falling" in data:
            raise ValueError("falling: unknown key (write the level with `below`)")
        if not isinstance(data, dict) or "below" not in data:
            return data
        if "above" in data:
            raise ValueError("give `above` (bad when high) or `below` (bad when low), not both")
        mirrored = {k: v for k, v in data.items() if k != "below"}
        below, clear = data["below"], data.get("clear")
        if isinstance(below, int | float) and not isinstance(below, bool):
            mirrored["above"] = -below
        if isinstance(clear, int | float) and not isinstance(clear, bool):
            if "above" in mirrored and clear < below:
                raise ValueError(f"clear ({clear}) must not be below `below` ({below})")
            mirrored["clear"] = -clear
        return {**mirrored, "falling": True}

    @model_validator(mode="after")
    def _clear_not_above(self) -> Level:
        if self.clear is not None and self.clear > self.above:
            raise ValueError(f"clear ({self.clear}) must not be above `above` ({self.above})")
        return self

    @property
    def clear_at(self) -> float:
        return self.above if self.clear is None else self.clear


def _levels_rise(levels: list[Level]) -> list[Level]:
    if len({level.falling for level in levels}) > 1:
        raise ValueError("a rule's levels are all `above` or all `below`")
    for lower, higher in itertools.pairwise(levels):
        if higher.above <= lower.above:
            raise ValueError("levels must be listed from the lowest to the highest `above`")
        if higher.severity.rank <= lower.severity.rank:
            raise ValueError("each level must be more severe than the one before it")
    return levels


class Rule(StrictModel):
    metric: Metric
    levels: Annotated[list[Level], AfterValidator(_levels_rise)] = Field(min_length=1)
    for_: Duration = Field(default=0.0, ge=0, alias="for")
    clear_for: Duration = Field(default=5.0, ge=0)
    kinds: list[TargetKind] | None = Field(default=None, description="only targets of these kinds")
    interfaces: list[str] = Field(
        default_factory=lambda: ["*"], description="interface name globs (interface metrics)"
    )
    only_seen_up: bool = Field(
        default=True,
        description="interface_down: only interfaces netmon saw up (unused ports stay quiet)",
    )
    labels: dict[str, str] = Field(default_factory=dict, description="added to every alert")
    summary: str | None = Field(default=None, description="template; overrides the language set")
    enabled: bool = True

    @property
    def falling(self) -> bool:
        """Its values are bad when low (levels given as `below`)."""
        return self.levels[0].falling

    @model_validator(mode="after")
    def _mos_is_bad_when_low(self) -> Rule:
        if self.metric == "call_mos" and not self.falling:
            raise ValueError("call_mos is bad when low: give its levels as `below`")
        return self


class TrapRule(StrictModel):
    """A trap (by OID or standard name) that raises an alert; `clear_trap` resolves it."""

    alertname: str = Field(pattern=r"^[A-Za-z][A-Za-z0-9_]*$")
    severity: Severity = Severity.WARNING
    hold: Duration = Field(default=600.0, gt=0, description="resolves by itself after this")
    clear_trap: str | None = None
    summary: str | None = None


class FlappingConfig(StrictModel):
    window: Duration = Field(default=120.0, gt=0)
    changes: int = Field(default=6, ge=2, description="condition changes within `window`")
    quiet: Duration = Field(default=60.0, gt=0, description="stable this long to stop flapping")


class TopologyConfig(StrictModel):
    """Endpoints behind a cut district are one DistrictUnreachable alert, not one page each."""

    wait: Duration = Field(
        default=2.0, ge=0, description="hold a child's down alert this long to group it"
    )
    min_children_down: int = Field(default=3, ge=1)
    min_ratio_down: float = Field(default=0.5, gt=0, le=1)


def default_rules(thresholds: Thresholds) -> dict[str, dict[str, Any]]:
    """The rules that work with no configuration, levels taken from `thresholds`."""
    t = thresholds
    device_kinds = ["router", "switch", "olt", "cpe", "firewall", "server"]
    return {
        # Down and up are already confirmed by quick echoes (`icmp.confirm`, `up_after`): a
        # short clear_for resolves within 5 s of the first reply.
        "EndpointDown": {
            "metric": "down",
            "kinds": ["endpoint", "mcu"],
            "levels": [{"severity": "critical", "above": 0.5}],
            "clear_for": 2,
        },
        "TargetDown": {
            "metric": "down",
            "kinds": device_kinds,
            "levels": [{"severity": "major", "above": 0.5}],
            "clear_for": 2,
        },
        "ServiceDown": {
            # The province's web services (public-service portal, documents, meeting rooms):
            # watched by their HTTP probe alone.
            "metric": "down",
            "kinds": ["service"],
            "levels": [{"severity": "major", "above": 0.5}],
        },
        "HighLatency": {
            "metric": "rtt_p95",
            "levels": [
                {"severity": "warning", "above": t.rtt_warn, "clear": t.rtt_warn * 0.8},
                {"severity": "major", "above": t.rtt_bad, "clear": t.rtt_bad * 0.8},
            ],
            "for": 10,
            "clear_for": 10,
        },
        "HighPacketLoss": {
            # Judged on 10 minutes of echoes with a 99 % confidence bound (see
            # `netmon.alerting.tracked.judged_level`): at one echo a second that is what tells
            # a 2 % link from a healthy 0.5 % one. Warning at 1 %, where interactive video
            # starts to suffer (Cisco's AF41 target, the readiness check's WARN); major at 3 %,
            # critical at 10 %, where a call breaks up even with FEC and concealment.
            "metric": "loss_ratio",
            "levels": [
                {"severity": "warning", "above": t.loss_bad, "clear": t.loss_bad * 0.5},
                {"severity": "major", "above": 3 * t.loss_bad},
                {"severity": "critical", "above": 2 * t.loss_critical},
            ],
            "for": 60,
            "clear_for": 30,
        },
        "LinkUnstable": {
            # A link that drops out for a moment and comes back (a radio link fading): one
            # notification while it keeps doing so, not a down and an up each time. Clears
            # once a whole loss window passed without a burst.
            "metric": "loss_bursts",
            "levels": [{"severity": "warning", "above": 0.5, "clear": 0.0}],
            "clear_for": 0,
        },
        "HighJitter": {
            "metric": "jitter",
            "levels": [
                {"severity": "warning", "above": t.jitter_warn, "clear": t.jitter_warn * 0.8},
                {"severity": "major", "above": t.jitter_bad, "clear": t.jitter_bad * 0.8},
            ],
            "for": 10,
            "clear_for": 10,
        },
        "InterfaceDown": {
            "metric": "interface_down",
            "levels": [{"severity": "major", "above": 0.5}],
        },
        "InterfaceErrors": {
            "metric": "interface_errors",
            "levels": [{"severity": "warning", "above": 0.1, "clear": 0.02}],
            "clear_for": 60,
        },
        "LinkSaturated": {
            "metric": "interface_utilization",
            "levels": [{"severity": "warning", "above": 0.9, "clear": 0.8}],
            "for": 120,
            "clear_for": 60,
        },
        "SNMPUnreachable": {
            "metric": "snmp_down",
            "levels": [{"severity": "warning", "above": 0.5}],
            "for": 30,
            "clear_for": 0,
        },
        "ProbeFailed": {
            # A room whose SIP stack or call-signalling port is dead answers pings but takes
            # no call. Two failed runs in a row (probes run every 30-60 s), not one.
            "metric": "probe_failed",
            "kinds": ["endpoint", "mcu", *device_kinds],
            "levels": [{"severity": "warning", "above": 0.5}],
            "for": 60,
            "clear_for": 0,
        },
        # The room's own status (its API, its registrar). Read every 30 s by default, so a
        # fault is announced at the first poll that sees it: the codec and the registrar have
        # already waited out their own retries before saying "failed" or dropping a contact.
        "EndpointUnregistered": {
            "metric": "unregistered",
            "kinds": ["endpoint", "mcu"],
            "levels": [{"severity": "major", "above": 0.5}],
            "clear_for": 0,
        },
        "PeripheralDisconnected": {
            "metric": "peripheral_disconnected",
            "kinds": ["endpoint", "mcu"],
            "levels": [{"severity": "major", "above": 0.5}],
            "clear_for": 0,
        },
        "EndpointDiagnosticError": {
            "metric": "diagnostic_error",
            "kinds": ["endpoint", "mcu"],
            "levels": [{"severity": "warning", "above": 0.5}],
            "clear_for": 0,
        },
        "OneSidedRegistration": {
            # Both sides are read on their own timers (30 s and 15 s): a registration that
            # changes between the two reads disagrees for one interval without a fault.
            "metric": "one_sided_registration",
            "kinds": ["endpoint", "mcu"],
            "levels": [{"severity": "major", "above": 0.5}],
            "for": 60,
            "clear_for": 0,
        },
        # Call quality while a room is in a call (its codec's media statistics): the audio it
        # receives, scored by the E-model. 3.6 is where G.109 puts "many users dissatisfied",
        # 3.1 "nearly all". The hint says whether netmon's own path shows the loss.
        "CallQualityDegraded": {
            "metric": "call_mos",
            "kinds": ["endpoint", "mcu"],
            "levels": [{"severity": "major", "below": 3.6, "clear": 3.8}],
            "for": 30,
            "clear_for": 30,
        },
        "CallQualityBad": {
            "metric": "call_mos",
            "kinds": ["endpoint", "mcu"],
            "levels": [{"severity": "major", "below": 3.1, "clear": 3.3}],
            "for": 10,
            "clear_for": 30,
        },
        "SNMPAuthFailure": {
            "metric": "snmp_auth",
            "levels": [{"severity": "warning", "above": 0.5}],
            "clear_for": 0,
        },
    }

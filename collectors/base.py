"""The vocabulary shared by collectors and the core: what a probe is given and what it returns.

Observations are frozen dataclasses; the core folds them into its state store. Nothing here
does I/O.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Annotated, ClassVar, Protocol, runtime_checkable

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from collectors.credentials import SnmpCredential

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}


def parse_duration(value: object) -> object:
    """Accept 1.5, "1.5", "500ms", "2s", "5m", "1h"; other types are left to pydantic."""
    if isinstance(value, str):
        match = _DURATION.match(value)
        if match is None:
            raise ValueError(f"not a duration: {value!r} (examples: 500ms, 2s, 5m, 1h)")
        return float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
    return value


Duration = Annotated[float, BeforeValidator(parse_duration)]
"""Seconds, written as a number or with a unit (ms, s, m, h)."""


class CollectorSettings(BaseModel):
    """Base of every collector's settings model: strict (typos are errors) and frozen."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    interval: Duration
    timeout: Duration

    # True for collectors that read a device's state (SNMP): their failures mark the device
    # unreachable even before its first successful poll.
    device_collector: ClassVar[bool] = False

    def usage_problems(self) -> list[tuple[str, str]]:
        """(field, message) for what a target that uses these settings still lacks.

        Defaults may leave a field empty that every target using the probe must fill (an SNMP
        credential); the config checks this only for targets that use the probe.
        """
        return []


class ReachPolicy(CollectorSettings):
    """Settings of a collector whose results decide whether a target is up or down."""

    # Two losses at one echo a second: a fault is news in about 2.3 s (median), well within
    # the 3 s the NOC asks for; three would make it 3.3 s. A link so lossy that two losses in
    # a row happen by chance raises HighPacketLoss anyway; set 3 there.
    down_after: int = Field(default=2, ge=1, description="consecutive losses before down")
    up_after: int = Field(default=2, ge=1, description="consecutive replies before up again")
    window: Duration = Field(default=60.0, gt=0, description="sliding window for loss and jitter")


@dataclass(frozen=True, slots=True)
class ProbeTarget:
    """What a collector needs to know about a target: no labels, no secrets it does not use.

    `credentials` holds only the credentials this target's probes refer to, by name.
    """

    id: str
    address: str
    credentials: Mapping[str, SnmpCredential] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Observation:
    """Result of one collection run against one target.

    `ok` says whether the target answered as expected; `reason` says why not, in one of a few
    stable words ("timeout", "refused", "unreachable", "resolve", "parse", ...), so the runner can
    count errors by reason and a person can read it.
    """

    target: str
    collector: str
    ok: bool
    duration: float
    reason: str | None = None
    detail: str | None = None


@dataclass(frozen=True, slots=True)
class EchoRound(Observation):
    """One round of ICMP echoes to a target.

    `rtts` holds one entry per echo sent, in send order: the round-trip time in seconds, or None
    when no reply came within the timeout.
    """

    address: str = ""
    rtts: tuple[float | None, ...] = field(default_factory=tuple)

    @property
    def sent(self) -> int:
        return len(self.rtts)

    @property
    def received(self) -> int:
        return sum(1 for rtt in self.rtts if rtt is not None)


@dataclass(frozen=True, slots=True)
class InterfaceSample:
    """One interface as read from IF-MIB; None where the agent did not say."""

    index: int
    name: str
    alias: str
    descr: str
    admin_up: bool | None
    oper_up: bool | None
    speed_bps: int | None
    counter_bits: int  # 64 when the HC counters were read, else 32
    in_octets: int | None
    out_octets: int | None
    in_errors: int | None
    out_errors: int | None
    in_discards: int | None
    out_discards: int | None
    discontinuity: int | None = None  # ifCounterDiscontinuityTime, in sysUpTime ticks
    ticks: int | None = None  # the agent's sysUpTime when the octet counters were read


@dataclass(frozen=True, slots=True)
class DeviceSample(Observation):
    """One SNMP poll of a device: system group and interfaces.

    `missing` names what could not be read while the rest was (a failed subtree does not
    fail the poll).
    """

    uptime_ticks: int | None = None
    sys_name: str = ""
    sys_descr: str = ""
    sys_object_id: str = ""
    interfaces: tuple[InterfaceSample, ...] = ()
    missing: tuple[str, ...] = ()
    # From data-defined modules: (name, type, help, labels, value), name without netmon_.
    metrics: tuple[tuple[str, str, str, tuple[tuple[str, str], ...], float], ...] = ()


class CollectError(Exception):
    """A collection failed for a reason worth counting; `reason` is one stable word."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


class Collector(Protocol):
    """A protocol collector. The runner owns deadline, timing and error counting around it."""

    name: ClassVar[str]
    settings_model: ClassVar[type[CollectorSettings]]

    async def start(self) -> None: ...

    async def close(self) -> None: ...

    async def collect(self, target: ProbeTarget, settings: CollectorSettings) -> Observation: ...


@runtime_checkable
class BatchCollector(Collector, Protocol):
    """A collector that probes many targets in one call more cheaply than one by one.

    The scheduler hands it every target whose run falls on the same tick. It returns one
    observation per item, in any order.
    """

    async def collect_batch(
        self, items: Sequence[tuple[ProbeTarget, CollectorSettings]]
    ) -> Sequence[Observation]: ...

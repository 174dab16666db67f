"""What SNMP polls of a device add up to: interface rates between polls, timed by the agent's
own sysUpTime, and reboots told apart from a wrapping uptime counter.

Pure folding of `DeviceSample`s; the state store keeps one `DeviceState` per device and
collector. Nothing here does I/O.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from netmon.model import DeviceSample, InterfaceSample, Observation

TICKS_WRAP = 1 << 32  # sysUpTime is a 32-bit TimeTicks: it wraps after 497 days
_NEAR = 100 * 86_400  # one day of ticks


def uptime_wrapped(before: int, after: int) -> bool:
    """True when a smaller sysUpTime is the counter wrapping, not a reboot: it was within a
    day of 2^32 and is now within a day of 0."""
    return before > TICKS_WRAP - _NEAR and after < _NEAR


def ticks_between(before: int, after: int) -> int | None:
    """Agent time from one reading to the next, across a wrap; None across a reboot."""
    if after > before:
        return after - before
    if uptime_wrapped(before, after):
        return after + TICKS_WRAP - before
    return None


def interface_rates(
    previous: InterfaceSample, previous_ticks: int, current: InterfaceSample, ticks: int
) -> tuple[float, float] | None:
    """Utilisation in and out between two polls, timed by the agent's own sysUpTime.

    None when no honest rate exists: the agent rebooted (sysUpTime went back), the counter
    width changed, ifCounterDiscontinuityTime moved, the speed is unknown, or a 64-bit counter
    went back (a discontinuity; only 32-bit counters wrap in practice).
    """
    elapsed = ticks_between(previous_ticks, ticks)
    if elapsed is None or previous.counter_bits != current.counter_bits:
        return None
    if previous.discontinuity != current.discontinuity:
        return None  # the agent says its counters restarted (ifCounterDiscontinuityTime)
    speed = current.speed_bps
    if not speed:
        return None
    seconds = elapsed / 100
    if current.counter_bits == 32 and speed / 8 * seconds >= 1 << 32:
        return None  # a 32-bit counter at this speed may have wrapped more than once
    rates = []
    for before, after in (
        (previous.in_octets, current.in_octets),
        (previous.out_octets, current.out_octets),
    ):
        if before is None or after is None:
            return None
        delta = after - before
        if delta < 0:
            if current.counter_bits != 32:
                return None
            delta += 1 << 32
        rates.append(delta * 8 / seconds / speed)
    return rates[0], rates[1]


def error_rate(
    previous: InterfaceSample, previous_ticks: int, current: InterfaceSample, ticks: int
) -> float | None:
    """Errors plus discards, in and out, per second between two polls; None when unknown or
    across a reboot or counter discontinuity."""
    elapsed = ticks_between(previous_ticks, ticks)
    if not elapsed or previous.discontinuity != current.discontinuity:
        return None
    total = 0
    for before, after in (
        (previous.in_errors, current.in_errors),
        (previous.out_errors, current.out_errors),
        (previous.in_discards, current.in_discards),
        (previous.out_discards, current.out_discards),
    ):
        if before is None or after is None:
            continue
        delta = after - before
        total += delta if delta >= 0 else delta + (1 << 32)  # these are 32-bit counters
    return total / (elapsed / 100)


@dataclass(slots=True)
class InterfaceState:
    sample: InterfaceSample
    utilization: tuple[float, float] | None = None  # in, out
    errors_per_second: float | None = None
    # False when this poll fell back from 64- to 32-bit counters: their raw values are not
    # published under the same series (Prometheus would read it as a counter reset).
    octets_comparable: bool = True


@dataclass(slots=True)
class DeviceState:
    """What the last SNMP poll of a device said, and what is needed for the next rate."""

    up: bool = False
    duration: float = 0.0
    uptime_ticks: int | None = None
    sys_name: str = ""
    sys_descr: str = ""
    sys_object_id: str = ""
    interfaces: dict[int, InterfaceState] = field(default_factory=dict)
    metrics: tuple[tuple[str, str, str, tuple[tuple[str, str], ...], float], ...] = ()
    reboots: int = 0
    seen_ticks: int | None = None  # the last sysUpTime read, for reboot detection
    # The last complete reading (counters and their sysUpTime, always updated together), kept
    # across failed polls so the next rate spans the gap.
    last_ticks: int | None = None
    last_interfaces: dict[int, InterfaceSample] = field(default_factory=dict)

    def fold(self, sample: DeviceSample) -> None:
        self.up = True
        self.duration = sample.duration
        self.sys_name, self.sys_descr = sample.sys_name, sample.sys_descr
        self.sys_object_id = sample.sys_object_id
        ticks = sample.uptime_ticks
        if (
            ticks is not None
            and self.seen_ticks is not None
            and ticks < self.seen_ticks
            and not uptime_wrapped(self.seen_ticks, ticks)
        ):
            self.reboots += 1
        if ticks is not None:
            self.seen_ticks = ticks
        self.uptime_ticks = ticks
        self.metrics = sample.metrics
        if "interfaces" in sample.missing or ticks is None:
            return  # keep the last complete reading: a rate needs counters and time together
        interfaces: dict[int, InterfaceState] = {}
        for current in sample.interfaces:
            previous = self.last_interfaces.get(current.index)
            rates = errors = None
            if previous is not None and self.last_ticks is not None:
                # Each reading's own agent time when the agent gave one, else the poll's.
                before, after = previous.ticks or self.last_ticks, current.ticks or ticks
                rates = interface_rates(previous, before, current, after)
                errors = error_rate(previous, before, current, after)
            comparable = previous is None or previous.counter_bits <= current.counter_bits
            interfaces[current.index] = InterfaceState(current, rates, errors, comparable)
        self.interfaces = interfaces
        self.last_interfaces = {i.index: i for i in sample.interfaces}
        self.last_ticks = ticks

    def failed(self, observation: Observation) -> None:
        self.up = False
        self.duration = observation.duration
        self.interfaces = {}  # no stale counters on /metrics while the device is silent
        self.metrics = ()

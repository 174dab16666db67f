"""The kinds of demo fault, the fields each takes, and how a field's text becomes a value.

Plain data and parsing, shared by the injector (`faults.py`, which validates every request) and
the command line (`fault_client.py`, which only needs the kinds and their fields). Every error
is a `FaultInputError` whose message starts with the field at fault.
"""

from __future__ import annotations

import math
import re
from enum import StrEnum

from netmon.model import parse_duration

MAX_DELAY = 10.0
MAX_JITTER = 1.0
MIN_FLAP_PERIOD, MAX_FLAP_PERIOD = 2.0, 3600.0
MIN_BURST_EVERY, MAX_BURST_EVERY = 1.0, 86400.0
MAX_BURST_LENGTH = 600  # echoes: 10 minutes at 1 echo/s; longer is an outage (endpoint-down)


class FaultKind(StrEnum):
    ENDPOINT_DOWN = "endpoint-down"
    LOSS = "loss"
    DELAY = "delay"
    JITTER = "jitter"
    BURST = "burst"
    INTERFACE_DOWN = "interface-down"
    INTERFACE_FLAP = "interface-flap"
    UPLINK_CUT = "uplink-cut"
    CAMERA_UNPLUG = "camera-unplug"
    UNREGISTER = "unregister"
    DIAGNOSTIC = "diagnostic"
    BUSY = "busy"


# The fields each kind takes, in the order the CLI takes them as arguments.
FIELDS: dict[FaultKind, tuple[str, ...]] = {
    FaultKind.ENDPOINT_DOWN: ("target",),
    FaultKind.LOSS: ("target", "value"),
    FaultKind.DELAY: ("target", "value"),
    FaultKind.JITTER: ("target", "value"),
    FaultKind.BURST: ("target", "every", "length"),
    FaultKind.INTERFACE_DOWN: ("device", "interface"),
    FaultKind.INTERFACE_FLAP: ("device", "interface", "value"),
    FaultKind.UPLINK_CUT: ("district",),
    FaultKind.CAMERA_UNPLUG: ("target",),
    FaultKind.UNREGISTER: ("target",),
    FaultKind.DIAGNOSTIC: ("target", "level"),
    FaultKind.BUSY: ("target",),
}
# Faults on an endpoint's pings: the responder's impairment of its address.
PING_KINDS = frozenset(
    {FaultKind.ENDPOINT_DOWN, FaultKind.LOSS, FaultKind.DELAY, FaultKind.JITTER, FaultKind.BURST}
)
NETWORK_KINDS = PING_KINDS | {FaultKind.UPLINK_CUT}
DEVICE_KINDS = frozenset({FaultKind.INTERFACE_DOWN, FaultKind.INTERFACE_FLAP, FaultKind.UPLINK_CUT})
# Faults of a room's own status: what its codec (or, unregistered, its registrar) says.
ROOM_KINDS = frozenset(
    {FaultKind.CAMERA_UNPLUG, FaultKind.UNREGISTER, FaultKind.DIAGNOSTIC, FaultKind.BUSY}
)
DIAGNOSTIC_LEVELS = ("warning", "error", "critical")


class FaultInputError(ValueError):
    """A fault request that is wrong; the message starts with the field at fault."""

    def __init__(self, field: str, message: str) -> None:
        self.field = field
        super().__init__(f"{field}: {message}")


def _number(raw: object, *, percent: bool = False, duration: bool = False) -> float:
    if isinstance(raw, bool) or raw is None:
        raise ValueError
    if isinstance(raw, int | float):
        value = float(raw)
    elif isinstance(raw, str):
        text = raw.strip()
        if percent and text.endswith("%"):
            value = float(text[:-1]) / 100
        elif duration:
            parsed = parse_duration(text)
            assert isinstance(parsed, float)
            value = parsed
        else:
            value = float(text)
    else:
        raise ValueError
    if not math.isfinite(value):
        raise ValueError
    return value


_VALUE_HINTS: dict[FaultKind, str] = {
    FaultKind.LOSS: "a loss ratio above 0 and at most 1, e.g. 0.05 (or 5%)",
    FaultKind.DELAY: f"extra delay in seconds, above 0 and at most {MAX_DELAY:g}, "
    "e.g. 0.2 (or 200ms)",
    FaultKind.JITTER: f"jitter in seconds, above 0 and at most {MAX_JITTER:g}, e.g. 0.003 "
    "(or 3ms: each reply up to 3 ms earlier or later)",
    FaultKind.INTERFACE_FLAP: f"the flap period in seconds, {MIN_FLAP_PERIOD:g} to "
    f"{MAX_FLAP_PERIOD:g}, e.g. 30 (down half of it, up the other half)",
}


def parse_value(kind: FaultKind, raw: object) -> float:
    """A fault's `value`: a loss ratio, a delay, a jitter or a flap period in seconds."""
    try:
        if kind is FaultKind.LOSS:
            value = _number(raw, percent=True)
            if 0 < value <= 1:
                return value
        elif kind is FaultKind.DELAY:
            value = _number(raw, duration=True)
            if 0 < value <= MAX_DELAY:
                return value
        elif kind is FaultKind.JITTER:
            value = _number(raw, duration=True)
            if 0 < value <= MAX_JITTER:
                return value
        elif kind is FaultKind.INTERFACE_FLAP:
            value = _number(raw, duration=True)
            if MIN_FLAP_PERIOD <= value <= MAX_FLAP_PERIOD:
                return value
    except ValueError:
        pass
    raise FaultInputError("value", f"{raw!r} is not {_VALUE_HINTS[kind]}")


def parse_every(raw: object) -> float:
    """A burst fault's `every`: the mean time between bursts, in seconds."""
    try:
        value = _number(raw, duration=True)
        if MIN_BURST_EVERY <= value <= MAX_BURST_EVERY:
            return value
    except ValueError:
        pass
    raise FaultInputError(
        "every",
        f"{raw!r} is not the mean time between bursts in seconds, {MIN_BURST_EVERY:g} to "
        f"{MAX_BURST_EVERY:g}, e.g. 120 (or 2m)",
    )


_LENGTH = re.compile(r"\s*(\d+)\s*(?:-\s*(\d+)\s*)?")


def parse_length(raw: object) -> tuple[int, int]:
    """A burst fault's `length`: echoes lost in a row, `N` or `MIN-MAX` (or [MIN, MAX])."""
    low = high = None
    if isinstance(raw, int) and not isinstance(raw, bool):
        low = high = raw
    elif isinstance(raw, str) and (match := _LENGTH.fullmatch(raw)):
        low = int(match.group(1))
        high = int(match.group(2) or low)
    elif (
        isinstance(raw, list | tuple)
        and len(raw) == 2
        and all(isinstance(n, int) and not isinstance(n, bool) for n in raw)
    ):
        low, high = raw
    if low is not None and high is not None and 1 <= low <= high <= MAX_BURST_LENGTH:
        return low, high
    raise FaultInputError(
        "length",
        f"{raw!r} is not a burst length in echoes lost in a row, N or MIN-MAX with "
        f"1 <= MIN <= MAX <= {MAX_BURST_LENGTH}, e.g. 5-10",
    )


def parse_level(raw: object) -> str:
    """A diagnostic fault's `level`: warning, error or critical."""
    text = str(raw).strip().lower()
    if text in DIAGNOSTIC_LEVELS:
        return text
    raise FaultInputError("level", f"{raw!r} is not one of {', '.join(DIAGNOSTIC_LEVELS)}")

"""How the engine reads rules beyond their schema (`netmon.config.rules`).

Which metrics are per interface, how many samples a window needs before loss and RTT count,
how long a reboot alert holds, and the standard traps that raise alerts with no configuration.
Constants only; it must not import the engine.
"""

from __future__ import annotations

from typing import Any

# Rules on these metrics are evaluated once per interface, not once per target.
INTERFACE_METRICS = frozenset({"interface_down", "interface_errors", "interface_utilization"})
# Loss is judged on the regular echoes of the loss window (10 minutes) with a Wilson score
# interval: an alert fires once its lower bound passes a level, i.e. when netmon is 99 % sure
# (one-sided) that the loss is above it, not when two echoes happen to be lost. Below a minute
# of echoes nothing is judged at all.
LOSS_CONFIDENCE_Z = 2.326
MIN_LOSS_SAMPLES = 60
# RTT and jitter need this many replies in their window: the 95th percentile of 40 leaves the
# two highest out, so a single late reply (a pause, a busy target) cannot raise HighLatency.
MIN_RTT_SAMPLES = 40

STANDARD_TRAPS: dict[str, dict[str, Any]] = {
    # linkDown/linkUp drive InterfaceDown as the poll does: a trap is just the faster news.
    "coldStart": {"alertname": "DeviceRebooted", "severity": "warning", "hold": 900},
    "warmStart": {"alertname": "DeviceRebooted", "severity": "warning", "hold": 900},
    "authenticationFailure": {
        "alertname": "DeviceAuthenticationFailure",
        "severity": "warning",
        "hold": 600,
    },
}
REBOOT_HOLD = 900.0
# linkDown/linkUp of a device netmon does not poll name interfaces netmon cannot check: at most
# this many of them per device are tracked (a chassis switch), not one per made-up ifIndex.
MAX_TRAP_PORTS = 96  # DeviceRebooted from a sysUpTime reset stays this long

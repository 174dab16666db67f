"""How the engine reads rules beyond their schema (`netmon.config.rules`).

Which metrics are per interface, how many samples a window needs before loss and RTT count,
how long a reboot alert holds, and the standard traps that raise alerts with no configuration.
Constants only; it must not import the engine.
"""

from __future__ import annotations

from typing import Any

# Rules on these metrics are evaluated once per interface, not once per target.
INTERFACE_METRICS = frozenset({"interface_down", "interface_errors", "interface_utilization"})
# One lost echo in a 60-echo window is already 1.7 %, above the 1 % level: a single stray
# loss must not page anybody, so loss counts only from this many lost echoes in the window.
MIN_LOST_ECHOES = 2
MIN_RTT_SAMPLES = 5

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
REBOOT_HOLD = 900.0  # DeviceRebooted from a sysUpTime reset stays this long

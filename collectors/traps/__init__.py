"""SNMP trap and inform receiver (v1, v2c, v3 USM) that turns notifications into TrapEvents.

Unlike the polling collectors it listens: the core starts one `TrapReceiver`, gives it a
`resolve` callback (address → `TrapSource` from the inventory) and callbacks for events and
learned v3 engine IDs, and exports its `stats`.
"""

from collectors.traps.events import STANDARD_TRAPS, TrapSource
from collectors.traps.receiver import (
    TrapListenError,
    TrapReceiver,
    TrapSettings,
    TrapStats,
    default_engine_id,
)
from netmon.model import TrapEvent

__all__ = [
    "STANDARD_TRAPS",
    "TrapEvent",
    "TrapListenError",
    "TrapReceiver",
    "TrapSettings",
    "TrapSource",
    "TrapStats",
    "default_engine_id",
]

"""SNMP trap and inform receiver (v1, v2c, v3 USM) that turns notifications into TrapEvents.

Unlike the polling collectors it listens: the core starts one `TrapReceiver`
(`collectors.traps.receiver`), gives it a `resolve` callback (address → `TrapSource` from the
inventory) and callbacks for events and learned v3 engine IDs, and exports its `stats`.

This package names only its light pieces (events and settings): importing it must not import
the receiver, whose v3 path loads pysnmp, so the config can read `TrapSettings` cheaply.
"""

from collectors.traps.events import STANDARD_TRAPS, TrapSource
from collectors.traps.settings import TrapSettings, default_engine_id
from netmon.model import TrapEvent

__all__ = [
    "STANDARD_TRAPS",
    "TrapEvent",
    "TrapSettings",
    "TrapSource",
    "default_engine_id",
]

"""What a simulated codec says about itself, in one vendor-neutral shape.

The lab's codec simulators (Cisco xAPI, Poly REST) render their vendor's payloads from a
`CodecState`, and the demo's faults (`camera-unplug`, `unregister`, `diagnostic`, `busy`)
change it, so one fault shows through whichever API the room speaks. Plain data, no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(slots=True)
class SimPeripheral:
    kind: str  # camera, microphone, display, touch_panel
    name: str
    connected: bool = True


@dataclass(slots=True)
class SimDiagnostic:
    level: str  # warning, error, critical
    type: str
    description: str


@dataclass(slots=True)
class SimCall:
    remote: str
    protocol: str = "sip"
    direction: str = "outgoing"
    status: str = "connected"
    started: float = 0.0  # unix seconds
    # What the room measures on what it receives: the share of packets lost over the last
    # interval, and the interarrival jitter (ms). Set by the demo's faults on its path.
    rx_loss: float = 0.0
    jitter_ms: float = 2.0


def _default_peripherals() -> list[SimPeripheral]:
    return [
        SimPeripheral("camera", "Main camera"),
        SimPeripheral("microphone", "Table microphone"),
        SimPeripheral("display", "Main display"),
        SimPeripheral("touch_panel", "Touch panel"),
    ]


@dataclass(slots=True)
class CodecState:
    """One simulated codec. `sip_state`/`h323_state` use the vendor-neutral words of
    `netmon.model.RegistrationState` (registered, registering, failed, unregistered)."""

    model: str
    software: str
    serial: str
    sip_uri: str = ""
    sip_state: str = "registered"
    sip_reason: str = ""
    h323_state: str = "unregistered"
    h323_gatekeeper: str = ""
    standby: bool = False
    peripherals: list[SimPeripheral] = field(default_factory=_default_peripherals)
    diagnostics: list[SimDiagnostic] = field(default_factory=list)
    calls: list[SimCall] = field(default_factory=list)

    def connect(self, kind: str, connected: bool) -> None:
        """Plug in or pull out every peripheral of a kind."""
        for peripheral in self.peripherals:
            if peripheral.kind == kind:
                peripheral.connected = connected

"""What a readiness check gathered for one endpoint, before judging.

The runner (`runner.py`) fills it and the verdicts (`verdict.py`) read it, so both import it
from here and the arrow between them runs one way: runner -> verdict.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from netmon.endpoints import RegistrarWord
from netmon.model import DeviceSample, EchoRound, Observation


@dataclass(slots=True)
class Collected:
    """What was gathered for one endpoint, before judging."""

    echo: EchoRound | None = None
    probes: dict[str, Observation] = field(default_factory=dict)
    device_before: DeviceSample | None = None
    device_after: DeviceSample | None = None
    device_error: str | None = None
    uplink_utilization: float | None = None
    uplink_name: str = ""
    status: Observation | None = None  # the room's API read (an EndpointStatus when it worked)
    registrar: RegistrarWord | None = None  # what its registrar said during the check

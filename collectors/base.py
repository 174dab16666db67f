"""What every collector is and shares: its protocol, its settings base, its error.

The data collectors are given and return (targets, observations) is the core's vocabulary, in
`netmon.model`. Nothing here does I/O.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict

from netmon.model import CallMedia, Duration, Observation, ProbeRole, ProbeTarget, ReachPolicy


class CollectorSettings(BaseModel):
    """Base of every collector's settings model: strict (typos are errors) and frozen."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    interval: Duration
    timeout: Duration

    # What the probe tells about its target. A DEVICE probe's failures mark the device
    # unreachable even before its first successful poll; SERVICE probes are what a readiness
    # check runs once per endpoint and what ProbeFailed watches.
    role: ClassVar[ProbeRole] = ProbeRole.SERVICE
    # How a readiness check names the probe ("" for its name), and whether its failure stops
    # a meeting (NO-GO) or only warns.
    readiness_label: ClassVar[str] = ""
    stops_meeting: ClassVar[bool] = False
    # The kind of entry of `credentials` its `credential` setting names ("snmp", "api"), if any.
    credential_kind: ClassVar[str] = ""

    def usage_problems(self) -> list[tuple[str, str]]:
        """(field, message) for what a target that uses these settings still lacks.

        Defaults may leave a field empty that every target using the probe must fill (an SNMP
        credential); the config checks this only for targets that use the probe.
        """
        return []

    def reach_policy(self) -> ReachPolicy | None:
        """How this probe's results decide up and down, for the probe that decides them."""
        return None

    def media_interval(self) -> float | None:
        """How often a call's media statistics are read alone while the target is in one, for
        a status probe whose collector can (`MediaCollector`); None: only with the status."""
        return None


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


@runtime_checkable
class MediaCollector(Collector, Protocol):
    """A status collector that can read the media statistics of a call alone, more often than
    the whole status (optional: a collector without `collect_media` is polled as before).

    `netmon.call_poller.CallPoller` calls it every `call_interval` seconds while the target's last
    status says it is in a call, and never otherwise. Like `collect`, it bounds its own network
    waits by the settings' timeout and raises CollectError with one stable word.
    """

    async def collect_media(
        self, target: ProbeTarget, settings: CollectorSettings
    ) -> CallMedia: ...

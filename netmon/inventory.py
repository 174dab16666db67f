"""The inventory netmon runs on: each target with its probes' settings resolved, and the rules.

Built once per config load (`netmon.config.loader`) and then only read: by the scheduler, the
state store, the alert engine, the checks and the API. Plain frozen data; it must not validate,
read files or do I/O.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field

from collectors.base import CollectorSettings
from netmon.config.rules import Rule
from netmon.config.schema import Config
from netmon.credentials import Credential
from netmon.model import ProbeRole, ProbeTarget, ReachPolicy


@dataclass(frozen=True, slots=True)
class Target:
    """A validated inventory entry with each probe's settings resolved against the defaults."""

    id: str
    address: str
    kind: str
    name: str
    site: str
    district: str
    group: str
    labels: tuple[tuple[str, str], ...]
    probes: tuple[tuple[str, CollectorSettings], ...]
    credentials: tuple[tuple[str, Credential], ...] = ()
    parent: str | None = None
    uplink: str = ""
    trap_engine_ids: tuple[str, ...] = ()
    # From the probe that decides up and down (ICMP), resolved once when the inventory is built.
    reach_policy: ReachPolicy | None = None
    vendor: str = ""  # cisco, poly, sip, other; "" when the inventory does not say
    registrar: str | None = None  # the id of the registrar target it registers to
    aor: str = ""  # its address of record there (set when `registrar` is)
    # False: another shard owns it; this one only watches it for the targets it owns (their
    # parent, their registrar) and neither alerts on it nor exports it (netmon/sharding.py).
    owned: bool = True

    @property
    def display_name(self) -> str:
        return self.name or self.id

    @property
    def is_room(self) -> bool:
        """A conference room (endpoint or MCU): what meetings, checks and the page are about."""
        return self.kind in ("endpoint", "mcu")

    def probe(self, name: str) -> CollectorSettings | None:
        # Called for every result recorded: a scan of one or two pairs, no dict or generator.
        for probe, settings in self.probes:
            if probe == name:
                return settings
        return None

    def device_probe(self) -> tuple[str, CollectorSettings] | None:
        """The probe that reads the device's own state (SNMP), if one is configured."""
        return next((p for p in self.probes if p[1].role is ProbeRole.DEVICE), None)

    def status_probe(self) -> tuple[str, CollectorSettings] | None:
        """The probe that reads the endpoint's own status over its API, if one is configured."""
        return next((p for p in self.probes if p[1].role is ProbeRole.STATUS), None)

    def service_probes(self) -> list[tuple[str, CollectorSettings]]:
        """The probes of the services the target offers (TCP, SIP, HTTP)."""
        return [p for p in self.probes if p[1].role is ProbeRole.SERVICE]

    def probe_role(self, name: str) -> ProbeRole | None:
        settings = self.probe(name)
        return None if settings is None else settings.role

    def is_service_probe(self, name: str) -> bool:
        return self.probe_role(name) is ProbeRole.SERVICE

    @property
    def probe_target(self) -> ProbeTarget:
        return ProbeTarget(id=self.id, address=self.address, credentials=dict(self.credentials))


@dataclass(frozen=True, slots=True)
class Inventory:
    config: Config
    defaults: Mapping[str, CollectorSettings]
    targets: Mapping[str, Target]
    rules: Mapping[str, Rule] = field(default_factory=dict)
    shard_map: Mapping[str, int] = field(default_factory=dict)  # every target's shard, if sharded

    def summary(self) -> str:
        kinds = Counter(target.kind for target in self.targets.values())
        probes = Counter(name for target in self.targets.values() for name, _ in target.probes)
        kind_text = ", ".join(f"{count} {kind}" for kind, count in sorted(kinds.items()))
        probe_text = ", ".join(f"{name} x{count}" for name, count in sorted(probes.items()))
        return (
            f"instance {self.config.instance}: {len(self.targets)} targets"
            + (f" ({kind_text})" if kind_text else "")
            + (f"; probes: {probe_text}" if probe_text else "")
        )

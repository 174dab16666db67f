"""Running a readiness check: every endpoint of the scope at once, within a deadline.

For each endpoint, in parallel: an ICMP burst marked like the video it stands for (RTT p95,
loss, jitter), its configured TCP/SIP/HTTP probes once, and where SNMP is configured its uptime,
interface state and error growth across the burst, and the utilisation of its district uplink
(the parent's `uplink` interface, read before and after the burst). The verdicts come from the
same thresholds as the alert rules (`verdict.py`).
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from collectors import registry
from collectors.base import Collector, CollectorSettings
from collectors.icmp import IcmpCollector, IcmpSettings
from netmon.checks.collected import Collected
from netmon.checks.model import CheckReport, EndpointReport
from netmon.checks.room import judge_room
from netmon.checks.verdict import judge
from netmon.collect import collect_many, collect_one
from netmon.config.schema import MeetingConfig
from netmon.config.thresholds import Thresholds
from netmon.devices import interface_rates
from netmon.endpoints import RegistrarTable, registrar_says
from netmon.inventory import Inventory, Target
from netmon.meetings import meeting_targets
from netmon.model import DeviceSample, EchoRound, Observation, ProbeRole, RegistrarContacts

log = logging.getLogger(__name__)

Progress = Callable[[str, int], None]  # (what finished, how many steps it was)
STAGGER_WAVES = 10


@dataclass(frozen=True, slots=True)
class BurstSettings:
    """The ICMP burst: 50 echoes 20 ms apart, marked AF41 (interactive video) by default."""

    count: int = 50
    spacing: float = 0.02
    timeout: float = 1.0
    dscp: int = 34  # AF41
    size: int = 200


class ScopeError(ValueError):
    """The scope names nothing: an unknown target, group or district."""


def select(
    inventory: Inventory,
    *,
    targets: Sequence[str] = (),
    group: str | None = None,
    district: str | None = None,
    meeting: str | None = None,
) -> list[Target]:
    """The endpoints (and MCUs) a check covers; devices and services are not meeting rooms."""
    rooms = [t for t in inventory.targets.values() if t.is_room]
    if meeting is not None:
        found = next((m for m in inventory.config.meetings if m.name == meeting), None)
        if found is None:
            names = ", ".join(m.name for m in inventory.config.meetings) or "none configured"
            raise ScopeError(f"no meeting {meeting!r} (meetings: {names})")
        return meeting_targets(inventory, found)
    if targets:
        unknown = [t for t in targets if t not in inventory.targets]
        if unknown:
            raise ScopeError(f"unknown target(s): {', '.join(unknown)}")
        return [inventory.targets[t] for t in targets]
    if group is not None:
        chosen = [t for t in rooms if t.group == group]
        if not chosen:
            known = sorted({t.group for t in rooms if t.group})
            raise ScopeError(f"no endpoint in group {group!r} (groups: {', '.join(known)})")
        return chosen
    if district is not None:
        wanted = district.casefold()
        chosen = [t for t in rooms if t.district.casefold() == wanted]
        if not chosen:
            known = sorted({t.district for t in rooms if t.district})
            raise ScopeError(
                f"no endpoint in district {district!r} (districts: {', '.join(known)})"
            )
        return chosen
    return rooms


def _is_ip(address: str) -> bool:
    try:
        ipaddress.ip_address(address)
    except ValueError:
        return False
    return True


class CheckRunner:
    """Owns the collectors a check needs; one runner serves many checks.

    In the service, `shared` is the service's own collectors: a check uses those it finds there
    (one set of raw ICMP sockets per process, every echo reply read once; one connection per
    codec session) and starts, and later closes, only the others. `netmon check` has none."""

    def __init__(
        self,
        inventory: Inventory,
        *,
        burst: BurstSettings | None = None,
        shared: Mapping[str, Collector] | None = None,
    ) -> None:
        self.inventory = inventory
        self.burst = burst or BurstSettings()
        self._shared: Mapping[str, Collector] = shared if shared is not None else {}
        self._collectors: dict[str, Collector] = {}  # started here, closed here
        self._starting: dict[str, asyncio.Lock] = {}

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        for collector in self._collectors.values():
            await collector.close()
        self._collectors.clear()

    async def _collector(self, name: str) -> Collector:
        shared = self._shared.get(name)
        if shared is not None:
            return shared
        # Hundreds of endpoints ask at once: one of them starts the collector, the others
        # wait for it (each starting its own would leave all but one unclosed).
        async with self._starting.setdefault(name, asyncio.Lock()):
            collector = self._collectors.get(name)
            if collector is None:
                # The first use of a probe imports its module (and transport): off the loop.
                collector = (await asyncio.to_thread(registry.collector_class, name))()
                await collector.start()
                self._collectors[name] = collector
        return collector

    async def _icmp(self) -> IcmpCollector:
        collector = await self._collector(IcmpCollector.name)
        assert isinstance(collector, IcmpCollector)
        return collector

    async def run(
        self,
        targets: Sequence[Target],
        *,
        scope: dict[str, Any],
        thresholds: Thresholds | None = None,
        deadline: float = 10.0,
        progress: Progress | None = None,
        meeting: MeetingConfig | None = None,
    ) -> CheckReport:
        """Check `targets`; `meeting` (when the check is for one) says which protocol the
        rooms are called over and when it starts."""
        report = CheckReport(id=uuid.uuid4().hex[:12], scope=scope, started=time.time())
        collected = {t.id: Collected() for t in targets}
        limits = thresholds or self.inventory.config.thresholds
        # Parts that do not finish by the deadline are reported as such, not waited for.
        try:
            await asyncio.wait_for(self._gather(targets, collected, progress), deadline)
        except TimeoutError:
            log.warning("readiness check hit its deadline", extra={"deadline": deadline})
        for target in targets:
            endpoint = EndpointReport(
                target=target.id,
                name=target.display_name,
                district=target.district,
                address=target.address,
            )
            judge(endpoint, target, collected[target.id], limits, self.burst.count)
            if target.is_room:
                judge_room(
                    endpoint,
                    target,
                    collected[target.id],
                    protocol=meeting.protocol if meeting else "sip",
                    starts_in=meeting.start.timestamp() - report.started if meeting else None,
                )
            report.endpoints.append(endpoint)
        report.finished = time.time()
        return report

    async def _gather(
        self,
        targets: Sequence[Target],
        collected: dict[str, Collected],
        progress: Progress | None,
    ) -> None:
        devices = [t for t in targets if t.device_probe() is not None]
        parents = self._uplink_parents(targets)
        before = await asyncio.gather(
            self._poll_devices(devices, collected, "before"),
            self._poll_parents(parents),
        )
        first_parent_poll = before[1]
        if progress:
            progress("SNMP before", 1)
        await asyncio.gather(
            self._burst(targets, collected, progress),
            self._probes(targets, collected, progress),
            self._room_status(targets, collected, progress),
        )
        after = await asyncio.gather(
            self._poll_devices(devices, collected, "after"),
            self._poll_parents(parents),
        )
        self._uplinks(targets, collected, first_parent_poll, after[1])
        if progress:
            progress("SNMP after", 1)

    async def _burst(
        self, targets: Sequence[Target], collected: dict[str, Collected], progress: Progress | None
    ) -> None:
        burst = self.burst
        settings = IcmpSettings(
            interval=burst.timeout + burst.count * burst.spacing + 1,
            timeout=burst.timeout,
            count=burst.count,
            spacing=burst.spacing,
            size=burst.size,
            dscp=burst.dscp,
        )
        icmp = await self._icmp()
        for target in targets:
            if not _is_ip(target.address):
                with contextlib.suppress(Exception):
                    await icmp.resolve(target.address)
        # Staggered over one spacing: all bursts in step would put 200+ echoes on the wire in
        # the same millisecond, every 20 ms, and overflow the buffers along the way.
        waves = max(1, min(STAGGER_WAVES, len(targets)))
        groups = [list(targets[i::waves]) for i in range(waves)]

        async def wave(index: int, group: list[Target]) -> list[Observation]:
            await asyncio.sleep(index * burst.spacing / waves)
            items = [(t.probe_target, settings) for t in group]
            # No deadline of its own: the check's deadline bounds the burst.
            return await collect_many(icmp, icmp.name, items, deadline=None)

        results = await asyncio.gather(*(wave(i, g) for i, g in enumerate(groups)))
        rounds = [observation for result in results for observation in result]
        for observation in rounds:
            if isinstance(observation, EchoRound):
                collected[observation.target].echo = observation
        if progress:
            progress("ICMP burst", len(targets))

    async def _probes(
        self, targets: Sequence[Target], collected: dict[str, Collected], progress: Progress | None
    ) -> None:
        async def one(target: Target, name: str, settings: CollectorSettings) -> None:
            collector = await self._collector(name)
            collected[target.id].probes[name] = await collect_one(
                collector, name, target.probe_target, settings, deadline=settings.timeout + 1.0
            )
            if progress:
                progress(f"{name} probe", 1)

        jobs = [
            one(target, name, settings)
            for target in targets
            for name, settings in target.service_probes()
        ]
        await asyncio.gather(*jobs)

    async def _room_status(
        self, targets: Sequence[Target], collected: dict[str, Collected], progress: Progress | None
    ) -> None:
        """Each room's API once, and each registrar the rooms register to once."""

        async def room(target: Target, name: str, settings: CollectorSettings) -> None:
            collector = await self._collector(name)
            collected[target.id].status = await collect_one(
                collector, name, target.probe_target, settings, deadline=settings.timeout + 1.0
            )
            if progress:
                progress(f"{name} status", 1)

        async def registrar(registrar_id: str) -> None:
            registrar = self.inventory.targets.get(registrar_id)
            if registrar is None:
                return  # reloaded away while the check ran: its rooms say "not read"
            probe = next((p for p in registrar.probes if p[1].role is ProbeRole.REGISTRAR), None)
            if probe is None:
                return
            name, settings = probe
            collector = await self._collector(name)
            read = await collect_one(
                collector, name, registrar.probe_target, settings, deadline=settings.timeout + 1.0
            )
            table = RegistrarTable.of(read) if isinstance(read, RegistrarContacts) else None
            for target in targets:
                if target.registrar == registrar_id:
                    collected[target.id].registrar = registrar_says(
                        registrar_id, target.aor, table, read
                    )
            if progress:
                progress(f"{name} registrar", 1)

        jobs = [
            room(target, *probe)
            for target in targets
            if (probe := target.status_probe()) is not None
        ]
        registrars = {t.registrar for t in targets if t.registrar is not None}
        jobs.extend(registrar(registrar_id) for registrar_id in sorted(registrars))
        await asyncio.gather(*jobs)

    async def _poll(self, target: Target) -> DeviceSample | str:
        device = target.device_probe()
        assert device is not None
        name, settings = device
        collector = await self._collector(name)
        observation = await collect_one(
            collector, name, target.probe_target, settings, deadline=settings.timeout * 2 + 1.0
        )
        if isinstance(observation, DeviceSample):
            return observation
        return observation.reason or "failed"

    async def _poll_devices(
        self, devices: Sequence[Target], collected: dict[str, Collected], when: str
    ) -> None:
        samples = await asyncio.gather(*(self._poll(t) for t in devices))
        for target, sample in zip(devices, samples, strict=True):
            entry = collected[target.id]
            if isinstance(sample, str):
                entry.device_error = sample
            elif when == "before":
                entry.device_before = sample
            else:
                entry.device_after = sample

    def _uplink_parents(self, targets: Sequence[Target]) -> list[Target]:
        parents = {}
        for target in targets:
            parent = self.inventory.targets.get(target.parent or "")
            if parent is not None and parent.uplink and parent.device_probe() is not None:
                parents[parent.id] = parent
        return list(parents.values())

    async def _poll_parents(self, parents: Sequence[Target]) -> dict[str, DeviceSample]:
        samples = await asyncio.gather(*(self._poll(p) for p in parents))
        return {
            p.id: s for p, s in zip(parents, samples, strict=True) if isinstance(s, DeviceSample)
        }

    def _uplinks(
        self,
        targets: Sequence[Target],
        collected: dict[str, Collected],
        before: dict[str, DeviceSample],
        after: dict[str, DeviceSample],
    ) -> None:
        for target in targets:
            parent = self.inventory.targets.get(target.parent or "")
            if parent is None or parent.id not in before or parent.id not in after:
                continue
            first, second = before[parent.id], after[parent.id]
            old = next((i for i in first.interfaces if i.name == parent.uplink), None)
            new = next((i for i in second.interfaces if i.name == parent.uplink), None)
            if old is None or new is None or first.uptime_ticks is None:
                continue
            if second.uptime_ticks is None:
                continue
            rates = interface_rates(
                old, old.ticks or first.uptime_ticks, new, new.ticks or second.uptime_ticks
            )
            if rates is not None:
                collected[target.id].uplink_utilization = max(rates)
                collected[target.id].uplink_name = f"{parent.display_name} {parent.uplink}"

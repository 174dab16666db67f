"""The service's trap port: who may send (from the inventory), and where traps go (the store).

The receiver (collectors/traps) knows nothing of the inventory or of alerts. This module gives
it a resolver built from the inventory, keeps the v3 engine IDs it learns (persisted through an
`EngineIdStore` when alerting's database is there, in memory otherwise), and records each trap
in the state store, whose listeners (the alert engine among them) take it from there. It runs
whether or not alerting is enabled, and exports the receiver's own counters.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
from collections.abc import Iterable, Iterator
from typing import Protocol

from prometheus_client.core import CounterMetricFamily, Metric

from collectors.traps.events import TrapSource
from collectors.traps.receiver import ERROR_REASONS, TrapReceiver, TrapStats
from collectors.traps.settings import TrapSettings
from netmon.credentials import SnmpCredential
from netmon.inventory import Inventory
from netmon.model import TrapEvent
from netmon.state import StateStore

log = logging.getLogger(__name__)


class EngineIdStore(Protocol):
    """Where learned SNMPv3 engine IDs outlive a restart."""

    async def load_engine_ids(self) -> dict[str, list[bytes]]: ...

    async def save_engine_id(self, target: str, engine_id: bytes) -> None: ...


def _address_key(address: str) -> str:
    try:
        return str(ipaddress.ip_address(address))
    except ValueError:
        return address


class TrapIntake:
    def __init__(
        self,
        settings: TrapSettings,
        inventory: Inventory,
        store: StateStore,
        engine_ids: EngineIdStore | None = None,
    ) -> None:
        self._store = store
        self._engine_ids = engine_ids
        self._sources: dict[str, TrapSource] = {}
        self._learned: dict[str, list[bytes]] = {}
        self._writes: set[asyncio.Task[None]] = set()
        self.inventory = inventory
        self.receiver = TrapReceiver(
            settings, resolve=self.resolve, on_trap=self.on_trap, on_engine_id=self.on_engine_id
        )

    async def start(self) -> None:
        if self._engine_ids is not None:
            self._learned = await self._engine_ids.load_engine_ids()
        self.apply_inventory(self.inventory)
        await self.receiver.start()
        log.info("SNMP trap receiver listening", extra={"port": self.receiver.port})

    async def close(self) -> None:
        await self.receiver.close()
        # The engine-ID table is small and written rarely; a write cut short is learned again.
        for task in self._writes:
            task.cancel()
        await asyncio.gather(*self._writes, return_exceptions=True)

    def apply_inventory(self, inventory: Inventory) -> None:
        self.inventory = inventory
        sources: dict[str, TrapSource] = {}
        shared: dict[str, list[str]] = {}
        config = inventory.config
        shared_creds = [
            credential
            for name in config.trap_credentials
            if isinstance(credential := config.credentials[name], SnmpCredential)
        ]
        for target in inventory.targets.values():
            key = _address_key(target.address)
            shared.setdefault(key, []).append(target.id)
            if key in sources:
                continue  # the first target at an address receives its traps
            configured = [bytes.fromhex(e) for e in target.trap_engine_ids]
            learned = [e for e in dict.fromkeys(self._learned.get(target.id, []))
                       if e not in configured]  # fmt: skip
            sources[key] = TrapSource(
                target=target.id,
                credentials=[c for _, c in target.credentials if isinstance(c, SnmpCredential)]
                + shared_creds,
                engine_ids=configured,
                # Apart from the configured ones: they count against the cap on learning.
                learned_engine_ids=learned,
            )
        for address, ids in shared.items():
            if len(ids) > 1:
                log.info(
                    "several targets share one address; its traps go to the first",
                    extra={"address": address, "target": ids[0], "others": len(ids) - 1},
                )
        self._sources = sources

    def resolve(self, address: str) -> TrapSource | None:
        # Called for every datagram: the address as the socket gives it is tried first, so
        # only unusual spellings pay for parsing.
        source = self._sources.get(address)
        return source if source is not None else self._sources.get(_address_key(address))

    def on_engine_id(self, target: str, engine_id: bytes) -> None:
        self._learned.setdefault(target, []).append(engine_id)
        log.info("learned the SNMPv3 engine ID of a trap sender", extra={"target": target})
        if self._engine_ids is not None:
            task = asyncio.create_task(
                self._engine_ids.save_engine_id(target, engine_id), name="trap-engine-id"
            )
            self._writes.add(task)
            task.add_done_callback(self._written)

    def _written(self, task: asyncio.Task[None]) -> None:
        self._writes.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.warning("could not store a learned SNMPv3 engine ID; it is learned again")

    def on_trap(self, event: TrapEvent) -> None:
        if event.target is not None:  # an unknown sender is counted and logged by the receiver
            self._store.record_trap(event)


class TrapReceiverCollector:
    """The trap port's own counters: unknown senders, drops, malformed datagrams, errors."""

    def __init__(self, stats: TrapStats) -> None:
        self._stats = stats

    def describe(self) -> Iterable[Metric]:
        return []

    def collect(self) -> Iterator[Metric]:
        stats = self._stats
        unknown = CounterMetricFamily(
            "netmon_snmp_traps_unknown_source",
            "SNMP notifications from addresses the inventory does not know",
            labels=["source"],
        )
        for source, count in sorted(stats.unknown_sources.items()):
            unknown.add_metric([source], count)
        yield unknown
        dropped = CounterMetricFamily(
            "netmon_snmp_traps_dropped",
            "SNMP notifications dropped, by reason (auth: wrong community or v3 key; rate: the "
            "per-source rate limit; v3_rate: v3 engine IDs not yet known, beyond a few tries "
            "a minute per source)",
            labels=["target", "reason"],
        )
        for target, count in sorted(stats.auth_failures.items()):
            dropped.add_metric([target, "auth"], count)
        for target, count in sorted(stats.rate_limited.items()):
            dropped.add_metric([target, "rate"], count)
        dropped.add_metric(["", "rate"], stats.rate_limited_unknown)
        for target, count in sorted(stats.v3_rate_limited.items()):
            dropped.add_metric([target, "v3_rate"], count)
        yield dropped
        malformed = CounterMetricFamily(
            "netmon_snmp_traps_malformed",
            "Datagrams on the trap port that are not SNMP notifications",
        )
        malformed.add_metric([], stats.malformed)
        yield malformed
        errors = CounterMetricFamily(
            "netmon_snmp_trap_errors",
            "Failures of the trap port itself, by reason (receiver: handling a datagram; "
            "delivery: recording a trap; v3: a v3 message's keys or USM), logged once a minute",
            labels=["reason"],
        )
        for reason in ERROR_REASONS:  # a fixed set: every series there from the start
            errors.add_metric([reason], stats.errors[reason])
        yield errors

"""Traps into alerts: who may send, what each trap means, and the trap counters.

The receiver (collectors/traps) knows nothing of the inventory or of alerts; this module gives
it a resolver built from the inventory, learns v3 engine IDs into the alert database, and turns
each trap into engine calls: linkDown/linkUp drive the same InterfaceDown alert the polls do,
coldStart/warmStart raise DeviceRebooted, and vendor traps raise what `alerting.trap_alerts`
maps them to.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
from collections.abc import Mapping

from collectors.traps.events import TrapEvent, TrapSource
from collectors.traps.receiver import TrapReceiver, TrapSettings
from netmon.alerting.engine import AlertEngine
from netmon.alerting.rules import STANDARD_TRAPS, TrapRule
from netmon.alerting.store import AlertDB
from netmon.config import Inventory, Target

log = logging.getLogger(__name__)


def _address_key(address: str) -> str:
    try:
        return str(ipaddress.ip_address(address))
    except ValueError:
        return address


class TrapIntake:
    def __init__(
        self, settings: TrapSettings, inventory: Inventory, engine: AlertEngine, db: AlertDB
    ) -> None:
        self._engine = engine
        self._db = db
        self._sources: dict[str, TrapSource] = {}
        self._targets: dict[str, Target] = {}
        self._learned: dict[str, list[bytes]] = {}
        self._rules: dict[str, TrapRule] = {}
        self.inventory = inventory
        self.receiver = TrapReceiver(
            settings, resolve=self.resolve, on_trap=self.on_trap, on_engine_id=self.on_engine_id
        )

    async def start(self) -> None:
        self._learned = await self._db.call(self._db.load_engine_ids)
        self.apply_inventory(self.inventory)
        await self.receiver.start()
        log.info("SNMP trap receiver listening", extra={"port": self.receiver.port})

    async def close(self) -> None:
        await self.receiver.close()

    def apply_inventory(self, inventory: Inventory) -> None:
        self.inventory = inventory
        sources: dict[str, TrapSource] = {}
        shared: dict[str, list[str]] = {}
        config = inventory.config
        shared_creds = [config.credentials[name] for name in config.trap_credentials]
        for target in inventory.targets.values():
            key = _address_key(target.address)
            shared.setdefault(key, []).append(target.id)
            if key in sources:
                continue  # the first target at an address receives its traps
            configured = [bytes.fromhex(e) for e in target.trap_engine_ids]
            learned = [e for e in self._learned.get(target.id, []) if e not in configured]
            sources[key] = TrapSource(
                target=target.id,
                credentials=[credential for _, credential in target.credentials] + shared_creds,
                engine_ids=[*configured, *learned],
            )
        for address, ids in shared.items():
            if len(ids) > 1:
                log.info(
                    "several targets share one address; its traps go to the first",
                    extra={"address": address, "target": ids[0], "others": len(ids) - 1},
                )
        self._sources = sources
        self._targets = dict(inventory.targets)
        self._rules = trap_rules(inventory.config.alerting.trap_alerts)

    def resolve(self, address: str) -> TrapSource | None:
        # Called for every datagram: the address as the socket gives it is tried first, so
        # only unusual spellings pay for parsing.
        source = self._sources.get(address)
        return source if source is not None else self._sources.get(_address_key(address))

    def on_engine_id(self, target: str, engine_id: bytes) -> None:
        self._learned.setdefault(target, []).append(engine_id)
        log.info("learned the SNMPv3 engine ID of a trap sender", extra={"target": target})
        # The engine-ID table is small and written rarely; a lost write is learned again.
        self._db_write(target, engine_id)

    def _db_write(self, target: str, engine_id: bytes) -> None:
        task = asyncio.ensure_future(self._db.call(self._db.save_engine_id, target, engine_id))
        task.add_done_callback(lambda f: f.exception() if not f.cancelled() else None)

    def on_trap(self, event: TrapEvent) -> None:
        if event.target is None:
            return  # counted and logged by the receiver
        target = self._targets.get(event.target)
        if target is None:
            return
        if event.trap in ("linkDown", "linkUp"):
            self._engine.interface_trap(target, event.if_index, event.trap == "linkDown")
            return
        for key, rule in self._rules.items():
            if rule.clear_trap in (event.trap, event.trap_oid):
                self._engine.clear_event(rule.alertname, target, {})
            if key in (event.trap, event.trap_oid):
                self._engine.fire_event(
                    rule.alertname,
                    target,
                    severity=rule.severity,
                    hold=rule.hold,
                    extra={"trap": event.trap},
                    summary=rule.summary,
                )


def trap_rules(configured: Mapping[str, TrapRule]) -> dict[str, TrapRule]:
    """The standard traps' alerts, with the config's (vendor) mapping over them."""
    rules = {name: TrapRule.model_validate(rule) for name, rule in STANDARD_TRAPS.items()}
    rules.update(configured)
    return rules

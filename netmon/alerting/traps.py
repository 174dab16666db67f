"""Traps into alerts: what each trap from an inventory target means.

A state-store listener: linkDown/linkUp drive the same InterfaceDown alert the polls do,
coldStart/warmStart raise DeviceRebooted, and vendor traps raise what `alerting.trap_alerts`
maps them to. Receiving, authenticating and counting traps is the service's (netmon/traps.py).
"""

from __future__ import annotations

from collections.abc import Mapping

from netmon.alerting.engine import AlertEngine
from netmon.alerting.rules import STANDARD_TRAPS
from netmon.config.rules import TrapRule
from netmon.inventory import Inventory
from netmon.model import TrapEvent
from netmon.state import TargetState


class TrapAlerts:
    def __init__(self, inventory: Inventory, engine: AlertEngine) -> None:
        self._engine = engine
        self._rules: dict[str, TrapRule] = {}
        self.apply_inventory(inventory)

    def apply_inventory(self, inventory: Inventory) -> None:
        self._rules = trap_rules(inventory.config.alerting.trap_alerts)

    def on_trap(self, state: TargetState, event: TrapEvent) -> None:
        target = state.target
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

"""Topology: who hangs off whom, and what that says about a target that is down.

A parent is cut when it is down, its uplink is, or most of what hangs off it is; a down target
under a cut ancestor, or among siblings losing echoes too, may be part of something bigger and
is held to be grouped; the down targets behind each cut parent are the inputs of its
DistrictUnreachable alert. This reads the state store and the tracked alerts and changes
neither: holding, grouping and firing are the lifecycle's.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass

from netmon.alerting.model import fingerprint
from netmon.alerting.tracked import Tracked
from netmon.config.rules import Rule, TopologyConfig
from netmon.inventory import Inventory, Target
from netmon.state import Reach, StateStore

GROUP_ALERT = "DistrictUnreachable"


def group_rule(rules: Mapping[str, Rule]) -> Rule:
    """The DistrictUnreachable rule: the configured one, else the default."""
    configured = rules.get(GROUP_ALERT)
    if configured is not None:
        return configured
    # `for`: the endpoints of a cut district are found down within about a second of each
    # other (their pings are spread over the interval); the first page lists them all.
    return Rule.model_validate(
        {"metric": "down", "levels": [{"severity": "critical", "above": 0.5}],
         "for": 1.0, "clear_for": 0}
    )  # fmt: skip


@dataclass(frozen=True, slots=True)
class CutOff:
    """A parent and the down targets behind it (none unless it is cut), sorted by id."""

    parent: Target
    behind: list[str]
    names: list[str]  # display names of `behind`, in the same order


class Topology:
    def __init__(
        self, *, store: StateStore, alerts: Mapping[str, Tracked], settings: TopologyConfig
    ) -> None:
        self._store = store
        self._alerts = alerts
        self.settings = settings
        self._children: dict[str, list[str]] = {}

    def apply_inventory(self, inventory: Inventory) -> None:
        children: dict[str, list[str]] = {}
        for target in inventory.targets.values():
            if target.parent is not None:
                children.setdefault(target.parent, []).append(target.id)
        self._children = children

    def children(self, target_id: str) -> Sequence[str]:
        """The targets that hang off this one directly."""
        return self._children.get(target_id, ())

    def target(self, target_id: str) -> Target | None:
        state = self._store.targets.get(target_id)
        return state.target if state is not None else None

    def _down(self, target_id: str) -> bool:
        state = self._store.targets.get(target_id)
        return state is not None and state.reach is Reach.DOWN

    def _descendants(self, target_id: str) -> list[str]:
        found, pending = [], list(self._children.get(target_id, ()))
        while pending:
            child = pending.pop()
            found.append(child)
            pending.extend(self._children.get(child, ()))
        return found

    def is_cut(self, target_id: str) -> bool:
        """The target is unreachable, its uplink is down, or most of what hangs off it is."""
        state = self._store.targets.get(target_id)
        if state is None:
            return False
        if state.reach is Reach.DOWN:
            return True
        uplink = state.target.uplink
        if uplink:
            for device in state.devices.values():
                for interface in device.interfaces.values():
                    if interface.sample.name == uplink and interface.sample.oper_up is False:
                        return True
            key = fingerprint("InterfaceDown", target_id, {"ifname": uplink})
            uplink_alert = self._alerts.get(key)
            if uplink_alert is not None and uplink_alert.raw_active:
                return True
        children = self._children.get(target_id, [])
        down = sum(self._down(child) for child in children)
        settings = self.settings
        return down >= settings.min_children_down and down >= settings.min_ratio_down * len(
            children
        )

    def district_suspect(self, target: Target) -> bool:
        """Whether a down target may be part of something bigger: its parent is cut, or one of
        its siblings is losing echoes too. Only then is its page held back to be grouped; a
        lone endpoint failing among healthy neighbours is paged at once."""
        if target.parent is None:
            return False
        if self.cut_ancestor(target.id) is not None:
            return True
        for sibling in self._children.get(target.parent, ()):
            state = self._store.targets.get(sibling)
            if sibling == target.id or state is None or state.icmp is None:
                continue
            if state.icmp.reach is Reach.DOWN or state.icmp.consecutive_lost > 0:
                return True
        return False

    def cut_ancestor(self, target_id: str) -> str | None:
        """The nearest ancestor of the target that is cut, if any."""
        target = self.target(target_id)
        seen: set[str] = set()
        while target is not None and target.parent is not None and target.parent not in seen:
            seen.add(target.parent)
            if self.is_cut(target.parent):
                return target.parent
            target = self.target(target.parent)
        return None

    def cut_off(self) -> Iterator[CutOff]:
        """Every parent the store knows, with the down targets behind it if it is cut."""
        for parent_id in self._children:
            parent = self.target(parent_id)
            if parent is None:
                continue
            cut = self.is_cut(parent_id)
            behind = sorted(t for t in self._descendants(parent_id) if self._down(t)) if cut else []
            names = []
            for target_id in behind:
                target = self.target(target_id)
                names.append(target.display_name if target else target_id)
            yield CutOff(parent, behind, names)

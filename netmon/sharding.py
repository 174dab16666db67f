"""One inventory over several netmon instances: which targets this shard probes and alerts on.

Rendezvous (highest random weight) hashing: every shard scores every key, the highest score
owns it. Adding a shard takes from each old shard only the keys the new one now scores
highest, about 1/N of them, and moves nothing between the old shards; no table to keep.

The key is the target's district by default (`by: district`), so a district's endpoints, CPEs
and switch stay on one shard and its topology alerts (DistrictUnreachable, endpoints behind a
cut uplink) are judged where all of its targets are. Targets without a district (the core, the
provincial hall) hash by their id.

A shard also watches, without alerting on them, the targets its own ones depend on: their
parents up the topology (a district switch's core router) and their registrars. It probes
them, so that an endpoint behind a dead core is judged behind it, but only the owner raises
and exports their alerts and series (`Target.owned` is False on the others).
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Mapping

from netmon.config.schema import Config, ShardingConfig
from netmon.inventory import Inventory, Target


class ShardSpecError(ValueError):
    """A `--shard` that is not K/N with 1 <= K <= N."""


def parse_shard(text: str) -> tuple[int, int]:
    """`--shard 2/3` -> (2, 3)."""
    shard, slash, of = text.partition("/")
    if not slash or not shard.isdigit() or not of.isdigit() or not 1 <= int(shard) <= int(of):
        raise ShardSpecError(f"--shard {text!r}: expected K/N with 1 <= K <= N, e.g. 1/2")
    return int(shard), int(of)


def shard_key(target: Target, by: str) -> str:
    if by == "district" and target.district:
        return "district:" + target.district.casefold()
    return "target:" + target.id


def owner(key: str, of: int) -> int:
    """The shard (1..of) that owns `key`: the highest of the shards' scores for it."""

    def score(shard: int) -> bytes:
        return hashlib.blake2b(f"{shard}\0{key}".encode(), digest_size=8).digest()

    return max(range(1, of + 1), key=score)


def shard_map(targets: Mapping[str, Target], sharding: ShardingConfig) -> dict[str, int]:
    """Every target's owning shard."""
    keys = {t.id: shard_key(t, sharding.by) for t in targets.values()}
    owners = {key: owner(key, sharding.of) for key in set(keys.values())}
    return {target_id: owners[key] for target_id, key in keys.items()}


def _needed(owned: set[str], targets: Mapping[str, Target]) -> set[str]:
    """What judging the `owned` targets reads besides them: their parents up to the top and
    their registrars, and what those need in turn."""
    found: set[str] = set()
    todo = list(owned)
    while todo:
        target = targets[todo.pop()]
        for needed in (target.parent, target.registrar):
            if needed is not None and needed in targets and needed not in found | owned:
                found.add(needed)
                todo.append(needed)
    return found


def apply_sharding(inventory: Inventory, config: Config) -> Inventory:
    """The inventory this shard runs: its own targets, and the ones they need watched."""
    sharding = config.sharding
    if sharding is None:
        return inventory
    owners = shard_map(inventory.targets, sharding)
    owned = {t for t, shard in owners.items() if shard == sharding.shard}
    watched = _needed(owned, inventory.targets)
    targets = {
        target_id: target if target_id in owned else dataclasses.replace(target, owned=False)
        for target_id, target in inventory.targets.items()
        if target_id in owned or target_id in watched
    }
    return dataclasses.replace(inventory, targets=targets, shard_map=owners)

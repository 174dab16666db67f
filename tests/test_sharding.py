"""Sharding: which targets a shard runs, what moves when a shard is added, and what a move
does to the alerts of the targets that change hands."""

from __future__ import annotations

import json
import subprocess
import urllib.request
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from netmon.alerting.store import AlertDB
from netmon.config.errors import ConfigError
from netmon.config.loader import load_data
from netmon.config.schema import ShardingConfig
from netmon.exporter import store_families
from netmon.inventory_import import csv_to_config
from netmon.sharding import owner, parse_shard, shard_map
from netmon.state import StateStore
from tests.helpers import NetmonProcess, metric_value, netmon_command, write_config
from tests.test_alert_engine import Clock, Harness, transitions

DATA = Path(__file__).parent / "data"


def _province(shard: int | None = None, of: int = 2, **sharding: Any) -> Any:
    """The lab's 215 endpoints (27 districts and the province's own sites), as imported."""
    data = csv_to_config((DATA / "endpoints.csv").read_text(encoding="utf-8"), instance="p")
    if shard is not None:
        data["sharding"] = {"shard": shard, "of": of, **sharding}
    return load_data(data)


def test_rendezvous_hashing_moves_only_a_new_shards_share_and_only_to_it() -> None:
    keys = [f"target:ep-{i}" for i in range(3000)]
    two = {key: owner(key, 2) for key in keys}
    three = {key: owner(key, 3) for key in keys}
    moved = [key for key in keys if two[key] != three[key]]
    # Each key goes to the new shard or stays: nothing moves between the old shards.
    assert {three[key] for key in moved} == {3}
    # About a third moves: 1,000 expected, binomial sd 26; ±130 is five of them.
    assert abs(len(moved) - 1000) < 130
    assert all(abs(count - 1000) < 130 for count in Counter(three.values()).values())


def test_a_districts_targets_stay_on_one_shard_and_the_shards_split_the_province() -> None:
    whole = _province()
    owners = shard_map(whole.targets, ShardingConfig(shard=1, of=2))
    by_district: dict[str, set[int]] = {}
    for target in whole.targets.values():
        if target.district:
            by_district.setdefault(target.district, set()).add(owners[target.id])
    assert len(by_district) >= 27
    assert all(len(shards) == 1 for shards in by_district.values())
    first, second = _province(1), _province(2)
    owned = [{t for t, target in inv.targets.items() if target.owned} for inv in (first, second)]
    assert owned[0].isdisjoint(owned[1])
    assert owned[0] | owned[1] == set(whole.targets)
    assert min(len(o) for o in owned) > len(whole.targets) / 4  # neither shard near empty
    assert first.shard_map == second.shard_map == owners


def test_a_shard_watches_what_its_targets_need_without_owning_it() -> None:
    targets = [
        {"id": "core", "address": "192.0.2.1", "kind": "router"},
        {"id": "sw-a", "address": "192.0.2.2", "kind": "switch", "district": "A",
         "parent": "core"},
        {"id": "ep-a", "address": "192.0.2.3", "district": "A", "parent": "sw-a"},
    ]  # fmt: skip
    shards = [
        load_data({"targets": targets, "sharding": {"shard": k, "of": 8}}) for k in range(1, 9)
    ]
    # District A hashes to shard 3 of 8, the core to shard 5 (blake2b: fixed for ever).
    district_a, core_owner = shards[3 - 1], shards[5 - 1]
    assert district_a.targets["ep-a"].owned
    assert district_a.targets["sw-a"].owned
    # The core is watched on shard 3 (ep-a is judged behind it) and owned by shard 5 alone.
    assert not district_a.targets["core"].owned
    assert core_owner.targets["core"].owned
    assert "ep-a" not in core_owner.targets
    assert [k for k, inv in enumerate(shards, 1) if set(inv.targets) == set()] == [
        k for k in range(1, 9) if k not in (3, 5)
    ]


def test_shard_settings_are_checked_where_they_are_given() -> None:
    with pytest.raises(ConfigError, match=r"sharding: .*shards are numbered 1\.\.2"):
        load_data({"sharding": {"shard": 3, "of": 2}})
    with pytest.raises(ConfigError, match="instances: 1 given for 2 shards"):
        load_data({"sharding": {"shard": 1, "of": 2, "instances": ["10.0.0.1:9842"]}})
    assert parse_shard("2/3") == (2, 3)
    answer = subprocess.run(
        [*netmon_command(), "run", "--config", "/nonexistent", "--shard", "3/2"],
        capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip
    assert answer.returncode == 2
    assert "--shard '3/2': expected K/N with 1 <= K <= N" in answer.stderr


async def test_a_target_that_moves_to_another_shard_is_handed_over_not_resolved(
    db: AlertDB,
) -> None:
    targets = [
        {"id": f"ep{i}", "address": f"192.0.2.{i}", "district": f"D{i}"} for i in range(1, 41)
    ]
    two = load_data({"targets": targets, "sharding": {"shard": 1, "of": 2}})
    three = load_data({"targets": targets, "sharding": {"shard": 1, "of": 3}})
    leaving = sorted(t for t in two.targets if t not in three.targets)
    staying = sorted(t for t in three.targets)
    assert leaving
    assert staying
    h = Harness(two, db, Clock())
    for target in (leaving[0], staying[0]):
        h.up(target)
        h.down(target)
    h.store.apply_inventory(three)
    h.engine.apply_inventory(three)
    h.advance(5)
    # The one that left is the new shard's to judge: no "resolved" goes out for it here.
    assert transitions(await h.events()) == [
        ("EndpointDown", leaving[0], "firing"),
        ("EndpointDown", staying[0], "firing"),
    ]
    assert [alert["target"] for alert in h.engine.listing()] == [staying[0]]
    # ...and it is not restored as firing after a restart either.
    assert [stored.event.target for stored in await db.call(db.load_alerts)] == [staying[0]]


def test_every_shard_serves_the_map_prometheus_discovers_the_shards_by(tmp_path: Path) -> None:
    config = write_config(
        tmp_path / "netmon.yaml",
        {
            "alerting": {"enabled": False},
            "sharding": {"shard": 1, "of": 2, "instances": ["127.0.0.1:9101", "127.0.0.1:9102"]},
            "targets": [
                {"id": f"ep{i}", "address": "127.0.0.1", "district": f"D{i}"} for i in range(1, 9)
            ],
        },
    )
    netmon = NetmonProcess(config, extra_args=["--shard", "2/2"])  # the command line wins
    try:
        shards = json.loads(_get(netmon.url + "/api/v1/shards"))
        assert shards["sharding"]["shard"] == 2
        owned = {t for t, shard in shards["map"].items() if shard == 2}
        assert shards["targets"] == {"owned": len(owned), "watched": 0}
        assert json.loads(_get(netmon.url + "/api/v1/shards/sd")) == [
            {"targets": ["127.0.0.1:9101"], "labels": {"shard": "1", "shards": "2"}},
            {"targets": ["127.0.0.1:9102"], "labels": {"shard": "2", "shards": "2"}},
        ]
        text = netmon.metrics()
        assert metric_value(text, "netmon_shard_info", shard="2", of="2", by="district") == 1
        targets = json.loads(_get(netmon.url + "/api/v1/targets"))["targets"]
        assert {target["id"] for target in targets} == owned
    finally:
        netmon.stop()


def _get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as answer:  # noqa: S310
        return str(answer.read().decode())


def test_a_watched_target_is_exported_by_its_owner_only() -> None:
    targets = [
        {"id": "core", "address": "192.0.2.1", "kind": "router"},
        {"id": "ep-a", "address": "192.0.2.3", "district": "A", "parent": "core"},
    ]
    # District A hashes to shard 3 of 8, the core to shard 5 (see the test above).
    watching = load_data({"targets": targets, "sharding": {"shard": 3, "of": 8}})
    owning = load_data({"targets": targets, "sharding": {"shard": 5, "of": 8}})
    exported = {}
    for name, inventory in (("watching", watching), ("owning", owning)):
        store = StateStore()
        store.apply_inventory(inventory)
        exported[name] = {
            sample.labels["target"]
            for family in store_families(store, 0.0)
            if family.name == "netmon_target_info"
            for sample in family.samples
        }
    assert exported == {"watching": {"ep-a"}, "owning": {"core"}}

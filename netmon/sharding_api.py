"""The shard map over HTTP and on /metrics.

    GET /api/v1/shards      this instance's shard, and which shard owns each target
    GET /api/v1/shards/sd   Prometheus http_sd: one target group per shard (sharding.instances:
                            its address, or its HA replicas'), labelled `shard`, so one scrape
                            job finds every shard and replica

Every shard serves the same map (the whole inventory is in each one's config), so Prometheus
may ask any of them, and a re-shard shows in all of them at their next reload.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator

from aiohttp import web
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from netmon.inventory import Inventory

InventorySource = Callable[[], Inventory]


def shard_document(inventory: Inventory) -> dict[str, object]:
    sharding = inventory.config.sharding
    owned = sum(1 for target in inventory.targets.values() if target.owned)
    return {
        "instance": inventory.config.instance,
        "sharding": None if sharding is None else sharding.model_dump(),
        "targets": {"owned": owned, "watched": len(inventory.targets) - owned},
        "map": dict(sorted(inventory.shard_map.items())),
    }


def service_discovery(inventory: Inventory) -> list[dict[str, object]]:
    sharding = inventory.config.sharding
    if sharding is None:
        return []
    return [
        {
            "targets": [addresses] if isinstance(addresses, str) else list(addresses),
            "labels": {"shard": str(index), "shards": str(sharding.of)},
        }
        for index, addresses in enumerate(sharding.instances, start=1)
    ]


def shard_routes(inventory: InventorySource) -> list[web.RouteDef]:
    def answer(document: object) -> web.Response:
        return web.json_response(document, dumps=lambda value: json.dumps(value))

    async def shards(_request: web.Request) -> web.Response:
        return answer(shard_document(inventory()))

    async def discovery(_request: web.Request) -> web.Response:
        return answer(service_discovery(inventory()))

    return [web.get("/api/v1/shards", shards), web.get("/api/v1/shards/sd", discovery)]


class ShardCollector(Collector):
    """netmon_shard_info and the targets this shard owns and watches."""

    def __init__(self, inventory: InventorySource) -> None:
        self._inventory = inventory

    def collect(self) -> Iterator[Metric]:
        inventory = self._inventory()
        sharding = inventory.config.sharding
        info = GaugeMetricFamily(
            "netmon_shard_info",
            "this instance's shard of the inventory (1 of 1 when not sharded)",
            labels=["shard", "of", "by"],
        )
        if sharding is None:
            info.add_metric(["1", "1", ""], 1.0)
        else:
            info.add_metric([str(sharding.shard), str(sharding.of), sharding.by], 1.0)
        targets = GaugeMetricFamily(
            "netmon_shard_targets",
            "targets this instance owns (probes, alerts on, exports) and watches (probes for the "
            "targets behind them: their parents and registrars, owned by another shard)",
            labels=["role"],
        )
        owned = sum(1 for target in inventory.targets.values() if target.owned)
        targets.add_metric(["owned"], float(owned))
        targets.add_metric(["watched"], float(len(inventory.targets) - owned))
        yield from (info, targets)

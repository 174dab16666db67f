"""netmon beyond one machine, end to end on real engines.

Two shards, shard 1 run by an HA pair of replicas (s1a, s1b), shard 2 by s2; a real Prometheus
finding them through the shard map (http_sd); two real Alertmanagers in a gossip cluster, to
which every netmon sends; a webhook receiver of the test's own behind them. Endpoints are
loopback addresses (always answering) and, for the ones that fail, hosts in network namespaces
of the test's own whose link is cut.

What a NOC would notice is checked: each fault is notified once, not once per replica or per
Alertmanager; killing an Alertmanager or a replica loses no notification and adds none;
re-sharding from 2 to 3 moves about a third of the districts, only to the new shard, and no
alert fires or resolves falsely while it happens.

Absence (no duplicate, no false resolve) can only be watched for a while: each watch lasts
longer than the latest a duplicate could come (a cluster member notifies `peer_timeout` x its
position after the first, 3 s here, plus a group interval) and is named where it is made.
"""

from __future__ import annotations

import asyncio
import json
import signal
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from netmon.sharding import owner
from tests.alertmanager_peer import Alertmanager, HttpRecorder
from tests.conftest import require_program
from tests.helpers import NetmonProcess, wait_until, write_config
from tests.lab.netlab import LabHost, NetLab
from tests.peers import Prometheus, free_port

pytestmark = pytest.mark.peer

HANG = 30.0  # a hang guard only
DUPLICATE_WATCH = 8.0  # s: > peer_timeout (3 s) x 1 + group_interval (1 s) + a resend (2 s)
Notification = tuple[str, str, str]  # alertname, target, status


def _districts() -> dict[str, str]:
    """Roles -> district names, chosen by where rendezvous hashing puts them (fixed for ever):
    f1, f3, f4 stay on shard 1 from 2 shards to 3, f2 stays on shard 2, m moves to shard 3;
    the rest are healthy endpoints, some of which move too."""
    wanted: dict[str, Callable[[int, int], bool]] = {
        "f1": lambda two, three: two == three == 1,
        "f3": lambda two, three: two == three == 1,
        "f4": lambda two, three: two == three == 1,
        "f2": lambda two, three: two == three == 2,
        "m": lambda two, three: three == 3,
    }
    chosen: dict[str, str] = {}
    healthy: list[str] = []
    for n in range(1, 200):
        district = f"D{n:03d}"
        key = "district:" + district.casefold()
        two, three = owner(key, 2), owner(key, 3)
        role = next((r for r, fits in wanted.items() if r not in chosen and fits(two, three)), None)
        if role is not None:
            chosen[role] = district
        elif len(healthy) < 12:
            healthy.append(district)
        if len(chosen) == len(wanted) and len(healthy) == 12:
            break
    return {**chosen, **{f"h{i}": d for i, d in enumerate(healthy)}}


def _notifications(hook: HttpRecorder) -> list[Notification]:
    found = []
    for request in hook.on("/hook"):
        for alert in request.json()["alerts"]:
            labels = alert["labels"]
            found.append((labels["alertname"], labels["target"], alert["status"]))
    return found


def _member(workdir: Path, config: dict[str, Any], peers: list[int]) -> Alertmanager:
    """A cluster member on free ports; another program may take a port between our pick and
    Alertmanager's bind (its gossip needs TCP and UDP), so a collision is tried again."""
    failure: AssertionError | None = None
    for attempt in range(3):
        try:
            return Alertmanager(
                workdir / str(attempt), config=config, cluster_port=free_port(), peers=peers
            )
        except AssertionError as exc:
            if "address already in use" not in str(exc):
                raise
            failure = exc
    assert failure is not None
    raise failure


async def _until(condition: Callable[[], bool], what: str) -> None:
    async with asyncio.timeout(HANG):
        while not condition():
            await asyncio.sleep(0.1)
    assert condition(), what


async def test_shards_and_an_ha_pair_notify_each_fault_once_and_reshard_without_false_alerts(
    netlab: NetLab, tmp_path: Path, http_recorder: HttpRecorder
) -> None:
    require_program("prometheus"), require_program("prometheus-alertmanager")
    districts = _districts()
    failing: dict[str, LabHost] = {
        role: netlab.add_host() for role in ("f1", "f2", "m", "f3", "f4")
    }
    for role in ("f1", "f2", "m"):
        failing[role].link_down()  # down from the start
    address: dict[str, str] = {
        role: failing[role].address if role in failing else f"127.0.0.{10 + i}"
        for i, role in enumerate(districts)
    }
    targets = [
        {"id": f"ep-{role}", "address": address[role], "district": district}
        for role, district in districts.items()
    ]

    hook_config = {
        "route": {
            "receiver": "hook",
            "group_by": ["alertname", "target"],
            "group_wait": "0s",
            "group_interval": "1s",
            "repeat_interval": "1h",
        },
        "receivers": [
            {"name": "hook", "webhook_configs": [
                {"url": http_recorder.url + "/hook", "send_resolved": True}
            ]}
        ],
    }  # fmt: skip
    members: list[Alertmanager] = []  # stopped at the end, however far the test got
    ports = {name: free_port() for name in ("s1a", "s1b", "s2", "s3")}

    def config(instance: str, shard: int, of: int, instances: list[Any]) -> Path:
        return write_config(
            tmp_path / f"{instance}.yaml",
            {
                "instance": instance,
                "alerting": {
                    "database": str(tmp_path / f"{instance}.sqlite"),
                    "alertmanager": {"urls": [am1.url, am2.url], "resend_interval": "2s"},
                },
                "sharding": {"shard": shard, "of": of, "instances": instances},
                "targets": targets,
            },
        )

    def at(name: str) -> str:
        return f"127.0.0.1:{ports[name]}"

    two = [[at("s1a"), at("s1b")], at("s2")]
    started: list[NetmonProcess] = []

    def start(instance: str, shard: int, of: int, instances: list[Any]) -> NetmonProcess:
        process = NetmonProcess(
            config(instance, shard, of, instances), extra_args=["--listen", at(instance)]
        )
        started.append(process)
        return process

    prometheus = None
    try:
        am1 = _member(tmp_path / "am1", hook_config, peers=[])
        members.append(am1)
        am2 = _member(tmp_path / "am2", hook_config, peers=[am1.cluster_port or 0])
        members.append(am2)
        s1a, s1b, s2 = await asyncio.gather(
            asyncio.to_thread(start, "s1a", 1, 2, two),
            asyncio.to_thread(start, "s1b", 1, 2, two),
            asyncio.to_thread(start, "s2", 2, 2, two),
        )
        prometheus = await asyncio.to_thread(
            Prometheus,
            require_program("prometheus"),
            tmp_path,
            {},
            scrape_configs=[
                {
                    "job_name": "netmon",
                    "http_sd_configs": [
                        {"url": f"http://{at('s2')}/api/v1/shards/sd", "refresh_interval": "1s"}
                    ],
                }
            ],
        )

        def scraped() -> dict[str, str]:
            return {
                series["metric"]["instance"]: series["metric"]["shard"]
                for series in prometheus.query('up{job="netmon"} == 1')
            }

        # Prometheus found every shard and replica through the map, labelled by shard.
        await asyncio.to_thread(
            wait_until, lambda: len(scraped()) == 3, timeout=HANG, what="3 netmons scraped"
        )
        assert scraped() == {at("s1a"): "1", at("s1b"): "1", at("s2"): "2"}

        # A fault on each shard (and m, on shard 1 or 2 for now): one notification each,
        # though two replicas send shard 1's and two Alertmanagers receive everything.
        down = {("EndpointDown", f"ep-{role}", "firing") for role in ("f1", "f2", "m")}
        await _until(lambda: down <= set(_notifications(http_recorder)), "3 faults notified")
        await asyncio.sleep(DUPLICATE_WATCH)  # the duplicate watch (module docstring)
        assert Counter(_notifications(http_recorder)) == Counter(down)

        # One Alertmanager dies: a new fault still reaches the receiver, once.
        am1.stop()
        failing["f3"].link_down()
        f3 = ("EndpointDown", "ep-f3", "firing")
        await _until(lambda: f3 in _notifications(http_recorder), "f3 notified by am2")
        # One replica of shard 1 dies: its twin goes on; a fault after it, once.
        s1b.stop()
        failing["f4"].link_down()
        f4 = ("EndpointDown", "ep-f4", "firing")
        await _until(lambda: f4 in _notifications(http_recorder), "f4 notified")
        await asyncio.sleep(DUPLICATE_WATCH)
        assert Counter(_notifications(http_recorder)) == Counter(down | {f3, f4})

        # Re-sharding from 2 to 3: s3 starts, s1a and s2 reload the new map.
        three = [at("s1a"), at("s2"), at("s3")]
        before = json.loads(s2.get("/api/v1/shards")[2])["map"]
        config("s1a", 1, 3, three)
        config("s2", 2, 3, three)
        s3 = await asyncio.to_thread(start, "s3", 3, 3, three)
        s1a.signal(signal.SIGHUP)
        s2.signal(signal.SIGHUP)

        def resharded() -> bool:
            return all(
                json.loads(p.get("/api/v1/shards")[2])["sharding"]["of"] == 3 for p in (s1a, s2, s3)
            )

        await _until(resharded, "every shard on the new map")
        after = json.loads(s3.get("/api/v1/shards")[2])["map"]
        moved = {t for t in before if before[t] != after[t]}
        assert {after[t] for t in moved} == {3}  # only to the new shard
        assert "ep-m" in moved
        assert 0.15 < len(moved) / len(before) < 0.55  # about a third (17 districts)

        def firing_on(process: NetmonProcess) -> set[str]:
            listing = json.loads(process.get("/api/v1/alerts")[2])["alerts"]
            return {a["target"] for a in listing if a["state"] == "firing"}

        # m is shard 3's now: it raised it again; the old owner let it go without a word.
        await _until(lambda: "ep-m" in firing_on(s3), "s3 judges ep-m down")
        assert "ep-m" not in firing_on(s1a) | firing_on(s2)
        await asyncio.sleep(DUPLICATE_WATCH)
        # No resolve of a fault that holds, no second firing of ep-m, nothing for the
        # healthy endpoints that moved.
        assert Counter(_notifications(http_recorder)) == Counter(down | {f3, f4})
        await asyncio.to_thread(
            wait_until, lambda: at("s3") in scraped(), timeout=HANG, what="s3 scraped"
        )
        assert scraped()[at("s3")] == "3"
    finally:
        for process in started:
            process.stop()
        if prometheus is not None:
            prometheus.stop()
        for member in members:
            member.stop()

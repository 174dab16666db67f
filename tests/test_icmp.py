"""ICMP collector against real packets: loopback, and lab hosts with delay, loss and outages."""

from __future__ import annotations

import asyncio
import json
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

import pytest

from collectors.base import Collector
from collectors.icmp import IcmpCollector, IcmpSettings
from collectors.pinger import Pinger
from netmon.config.loader import load_data
from netmon.confirm import Confirmer
from netmon.model import Observation, ProbeTarget
from netmon.scheduler import Scheduler
from netmon.state import Reach, ReachChange, StateStore
from tests.lab.netlab import NetLab

LOOPBACK_215 = [f"127.0.{1 + i // 250}.{1 + i % 250}" for i in range(215)]


async def test_215_loopback_targets_answer_without_false_loss() -> None:
    async with Pinger() as pinger:
        rounds = await asyncio.gather(
            *(pinger.ping(a, count=5, spacing=0.05, timeout=1.0) for a in LOOPBACK_215)
        )
    rtts = [rtt for round_ in rounds for rtt in round_]
    assert len(rtts) == 215 * 5
    assert None not in rtts, f"{rtts.count(None)} echoes reported lost on loopback"
    assert statistics.median(r for r in rtts if r is not None) < 0.002


async def test_ipv6_loopback() -> None:
    async with Pinger() as pinger:
        rtts = await pinger.ping("::1", count=3, spacing=0.01, timeout=1.0)
    assert all(rtt is not None and rtt < 0.01 for rtt in rtts)


async def test_two_pingers_on_one_host_do_not_steal_each_others_replies() -> None:
    # Every raw ICMP socket sees every reply; matching must keep them apart.
    async with Pinger() as first, Pinger() as second:
        results = await asyncio.gather(
            *(p.ping(a, count=3, spacing=0.01, timeout=1.0)
              for a in LOOPBACK_215[:50] for p in (first, second))
        )  # fmt: skip
    assert all(None not in rtts for rtts in results)


async def test_hostname_is_resolved() -> None:
    collector = IcmpCollector()
    await collector.start()
    try:
        settings = IcmpSettings(count=2, spacing=0.01, timeout=0.5)
        echo = await collector.collect(ProbeTarget(id="me", address="localhost"), settings)
    finally:
        await collector.close()
    assert echo.ok
    assert echo.address in ("127.0.0.1", "::1")
    assert echo.received == 2


async def test_unresolvable_name_counts_as_lost() -> None:
    collector = IcmpCollector()
    await collector.start()
    try:
        settings = IcmpSettings(count=2, timeout=0.5)
        target = ProbeTarget(id="ghost", address="no-such-host.invalid")
        echo = await collector.collect(target, settings)
    finally:
        await collector.close()
    assert not echo.ok
    assert echo.reason == "resolve"
    assert echo.rtts == (None, None)


@pytest.mark.netns
async def test_delay_is_measured_within_2ms(netlab: NetLab) -> None:
    host = netlab.add_host(delay=0.020)
    async with Pinger() as pinger:
        rtts = await pinger.ping(host.address, count=40, spacing=0.01, timeout=1.0)
    received = [rtt for rtt in rtts if rtt is not None]
    assert len(received) == 40
    assert abs(statistics.median(received) - 0.020) < 0.002, statistics.median(received)


@pytest.mark.netns
async def test_loss_ratio_converges(netlab: NetLab) -> None:
    host = netlab.add_host(loss=0.3)
    store = StateStore()
    store.apply_inventory(
        _inventory({"lossy": host.address}, count=100, spacing=0.005, timeout=0.5, interval=2)
    )
    collector = IcmpCollector()
    await collector.start()
    try:
        target = store.targets["lossy"].target
        settings = target.probe("icmp")
        assert settings is not None
        for _ in range(3):
            store.record(await collector.collect(target.probe_target, settings))
    finally:
        await collector.close()
    icmp = store.targets["lossy"].icmp
    assert icmp is not None
    assert icmp.sent_total == 300
    loss = icmp.window.loss_ratio()
    assert loss is not None
    assert abs(loss - 0.3) <= 0.1, loss


@pytest.mark.netns
async def test_probes_carry_the_dscp_marking(netlab: NetLab) -> None:
    host = netlab.add_host(record=True)
    async with Pinger() as pinger:
        await pinger.ping(host.address, count=3, spacing=0.01, timeout=1.0, dscp=34)  # AF41
        await pinger.ping(host.address, count=2, spacing=0.01, timeout=1.0)
    tos = [row[2] for row in host.recorded()]
    assert tos == [34 << 2] * 3 + [0] * 2


@pytest.mark.netns
async def test_target_goes_down_after_n_losses_and_up_after_m_replies(netlab: NetLab) -> None:
    host = netlab.add_host()
    inventory = _inventory(
        {"site": host.address}, interval=0.1, timeout=0.08, down_after=4, up_after=3
    )
    store = StateStore()
    changes: list[tuple[Reach, int, int]] = []

    def on_change(change: ReachChange) -> None:
        icmp = store.targets["site"].icmp
        assert icmp is not None
        changes.append((change.reach, icmp.consecutive_lost, icmp.consecutive_received))

    store.on_reach_change(on_change)
    store.apply_inventory(inventory)
    collector = IcmpCollector()
    await collector.start()
    scheduler = Scheduler(store=store, collectors={"icmp": collector}, max_concurrency=10)
    try:
        scheduler.apply(inventory)
        await _until(lambda: store.targets["site"].reach is Reach.UP)
        host.link_down()
        await _until(lambda: store.targets["site"].reach is Reach.DOWN)
        host.link_up()
        await _until(lambda: store.targets["site"].reach is Reach.UP and len(changes) == 3)
    finally:
        await scheduler.stop()
        await collector.close()
    assert changes == [(Reach.UP, 0, 1), (Reach.DOWN, 4, 0), (Reach.UP, 0, 3)]


UNPRIVILEGED_PING = """
import asyncio, json
from collectors.pinger import Pinger
async def main():
    try:
        async with Pinger() as pinger:
            rtts = await pinger.ping("127.0.0.1", count=3, spacing=0.01, timeout=1.0)
            v6 = await pinger.ping("::1", count=1, timeout=1.0)
            print(json.dumps({"mode": pinger.mode, "rtts": list(rtts) + list(v6)}))
    except PermissionError as exc:
        print(json.dumps({"error": str(exc)}))
asyncio.run(main())
"""


def _run_without_capabilities(namespace: str) -> dict[str, object]:
    # Root with an empty capability bounding set behaves like an ordinary user here.
    result = subprocess.run(
        ["ip", "netns", "exec", namespace, "setpriv", "--inh-caps=-all", "--bounding-set=-all",
         sys.executable, "-c", UNPRIVILEGED_PING],
        capture_output=True, text=True, timeout=30, cwd=Path(__file__).parents[1],
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    output: dict[str, object] = json.loads(result.stdout)
    return output


@pytest.mark.netns
def test_without_cap_net_raw_unprivileged_sockets_are_used(netlab: NetLab) -> None:
    namespace = netlab.add_namespace("net.ipv4.ping_group_range=0 2147483647")
    output = _run_without_capabilities(namespace)
    assert output["mode"] == "datagram"
    rtts = output["rtts"]
    assert isinstance(rtts, list)
    assert len(rtts) == 4
    assert all(rtt is not None and rtt < 0.01 for rtt in rtts)


@pytest.mark.netns
def test_without_any_icmp_permission_the_error_says_what_is_needed(netlab: NetLab) -> None:
    namespace = netlab.add_namespace("net.ipv4.ping_group_range=1 0")
    output = _run_without_capabilities(namespace)
    assert output == {
        "error": "ICMP needs a raw socket (root or CAP_NET_RAW) or an unprivileged ICMP socket "
        "(group 0 inside net.ipv4.ping_group_range)"
    }


async def _until(condition: object, timeout: float = 10.0) -> None:
    assert callable(condition)
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.02)


def _inventory(addresses: dict[str, str], **icmp: object) -> object:
    return load_data(
        {
            "defaults": {"icmp": icmp},
            "targets": [{"id": tid, "address": address} for tid, address in addresses.items()],
        }
    )


@pytest.mark.netns
async def test_default_settings_take_a_silent_target_down(netlab: NetLab) -> None:
    # Defaults: one echo a second, 800 ms timeout; a lost echo is confirmed by 10 more sent at
    # once, and the target is down when they are all lost too.
    host = netlab.add_host(loss=1.0)
    inventory = load_data({"targets": [{"id": "silent", "address": host.address}]})
    store = StateStore()
    store.apply_inventory(inventory)
    collector = IcmpCollector()
    await collector.start()
    collectors: dict[str, Collector] = {"icmp": collector}
    scheduler = Scheduler(store=store, collectors=collectors, max_concurrency=10)
    confirmer = Confirmer(store, collectors)
    try:
        scheduler.apply(inventory)
        await _until(lambda: store.targets["silent"].reach is Reach.DOWN, timeout=6)
        icmp = store.targets["silent"].icmp
        assert icmp is not None
        sent = icmp.sent_total
        # Two more rounds. On time: the scheduler keeps a grid and counts any slot a round
        # pushed back as skipped (asserted 0 below).
        await _until(lambda: icmp.sent_total >= sent + 2, timeout=5)
    finally:
        await scheduler.stop()
        await confirmer.stop()
        await collector.close()
    # Down on the first regular echo and its confirmation (the second regular echo may be
    # lost in the same instant), and nothing more to confirm once it is down.
    assert sent in (1, 2)
    assert (icmp.confirm_sent_total, icmp.confirm_received_total) == (10, 0)
    assert icmp.sent_total == sent + 2  # still one echo a second: no round pushed back the next
    assert store.stats.skipped_runs.get("icmp", 0) == 0
    assert icmp.window.loss_ratio() == 1.0


async def test_a_send_error_for_one_target_spares_the_others() -> None:
    # The kernel refuses echoes to a broadcast address (EACCES) without SO_BROADCAST.
    async with Pinger() as pinger:
        good, refused = await pinger.ping_many(
            ["127.0.0.1", "127.255.255.255"], count=2, spacing=0.01, timeout=0.5
        )
    assert None not in good.rtts
    assert good.error is None
    assert refused.rtts == (None, None)
    assert refused.error == "Permission denied"


async def test_names_resolve_in_the_background_without_touching_state() -> None:
    store = StateStore()
    inventory = load_data(
        {
            "defaults": {"icmp": {"interval": 0.2, "timeout": 0.1}},
            "targets": [{"id": "named", "address": "localhost"}],
        }
    )
    store.apply_inventory(inventory)
    seen: list[str | None] = []
    collector = IcmpCollector()
    await collector.start()
    scheduler = Scheduler(store=store, collectors={"icmp": collector}, max_concurrency=10)
    original = store.record

    def spy(observation: Observation) -> None:
        seen.append(observation.reason)
        original(observation)

    store.record = spy  # type: ignore[method-assign]
    try:
        scheduler.apply(inventory)
        await _until(lambda: store.targets["named"].reach is Reach.UP)
    finally:
        await scheduler.stop()
        await collector.close()
    assert seen[0] == "resolving"  # the first round did not wait for the resolver
    assert seen[-1] is None


# s: a full garbage collection at 5,000 targets took 0.14-0.41 s (issue 17). Counted, it
# would make every RTT at least this; the lab's responder, a process of its own, may answer
# tens of ms late on a loaded machine, so the bound is half of it.
STALL = 0.5


class _StallingSocket:
    """A socket whose sends start `STALL` late, as when the collector pauses (a garbage
    collection) between building an echo and handing it to the kernel."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock

    def __getattr__(self, name: str) -> object:
        return getattr(self._sock, name)

    def sendmsg(self, *args: object) -> int:
        time.sleep(STALL)
        return self._sock.sendmsg(*args)  # type: ignore[arg-type]


@pytest.mark.parametrize("where", ["127.0.0.1", "::1", "veth"])
async def test_a_stall_before_an_echo_leaves_is_not_counted_as_network_time(
    where: str, request: pytest.FixtureRequest
) -> None:
    """The RTT runs from the kernel's TX timestamp, not from when netmon meant to send: no
    false spikes of a pause's length (and HighJitter alerts) on a 0.01 ms path."""
    address = where
    if where == "veth":
        netlab: NetLab = request.getfixturevalue("netlab")
        address = netlab.add_host().address
    async with Pinger() as pinger:
        for fsock in pinger._sockets.values():
            fsock.sock = _StallingSocket(fsock.sock)  # type: ignore[assignment]
        rtts = await pinger.ping(address, count=3, spacing=0.01, timeout=2.0)
    assert all(rtt is not None for rtt in rtts), rtts
    assert max(rtt for rtt in rtts if rtt is not None) < STALL / 2, rtts

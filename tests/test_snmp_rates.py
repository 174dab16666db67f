"""Utilisation from an agent whose counters advance at a known rate: within 1% of the truth,
across a 32-bit wrap and across a reboot (snmpsim restarted: sysUpTime and counters start over)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from collectors.snmp.client import Agent, SnmpClient
from collectors.snmp.collector import SnmpCollector
from collectors.snmp.settings import SnmpSettings
from netmon.config.loader import load_data
from netmon.credentials import SnmpCredential
from netmon.model import DeviceSample, ProbeTarget
from netmon.state import StateStore
from netmon_lab.snmpsim import SimDevice, SimInterface, SnmpSimulator

IN_BPS, OUT_BPS, SPEED = 40e6, 10e6, 100_000_000
# 32-bit counters two seconds short of wrapping at 40 Mbit/s (5 MB/s).
NEAR_WRAP = 2**32 - 1 - 2 * int(IN_BPS / 8)

DEVICES = [
    SimDevice(
        id="modern", kind="cpe", name="modern", district="", community="rate-modern",
        sys_descr="test", sys_object_id="1.3.6.1.4.1.99999",
        interfaces=(SimInterface(1, "WAN", "", SPEED, IN_BPS, OUT_BPS),),
    ),
    SimDevice(
        id="old", kind="cpe", name="old", district="", community="rate-old",
        sys_descr="test", sys_object_id="1.3.6.1.4.1.99999", high_capacity=False,
        interfaces=(SimInterface(1, "WAN", "", SPEED, IN_BPS, OUT_BPS,
                                 initial_octets=NEAR_WRAP),),
    ),
]  # fmt: skip


async def _poll(collector: SnmpCollector, store: StateStore, port: int) -> None:
    for device in DEVICES:
        target = ProbeTarget(
            id=device.id, address="127.0.0.1",
            credentials={"c": SnmpCredential.model_validate({"community": device.community})},
        )  # fmt: skip
        sample = await collector.collect(target, SnmpSettings(credential="c", port=port))
        assert isinstance(sample, DeviceSample)
        store.record(sample)


def _utilisation(store: StateStore, device: str) -> tuple[float, float] | None:
    return store.targets[device].devices["snmp"].interfaces[1].utilization


async def _agent_time_passes(store: StateStore, port: int, seconds: float) -> None:
    """Wait until every agent's sysUpTime is `seconds` past the one of its last recorded poll:
    the counters of a real agent advance with real time, so the time must pass, but it is read
    from the agents (the clock their rates use), not slept."""
    async with SnmpClient() as client, asyncio.timeout(seconds + 10):
        for device in DEVICES:
            ticks = store.targets[device.id].devices["snmp"].uptime_ticks
            assert ticks is not None
            agent = Agent("127.0.0.1", port, community=device.community.encode())
            while True:
                (uptime,) = await client.get(agent, [(1, 3, 6, 1, 2, 1, 1, 3, 0)])
                assert isinstance(uptime.value, int)
                if uptime.value >= ticks + seconds * 100:
                    break
                await asyncio.sleep(0.05)  # poll interval


@pytest.mark.peer
async def test_utilisation_within_1_percent_across_wrap_and_reboot(tmp_path: Path) -> None:
    store = StateStore()
    store.apply_inventory(load_data({
        "credentials": {"c": {"community": "x"}},
        "targets": [{"id": d.id, "address": "127.0.0.1", "probes": {"snmp": {"credential": "c"}}}
                    for d in DEVICES],
    }))  # fmt: skip
    truth = (IN_BPS / SPEED, OUT_BPS / SPEED)
    collector = SnmpCollector()
    await collector.start()
    try:
        async with SnmpSimulator(DEVICES, workdir=tmp_path / "first") as simulator:
            await _poll(collector, store, simulator.port)
            # The old agent's 32-bit counters wrap meanwhile.
            await _agent_time_passes(store, simulator.port, 4)
            await _poll(collector, store, simulator.port)
            old = store.targets["old"].devices["snmp"].interfaces[1].sample
            assert old.counter_bits == 32
            assert old.in_octets is not None
            assert old.in_octets < NEAR_WRAP  # it did wrap
            for device in ("modern", "old"):
                assert _utilisation(store, device) == pytest.approx(truth, rel=0.01), device
        # The agent restarts: uptime and counters start over. No rate, and no spike.
        async with SnmpSimulator(DEVICES, workdir=tmp_path / "second") as simulator:
            await _poll(collector, store, simulator.port)
            for device in ("modern", "old"):
                assert _utilisation(store, device) is None, device
                assert store.targets[device].devices["snmp"].reboots == 1
            await _agent_time_passes(store, simulator.port, 2)
            await _poll(collector, store, simulator.port)
            for device in ("modern", "old"):
                assert _utilisation(store, device) == pytest.approx(truth, rel=0.01), device
    finally:
        await collector.close()

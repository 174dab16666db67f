"""SNMP polling end to end: snmpd to /metrics, rates on agent time, secrets never shown."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from netmon.config.loader import load_data
from netmon.devices import interface_rates
from netmon.model import InterfaceSample
from netmon.state import StateStore
from tests.conftest import require_program
from tests.helpers import NetmonProcess, metric_value, samples, wait_until, write_config
from tests.peers import Snmpd

COMMUNITY = "s3cr3t-c0mmunity-for-tests"


def _iface(
    octets_in: int,
    octets_out: int,
    *,
    bits: int = 64,
    speed: int = 100_000_000,
    discontinuity: int = 0,
) -> InterfaceSample:
    return InterfaceSample(
        index=1, name="wan", alias="", descr="", admin_up=True, oper_up=True, speed_bps=speed,
        counter_bits=bits, in_octets=octets_in, out_octets=octets_out, in_errors=0,
        out_errors=0, in_discards=0, out_discards=0, discontinuity=discontinuity,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("before", "before_ticks", "after", "after_ticks", "expected"),
    [
        # 30 s of agent time at 50 Mbit/s in and 10 Mbit/s out on a 100 Mbit/s port
        (_iface(0, 0), 1000, _iface(187_500_000, 37_500_000), 4000, (0.5, 0.1)),
        # a 32-bit counter that wrapped in between
        (_iface(2**32 - 1_000_000, 0, bits=32), 100, _iface(186_500_000, 0, bits=32), 3100,
         (0.5, 0.0)),
        # the agent rebooted: sysUpTime went back, no rate rather than a spike
        (_iface(10**9, 10**9), 50_000, _iface(1000, 1000), 200, None),
        # a 64-bit counter went back without a reboot: a discontinuity, no rate
        (_iface(10**9, 10**9), 1000, _iface(10, 10**9), 4000, None),
        # 64-bit read before, 32-bit now: different counters, no rate
        (_iface(0, 0), 1000, _iface(0, 0, bits=32), 4000, None),
        # ifCounterDiscontinuityTime moved: the agent says the counters restarted
        (_iface(0, 0), 1000, _iface(10**6, 10**6, discontinuity=3000), 4000, None),
        # unknown speed
        (_iface(0, 0, speed=0), 1000, _iface(10, 10, speed=0), 4000, None),
    ],
)  # fmt: skip
def test_interface_rates(
    before: InterfaceSample, before_ticks: int, after: InterfaceSample, after_ticks: int,
    expected: tuple[float, float] | None,
) -> None:  # fmt: skip
    rates = interface_rates(before, before_ticks, after, after_ticks)
    if expected is None:
        assert rates is None
    else:
        assert rates == pytest.approx(expected, rel=0.01)


@pytest.fixture(scope="module")
def snmpd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Snmpd]:
    agent = Snmpd(require_program("snmpd"), tmp_path_factory.mktemp("snmpd"), community=COMMUNITY)
    try:
        yield agent
    finally:
        agent.stop()


@pytest.mark.peer
def test_snmpd_interfaces_reach_metrics_and_secrets_stay_hidden(
    snmpd: Snmpd, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NETMON_TEST_COMMUNITY", COMMUNITY)
    config = write_config(
        tmp_path / "netmon.yaml",
        {
            "credentials": {
                "lab": {"snmp_version": "2c", "community": {"env": "NETMON_TEST_COMMUNITY"}}
            },
            "targets": [
                {"id": "agent", "address": "127.0.0.1", "kind": "router",
                 "probes": {"snmp": {"credential": "lab", "port": snmpd.port, "interval": "1s",
                                     "timeout": "500ms"}}},
                {"id": "agent-lo-only", "address": "127.0.0.1", "kind": "router",
                 "probes": {"snmp": {"credential": "lab", "port": snmpd.port, "interval": "1s",
                                     "timeout": "200ms", "retries": 0, "interfaces": ["lo"]}}},
            ],
        },
    )  # fmt: skip
    netmon = NetmonProcess(config)
    try:

        def utilization_ready() -> bool:
            text = netmon.metrics()
            return bool(
                [s for s in samples(text, "netmon_interface_utilization_ratio")
                 if s[0]["target"] == "agent" and s[0]["ifname"] == "lo"]
            )  # fmt: skip

        wait_until(utilization_ready, timeout=15, what="a utilisation for lo")
        text = netmon.metrics()
        assert metric_value(text, "netmon_snmp_up", target="agent") == 1.0
        assert (metric_value(text, "netmon_device_uptime_seconds", target="agent") or 0) > 0
        octets = metric_value(text, "netmon_interface_in_octets_total", target="agent", ifname="lo")
        assert octets is not None
        assert octets > 0
        assert metric_value(text, "netmon_interface_oper_up", target="agent", ifname="lo") == 1.0
        # lo reports ifSpeed 10,000,000 bit/s
        assert (
            metric_value(
                text, "netmon_interface_speed_bytes_per_second", target="agent", ifname="lo"
            )
            == 1_250_000
        )
        # An interface filter keeps only the named interfaces.
        names = {s[0]["ifname"] for s in samples(text, "netmon_interface_in_octets_total")
                 if s[0]["target"] == "agent-lo-only"}  # fmt: skip
        assert names == {"lo"}
        result = subprocess.run(
            [require_program("promtool"), "check", "metrics"], input=text, capture_output=True,
            text=True,
        )  # fmt: skip
        assert result.returncode == 0, result.stdout + result.stderr
        api = netmon.get("/api/v1/targets")[2]
        logs = "".join(netmon.stderr_lines)
        agent = json.loads(netmon.get("/api/v1/targets/agent")[2])
        # A target polled only by SNMP is up when its agent answers.
        assert agent["state"] == "up"
        assert agent["snmp"]["snmp"]["up"] is True
        assert agent["snmp"]["snmp"]["interfaces"] >= 1
        assert "SNMP devices: 2 of 2 answering" in netmon.get("/")[2]
    finally:
        netmon.stop()
    for where, content in (("metrics", text), ("API", api), ("logs", logs),
                           ("API JSON", json.dumps(json.loads(api)))):  # fmt: skip
        assert COMMUNITY not in content, f"the community leaked into the {where}"


@pytest.mark.peer
def test_unreachable_agent_is_down_with_timeout_reason(tmp_path: Path) -> None:
    from tests.peers import free_udp_port

    config = write_config(
        tmp_path / "netmon.yaml",
        {
            "credentials": {"lab": {"community": "public"}},
            "targets": [
                {"id": "silent", "address": "127.0.0.1", "probes": {
                    "snmp": {"credential": "lab", "port": free_udp_port(), "interval": "1s",
                             "timeout": "200ms", "retries": 0}}},
            ],
        },
    )  # fmt: skip
    netmon = NetmonProcess(config)
    try:
        wait_until(
            lambda: metric_value(netmon.metrics(), "netmon_snmp_up", target="silent") == 0.0,
            what="snmp_up 0",
        )
        text = netmon.metrics()
        errors = metric_value(
            text, "netmon_collector_errors_total", collector="snmp", reason="timeout"
        )
        assert errors is not None
        assert errors >= 1
        assert samples(text, "netmon_interface_in_octets_total") == []
    finally:
        netmon.stop()


def test_snmp_probe_without_credential_is_a_config_error() -> None:
    from netmon.config.errors import ConfigError
    from netmon.config.loader import load_data

    with pytest.raises(ConfigError) as caught:
        load_data({"targets": [{"id": "r1", "address": "127.0.0.1", "probes": ["snmp"]}]})
    assert [str(p) for p in caught.value.problems] == [
        "targets[0].probes.snmp.credential: required: the name of an entry in credentials"
    ]
    with pytest.raises(ConfigError) as caught:
        load_data({"targets": [{"id": "r1", "address": "127.0.0.1",
                                "probes": {"snmp": {"credential": "nope"}}}]})  # fmt: skip
    assert [str(p) for p in caught.value.problems] == [
        "targets[0].probes.snmp.credential: unknown credential 'nope' (defined: none)"
    ]
    assert os.environ.get("NETMON_UNSET_FOR_TEST") is None
    with pytest.raises(ConfigError) as caught:
        load_data({"credentials": {"x": {"community": {"env": "NETMON_UNSET_FOR_TEST"}}}})
    assert [str(p) for p in caught.value.problems] == [
        "credentials.x.community: environment variable NETMON_UNSET_FOR_TEST is not set"
    ]


def test_a_poll_without_interfaces_does_not_double_the_next_rate() -> None:
    from netmon.devices import DeviceState
    from netmon.model import DeviceSample

    def sample(ticks: int, octets: int | None) -> DeviceSample:
        interfaces = () if octets is None else (_iface(octets, octets),)
        return DeviceSample(
            target="d", collector="snmp", ok=True, duration=0.1, uptime_ticks=ticks,
            interfaces=interfaces, missing=("interfaces",) if octets is None else (),
        )  # fmt: skip

    device = DeviceState()
    device.fold(sample(1000, 0))
    device.fold(sample(4000, None))  # the interface walk failed this time
    device.fold(sample(7000, 2 * 187_500_000))  # 60 s of 50 Mbit/s since the first poll
    utilisation = device.interfaces[1].utilization
    assert utilisation == pytest.approx((0.5, 0.5), rel=0.01)


def test_sysuptime_wrapping_after_497_days_is_not_a_reboot() -> None:
    from netmon.devices import DeviceState
    from netmon.model import DeviceSample

    def sample(ticks: int, octets: int) -> DeviceSample:
        return DeviceSample(target="d", collector="snmp", ok=True, duration=0.1,
                            uptime_ticks=ticks, interfaces=(_iface(octets, octets),))  # fmt: skip

    device = DeviceState()
    device.fold(sample(2**32 - 1000, 0))  # 10 s before the wrap
    device.fold(sample(2000, 187_500_000))  # 30 s later, past it
    assert device.reboots == 0
    assert device.interfaces[1].utilization == pytest.approx((0.5, 0.5), rel=0.01)


def test_a_one_poll_fallback_to_32_bit_counters_is_not_published() -> None:
    from netmon.exporter import StoreCollector
    from netmon.model import DeviceSample

    store = StateStore()
    store.apply_inventory(load_data({
        "credentials": {"c": {"community": "x"}},
        "targets": [{"id": "d", "address": "127.0.0.1", "probes": {"snmp": {"credential": "c"}}}],
    }))  # fmt: skip

    def record(ticks: int, octets: int, bits: int) -> list[float]:
        store.record(DeviceSample(target="d", collector="snmp", ok=True, duration=0.1,
                                  uptime_ticks=ticks,
                                  interfaces=(_iface(octets, octets, bits=bits),)))  # fmt: skip
        return [s.value for family in StoreCollector(store).collect() for s in family.samples
                if s.name == "netmon_interface_in_octets_total"]  # fmt: skip

    assert record(1000, 5 * 10**9, 64) == [5 * 10**9]
    assert record(4000, 12345, 32) == []  # the 64-bit series is not "reset" to a 32-bit value
    assert record(7000, 6 * 10**9, 64) == [6 * 10**9]

"""Faults in the demo: a user injects one and sees it in /metrics and /api/v1/targets.

The injector's logic (validation, faults combining) is tested with fakes of its two seams; the
seams against the real programs (snmpsim, namespaces and the responder); and the whole path
against `netmon demo` as a child process, shared by the tests of this module (the demo's endpoints
up and its devices' traffic among them), each of which clears what it injected.
"""

from __future__ import annotations

import asyncio
import html
import itertools
import json
import os
import re
import shlex
import subprocess
import sys
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from pypdf import PdfReader

from netmon_lab import netns
from netmon_lab.fault_api import PATH, fault_routes
from netmon_lab.faults import FaultInjector, FaultInputError, FaultKind, FaultUnavailableError
from netmon_lab.responder import Impairment
from netmon_lab.room_faults import RoomFaults
from netmon_lab.snmpsim import SnmpSimulator, build_lab
from tests.conftest import require_program
from tests.demo_peer import Demo, call
from tests.helpers import metric_value, netmon_command, samples, wait_until
from tests.lab.netlab import NetLab
from tests.mqtt_peer import Mosquitto, MqttMessage, MqttRecorder, retained
from tests.peers import free_port

HANG = 30.0  # seconds: a hang guard for a fault to show; never a speed figure
SOFTPHONE = "ep-muong-lat-xa01"  # one of the demo's softphone rooms (netmon_lab.softphones)

# -- the injector, with fakes of the lab ----------------------------------------------------------

ENDPOINTS = {
    "ep-a": ("198.18.0.2", "Bá Thước"),
    "ep-b": ("198.18.0.3", "Bá Thước"),
    "ep-c": ("198.18.0.18", "Cẩm Thủy"),
}


@dataclass
class FakeLab:
    impaired: list[dict[str, Impairment]] = field(default_factory=list)
    cuts: list[set[str]] = field(default_factory=list)
    oper: list[dict[str, dict[int, int]]] = field(default_factory=list)

    async def impair(self, impairments: Mapping[str, Impairment]) -> None:
        self.impaired.append(dict(impairments))

    async def cut(self, districts: set[str]) -> None:
        self.cuts.append(set(districts))

    async def set_oper_status(self, overrides: Mapping[str, Mapping[int, int]]) -> None:
        self.oper.append({device: dict(table) for device, table in overrides.items()})


@dataclass
class FakeRooms:
    """ep-a and ep-b have a codec API; ep-c is a plain SIP room."""

    applied: list[dict[str, RoomFaults]] = field(default_factory=list)

    def refusal(self, endpoint: str, kind: FaultKind) -> str | None:
        if endpoint == "ep-c" and kind is not FaultKind.UNREGISTER:
            return f"{endpoint} is a plain SIP room: no codec API to fake {kind.value} on"
        return None

    async def set_rooms(self, rooms: Mapping[str, RoomFaults]) -> None:
        self.applied.append(dict(rooms))


def _injector(
    lab: FakeLab, *, network: bool = True, devices: bool = True, rooms: FakeRooms | None = None
) -> FaultInjector:
    endpoints = [{"id": e, "name": e, "district": d} for e, (_, d) in ENDPOINTS.items()]
    return FaultInjector(
        endpoints=ENDPOINTS,
        devices=build_lab(endpoints),
        network=lab if network else None,
        devices_control=lab if devices else None,
        network_reason="not root",
        rooms=rooms,
    )


async def test_room_faults_combine_per_room_and_are_refused_where_they_cannot_be() -> None:
    rooms = FakeRooms()
    injector = _injector(FakeLab(), rooms=rooms)
    camera = await injector.add({"kind": "camera-unplug", "target": "ep-a"})
    await injector.add({"kind": "diagnostic", "target": "ep-a", "level": "Critical"})
    await injector.add({"kind": "unregister", "target": "ep-c"})
    busy = await injector.add({"kind": "busy", "target": "198.18.0.3"})
    assert busy.summary == "ep-b is in another call"
    assert rooms.applied[-1] == {
        "ep-a": RoomFaults(camera_unplugged=True, diagnostics=("critical",)),
        "ep-b": RoomFaults(busy=True),
        "ep-c": RoomFaults(unregistered=True),
    }
    await injector.clear(camera.id)
    assert rooms.applied[-1]["ep-a"] == RoomFaults(diagnostics=("critical",))
    with pytest.raises(FaultInputError) as refused:
        await injector.add({"kind": "camera-unplug", "target": "ep-c"})
    assert str(refused.value) == (
        "target: ep-c is a plain SIP room: no codec API to fake camera-unplug on"
    )
    with pytest.raises(FaultInputError) as bad_level:
        await injector.add({"kind": "diagnostic", "target": "ep-a", "level": "bad"})
    assert str(bad_level.value) == "level: 'bad' is not one of warning, error, critical"
    await injector.clear_all()
    assert rooms.applied[-1] == {}


async def test_without_codec_simulators_room_faults_say_why() -> None:
    with pytest.raises(FaultUnavailableError) as refused:
        await _injector(FakeLab()).add({"kind": "busy", "target": "ep-a"})
    assert "without codec simulators" in str(refused.value)


@pytest.mark.parametrize(
    ("request_", "message"),
    [
        ({}, "kind: missing (one of: endpoint-down, loss, delay, jitter, burst, interface-down, "
             "interface-flap, uplink-cut, camera-unplug, unregister, diagnostic, busy)"),
        ({"kind": "boom"}, "kind: unknown fault kind 'boom' (one of: endpoint-down, loss, delay, "
                           "jitter, burst, interface-down, interface-flap, uplink-cut, "
                           "camera-unplug, unregister, diagnostic, busy)"),
        ({"kind": "loss", "target": "ep-a"}, "value: required for loss"),
        ({"kind": "loss", "target": "ep-a", "value": 1.5},
         "value: 1.5 is not a loss ratio above 0 and at most 1, e.g. 0.05 (or 5%)"),
        ({"kind": "loss", "target": "ep-a", "value": True},
         "value: True is not a loss ratio above 0 and at most 1, e.g. 0.05 (or 5%)"),
        ({"kind": "delay", "target": "ep-a", "value": "soon"},
         "value: 'soon' is not extra delay in seconds, above 0 and at most 10, e.g. 0.2 "
         "(or 200ms)"),
        ({"kind": "jitter", "target": "ep-a"}, "value: required for jitter"),
        ({"kind": "jitter", "target": "ep-a", "value": "2s"},
         "value: '2s' is not jitter in seconds, above 0 and at most 1, e.g. 0.003 (or 3ms: each "
         "reply up to 3 ms earlier or later)"),
        ({"kind": "jitter", "target": "ep-a", "value": 0},
         "value: 0 is not jitter in seconds, above 0 and at most 1, e.g. 0.003 (or 3ms: each "
         "reply up to 3 ms earlier or later)"),
        ({"kind": "jitter", "target": "ep-z", "value": "3ms"},
         "target: no endpoint 'ep-z' in the demo (ids as in /api/v1/targets, e.g. ep-a)"),
        ({"kind": "burst", "target": "ep-a", "every": "2m"}, "length: required for burst"),
        ({"kind": "burst", "target": "ep-a", "value": 5, "every": "2m", "length": "5-10"},
         "value: not a field of burst (it takes: target, every, length)"),
        ({"kind": "burst", "target": "ep-a", "every": "often", "length": "5-10"},
         "every: 'often' is not the mean time between bursts in seconds, 1 to 86400, e.g. 120 "
         "(or 2m)"),
        ({"kind": "burst", "target": "ep-a", "every": "500ms", "length": "5-10"},
         "every: '500ms' is not the mean time between bursts in seconds, 1 to 86400, e.g. 120 "
         "(or 2m)"),
        ({"kind": "burst", "target": "ep-a", "every": "2m", "length": "10-5"},
         "length: '10-5' is not a burst length in echoes lost in a row, N or MIN-MAX with "
         "1 <= MIN <= MAX <= 600, e.g. 5-10"),
        ({"kind": "burst", "target": "ep-a", "every": "2m", "length": 0},
         "length: 0 is not a burst length in echoes lost in a row, N or MIN-MAX with "
         "1 <= MIN <= MAX <= 600, e.g. 5-10"),
        ({"kind": "burst", "target": "ep-a", "every": "2m", "length": "5 to 10"},
         "length: '5 to 10' is not a burst length in echoes lost in a row, N or MIN-MAX with "
         "1 <= MIN <= MAX <= 600, e.g. 5-10"),
        ({"kind": "interface-flap", "device": "sw-ba-thuoc", "interface": 1, "value": 1},
         "value: 1 is not the flap period in seconds, 2 to 3600, e.g. 30 (down half of it, "
         "up the other half)"),
        ({"kind": "endpoint-down", "target": "ep-z"},
         "target: no endpoint 'ep-z' in the demo (ids as in /api/v1/targets, e.g. ep-a)"),
        ({"kind": "endpoint-down", "target": "ep-a", "value": 1},
         "value: not a field of endpoint-down (it takes: target)"),
        ({"kind": "uplink-cut", "district": "Nowhere"},
         "district: no district 'Nowhere' (a name as in the inventory, its switch id or its name "
         "without accents, e.g. 'Bá Thước', 'Cẩm Thủy')"),
        ({"kind": "interface-down", "device": "sw-nowhere", "interface": 1},
         "device: no simulated device 'sw-nowhere' (e.g. core-router, a district switch such as "
         "sw-ba-thuoc, or cpe-<endpoint id>)"),
        ({"kind": "interface-down", "device": "cpe-ep-a", "interface": "LAN9"},
         "interface: cpe-ep-a has no interface 'LAN9' (an ifIndex or ifName: 1 WAN, 2 LAN1, "
         "3 LAN2)"),
    ],
    ids=["no-kind", "unknown-kind", "no-value", "loss-above-1", "loss-bool", "delay-text",
         "no-jitter", "jitter-above-1s", "jitter-zero", "jitter-unknown-endpoint",
         "burst-no-length", "burst-value", "burst-every-text", "burst-every-too-often",
         "burst-min-above-max", "burst-empty", "burst-length-words", "flap-too-fast",
         "unknown-endpoint", "extra-field", "unknown-district",
         "unknown-device", "unknown-interface"],
)  # fmt: skip
async def test_a_bad_fault_is_refused_naming_the_field(
    request_: dict[str, Any], message: str
) -> None:
    lab = FakeLab()
    with pytest.raises(FaultInputError) as raised:
        await _injector(lab).add(request_)
    assert str(raised.value) == message
    assert lab.impaired == lab.cuts == lab.oper == []


async def test_faults_combine_and_clearing_one_keeps_the_others() -> None:
    lab = FakeLab()
    injector = _injector(lab)
    loss = await injector.add({"kind": "loss", "target": "ep-a", "value": 0.1})
    await injector.add({"kind": "loss", "target": "ep-a", "value": "10%"})
    await injector.add({"kind": "delay", "target": "ep-a", "value": "150ms"})
    await injector.add({"kind": "delay", "target": "198.18.0.2", "value": 0.05})  # by address
    assert lab.impaired[-1] == {"198.18.0.2": Impairment(loss=0.19, delay=0.2)}
    down = await injector.add({"kind": "endpoint-down", "target": "ep-b"})
    cut = await injector.add({"kind": "uplink-cut", "district": "ba-thuoc"})
    assert lab.cuts[-1] == {"Bá Thước"}
    # Both ends of the district's uplink report oper-down.
    uplink = len(injector._device_by_id["sw-ba-thuoc"].interfaces)
    assert lab.oper[-1] == {"sw-ba-thuoc": {uplink: 2}, "core-router": {1: 2}}
    assert cut.to_json()["endpoints"] == ["ep-a", "ep-b"]
    await injector.add({"kind": "interface-down", "device": "sw-ba-thuoc", "interface": 3})
    await injector.clear(cut.id)
    assert lab.cuts[-1] == set()
    assert lab.oper[-1] == {"sw-ba-thuoc": {3: 2}}
    await injector.clear(loss.id)
    await injector.clear(down.id)
    assert lab.impaired[-1] == {"198.18.0.2": Impairment(loss=0.1, delay=0.2)}
    cleared = await injector.clear_all()
    assert len(cleared) == 4
    assert (lab.impaired[-1], lab.oper[-1]) == ({}, {})
    assert injector.faults() == []


async def test_jitter_and_bursts_combine_with_loss_and_delay() -> None:
    lab = FakeLab()
    injector = _injector(lab)
    await injector.add({"kind": "loss", "target": "ep-a", "value": "0.5%"})
    await injector.add({"kind": "delay", "target": "ep-a", "value": "20ms"})
    jitter = await injector.add({"kind": "jitter", "target": "ep-a", "value": "3ms"})
    assert jitter.summary == (
        "ep-a (198.18.0.2) answers pings with ± 3 ms jitter (each reply up to 3 ms earlier or "
        "later, at random)"
    )
    burst = await injector.add({"kind": "burst", "target": "ep-a", "every": "2m", "length": "5-10"})
    assert burst.summary == (
        "ep-a (198.18.0.2) loses bursts of 5-10 pings in a row, on average every 120 s"
    )
    assert (burst.to_json()["every"], burst.to_json()["length"]) == (120.0, [5, 10])
    # The bad link, "0.5 % loss, 20 ± 3 ms, bursts of 5-10 every ~2 min", in one.
    assert lab.impaired[-1] == {
        "198.18.0.2": Impairment(
            loss=0.005, delay=0.02, jitter=0.003, burst_every=120, burst_min=5, burst_max=10
        )
    }
    # Two jitters widen the window by both; two bursts come as often as both together, their
    # lengths spanning both ranges.
    await injector.add({"kind": "jitter", "target": "ep-a", "value": 0.002})
    await injector.add({"kind": "burst", "target": "198.18.0.2", "every": 60, "length": 3})
    await injector.add({"kind": "burst", "target": "ep-c", "every": "10s", "length": [2, 4]})
    assert lab.impaired[-1] == {
        "198.18.0.2": Impairment(
            loss=0.005, delay=0.02, jitter=0.005, burst_every=40, burst_min=3, burst_max=10
        ),
        "198.18.0.18": Impairment(burst_every=10, burst_min=2, burst_max=4),
    }
    await injector.clear(burst.id)
    await injector.clear(jitter.id)
    assert lab.impaired[-1]["198.18.0.2"] == Impairment(
        loss=0.005, delay=0.02, jitter=0.002, burst_every=60, burst_min=3, burst_max=3
    )
    await injector.clear_all()
    assert lab.impaired[-1] == {}


async def test_a_flap_goes_down_first_then_up_and_down_wins_over_it() -> None:
    lab = FakeLab()
    injector = _injector(lab)
    try:
        await injector.add(
            {"kind": "interface-flap", "device": "cpe-ep-c", "interface": "wan", "value": 2}
        )
        assert lab.oper[-1] == {"cpe-ep-c": {1: 2}}
        # Up again half a period (1 s) later; the deadline only catches a flap that never
        # comes back up, it is no bound on when.
        await asyncio.wait_for(_until(lambda: lab.oper[-1] == {"cpe-ep-c": {1: 1}}), HANG)
        await injector.add({"kind": "interface-down", "device": "cpe-ep-c", "interface": 1})
        assert lab.oper[-1] == {"cpe-ep-c": {1: 2}}
    finally:
        await injector.close()


async def _until(condition: Any) -> None:
    while not condition():
        await asyncio.sleep(0.05)


async def test_without_the_namespace_endpoint_faults_say_why_and_interface_faults_work() -> None:
    lab = FakeLab()
    injector = _injector(lab, network=False)
    assert injector.unavailable() == {
        "endpoint-down": "not root", "loss": "not root", "delay": "not root",
        "jitter": "not root", "burst": "not root", "uplink-cut": "not root",
        **dict.fromkeys(("camera-unplug", "unregister", "diagnostic", "busy"),
                        "the demo runs without codec simulators"),
    }  # fmt: skip
    with pytest.raises(FaultUnavailableError, match="endpoint-down faults are unavailable: not"):
        await injector.add({"kind": "endpoint-down", "target": "ep-a"})
    await injector.add({"kind": "interface-down", "device": "core-router", "interface": 2})
    assert lab.oper[-1] == {"core-router": {2: 2}}


def test_district_subnets_hold_their_endpoints_and_do_not_overlap() -> None:
    districts = {"A": [f"a{i}" for i in range(28)], "B": ["b1", "b2"], "C": ["c1"]}
    prefixlen, sized = netns.plan_links(districts)
    block = next(netns.LAB_RANGE.subnets(new_prefix=prefixlen))
    links = netns.assign(block, sized, link_prefix="nmd1", slugs={})
    assert [link.network.prefixlen for link in links] == [27, 29, 30]
    addresses = [address for link in links for _, address in link.endpoints]
    assert len(set(addresses)) == 31
    for link in links:
        assert link.network.subnet_of(block)
        assert all(a in [str(h) for h in link.network.hosts()] for _, a in link.endpoints)
        assert link.gateway not in addresses
    for first, second in itertools.pairwise(links):
        assert not first.network.overlaps(second.network)


# -- the seams, against the real programs ----------------------------------------------------------


def _oper_status(port: int, community: str, ifindex: int) -> object:
    import socket

    from collectors.snmp.codec import PduType, Version, decode_message, encode_request

    oid = (1, 3, 6, 1, 2, 1, 2, 2, 1, 8, ifindex)
    packet = encode_request(
        version=Version.V2C, community=community.encode(), pdu_type=PduType.GET,
        request_id=7, oids=[oid],
    )  # fmt: skip
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(2)
        sock.sendto(packet, ("127.0.0.1", port))
        return decode_message(sock.recvfrom(65535)[0]).varbinds[0].value


async def test_snmpsim_serves_an_override_from_the_next_request_even_within_a_second() -> None:
    devices = build_lab([{"id": "ep-a", "name": "A", "district": "Z"}])
    cpe = devices[-1]
    async with SnmpSimulator(devices) as simulator:
        assert await asyncio.to_thread(_oper_status, simulator.port, cpe.community, 1) == 1
        for status in (2, 1, 2):  # three versions of the file inside about a second
            await simulator.set_oper_status({cpe.id: {1: status}})
            got = await asyncio.to_thread(_oper_status, simulator.port, cpe.community, 1)
            assert got == status
        await simulator.set_oper_status({})
        assert await asyncio.to_thread(_oper_status, simulator.port, cpe.community, 1) == 1


@pytest.mark.netns
@pytest.mark.usefixtures("_lab_ready")
def test_leftovers_of_a_dead_demo_are_removed() -> None:
    dead = _dead_pid()
    namespace = f"{netns.DEMO_PREFIX}{dead}lab"
    netns.ip("netns", "add", namespace)
    link = f"{netns.DEMO_PREFIX}{dead}d0"
    # Both ends carry the dead pid: a fixed peer name would collide with another run's.
    netns.ip("link", "add", link, "type", "veth", "peer", "name", f"{link}x")
    netns.remove_stale()
    assert namespace not in netns.ip("netns", "list").stdout
    assert link not in netns.ip("-o", "link", "show").stdout


def _dead_pid() -> int:
    process = subprocess.Popen(["true"])
    process.wait()
    assert not netns.pid_alive(process.pid)
    return process.pid


@pytest.mark.netns
async def test_changes_from_another_host_are_refused(netlab: NetLab) -> None:
    host = netlab.add_host()
    app = web.Application()
    app.add_routes(fault_routes(_injector(FakeLab(), network=False)))
    runner = web.AppRunner(app)
    await runner.setup()
    try:
        await web.TCPSite(runner, host.gateway, 0).start()
        port = runner.addresses[0][1]
        await web.TCPSite(runner, "127.0.0.1", port).start()
        script = (
            "import sys, urllib.request, urllib.error\n"
            "request = urllib.request.Request(sys.argv[1], data=sys.argv[2].encode(), "
            "method=sys.argv[3])\n"
            "try:\n"
            "    response = urllib.request.urlopen(request, timeout=5)\n"
            "    print(response.status, response.read().decode())\n"
            "except urllib.error.HTTPError as exc:\n"
            "    print(exc.code, exc.read().decode())\n"
        )
        body = json.dumps({"kind": "interface-down", "device": "core-router", "interface": 1})

        async def from_host(method: str) -> str:
            process = await asyncio.create_subprocess_exec(
                "ip", "netns", "exec", host.namespace, sys.executable, "-c", script,
                f"http://{host.gateway}:{port}{PATH}", body, method,
                stdout=asyncio.subprocess.PIPE,
            )  # fmt: skip
            output, _ = await asyncio.wait_for(process.communicate(), 15)
            return output.decode()

        refused = await from_host("POST")
        assert refused.startswith("403 ")
        assert f"came from {host.address}" in refused
        assert (await from_host("DELETE")).startswith("403 ")
        assert (await from_host("GET")).startswith("200 ")  # reading is fine from anywhere
        status, document = await asyncio.to_thread(
            call, "POST", f"http://127.0.0.1:{port}{PATH}", json.loads(body)
        )
        assert (status, document["kind"]) == (201, "interface-down")
    finally:
        await runner.cleanup()


# -- the whole demo ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def broker() -> Iterator[Mosquitto]:
    mosquitto = Mosquitto()
    try:
        yield mosquitto
    finally:
        mosquitto.cleanup()


@pytest.fixture(scope="module")
def demo(_lab_ready: None, broker: Mosquitto) -> Iterator[Demo]:
    running = Demo(mqtt=f"{broker.host}:{broker.port}")
    try:
        wait_until(
            lambda: list(running.up().values()) == [1.0] * 215,
            timeout=20,
            interval=0.5,
            what="215 endpoints up",
        )
        yield running
    finally:
        code = running.stop()
        namespace = re.search(r"network namespace (\S+)", running.output)
        assert code == 0, running.output
        assert namespace is not None, running.output
        assert namespace.group(1) not in netns.ip("netns", "list").stdout  # cleaned up


@pytest.fixture
def clean(demo: Demo) -> Iterator[Demo]:
    try:
        yield demo
    finally:
        demo.call("DELETE")


# The loss and jitter tests come first, on the demo just started: netmon's loss ratio and jitter
# are means over a 60 s window, so a fault moves them the sooner the less history the window
# holds. Later in the module each would wait up to half a minute for the same figure.


@pytest.mark.netns
def test_loss_shows_on_that_endpoint_only(clean: Demo) -> None:
    clean.inject({"kind": "loss", "target": "ep-so-06", "value": 0.5})

    def lossy() -> dict[str, float]:
        ratios = samples(clean.metrics(), "netmon_icmp_loss_ratio")
        return {labels["target"]: value for labels, value in ratios if value > 0}

    # The ratio is over a 60 s window: at 50 % loss it passes 0.25 about 30 s after the fault
    # once the demo has run a minute (with the few seconds of history of a demo just started,
    # within seconds); by 75 s the whole window is lossy, so only a fault that did not take
    # fails here.
    wait_until(
        lambda: lossy().get("ep-so-06", 0) > 0.25,
        timeout=75,
        interval=1,
        what="loss",
        showing=lossy,
    )
    # No endpoint that nothing faulted loses anything. The standing satellite link (500 ms)
    # may lose an echo past the 800 ms timeout on a loaded machine: it is faulted too.
    standing = {e for fault in clean.faults(standing=True) for e in fault["endpoints"]}
    assert set(lossy()) <= clean.touched | standing
    assert clean.up()["ep-so-06"] in (0.0, 1.0)


@pytest.mark.netns
def test_jitter_shows_as_netmons_jitter_rising(clean: Demo) -> None:
    def jitter() -> float | None:
        return metric_value(clean.metrics(), "netmon_icmp_jitter_seconds", target="ep-so-11")

    before = wait_until(jitter, what="a jitter figure for ep-so-11")
    added = _cli("add", "jitter", "ep-so-11", "20ms", "--url", clean.url)
    assert added.returncode == 0, added.stderr
    clean.touched.add("ep-so-11")
    assert "ep-so-11" in added.stdout
    assert "answers pings with ± 20 ms jitter" in added.stdout
    # Replies 0-40 ms late at random read as ~13 ms of jitter (RFC 3550) once they fill the
    # 60 s window; 3 ms more than before is passed after about a quarter of a full window (on
    # the short history of a demo just started, sooner), and the fault is cleared long before
    # HighJitter's 10 ms could be reached. The deadline only catches a fault that does not take.
    wait_until(
        lambda: (jitter() or 0.0) > before + 0.003, timeout=75, interval=1, what="jitter",
        showing=lambda: (before, jitter()),
    )  # fmt: skip


@pytest.mark.netns
async def test_the_demo_publishes_statuses_and_a_faults_alert_on_mqtt(
    clean: Demo, broker: Mosquitto
) -> None:
    assert f"MQTT: publishing alerts and statuses to {broker.host}:{broker.port}" in clean.output
    statuses = await asyncio.to_thread(retained, broker, "netmon/status/#")
    endpoints = set(clean.up())
    assert endpoints <= {topic.rsplit("/", 1)[1] for topic in statuses}
    assert len(endpoints) == 215
    assert await asyncio.to_thread(retained, broker, "netmon/service/#") == {
        "netmon/service/netmon-demo": "online"
    }
    with MqttRecorder(broker, "netmon/events/alerts") as recorder:
        fault = clean.inject({"kind": "endpoint-down", "target": "ep-so-05"})

        def event(status: str) -> Callable[[MqttMessage], bool]:
            def match(message: MqttMessage) -> bool:
                alert = json.loads(message.payload)
                return (alert["alertname"], alert["target"], alert["status"]) == (
                    "EndpointDown", "ep-so-05", status,
                )  # fmt: skip

            return match

        # The fault is detected and announced. "Within 3 s" is timed where load cannot fake a
        # failure: on a fake clock (test_alert_engine.py,
        # test_a_dead_endpoint_is_endpoint_down_within_3_s) and on real packets as
        # bench/alert_bench.py's detection figure. The wait here only catches a hang.
        await recorder.until(event("firing"), timeout=HANG)
        clean.call("DELETE", suffix=f"/{fault['id']}")
        await recorder.until(event("resolved"), timeout=15)


@pytest.mark.netns
async def test_the_demo_pages_telegram_and_the_button_stops_the_escalation(
    clean: Demo, broker: Mosquitto
) -> None:
    """Issue 18's demo: a fault pages the district's topic of the lab's Telegram; "Acknowledge"
    pressed there (`netmon demo press`) shows in the API, on MQTT and in the metrics."""
    assert "On call: the district's Telegram topic is paged at once" in clean.output
    target = "ep-so-08"
    name = clean.target(target)["name"]

    def pages() -> dict[str, Any]:
        status, document = call("GET", clean.url + "/api/v1/demo/pages")
        assert status == 200
        return document

    clean.inject({"kind": "endpoint-down", "target": target})
    # "Within 3 s" is a figure of the note (timed on the demo), not asserted here.
    page = wait_until(
        lambda: [m for m in pages()["telegram"] if name in m["text"] and "Alert" in m["text"]],
        timeout=HANG,
        what="the district's Telegram page",
    )[0]
    assert page["chat"] == "-1001000000001"
    assert page["buttons"] == ["Đã nhận / Acknowledge", "Tắt 1 giờ / Silence 1 h"]
    (alert,) = [a for a in clean.alerts() if a["target"] == target]
    with MqttRecorder(broker, "netmon/alerts/#") as recorder:
        pressed = await asyncio.to_thread(
            subprocess.run,
            [*netmon_command(), "demo", "press", "ack", "--alert", alert["fingerprint"],
             "--url", clean.url],
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        assert pressed.returncode == 0, pressed.stderr
        assert "netmon answered: Đã nhận / Acknowledged: Nguyễn Văn Tuấn" in pressed.stdout
        (taken,) = [a for a in clean.alerts() if a["target"] == target]
        assert taken["acknowledged_by"] == "Nguyễn Văn Tuấn (telegram:1001)"
        retained_alert = await recorder.until(
            lambda m: target in m.topic and '"acknowledged": true' in m.payload, timeout=HANG
        )
        assert json.loads(retained_alert.payload)["acknowledged_by"].startswith("Nguyễn Văn Tuấn")
    assert metric_value(clean.metrics(), "netmon_escalations", acknowledged="true") == 1
    told = wait_until(
        lambda: [
            m for m in pages()["telegram"] if name in m["text"] and "Acknowledged" in m["text"]
        ],
        timeout=HANG,
        what="the acknowledgement told to the district",
    )
    assert told[0]["chat"] == "-1001000000001"


@pytest.mark.netns
async def test_a_room_taken_off_the_registrar_is_endpoint_unregistered_on_mqtt(
    clean: Demo, broker: Mosquitto
) -> None:
    with MqttRecorder(broker, "netmon/events/alerts") as recorder:
        fault = clean.inject({"kind": "unregister", "target": "ep-so-01"})
        assert fault["summary"] == "ep-so-01 is not registered (SIP)"

        def event(status: str) -> Callable[[MqttMessage], bool]:
            def match(message: MqttMessage) -> bool:
                alert = json.loads(message.payload)
                return (alert["alertname"], alert["target"], alert["status"]) == (
                    "EndpointUnregistered", "ep-so-01", status,
                ) and alert["labels"]["protocol"] == "sip"  # fmt: skip

            return match

        # The demo reads its codecs every 10 s; the wait only catches a hang.
        firing = await recorder.until(event("firing"), timeout=HANG)
        summary = json.loads(firing.payload)["summary"]
        assert summary == "Văn phòng UBND tỉnh is not registered (SIP): 403 Forbidden"
        assert clean.target("ep-so-01")["room"]["problems"] == [
            "not registered (SIP): 403 Forbidden"
        ]
        clean.call("DELETE", suffix=f"/{fault['id']}")
        await recorder.until(event("resolved"), timeout=HANG)


@pytest.mark.netns
def test_a_demo_meeting_shows_each_rooms_call_quality_and_a_lossy_path_lowers_it(
    clean: Demo,
) -> None:
    """ep-so-01 and ep-so-07 are simulated Cisco codecs; ep-muong-lat-xa01 is a softphone room
    whose baresip makes a real call through the lab's media relay."""

    def mos(room: str) -> float | None:
        return metric_value(clean.metrics(), "netmon_call_audio_mos", target=room, direction="rx")

    rooms = ["ep-so-01", "ep-so-07", SOFTPHONE]
    started = subprocess.run(
        [*netmon_command(), "demo", "meeting", "start", *rooms, "--url", clean.url],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert started.returncode == 0, started.stderr
    assert started.stdout == f"in the meeting: {', '.join(sorted(rooms))}\n"
    try:
        # The demo reads its codecs every 10 s; the waits only catch a hang.
        for room in rooms:
            wait_until(
                lambda room=room: (mos(room) or 0) > 4.0, timeout=HANG, what=f"{room}'s clean MOS"
            )
        clean.inject({"kind": "loss", "target": "ep-so-01", "value": 0.15})
        clean.inject({"kind": "loss", "target": SOFTPHONE, "value": 0.15})
        for room in ("ep-so-01", SOFTPHONE):
            wait_until(
                lambda room=room: (mos(room) or 5) < 3.1, timeout=HANG, what=f"{room}'s lossy MOS"
            )
        other = mos("ep-so-07")
        assert other is not None
        assert other > 4.0
        # The meeting's quality record (an ad hoc meeting: the demo's is not in the config)
        # keeps each room's timeline; it has the lossy stretch once a 10 s sample took it.
        wait_until(
            lambda: all(
                (_recorded_mos(clean, rooms).get(room) or 5) < 3.1
                for room in ("ep-so-01", SOFTPHONE)
            ),
            timeout=HANG,
            what="the lossy rooms' low MOS in the meeting record",
        )
    finally:
        stopped = subprocess.run(
            [*netmon_command(), "demo", "meeting", "stop", "--url", clean.url],
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
    assert stopped.stdout == "meeting ended: 3 room(s) left the call\n"
    for room in rooms:
        wait_until(
            lambda room=room: mos(room) is None, timeout=HANG, what=f"{room}'s call series gone"
        )
    # After the meeting: its record, worst rooms first, and the post-meeting report.
    meeting = _recorded_meeting(clean, rooms)
    status, quality = call("GET", f"{clean.url}/api/v1/meetings/{meeting['id']}/quality")
    assert status == 200
    order = [room["id"] for room in quality["rooms"]]
    assert order.index("ep-so-07") > max(order.index("ep-so-01"), order.index(SOFTPHONE))
    summaries = {room["id"]: room["summary"] for room in quality["rooms"]}
    assert summaries["ep-so-07"]["min_mos"] > 4.0
    assert summaries["ep-so-01"]["poor_minutes"] >= 1
    for lang in ("en", "vi"):
        url = f"{clean.url}/api/v1/meetings/{meeting['id']}/report?lang={lang}"
        with urllib.request.urlopen(url, timeout=10) as answer:  # noqa: S310
            assert answer.headers["Content-Type"].startswith("text/html")
            page = answer.read().decode()
        assert html.escape(clean.target("ep-so-01")["name"]) in page


def _recorded_meeting(demo: Demo, rooms: list[str]) -> dict[str, Any]:
    """The newest recorded meeting that has all of `rooms`."""
    status, listing = call("GET", f"{demo.url}/api/v1/meetings")
    assert status == 200
    ours = [
        meeting
        for meeting in listing["meetings"]
        if set(rooms) <= {room["id"] for room in meeting["rooms"]}
    ]
    assert ours, listing
    return dict(ours[0])


def _recorded_mos(demo: Demo, rooms: list[str]) -> dict[str, float | None]:
    """Each room's lowest recorded MOS in the meeting record of `rooms`."""
    meeting = _recorded_meeting(demo, rooms)
    status, quality = call("GET", f"{demo.url}/api/v1/meetings/{meeting['id']}/quality")
    assert status == 200
    return {room["id"]: room["summary"]["min_mos"] for room in quality["rooms"]}


@pytest.mark.netns
def test_a_plain_sip_room_is_judged_by_the_demos_real_registrar(clean: Demo) -> None:
    """ep-so-04 is an HDX 7000: no API; baresip registers it to the demo's Kamailio."""
    assert "SIP registrar: Kamailio with 32 plain SIP rooms registered by baresip" in clean.output
    assert (
        "Softphone rooms making real calls in the demo's meeting: ep-cam-thuy-xa01, "
        "ep-muong-lat-xa01, ep-quan-hoa-xa03, ep-thuong-xuan-xa05" in clean.output
    )
    assert clean.target("ep-so-04")["room"]["registered"] == {"sip": True, "h323": None}
    fault = clean.inject({"kind": "unregister", "target": "ep-so-04"})
    wait_until(
        lambda: (
            clean.target("ep-so-04")["room"]["problems"]
            == ["not registered (SIP): no live contact at the registrar"]
        ),
        timeout=HANG,
        what="ep-so-04 unregistered",
    )
    refused = clean.call("POST", body={"kind": "camera-unplug", "target": "ep-so-04"})
    assert refused[0] == 400
    assert "plain SIP room" in refused[1]["error"]
    clean.call("DELETE", suffix=f"/{fault['id']}")
    wait_until(
        lambda: clean.target("ep-so-04")["room"]["registered"]["sip"] is True,
        timeout=HANG,
        what="ep-so-04 registered again",
    )


@pytest.mark.netns
def test_demo_endpoints_live_in_the_lab_range_with_their_inventory_names(clean: Demo) -> None:
    target = clean.target("ep-so-01")
    assert target["address"].startswith("198.1")
    assert (target["name"], target["district"]) == ("Văn phòng UBND tỉnh", "TP Thanh Hóa")
    assert "faults API" in clean.output
    assert "Faults unavailable" not in clean.output


@pytest.mark.netns
def test_endpoint_down_takes_the_endpoint_down_and_clearing_brings_it_back(clean: Demo) -> None:
    fault = clean.inject({"kind": "endpoint-down", "target": "ep-so-05"})
    assert fault["id"].startswith("f")
    status, listing = clean.call("GET")
    assert status == 200
    assert [f["id"] for f in listing["faults"] if not f["standing"]] == [fault["id"]]
    # How soon is a bench figure (bench/alert_bench.py) and a fake-clock test
    # (test_alert_engine.py); the wait here only catches a fault that never takes.
    wait_until(lambda: clean.up()["ep-so-05"] == 0.0, timeout=HANG, interval=0.3, what="down")
    assert clean.up()["ep-so-06"] == 1.0
    status, cleared = clean.call("DELETE", suffix="/" + fault["id"])
    assert (status, cleared["id"]) == (200, fault["id"])
    wait_until(lambda: clean.up()["ep-so-05"] == 1.0, timeout=10, interval=0.3, what="up again")
    assert clean.faults(standing=False) == []


@pytest.mark.netns
def test_todays_report_lists_an_outage_with_its_cause(clean: Demo) -> None:
    config = re.search(r"config\s+(\S+netmon-demo\.yaml)", clean.output)
    assert config is not None, clean.output
    fault = clean.inject({"kind": "endpoint-down", "target": "ep-so-13"})
    wait_until(lambda: clean.up()["ep-so-13"] == 0.0, timeout=HANG, interval=0.3, what="down")
    clean.call("DELETE", suffix="/" + fault["id"])
    wait_until(lambda: clean.up()["ep-so-13"] == 1.0, timeout=10, interval=0.3, what="up again")

    def report() -> dict[str, Any]:
        done = subprocess.run(
            [*netmon_command(), "report", "--config", config.group(1), "--from", "today",
             "--target", "ep-so-13", "--format", "json"],
            capture_output=True, text=True, timeout=60, check=True,
        )  # fmt: skip
        document: dict[str, Any] = json.loads(done.stdout)
        return document

    # The journal is written once a second; until the recovery is in, the outage reaches the
    # period's end (now) and is marked split.
    wait_until(
        lambda: [o["split"] for o in report()["targets"][0]["outages"]] == [False],
        timeout=10, interval=1, what="the ended outage in the report",
    )  # fmt: skip
    (site,) = report()["targets"]
    (outage,) = [o for o in site["outages"] if o["cause"] == "EndpointDown"]
    assert outage["excluded"] is False
    assert outage["reason"] == "timeout"
    assert 0 < outage["seconds"] < HANG + 10
    assert site["availability"] < 1.0
    assert site["figures"]["down_seconds"] == outage["seconds"]
    # The same over the API, as the status page links it.
    status, document = call(
        "GET", f"{clean.url}/api/v1/reports/availability?from=today&target=ep-so-13"
    )
    assert status == 200
    assert document["targets"][0]["outages"] == site["outages"]
    # The PDF of the same, from the demo's journal: it opens, and reads as the JSON says.
    pdf = Path(config.group(1)).parent / "report.pdf"
    subprocess.run(
        [*netmon_command(), "report", "--config", config.group(1), "--from", "today",
         "--district", site["district"], "--format", "pdf", "--lang", "vi", "-o", str(pdf)],
        capture_output=True, text=True, timeout=120, check=True,
    )  # fmt: skip
    text = " ".join(page.extract_text() for page in PdfReader(pdf).pages)
    assert site["name"] in text
    assert "EndpointDown" in text


@pytest.mark.netns
def test_delay_raises_the_round_trip_by_that_much(clean: Demo) -> None:
    before = clean.target("ep-so-07")["rtt_ms"]
    assert before < 20
    clean.inject({"kind": "delay", "target": "ep-so-07", "value": 0.2})
    wait_until(
        lambda: clean.target("ep-so-07")["rtt_ms"] > 150, timeout=10, interval=0.3, what="delay"
    )

    def echoes() -> float:
        count = metric_value(clean.metrics(), "netmon_icmp_rtt_seconds_count", target="ep-so-07")
        return count or 0.0

    delayed = echoes()
    wait_until(lambda: echoes() > delayed, timeout=10, interval=0.3, what="one more echo")
    after = clean.target("ep-so-07")["rtt_ms"]
    assert 185 < after - before < 260, (before, after)
    rtt = metric_value(clean.metrics(), "netmon_icmp_rtt_seconds_sum", target="ep-so-07")
    assert rtt is not None
    assert rtt > 0.19


@pytest.mark.netns
def test_a_burst_is_a_loss_burst_and_an_unstable_link_never_a_down(clean: Demo) -> None:
    fault = clean.inject({"kind": "burst", "target": "ep-so-12", "every": "5s", "length": "5-6"})
    assert fault["summary"] == (
        f"ep-so-12 ({fault['address']}) loses bursts of 5-6 pings in a row, on average every 5 s"
    )
    ups: list[float | None] = []

    def bursts() -> float:
        text = clean.metrics()
        ups.append(metric_value(text, "netmon_target_up", target="ep-so-12"))
        return metric_value(text, "netmon_icmp_loss_bursts", target="ep-so-12") or 0.0

    # Bursts every ~5 s: the first comes within seconds; the deadline only catches a fault that
    # does not take. The lost echo that starts one is confirmed by 10 quick echoes, which see
    # the burst through: a burst, and the target never down.
    wait_until(lambda: bursts() >= 2, timeout=60, interval=0.3, what="two loss bursts")
    assert set(ups) == {1.0}

    def unstable() -> list[str]:
        _, alerts = call("GET", clean.url + "/api/v1/alerts")
        return [a["alertname"] for a in alerts["alerts"] if a["target"] == "ep-so-12"]

    wait_until(lambda: "LinkUnstable" in unstable(), timeout=HANG, interval=0.3, what="alert")
    assert "EndpointDown" not in unstable()


@pytest.mark.netns
def test_uplink_cut_takes_down_the_district_and_only_it(clean: Demo) -> None:
    status, targets = call("GET", clean.url + "/api/v1/targets")
    assert status == 200
    district = "Cẩm Thủy"
    inside = {
        t["id"] for t in targets["targets"] if t["district"] == district and t["kind"] == "endpoint"
    }
    assert len(inside) >= 5
    fault = clean.inject({"kind": "uplink-cut", "district": "cam-thuy"})
    assert (fault["district"], set(fault["endpoints"])) == (district, inside)

    def only_district_down() -> bool:
        down = {target for target, value in clean.up().items() if value == 0.0}
        return down == inside

    wait_until(only_district_down, timeout=10, interval=0.3, what="the district down, only it")

    def uplink_reported_down() -> bool:
        text = clean.metrics()
        switch = metric_value(
            text, "netmon_interface_oper_up", target="sw-cam-thuy", ifalias="uplink to core"
        )
        core = metric_value(
            text, "netmon_interface_oper_up", target="core-router", ifalias=f"to {district}"
        )
        return switch == 0.0 and core == 0.0

    # The next SNMP poll of the switch and the core router (every 15 s in the demo).
    wait_until(uplink_reported_down, timeout=25, interval=1, what="uplink oper-down")
    clean.call("DELETE", suffix="/" + fault["id"])
    wait_until(
        lambda: set(clean.up().values()) == {1.0}, timeout=10, interval=0.3, what="all up again"
    )


@pytest.mark.netns
def test_interface_down_shows_at_the_next_poll_and_comes_back(clean: Demo) -> None:
    fault = clean.inject({"kind": "interface-down", "device": "cpe-ep-so-08", "interface": "WAN"})
    assert (fault["interface"], fault["ifname"]) == (1, "WAN")

    def oper() -> float | None:
        return metric_value(
            clean.metrics(), "netmon_interface_oper_up", target="cpe-ep-so-08", ifname="WAN"
        )

    wait_until(lambda: oper() == 0.0, timeout=25, interval=1, what="WAN oper-down")
    lan = metric_value(
        clean.metrics(), "netmon_interface_oper_up", target="cpe-ep-so-08", ifname="LAN1"
    )
    assert lan == 1.0
    assert clean.up()["ep-so-08"] == 1.0  # SNMP faults do not touch the pings
    clean.call("DELETE", suffix="/" + fault["id"])
    wait_until(lambda: oper() == 1.0, timeout=25, interval=1, what="WAN oper-up again")


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*netmon_command(), "demo", "fault", *args],
        capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip


@pytest.mark.netns
def test_the_command_line_adds_lists_and_clears(clean: Demo) -> None:
    added = _cli("add", "endpoint-down", "ep-so-09", "--url", clean.url)
    assert added.returncode == 0, added.stderr
    fault_id = added.stdout.split()[0]
    assert "ep-so-09" in added.stdout
    clean.touched.add("ep-so-09")
    listed = _cli("list", "--url", clean.url)
    assert listed.returncode == 0
    assert listed.stdout.startswith(f"{fault_id} ")
    cleared = _cli("clear", fault_id, "--url", clean.url)
    assert cleared.returncode == 0
    assert cleared.stdout.startswith(f"cleared {fault_id} ")
    remaining = _cli("list", "--url", clean.url).stdout.splitlines()
    assert remaining[:2] == [
        "no faults injected",
        "standing faults of the lab (clear one by its id to see the site healthy):",
    ]
    assert [line.split()[:2] for line in remaining[2:]] == [
        ["s1", "ep-ba-thuoc-xa06"],
        ["s2", "ep-ba-thuoc-xa07"],
        ["s3", "ep-ba-thuoc-xa04"],
    ]

    assert _cli("add", "delay", "ep-so-10", "300ms", "--url", clean.url).returncode == 0
    assert (
        _cli("add", "interface-flap", "sw-cam-thuy", "3", "30", "--url", clean.url).returncode == 0
    )
    clean.touched.add("ep-so-10")
    all_cleared = _cli("clear", "--all", "--url", clean.url)
    assert all_cleared.stdout.endswith(
        "2 fault(s) cleared\nstanding faults stay: s1, s2, s3 (clear them by id)\n"
    )

    bad = _cli("add", "loss", "ep-so-10", "2", "--url", clean.url)
    assert bad.returncode == 1
    assert bad.stderr.startswith("netmon demo fault: value: '2' is not a loss ratio")
    unknown = _cli("clear", "f999", "--url", clean.url)
    assert (unknown.returncode, unknown.stderr) == (
        1,
        f"netmon demo fault: no fault 'f999' in force (GET {PATH} lists them)\n",
    )
    nobody = f"http://127.0.0.1:{free_port()}"
    missing = _cli("list", "--url", nobody)
    assert missing.returncode == 1
    assert missing.stderr == (
        f"netmon demo fault: no netmon demo answers at {nobody} (connection refused); "
        "start one with `netmon demo`, or pass --url\n"
    )


@pytest.mark.netns
def test_without_namespace_rights_the_demo_runs_on_loopback_and_says_why() -> None:
    # Root, but without CAP_NET_ADMIN and CAP_SYS_ADMIN, as in a restricted container.
    setpriv = require_program("setpriv")
    limited = Demo(setpriv, "--bounding-set=-net_admin,-sys_admin", "--")
    try:
        assert "215 conference endpoints on loopback" in limited.output
        assert (
            "Faults unavailable (endpoint-down, loss, delay, jitter, burst, uplink-cut): building "
            "network namespaces needs CAP_NET_ADMIN and CAP_SYS_ADMIN" in limited.output
        )
        status, document = limited.call("POST", {"kind": "endpoint-down", "target": "ep-so-01"})
        assert status == 503
        assert document["error"].startswith("endpoint-down faults are unavailable: building")
        status, fault = limited.call(
            "POST", {"kind": "interface-down", "device": "core-router", "interface": 1}
        )
        assert status == 201, fault  # the simulated devices need no namespace
        status, target = call("GET", limited.url + "/api/v1/targets/ep-so-01")
        assert target["address"] == "127.0.1.2"
    finally:
        assert limited.stop() == 0, limited.output


@pytest.mark.netns
def test_the_demo_lab_is_checked_whole_and_its_troubled_sites_show_with_reasons(
    clean: Demo,
) -> None:
    config = re.search(r"config\s+(\S+netmon-demo\.yaml)", clean.output)
    assert config is not None, clean.output
    # The banner tells a newcomer what the lab has wrong before anything is injected.
    assert "Standing faults of the lab" in clean.output
    assert "s2  ep-ba-thuoc-xa07" in clean.output
    clean.inject({"kind": "loss", "target": "ep-so-06", "value": 0.5})
    result = subprocess.run(
        [*netmon_command(), "check", "--config", config.group(1), "--format", "json"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 1, result.stderr
    report = json.loads(result.stdout)
    # How long the check takes is a figure of `make bench` (bench/check_bench.py), not a bound.
    assert len(report["endpoints"]) == 215
    assert report["counts"] == {"GO": 211, "WARN": 1, "NO-GO": 3}, [
        (e["target"], e["verdict"], e["reasons"]) for e in report["endpoints"][:5]
    ]
    by_id = {e["target"]: e for e in report["endpoints"]}
    assert {e["target"] for e in report["endpoints"][:4]} == {
        "ep-so-06", "ep-ba-thuoc-xa07", "ep-ba-thuoc-xa06", "ep-ba-thuoc-xa04",
    }  # fmt: skip
    # The standing unplugged camera: what the room's own API says, in both languages.
    assert by_id["ep-ba-thuoc-xa04"]["reasons"] == ["camera disconnected (Camera)"]
    assert by_id["ep-ba-thuoc-xa04"]["reasons_vi"] == ["mất kết nối camera (Camera)"]
    assert by_id["ep-so-06"]["reasons"][0].startswith("loss ")
    assert by_id["ep-so-06"]["reasons"][0].endswith("> 5.0%")
    # The standing satellite link (500 ms) and congested line (180 ms), in plain words.
    assert by_id["ep-ba-thuoc-xa07"]["verdict"] == "NO-GO"
    assert re.fullmatch(r"RTT p95 5\d\d ms > 300 ms", by_id["ep-ba-thuoc-xa07"]["reasons"][0])
    assert by_id["ep-ba-thuoc-xa06"]["verdict"] == "WARN"
    assert re.fullmatch(
        r"RTT p95 (1[89]|2\d)\d ms > 150 ms", by_id["ep-ba-thuoc-xa06"]["reasons"][0]
    )
    # The targets API says what MQTT says: answering, but degraded by its latency alert (40
    # replies in its window and 10 s above the level: within a minute of the demo's start).
    wait_until(
        lambda: clean.target("ep-ba-thuoc-xa07")["status"] == "degraded",
        timeout=60,
        what="the satellite site degraded",
    )
    assert clean.target("ep-ba-thuoc-xa07")["state"] == "up"


@pytest.mark.netns
def test_the_banners_district_check_prints_a_verdict_for_each_of_its_endpoints(
    clean: Demo,
) -> None:
    suggested = re.search(r"Check a district: (netmon check .*)", clean.output)
    assert suggested is not None, clean.output
    args = shlex.split(suggested.group(1))[1:]
    result = subprocess.run(
        [*netmon_command(), *args],
        capture_output=True, text=True, timeout=60, check=False,
        env={**os.environ, "COLUMNS": "160"},
    )  # fmt: skip
    assert result.returncode == 1, result.stderr  # the satellite site is NO-GO
    cells = [
        [cell.strip() for cell in line.split("│")[1:-1]]
        for line in result.stdout.splitlines()
        if "(ep-ba-thuoc" in line
    ]
    assert len(cells) == 8, result.stdout  # the district's people's committee and 7 communes
    rows = {re.sub(r".*\((ep-[\w-]+)\)$", r"\1", row[1]): (row[0], row[-1]) for row in cells}
    assert [verdict for verdict, _ in rows.values()][:3] == [
        "NO-GO",
        "NO-GO",
        "WARN",
    ]  # worst first
    assert rows["ep-ba-thuoc-xa04"] == ("NO-GO", "camera disconnected (Camera)"), result.stdout
    assert rows["ep-ba-thuoc-xa07"][0] == "NO-GO"
    assert re.fullmatch(r"RTT p95 5\d\d ms > 300 ms", rows["ep-ba-thuoc-xa07"][1]), result.stdout
    assert rows["ep-ba-thuoc-xa06"][0] == "WARN"
    assert re.fullmatch(r"RTT p95 (1[89]|2\d)\d ms > 150 ms", rows["ep-ba-thuoc-xa06"][1]), (
        result.stdout
    )
    assert [verdict for verdict, _ in rows.values()][3:] == ["GO"] * 5
    assert re.search(r"5 GO, 1 WARN, 2 NO-GO \(8 endpoints checked in [\d.]+ s\)", result.stdout)


@pytest.mark.netns
def test_demo_serves_endpoints_and_device_traffic(clean: Demo) -> None:
    """The 215 lab endpoints up and the simulated devices answering with traffic. Last in the
    module, on the demo the faults above have run on and cleared: by now it has polled every
    device more than twice."""

    def all_up() -> bool:
        up = samples(clean.metrics(), "netmon_target_up")
        endpoints = [value for labels, value in up if labels["kind"] == "endpoint"]
        # Every target up: the 215 endpoints, and the lab registrar once it has been probed.
        return len(endpoints) == 215 and all(value == 1.0 for _, value in up)

    def not_up() -> tuple[int, dict[str, float]]:
        up = samples(clean.metrics(), "netmon_target_up")
        return len(up), {labels["target"]: value for labels, value in up if value != 1.0}

    wait_until(all_up, timeout=15, interval=0.5, what="215 endpoints up", showing=not_up)

    def devices_with_traffic() -> bool:
        body = clean.metrics()
        answering = [v for _, v in samples(body, "netmon_snmp_up") if v == 1.0]
        utilisation = samples(body, "netmon_interface_utilization_ratio")
        wan = [v for labels, v in utilisation
               if labels["target"] == "cpe-ep-so-01" and labels["ifname"] == "WAN"]  # fmt: skip
        return len(answering) == 243 and len(wan) == 2 and all(0 < v < 1 for v in wan)

    # Two polls 15 s apart give the first utilisation.
    wait_until(devices_with_traffic, timeout=45, interval=1, what="interface utilisation")

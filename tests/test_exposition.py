"""/metrics kept per target (netmon.exposition) says what a from-scratch render says.

The reference is prometheus_client's own encoders over `netmon.exporter`'s families, built
anew; the incremental exposition re-writes only the targets whose state changed. After every
step of a sequence of changes (targets added and removed on reload, values changing, a device
polled, traps, a readiness check, a room's call ending) both must be the same bytes, in the
text format and in OpenMetrics. Then gzip, and the targets listing.
"""

from __future__ import annotations

import gzip
import json
import time
from collections.abc import Iterable, Iterator
from dataclasses import replace
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client import generate_latest
from prometheus_client.core import Metric
from prometheus_client.openmetrics.exposition import generate_latest as openmetrics_latest

from netmon.api import build_app
from netmon.checks.model import CheckReport, EndpointReport, Finding, Verdict
from netmon.config.loader import load_data
from netmon.exporter import NetmonRegistry, build_registry, render, store_families
from netmon.exposition import Exposition, accepts_gzip
from netmon.inventory import Inventory
from netmon.model import (
    DeviceSample,
    EchoRound,
    HttpAnswer,
    InterfaceSample,
    Observation,
    TrapEvent,
)
from netmon.state import Clock, StateStore
from tests.test_room_status import PLAIN, REGISTRAR, ROOM, _contacts, _in_call, _status


class Ticks:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class _Families:
    def __init__(self, store: StateStore) -> None:
        self.store = store

    def collect(self) -> Iterator[Metric]:
        self.store.prune_windows()
        return store_families(self.store, time.monotonic())


def _inventory(count: int, *, renamed: int | None = None, moved: int | None = None) -> Inventory:
    targets: list[dict[str, Any]] = [
        {
            "id": f"t{i}",
            "address": f"127.0.3.{i + (100 if i == moved else 1)}",
            "name": f'Xã "số" {i}\\' + (" (renamed)" if i == renamed else ""),
            "site": "s",
            "group": "cpe",
            "labels": {"zone": "north\nline"},
            "probes": {"icmp": {"window": "20s"}, "http": {"url": f"http://127.0.0.1/{i}"}}
            if i % 3 == 0
            else {"icmp": {"window": "20s"}},
        }
        for i in range(count)
    ]
    inventory = load_data({"targets": targets})
    rooms = {t.id: t for t in (ROOM, PLAIN, REGISTRAR)}
    return replace(inventory, targets={**inventory.targets, **rooms})


def _echo(target: str, rtt: float | None) -> EchoRound:
    return EchoRound(target=target, collector="icmp", ok=rtt is not None, duration=0.01,
                     rtts=(rtt,), address="127.0.0.1")  # fmt: skip


def _device(target: str, octets: int, up: bool = True) -> Observation:
    if not up:
        return Observation(target=target, collector="snmp", ok=False, duration=1.0)
    interfaces = tuple(
        InterfaceSample(index, f"ge-0/0/{index}", f'uplink "{index}"', "", True, index != 2,
                        1_000_000_000, 64, octets * index, octets, 0, 1, 0, 2, ticks=octets)
        for index in (1, 2, 3)
    )  # fmt: skip
    return DeviceSample(
        target=target, collector="snmp", ok=True, duration=0.2, uptime_ticks=octets,
        sys_name="sw1", sys_descr="a switch\nwith two lines", sys_object_id="1.3.6.1.4.1.9",
        interfaces=interfaces,
        metrics=(("psu_ok", "gauge", "PSU state", (("psu", "1"),), 1.0),
                 ("fan_turns_total", "counter", "Fan turns", (), float(octets))),
    )  # fmt: skip


def _trap(target: str) -> TrapEvent:
    return TrapEvent(target=target, source="127.0.0.1", version="2c",
                     trap_oid="1.3.6.1.6.3.1.1.5.3", trap="linkDown", varbinds=(), if_index=2,
                     uptime_ticks=5, received_at=0.0)  # fmt: skip


def _check(*verdicts: tuple[str, Verdict]) -> CheckReport:
    report = CheckReport(id="c1", scope={}, started=0.0, finished=1.0)
    for target, verdict in verdicts:
        report.endpoints.append(
            EndpointReport(target, target, "", "", findings=[Finding(verdict, "because")])
        )
    return report


@pytest.fixture
def frozen(monkeypatch: pytest.MonkeyPatch) -> Ticks:
    """Store time and the exporters' probe ages on one clock the test moves."""
    ticks = Ticks()
    monkeypatch.setattr(time, "monotonic", ticks)
    return ticks


def _same(store: StateStore, exposition: Exposition) -> None:
    for openmetrics in (False, True):
        expected = (openmetrics_latest if openmetrics else generate_latest)(_Families(store))
        expected = expected.removesuffix(b"# EOF\n")
        assert exposition.store_text(openmetrics).decode() == expected.decode()


def test_kept_lines_say_what_a_render_from_scratch_says(frozen: Ticks) -> None:
    store = StateStore(clock=Clock(wall=frozen, monotonic=frozen))
    store.apply_inventory(_inventory(8))
    exposition = Exposition(NetmonRegistry(store))
    _same(store, exposition)  # nothing observed yet

    def steps() -> Iterable[str]:
        for second in range(25):
            frozen.now += 1
            for i in range(8):
                store.record(_echo(f"t{i}", None if (i + second) % 5 == 0 else 0.001 * i))
        yield "echoes, windows full"
        store.record(HttpAnswer(target="t3", collector="http", ok=True, duration=0.1,
                                status_code=200, cert_not_after=1.9e9))  # fmt: skip
        store.record(_device("t4", 1000))
        store.record_trap(_trap("t6"))
        yield "an http answer, a device, a trap"
        frozen.now += 3
        yield "time passes: ages grow, nothing else"
        store.record(_device("t4", 2000))
        store.record(_echo("t1", 0.5))
        yield "a value changes on two targets"
        store.record_check(_check(("t1", Verdict.GO), ("t2", Verdict.NO_GO)))
        yield "a readiness check"
        store.record(_contacts("hall@conf.lab"))
        store.record(_status())
        store.record(_in_call(0.02))
        yield "a room in a call"
        store.record(_status())
        yield "its call ends: the stream series vanish"
        store.record(_device("t4", 0, up=False))
        yield "the device stops answering"
        store.apply_inventory(_inventory(10, renamed=2, moved=5))
        yield "a reload: two targets more, one renamed, one moved"
        store.apply_inventory(_inventory(6))
        yield "a reload: four targets fewer"
        frozen.now += 30
        yield "the echoes stop: the windows empty out, loss and jitter vanish"

    for step in steps():
        try:
            _same(store, exposition)
        except AssertionError as error:
            raise AssertionError(f"after {step!r}") from error


def test_only_changed_targets_are_written_again(frozen: Ticks) -> None:
    store = StateStore(clock=Clock(wall=frozen, monotonic=frozen))
    store.apply_inventory(_inventory(20))
    exposition = Exposition(NetmonRegistry(store))
    for i in range(20):
        store.record(_echo(f"t{i}", 0.001))
    exposition.store_text()
    written = exposition.written
    frozen.now += 1
    exposition.store_text()
    assert exposition.written == written  # an age grew: no target written again
    store.record(_echo("t7", 0.002))
    store.record_trap(_trap("t8"))
    exposition.store_text()
    assert exposition.written == written + 2


def test_accept_encoding() -> None:
    assert accepts_gzip("gzip")
    assert accepts_gzip("deflate, gzip;q=0.5")
    assert not accepts_gzip("gzip;q=0")
    assert not accepts_gzip("identity")
    assert not accepts_gzip(None)


def _without_volatile(text: str) -> list[str]:
    """Lines that do not move on their own between two requests."""
    moving = ("netmon_probe_age_seconds", "process_", "netmon_asyncio_tasks")
    moving += tuple(name.replace("_", "__") for name in moving)  # escaping=dots
    return [line for line in text.splitlines() if not line.startswith(moving)]


async def test_metrics_gzip_and_formats_over_http() -> None:
    store = StateStore()
    store.apply_inventory(_inventory(30))
    for i in range(30):
        store.record(_echo(f"t{i}", 0.001 * i))
    registry = build_registry(store)
    app = build_app(store=store, registry=registry, is_ready=lambda: True)
    async with TestClient(TestServer(app), auto_decompress=False) as client:
        plain = await client.get("/metrics", headers={"Accept-Encoding": "identity"})
        assert plain.headers.get("Content-Encoding") is None
        text = (await plain.read()).decode()
        zipped = await client.get("/metrics", headers={"Accept-Encoding": "gzip"})
        assert zipped.headers["Content-Encoding"] == "gzip"
        unzipped = gzip.decompress(await zipped.read()).decode()
        assert _without_volatile(unzipped) == _without_volatile(text)
        assert _without_volatile(text) == _without_volatile(generate_latest(registry).decode())
        accept = "application/openmetrics-text;version=1.0.0;escaping=allow-utf-8"
        om = await client.get("/metrics", headers={"Accept": accept, "Accept-Encoding": ""})
        assert om.headers["Content-Type"].startswith("application/openmetrics-text")
        om_text = (await om.read()).decode()
        assert om_text.endswith("# EOF\n")
        assert om_text.count("# EOF") == 1
        reference = openmetrics_latest(registry).decode()
        assert _without_volatile(om_text) == _without_volatile(reference)
        # A name escaping the kept lines do not serve: rendered from scratch, as before.
        dots = "application/openmetrics-text;version=1.0.0;escaping=dots"
        dotted = await client.get("/metrics", headers={"Accept": dots, "Accept-Encoding": ""})
        dotted_text = (await dotted.read()).decode()
        assert "netmon__icmp__packets__sent__total" in dotted_text
        assert _without_volatile(dotted_text) == _without_volatile(
            render(registry, dots)[0].decode()
        )


async def test_the_targets_listing_is_the_json_it_was() -> None:
    store = StateStore()
    store.apply_inventory(_inventory(12))
    for i in range(12):
        store.record(_echo(f"t{i}", 0.001 * i))
    app = build_app(store=store, registry=build_registry(store), is_ready=lambda: True)
    async with TestClient(TestServer(app)) as client:
        answer = await client.get("/api/v1/targets")
        assert answer.headers["Content-Type"] == "application/json; charset=utf-8"
        listing = await answer.json()
    ids = [t["id"] for t in listing["targets"]]
    assert ids == sorted([*(f"t{i}" for i in range(12)), "hall", "commune", "reg"])
    assert json.loads(json.dumps(listing)) == listing
    assert listing["targets"][ids.index("t3")]["name"] == 'Xã "số" 3\\'

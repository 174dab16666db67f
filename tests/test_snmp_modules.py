"""SNMP modules as data: the shipped Polycom module against an endpoint agent, and config checks."""

from __future__ import annotations

import asyncio
import subprocess
from typing import Any

import pytest
from prometheus_client import generate_latest

from collectors.snmp.codec import OID, Tag, oid_from_text
from collectors.snmp.collector import SnmpCollector
from collectors.snmp.settings import SnmpSettings
from netmon.config.errors import ConfigError
from netmon.config.loader import load_data
from netmon.credentials import SnmpCredential
from netmon.exporter import StoreCollector, build_registry
from netmon.model import DeviceSample, ProbeTarget
from netmon.state import StateStore
from tests.conftest import require_program
from tests.snmp_agent import mib_agent

POLY = "1.3.6.1.4.1.13885.101.1"


def _o(text: str) -> OID:
    return oid_from_text(text)


# What a Poly Group 500 in a call with one failed microphone answers (values as the MIB says).
ENDPOINT: dict[OID, tuple[Tag, Any]] = {
    _o("1.3.6.1.2.1.1.1.0"): (Tag.OCTET_STRING, b"Poly Group 500"),
    _o("1.3.6.1.2.1.1.3.0"): (Tag.TIMETICKS, 360000),
    _o("1.3.6.1.2.1.1.5.0"): (Tag.OCTET_STRING, b"ep-tinh-ubnd"),
    _o(f"{POLY}.3.1.0"): (Tag.INTEGER, 2),  # hardware ok
    _o(f"{POLY}.5.1.0"): (Tag.INTEGER, 1),  # in one conference
    _o(f"{POLY}.3.6.2.1.2.1"): (Tag.OCTET_STRING, b"EagleEye IV"),
    _o(f"{POLY}.3.6.2.1.3.1"): (Tag.INTEGER, 2),
    _o(f"{POLY}.3.5.2.1.2.1"): (Tag.OCTET_STRING, b"Table mic 1"),
    _o(f"{POLY}.3.5.2.1.2.2"): (Tag.OCTET_STRING, b"Table mic 2"),
    _o(f"{POLY}.3.5.2.1.3.1"): (Tag.INTEGER, 2),
    _o(f"{POLY}.3.5.2.1.3.2"): (Tag.INTEGER, 3),  # failed
    _o(f"{POLY}.3.10.2.1.2.1"): (Tag.OCTET_STRING, b"LAN"),
    _o(f"{POLY}.3.10.2.1.6.1"): (Tag.INTEGER, 2),
}


async def test_polycom_module_becomes_metrics(bad_agent: Any) -> None:
    port = await bad_agent(mib_agent(ENDPOINT))
    collector = SnmpCollector()
    await collector.start()
    try:
        target = ProbeTarget(
            id="ep-tinh-ubnd", address="127.0.0.1",
            credentials={"c": SnmpCredential.model_validate({"community": "public"})},
        )  # fmt: skip
        settings = SnmpSettings(credential="c", port=port, timeout=0.5,
                                modules=("system", "polycom_endpoint"))  # fmt: skip
        sample = await collector.collect(target, settings)
    finally:
        await collector.close()
    assert isinstance(sample, DeviceSample)
    assert sample.reason is None
    assert sample.interfaces == ()  # if_mib was not asked for
    store = StateStore()
    store.apply_inventory(load_data({
        "credentials": {"c": {"community": "public"}},
        "targets": [{"id": "ep-tinh-ubnd", "address": "127.0.0.1",
                     "probes": {"snmp": {"credential": "c"}}}],
    }))  # fmt: skip
    store.record(sample)
    exported = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in StoreCollector(store).collect()
        for s in family.samples
        if "polycom" in s.name
    }
    target = ("target", "ep-tinh-ubnd")
    assert exported[("netmon_polycom_active_conferences", (target,))] == 1.0
    assert exported[("netmon_polycom_hardware_status", (("state", "ok"), target))] == 1.0
    assert exported[("netmon_polycom_hardware_status", (("state", "failed"), target))] == 0.0
    mic2 = (("microphone", "2"), ("microphone_name", "Table mic 2"))
    assert (
        exported[("netmon_polycom_microphone_status", (*mic2, ("state", "failed"), target))] == 1.0
    )
    camera = (("camera", "1"), ("camera_name", "EagleEye IV"), ("state", "ok"), target)
    assert exported[("netmon_polycom_camera_status", camera)] == 1.0
    scrape = generate_latest(build_registry(store)).decode()
    linted = await asyncio.to_thread(
        subprocess.run, [require_program("promtool"), "check", "metrics"], input=scrape,
        capture_output=True, text=True,
    )  # fmt: skip
    assert linted.returncode == 0, linted.stderr


@pytest.mark.parametrize(
    ("snmp", "expected"),
    [
        ({"modules": ["system", "polycom_endpiont"]},
         "targets[0].probes.snmp: unknown module 'polycom_endpiont'; known: if_mib, "
         "polycom_endpoint, system"),
        ({"module_definitions": {"mine": {"scalars": [
            {"name": "temperature", "oid": "1.3.6.1.4.1.9.9.13.1.3.1.3.1", "type": "stateset"}]}}},
         "targets[0].probes.snmp.module_definitions.mine.scalars[0]: a stateset needs states: "
         "{1: up, 2: down, ...}"),
        ({"module_definitions": {"mine": {"scalars": [
            {"name": "interface_speed", "oid": "1.3.6.1.2.1.2.2.1.5.1"}]}}},
         "targets[0].probes.snmp.module_definitions.mine.scalars[0].name: 'interface_speed' "
         "would clash with netmon's own metrics; choose another name"),
        ({"module_definitions": {"mine": {"scalars": [{"name": "x", "oid": "1.3.six"}]}}},
         "targets[0].probes.snmp.module_definitions.mine.scalars[0].oid: not a numeric OID: "
         "'1.3.six'"),
    ],
)  # fmt: skip
def test_module_config_errors_name_the_field(snmp: dict[str, Any], expected: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_data({
            "credentials": {"c": {"community": "public"}},
            "targets": [{"id": "r1", "address": "127.0.0.1",
                         "probes": {"snmp": {"credential": "c", **snmp}}}],
        })  # fmt: skip
    assert [str(p) for p in caught.value.problems] == [expected]


def test_own_module_in_config() -> None:
    inventory = load_data({
        "credentials": {"c": {"community": "public"}},
        "targets": [{"id": "r1", "address": "127.0.0.1", "probes": {"snmp": {
            "credential": "c", "modules": ["system", "cisco_temperature"],
            "module_definitions": {"cisco_temperature": {"tables": [{
                "index_label": "sensor",
                "lookups": {"sensor_name": "1.3.6.1.4.1.9.9.13.1.3.1.2"},
                "columns": [{"name": "cisco_temperature_celsius",
                             "oid": "1.3.6.1.4.1.9.9.13.1.3.1.3"}],
            }]}},
        }}}],
    })  # fmt: skip
    settings = inventory.targets["r1"].probe("snmp")
    assert isinstance(settings, SnmpSettings)
    assert settings.module("cisco_temperature").tables[0].index_label == "sensor"


@pytest.mark.parametrize(
    ("definitions", "expected"),
    [
        ({"a": {"scalars": [{"name": "calls", "oid": "1.3.6.1.4.1.1.1.0", "type": "counter"}]},
          "b": {"scalars": [{"name": "calls", "oid": "1.3.6.1.4.1.1.2.0"}]}},
         "metric 'calls' is a counter in module 'a' and a gauge in module 'b'"),
        ({"a": {"tables": [{"index_label": "camera", "columns": [
            {"name": "camera_info", "oid": "1.3.6.1.4.1.1.3", "type": "info"}]}]}, "b": {}},
         "metric 'camera_info' in module 'a' sets a label twice"),
    ],
)  # fmt: skip
def test_modules_that_would_clash_are_refused(definitions: dict[str, Any], expected: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_data({
            "credentials": {"c": {"community": "public"}},
            "targets": [{"id": "r1", "address": "127.0.0.1", "probes": {"snmp": {
                "credential": "c", "modules": list(definitions),
                "module_definitions": definitions}}}],
        })  # fmt: skip
    assert [str(p) for p in caught.value.problems] == [f"targets[0].probes.snmp: {expected}"]

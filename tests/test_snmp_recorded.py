"""Recorded real devices (snmpsim-data): what netmon exports equals what snmpbulkwalk reads."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from importlib import resources
from typing import Any

import pytest

from collectors.snmp.collector import SnmpCollector
from collectors.snmp.settings import SnmpSettings
from netmon.config.loader import load_data
from netmon.credentials import SnmpCredential
from netmon.exporter import StoreCollector
from netmon.model import DeviceSample, ProbeTarget
from netmon.state import StateStore
from tests.conftest import require_program
from tests.peers import SnmpSim

# Several vendors and kinds of device, each with an ifTable.
RECORDINGS = {
    "paloalto": "network/firewall/paloalto-pa-5000.snmprec.bz2",
    "maipu": "network/switch/maipu-sm4200-16gef8ge-ac.snmprec.bz2",
    "ubiquiti": "network/wifi/ubiquiti-m5.snmprec.bz2",
    "clavister": "network/firewall/clavister-amaranten.snmprec.bz2",
    "cts": "network/switch/cts-media-converter.snmprec.bz2",
}
IF = "1.3.6.1.2.1.2.2.1"
IFX = "1.3.6.1.2.1.31.1.1.1"


@pytest.fixture(scope="module")
def snmpsim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SnmpSim]:
    data = tmp_path_factory.mktemp("recordings")
    source = resources.files("snmpsim_data") / "data"
    for community, relative in RECORDINGS.items():
        with resources.as_file(source / relative) as path:
            shutil.copy(path, data / f"{community}.snmprec.bz2")
    simulator = SnmpSim(data, tmp_path_factory.mktemp("snmpsim"), probe_community="cts")
    try:
        yield simulator
    finally:
        simulator.stop()


def _bulkwalk(port: int, community: str, root: str) -> dict[str, str]:
    full = subprocess.run(
        [require_program("snmpbulkwalk"), "-v2c", "-c", community, "-On", "-Oe", "-Ot", "-OQ",
         f"127.0.0.1:{port}", root],
        capture_output=True, text=True, check=True, env={**os.environ, "MIBS": ""},
    ).stdout  # fmt: skip
    values: dict[str, str] = {}
    last = ""
    for line in full.splitlines():
        if line.startswith(".") and " = " in line:
            last, value = line.split(" = ", 1)
            values[last.lstrip(".")] = value.strip().strip('"')
        elif last:
            values[last.lstrip(".")] += "\n" + line
    return values


def _display(text: str) -> str:
    """snmpbulkwalk prints strings with unprintable bytes as hex ("70 6F 00 "): decode those,
    and drop NULs as netmon does."""
    parts = text.split()
    if parts and all(len(p) == 2 and all(c in "0123456789ABCDEF" for c in p) for p in parts):
        text = bytes.fromhex("".join(parts)).decode("utf-8", "replace")
    return text.replace("\x00", "").strip()


async def _export(port: int, community: str) -> dict[str, dict[tuple[str, ...], float]]:
    collector = SnmpCollector()
    await collector.start()
    try:
        target = ProbeTarget(
            id=community, address="127.0.0.1",
            credentials={"c": SnmpCredential.model_validate({"community": community})},
        )  # fmt: skip
        sample = await collector.collect(target, SnmpSettings(credential="c", port=port))
    finally:
        await collector.close()
    assert isinstance(sample, DeviceSample)
    store = StateStore()
    probes = {"snmp": {"credential": "c"}}
    store.apply_inventory(load_data({
        "credentials": {"c": {"community": community}},
        "targets": [{"id": community, "address": "127.0.0.1", "probes": probes}],
    }))  # fmt: skip
    store.record(sample)
    exported: dict[str, dict[tuple[str, ...], float]] = {}
    for family in StoreCollector(store).collect():
        for s in family.samples:
            key = tuple(s.labels.get(k, "") for k in ("ifindex", "ifname", "ifalias"))
            exported.setdefault(s.name, {})[key] = s.value
    return exported


@pytest.mark.peer
@pytest.mark.parametrize("community", list(RECORDINGS))
async def test_exported_values_equal_snmpbulkwalk(snmpsim: SnmpSim, community: str) -> None:
    theirs = _bulkwalk(snmpsim.port, community, "1.3.6.1.2.1")
    ours = await _export(snmpsim.port, community)
    indexes = sorted({int(oid.rsplit(".", 1)[1]) for oid in theirs if oid.startswith(f"{IF}.1.")})
    assert indexes, "the recording has an ifTable"

    def by_index(name: str) -> dict[str, float]:
        return {key[0]: value for key, value in ours.get(name, {}).items()}

    in_octets = by_index("netmon_interface_in_octets_total")
    out_octets = by_index("netmon_interface_out_octets_total")
    oper = by_index("netmon_interface_oper_up")
    speed = by_index("netmon_interface_speed_bytes_per_second")
    names = {key[0]: key[1] for key in ours.get("netmon_interface_oper_up", {})}
    checked: list[Any] = []
    for i in indexes:
        hc_in, plain_in = theirs.get(f"{IFX}.6.{i}"), theirs.get(f"{IF}.10.{i}")
        expected_in = hc_in if hc_in is not None else plain_in
        if expected_in is not None:
            assert in_octets[str(i)] == int(expected_in), (i, "in")
            checked.append(i)
        hc_out, plain_out = theirs.get(f"{IFX}.10.{i}"), theirs.get(f"{IF}.16.{i}")
        expected_out = hc_out if hc_out is not None else plain_out
        if expected_out is not None:
            assert out_octets[str(i)] == int(expected_out), (i, "out")
        if f"{IF}.8.{i}" in theirs:
            assert oper[str(i)] == (1.0 if theirs[f"{IF}.8.{i}"] == "1" else 0.0), (i, "oper")
        high = theirs.get(f"{IFX}.15.{i}")
        if high and int(high):
            assert speed[str(i)] == int(high) * 1_000_000 / 8, (i, "speed")
        elif f"{IF}.5.{i}" in theirs:
            assert speed[str(i)] == int(theirs[f"{IF}.5.{i}"]) / 8, (i, "speed")
        expected_name = _display(theirs.get(f"{IFX}.1.{i}") or theirs.get(f"{IF}.2.{i}", ""))
        assert names[str(i)] == expected_name, (i, "name")
    assert checked, "at least one interface's counters compared"

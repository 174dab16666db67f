"""The SNMP client against net-snmp's snmpd: what we read equals what snmpbulkwalk reads."""

from __future__ import annotations

import asyncio
import os
import subprocess
import time
from collections.abc import Iterator
from typing import Any

import pytest

from collectors.base import CollectError
from collectors.snmp.client import Agent, SnmpClient
from collectors.snmp.codec import OID, Tag, Version, oid_from_text, oid_to_text
from tests.alertmanager_peer import eventually
from tests.conftest import require_program
from tests.peers import Snmpd

SYSTEM = (1, 3, 6, 1, 2, 1, 1)
IF_TABLE = (1, 3, 6, 1, 2, 1, 2, 2)
IF_X_TABLE = (1, 3, 6, 1, 2, 1, 31, 1, 1)
MOVING = {Tag.COUNTER32, Tag.COUNTER64, Tag.TIMETICKS}


@pytest.fixture(scope="module")
def snmpd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Snmpd]:
    agent = Snmpd(require_program("snmpd"), tmp_path_factory.mktemp("snmpd"))
    try:
        yield agent
    finally:
        agent.stop()


def _agent(snmpd: Snmpd, **overrides: Any) -> Agent:
    return Agent(**{"address": "127.0.0.1", "port": snmpd.port, "community": b"public",
                    "timeout": 1.0, "retries": 1, **overrides})  # fmt: skip


def snmpbulkwalk(snmpd: Snmpd, root: OID) -> dict[OID, tuple[str, Any]]:
    """net-snmp's reading of a subtree, normalised to (type, value)."""
    output = subprocess.run(
        [require_program("snmpbulkwalk"), "-v2c", "-c", snmpd.community, "-On", "-Ox", "-Ot",
         "-Oe", f"127.0.0.1:{snmpd.port}", oid_to_text(root)],
        capture_output=True, text=True, check=True, env={**os.environ, "MIBS": ""},
    ).stdout  # fmt: skip
    raw: dict[str, str] = {}
    current = ""
    for line in output.splitlines():
        if line.startswith(".") and " = " in line:
            current, value = line.split(" = ", 1)
            raw[current] = value
        elif current:
            raw[current] += " " + line  # long hex strings wrap onto more lines
    return {oid_from_text(oid): _normalise(text) for oid, text in raw.items()}


def _normalise(text: str) -> tuple[str, Any]:
    if text == '""':
        return "bytes", b""
    kind, _, value = text.partition(": ")
    if not value:
        return "ticks", int(kind)  # -Ot prints TimeTicks as a bare number
    if kind == "Hex-STRING":
        return "bytes", bytes.fromhex(value)
    if kind == "IpAddress":
        return "bytes", bytes(int(part) for part in value.split("."))
    if kind == "OID":
        return "oid", oid_from_text(value)
    return kind.lower(), int(value)


_OURS = {Tag.OCTET_STRING: "bytes", Tag.IP_ADDRESS: "bytes", Tag.OPAQUE: "bytes",
         Tag.OBJECT_IDENTIFIER: "oid", Tag.INTEGER: "integer", Tag.COUNTER32: "counter32",
         Tag.GAUGE32: "gauge32", Tag.COUNTER64: "counter64", Tag.TIMETICKS: "ticks"}  # fmt: skip


@pytest.mark.peer
@pytest.mark.parametrize(
    "root", [SYSTEM, IF_TABLE, IF_X_TABLE], ids=["system", "ifTable", "ifXTable"]
)
async def test_walk_equals_snmpbulkwalk(snmpd: Snmpd, root: OID) -> None:
    async with SnmpClient() as client:
        result = await client.walk(_agent(snmpd), root, max_repetitions=10)
    theirs = snmpbulkwalk(snmpd, root)  # read second: counters can only have grown
    assert result.truncated is None
    assert result.varbinds, "the agent has this table"
    assert [vb.oid for vb in result.varbinds] == list(theirs)
    for varbind in result.varbinds:
        kind, value = theirs[varbind.oid]
        assert _OURS[varbind.tag] == kind, varbind
        if varbind.tag in MOVING:
            assert isinstance(varbind.value, int)
            assert varbind.value <= value
        else:
            assert varbind.value == value, varbind


@pytest.mark.peer
async def test_v1_walks_with_getnext(snmpd: Snmpd) -> None:
    async with SnmpClient() as client:
        v1 = await client.walk(_agent(snmpd, version=Version.V1), IF_TABLE)
        v2 = await client.walk(_agent(snmpd), IF_TABLE)
    assert [vb.oid for vb in v1.varbinds] == [vb.oid for vb in v2.varbinds]


@pytest.mark.peer
async def test_get_scalars(snmpd: Snmpd) -> None:
    async with SnmpClient() as client:
        descr, uptime = await client.get(_agent(snmpd), [(*SYSTEM, 1, 0), (*SYSTEM, 3, 0)])
    assert descr.tag == Tag.OCTET_STRING
    assert snmpbulkwalk(snmpd, (*SYSTEM, 1))[(*SYSTEM, 1, 0)] == ("bytes", descr.value)
    assert uptime.tag == Tag.TIMETICKS


@pytest.mark.peer
async def test_wrong_community_is_a_timeout_after_retries(snmpd: Snmpd) -> None:
    async with SnmpClient() as client:
        with pytest.raises(CollectError) as caught:
            await client.get(
                _agent(snmpd, community=b"wrong", timeout=0.2, retries=2), [(*SYSTEM, 3, 0)]
            )
        assert client.stats.retries == 2
    assert caught.value.reason == "timeout"
    assert "wrong" not in caught.value.detail  # communities never appear in errors


@pytest.mark.peer
async def test_many_agents_share_one_socket(snmpd: Snmpd) -> None:
    async with SnmpClient(max_in_flight=16) as client:
        results = await asyncio.gather(*(client.walk(_agent(snmpd), SYSTEM) for _ in range(100)))
        assert len(client._sockets) == 1
    assert len({len(result.varbinds) for result in results}) == 1


async def _collect_twice(snmpd: Snmpd, **settings: Any) -> tuple[list[list[OID]], list[list[str]]]:
    """Two polls through one collector: the columns each walked, and the names each found."""
    from collectors.snmp.collector import SnmpCollector
    from collectors.snmp.settings import SnmpSettings
    from netmon.credentials import SnmpCredential
    from netmon.model import DeviceSample, ProbeTarget

    client = SnmpClient()
    walked: list[list[OID]] = []
    original = client.walk_columns

    async def spy(agent: Agent, columns: Any, **options: Any) -> Any:
        walked.append(list(columns))
        return await original(agent, columns, **options)

    client.walk_columns = spy  # type: ignore[method-assign]
    collector = SnmpCollector(client=client)
    await client.start()
    try:
        target = ProbeTarget(
            id="cached", address="localhost",  # a name, resolved by the collector
            credentials={"c": SnmpCredential.model_validate({"community": "public"})},
        )  # fmt: skip
        config = SnmpSettings(credential="c", port=snmpd.port, **settings)

        async def names() -> list[str]:
            sample = await collector.collect(target, config)
            assert isinstance(sample, DeviceSample)
            return [interface.name for interface in sample.interfaces]

        first = await names()
        read = time.monotonic()
        if "lookup_max_age" in settings:
            # The names' age is real time on the collector's monotonic clock: wait until those
            # of the first poll are older than lookup_max_age.
            await eventually(
                lambda: time.monotonic() - read > config.lookup_max_age,
                what="the cached names to age out",
            )
        second = await names()
    finally:
        await client.close()
    return walked, [first, second]


IF_NAME = (1, 3, 6, 1, 2, 1, 31, 1, 1, 1, 1)


@pytest.mark.peer
async def test_interface_names_are_cached_between_polls(snmpd: Snmpd) -> None:
    walked, names = await _collect_twice(snmpd)
    assert names[1] == names[0]
    assert "lo" in names[0]
    assert IF_NAME in walked[0]
    assert IF_NAME not in walked[1]  # ifName, ifAlias, ifDescr came from the cache
    assert len(walked[1]) == len(walked[0]) - 3


@pytest.mark.peer
async def test_cached_names_expire(snmpd: Snmpd) -> None:
    walked, _ = await _collect_twice(snmpd, lookup_max_age=0.1)
    assert IF_NAME in walked[1]

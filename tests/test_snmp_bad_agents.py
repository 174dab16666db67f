"""Agents that misbehave: each failure has its own reason, partial results are kept."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from collectors.base import CollectError
from collectors.snmp.codec import (
    OID,
    Message,
    PduType,
    Tag,
    VarBind,
    encode_message,
)
from collectors.snmp.collector import IF_ENTRY, SYSTEM, SnmpCollector
from collectors.snmp.settings import SnmpSettings
from netmon.credentials import SnmpCredential
from netmon.model import DeviceSample, ProbeTarget
from tests.snmp_agent import Responder


def _system(request: Message) -> list[VarBind]:
    uptime = (*SYSTEM, 3, 0)
    return [
        VarBind(vb.oid, Tag.TIMETICKS, 12345)
        if vb.oid == uptime
        else VarBind(vb.oid, Tag.OCTET_STRING, b"x")
        for vb in request.varbinds
    ]


async def _poll(port: int, **settings: Any) -> DeviceSample:
    collector = SnmpCollector()
    await collector.start()
    try:
        target = ProbeTarget(
            id="bad", address="127.0.0.1",
            credentials={"c": SnmpCredential.model_validate({"community": "public"})},
        )  # fmt: skip
        sample = await collector.collect(
            target,
            SnmpSettings.model_validate(
                {"credential": "c", "port": port, "timeout": 0.3, "retries": 0, **settings}
            ),
        )
        assert isinstance(sample, DeviceSample)
        return sample
    finally:
        await collector.close()


async def test_garbage_replies_are_reported_as_malformed(bad_agent: Any) -> None:
    port = await bad_agent(lambda request: b"\x30\x05garbage")
    with pytest.raises(CollectError) as caught:
        await _poll(port)
    assert caught.value.reason == "malformed"


async def test_silence_is_a_timeout(bad_agent: Any) -> None:
    port = await bad_agent(lambda request: None)
    with pytest.raises(CollectError) as caught:
        await _poll(port)
    assert caught.value.reason == "timeout"


def _table(rows: Callable[[OID], OID]) -> Responder:
    """System GETs answered; GETBULKs answered with the successor `rows` gives each OID."""

    def respond(request: Message) -> list[VarBind]:
        if request.pdu_type == PduType.GET:
            return _system(request)
        return [VarBind(rows(vb.oid), Tag.INTEGER, 1) for vb in request.varbinds]

    return respond


async def test_non_increasing_oids_stop_the_walk_and_keep_the_rest(bad_agent: Any) -> None:
    def backwards(oid: OID) -> OID:
        column = oid[: len(IF_ENTRY) + 1]
        index = oid[len(column) :]
        if not index:
            return (*column, 5)
        return (*column, index[0] - 1)  # goes back: 5, 4, ... is a broken agent

    port = await bad_agent(_table(backwards))
    sample = await _poll(port)
    assert sample.ok
    assert sample.uptime_ticks == 12345  # the system facts survive
    assert sample.reason == "non-increasing-oid"
    assert [interface.index for interface in sample.interfaces] == [5]


async def test_endless_tables_are_capped(bad_agent: Any) -> None:
    def forever(oid: OID) -> OID:
        column = oid[: len(IF_ENTRY) + 1]
        index = oid[len(column) :]
        return (*column, (index[0] + 1) if index else 1)

    port = await bad_agent(_table(forever))
    sample = await _poll(port, max_interfaces=50, max_repetitions=10)
    assert sample.reason == "row-cap"
    assert len(sample.interfaces) == 50


async def test_missing_objects_are_left_out(bad_agent: Any) -> None:
    def respond(request: Message) -> list[VarBind]:
        if request.pdu_type == PduType.GET:
            return [VarBind(vb.oid, Tag.NO_SUCH_OBJECT, None) for vb in request.varbinds]
        return [VarBind(vb.oid, Tag.END_OF_MIB_VIEW, None) for vb in request.varbinds]

    port = await bad_agent(respond)
    sample = await _poll(port)
    assert sample.ok
    assert sample.uptime_ticks is None
    assert sample.interfaces == ()


async def test_an_error_status_names_itself(bad_agent: Any) -> None:
    def respond(request: Message) -> bytes:
        return encode_message(
            Message(request.version, request.community, PduType.RESPONSE, request.request_id,
                    5, 1, request.varbinds)
        )  # fmt: skip

    port = await bad_agent(respond)
    with pytest.raises(CollectError) as caught:
        await _poll(port)
    assert caught.value.reason == "snmp-error"
    assert "genErr at varbind 1" in caught.value.detail


async def test_names_are_read_again_when_if_table_last_change_moves(bad_agent: Any) -> None:
    from collectors.snmp.client import SnmpClient
    from collectors.snmp.collector import IF_TABLE_LAST_CHANGE

    last_change = [100]
    walked: list[int] = []

    def respond(request: Message) -> list[VarBind]:
        if request.pdu_type == PduType.GET:
            return [
                VarBind(vb.oid, Tag.TIMETICKS, last_change[0])
                if vb.oid == IF_TABLE_LAST_CHANGE
                else VarBind(vb.oid, Tag.TIMETICKS, 5000)
                if vb.oid == (*SYSTEM, 3, 0)
                else VarBind(vb.oid, Tag.OCTET_STRING, b"x")
                for vb in request.varbinds
            ]
        walked.append(len(request.varbinds))
        # One interface (index 1) in every column, then the end of the MIB.
        return [
            VarBind((*vb.oid[: len(IF_ENTRY) + 1], 1), Tag.INTEGER, 1)
            if len(vb.oid) == len(IF_ENTRY) + 1
            else VarBind(vb.oid, Tag.END_OF_MIB_VIEW, None)
            for vb in request.varbinds
        ]

    port = await bad_agent(respond)
    client = SnmpClient()
    collector = SnmpCollector(client=client)
    await client.start()
    try:
        target = ProbeTarget(
            id="bad", address="127.0.0.1",
            credentials={"c": SnmpCredential.model_validate({"community": "public"})},
        )  # fmt: skip
        settings = SnmpSettings(credential="c", port=port, timeout=0.3, retries=0)
        await collector.collect(target, settings)
        first = walked[0]
        walked.clear()
        await collector.collect(target, settings)
        cached = walked[0]
        walked.clear()
        last_change[0] = 200  # an interface was added or renamed on the device
        await collector.collect(target, settings)
        refreshed = walked[0]
    finally:
        await client.close()
    assert cached == first - 3
    assert refreshed == first


async def test_an_agent_answering_nosuchinstance_forever_is_cut_off(bad_agent: Any) -> None:
    def respond(request: Message) -> list[VarBind]:
        if request.pdu_type == PduType.GET:
            return _system(request)
        return [VarBind((*vb.oid[: len(IF_ENTRY) + 1], (vb.oid[len(IF_ENTRY) + 1 :] or (0,))[0]
                         + 1), Tag.NO_SUCH_INSTANCE, None) for vb in request.varbinds]  # fmt: skip

    port = await bad_agent(respond)
    sample = await _poll(port, max_interfaces=30, max_repetitions=10)
    assert sample.reason == "row-cap"
    assert sample.interfaces == ()


async def test_v1_agent_without_if_mib_extensions(bad_agent: Any) -> None:
    from tests.snmp_agent import mib_agent

    # An RFC 1213 agent: ifTable only, no ifXTable, no ifTableLastChange; v1 says noSuchName.
    values = {
        (*SYSTEM, 3, 0): (Tag.TIMETICKS, 100),
        (*SYSTEM, 5, 0): (Tag.OCTET_STRING, b"old"),
        (*IF_ENTRY, 2, 1): (Tag.OCTET_STRING, b"eth0"),
        (*IF_ENTRY, 8, 1): (Tag.INTEGER, 1),
        (*IF_ENTRY, 10, 1): (Tag.COUNTER32, 5000),
        (*IF_ENTRY, 16, 1): (Tag.COUNTER32, 7000),
    }
    answer = mib_agent(values)

    def respond(request: Message) -> list[VarBind] | bytes:
        varbinds = answer(request)
        for position, vb in enumerate(varbinds, start=1):
            if vb.tag in (Tag.NO_SUCH_OBJECT, Tag.END_OF_MIB_VIEW):
                return encode_message(Message(request.version, request.community,
                                              PduType.RESPONSE, request.request_id, 2,
                                              position, request.varbinds))  # fmt: skip
        return varbinds

    port = await bad_agent(respond)
    collector = SnmpCollector()
    await collector.start()
    try:
        target = ProbeTarget(
            id="old", address="127.0.0.1",
            credentials={"c": SnmpCredential.model_validate(
                {"snmp_version": 1, "community": "public"})},
        )  # fmt: skip
        sample = await collector.collect(
            target, SnmpSettings(credential="c", port=port, timeout=0.3, retries=0)
        )
    finally:
        await collector.close()
    assert isinstance(sample, DeviceSample)
    assert sample.reason is None
    assert [(i.name, i.in_octets, i.counter_bits) for i in sample.interfaces] == [
        ("eth0", 5000, 32)
    ]


async def test_a_retry_inside_the_walk_does_not_skew_utilisation(bad_agent: Any) -> None:
    from netmon.devices import DeviceState

    elapsed = [0.0]  # the agent's seconds: moved by the test, not slept
    rate = 1_250_000  # octets per second: 10 Mbit/s on a 100 Mbit/s port
    drop_next_bulk = [False]

    def now_ticks() -> int:
        return 100_000 + int(elapsed[0] * 100)

    def octets() -> int:
        return int(elapsed[0] * rate)

    def respond(request: Message) -> list[VarBind] | None:
        if request.pdu_type == PduType.GET:
            return [VarBind(vb.oid, Tag.TIMETICKS, now_ticks()) if vb.oid == (*SYSTEM, 3, 0)
                    else VarBind(vb.oid, Tag.NO_SUCH_OBJECT, None)
                    for vb in request.varbinds]  # fmt: skip
        if drop_next_bulk[0]:
            drop_next_bulk[0] = False
            elapsed[0] += 0.3  # the agent's time goes on while the client waits to retry
            return None  # lost: the client retries after its timeout
        out = [VarBind((*SYSTEM, 3, 0), Tag.TIMETICKS, now_ticks())]
        for vb in request.varbinds[1:]:
            column = vb.oid[: len(IF_ENTRY) + 1]
            if len(vb.oid) > len(column):  # past row 1: the end of this column
                out.append(VarBind(vb.oid, Tag.END_OF_MIB_VIEW, None))
            elif column == (*IF_ENTRY, 10):
                out.append(VarBind((*column, 1), Tag.COUNTER32, octets() % 2**32))
            elif column == (*IF_ENTRY, 5):
                out.append(VarBind((*column, 1), Tag.GAUGE32, 100_000_000))
            else:
                out.append(VarBind((*column, 1), Tag.INTEGER, 1))
        return out

    port = await bad_agent(respond)
    device = DeviceState()
    device.fold(await _poll(port, retries=1))
    elapsed[0] += 1.0  # a second between the polls
    drop_next_bulk[0] = True  # the second poll's walk needs a retry (0.3 s timeout)
    device.fold(await _poll(port, retries=1))
    utilisation = device.interfaces[1].utilization
    assert utilisation is not None
    assert utilisation[0] == pytest.approx(0.1, rel=0.03)

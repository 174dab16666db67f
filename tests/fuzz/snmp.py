"""Fuzz targets: SNMP messages (the polling codec, the trap wire format, the trap receiver)."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import Iterator

from hypothesis import strategies as st

from collectors.snmp.codec import (
    DecodeError,
    Message,
    PduType,
    Tag,
    VarBind,
    Version,
    decode_message,
    encode_message,
    encode_oid,
    encode_value,
)
from collectors.traps.events import TrapSource
from collectors.traps.receiver import TrapReceiver
from collectors.traps.settings import TrapSettings
from collectors.traps.wire import (
    decode_v1_trap,
    decode_v3_header,
    message_version,
    read_community_header,
)
from netmon.credentials import SnmpCredential
from tests.fuzz.target import Check, Target, plain

# --- near-valid inputs: a valid message, then mutated --------------------------------------


def _mutate(data: bytes, edits: list[tuple[int, int, int]]) -> bytes:
    """Apply (kind, position, value) edits: overwrite a byte, cut, insert, or grow a length."""
    out = bytearray(data)
    for kind, position, value in edits:
        if not out:
            break
        at = position % len(out)
        if kind == 0:
            out[at] = value
        elif kind == 1:
            del out[at:]
        elif kind == 2:
            out.insert(at, value)
        else:  # a long-form length where a short one was: 0x84 + four bytes
            out[at : at + 1] = bytes((0x84,)) + value.to_bytes(4, "big")
    return bytes(out)


_EDITS = st.lists(
    st.tuples(st.integers(0, 3), st.integers(0, 1 << 16), st.integers(0, 255)), max_size=4
)
_OIDS = st.lists(st.integers(0, (1 << 32) - 1), min_size=0, max_size=12).map(
    lambda arcs: (1, 3, 6, 1, *arcs)
)
_VALUES = st.one_of(
    st.tuples(st.just(Tag.INTEGER), st.integers(-(1 << 31), (1 << 31) - 1)),
    st.tuples(st.just(Tag.OCTET_STRING), st.binary(max_size=40)),
    st.tuples(st.just(Tag.OBJECT_IDENTIFIER), _OIDS),
    st.tuples(st.just(Tag.IP_ADDRESS), st.binary(min_size=4, max_size=4)),
    st.tuples(
        st.sampled_from([Tag.COUNTER32, Tag.GAUGE32, Tag.TIMETICKS]), st.integers(0, (1 << 32) - 1)
    ),
    st.tuples(st.just(Tag.COUNTER64), st.integers(0, (1 << 64) - 1)),
    st.tuples(st.sampled_from([Tag.NULL, Tag.NO_SUCH_OBJECT, Tag.END_OF_MIB_VIEW]), st.none()),
)
_VARBINDS = st.lists(
    st.builds(lambda oid, tv: VarBind(oid, tv[0], tv[1]), _OIDS, _VALUES), max_size=6
)
_MESSAGES = st.builds(
    Message,
    version=st.sampled_from(list(Version)),
    community=st.binary(max_size=12),
    pdu_type=st.sampled_from([PduType.RESPONSE, PduType.TRAP_V2, PduType.INFORM, PduType.GET]),
    request_id=st.integers(-(1 << 31), (1 << 31) - 1),
    error_status=st.integers(0, 18),
    error_index=st.integers(0, 10),
    varbinds=_VARBINDS.map(tuple),
)
_TRAP_OID = (1, 3, 6, 1, 6, 3, 1, 1, 4, 1, 0)


def _with_trap_oid(message: Message) -> Message:
    head = (
        VarBind((1, 3, 6, 1, 2, 1, 1, 3, 0), Tag.TIMETICKS, 5),
        VarBind(_TRAP_OID, Tag.OBJECT_IDENTIFIER, (1, 3, 6, 1, 6, 3, 1, 1, 5, 3)),
    )
    return dataclasses.replace(message, varbinds=head + message.varbinds)


def _tlv(tag: int, body: bytes) -> bytes:
    length = len(body)
    if length < 0x80:
        return bytes((tag, length)) + body
    size = (length.bit_length() + 7) // 8
    return bytes((tag, 0x80 | size)) + length.to_bytes(size, "big") + body


def _varbinds(varbinds: list[VarBind]) -> bytes:
    return b"".join(
        _tlv(0x30, _tlv(0x06, encode_oid(vb.oid)) + encode_value(vb.tag, vb.value))
        for vb in varbinds
    )


def _v1_trap(community: bytes, generic: int, varbinds: bytes) -> bytes:
    pdu = (
        _tlv(0x06, b"\x2b\x06\x01\x04\x01\x81\x80\x01")
        + _tlv(0x40, b"\x7f\x00\x00\x01")
        + _tlv(0x02, bytes((generic,)))
        + _tlv(0x02, b"\x00")
        + _tlv(0x43, b"\x01\x00")
        + _tlv(0x30, varbinds)
    )
    return _tlv(0x30, _tlv(0x02, b"\x00") + _tlv(0x04, community) + _tlv(0xA4, pdu))


def _v3_message(user: bytes, engine_id: bytes, flags: int, rest: bytes) -> bytes:
    header = _tlv(
        0x30,
        _tlv(0x02, b"\x01")
        + _tlv(0x02, b"\x05\xdc")
        + _tlv(0x04, bytes((flags,)))
        + _tlv(0x02, b"\x03"),
    )
    params = _tlv(
        0x30,
        _tlv(0x04, engine_id)
        + _tlv(0x02, b"\x00")
        + _tlv(0x02, b"\x00")
        + _tlv(0x04, user)
        + _tlv(0x04, b"")
        + _tlv(0x04, b""),
    )
    return _tlv(0x30, _tlv(0x02, b"\x03") + header + _tlv(0x04, params) + rest)


_BER = st.one_of(
    st.binary(max_size=300),
    st.tuples(_MESSAGES, _EDITS).map(lambda m: _mutate(encode_message(m[0]), m[1])),
    st.tuples(_MESSAGES.map(_with_trap_oid), _EDITS).map(
        lambda m: _mutate(encode_message(m[0]), m[1])
    ),
    st.tuples(
        st.sampled_from([b"public", b"x"]), st.integers(0, 6), _VARBINDS.map(_varbinds), _EDITS
    ).map(lambda a: _mutate(_v1_trap(a[0], a[1], a[2]), a[3])),
    st.tuples(
        st.sampled_from([b"alice", b"bob", b""]),
        st.binary(max_size=12),
        st.integers(0, 7),
        st.binary(max_size=60),
        _EDITS,
    ).map(lambda a: _mutate(_v3_message(a[0], a[1], a[2], a[3]), a[4])),
)


def _many_varbinds(size: int, *, trap: bool) -> bytes:
    """A v2c message of about `size` bytes: as many counters as fit (the common big answer)."""
    one = VarBind((1, 3, 6, 1, 2, 1, 2, 2, 1, 10, 1000), Tag.COUNTER64, (1 << 63) + 12345)
    base = Message(
        Version.V2C, b"public", PduType.TRAP_V2 if trap else PduType.RESPONSE, 1, 0, 0, ()
    )
    if trap:
        base = _with_trap_oid(base)
    empty = len(encode_message(base))
    per = len(encode_message(dataclasses.replace(base, varbinds=(*base.varbinds, one)))) - empty
    count = max(0, (size - empty) // per)
    return encode_message(dataclasses.replace(base, varbinds=base.varbinds + (one,) * count))


def _long_oid(size: int) -> bytes:
    """One varbind whose OID takes the whole datagram: rejected, and how fast matters."""
    oid_body = b"\x2b" + b"\x81" * (size - 40) + b"\x01"
    varbind = _tlv(0x30, _tlv(0x06, oid_body) + b"\x05\x00")
    pdu = _tlv(0xA2, b"\x02\x01\x01\x02\x01\x00\x02\x01\x00" + _tlv(0x30, varbind))
    return _tlv(0x30, b"\x02\x01\x01" + _tlv(0x04, b"public") + pdu)


# --- SNMP codec, trap wire format -------------------------------------------------------------


def _check_codec(data: bytes) -> None:
    with contextlib.suppress(DecodeError):
        decode_message(data)


def _check_wire(data: bytes) -> None:
    for parse in (decode_v1_trap, decode_v3_header, read_community_header, message_version):
        with contextlib.suppress(DecodeError):
            parse(data)


def _v1_sized(size: int) -> bytes:
    one = _tlv(
        0x30,
        _tlv(0x06, b"\x2b\x06\x01\x02\x01\x02\x02\x01\x0a\x87\x68")
        + _tlv(0x46, b"\x80" + b"\x00" * 7),
    )
    return _v1_trap(b"public", 6, one * max(0, (size - 60) // len(one)))


# --- the trap receiver: a datagram in, a trap event or a counted drop out ----------------------

_SOURCE = TrapSource(
    target="ep1",
    credentials=(
        SnmpCredential(snmp_version="2c", community="public"),
        SnmpCredential(snmp_version="1", community="public"),
        SnmpCredential(snmp_version="3", user="alice"),
    ),
)


@contextlib.contextmanager
def _open_receiver() -> Iterator[Check]:
    loop = asyncio.new_event_loop()
    receiver = TrapReceiver(
        TrapSettings.model_validate({"listen": "127.0.0.1:0", "rate_limit": 1e9, "burst": 1e9}),
        resolve=lambda ip: _SOURCE if ip in ("192.0.2.1", "127.0.0.1") else None,
        on_trap=lambda event: None,
        on_engine_id=lambda target, engine_id: None,
    )
    loop.run_until_complete(receiver.start())

    async def feed(data: bytes, address: tuple[str, int]) -> None:
        receiver._on_datagram(data, address)  # the receiver's contract: nothing escapes it
        await asyncio.sleep(0)
        if receiver._pending:  # a v3 user's first message waits for its keys
            await asyncio.gather(*receiver._pending)

    def check(data: bytes) -> None:
        loop.run_until_complete(feed(data, ("192.0.2.1", 162)))
        # Errors counted here are exceptions our own code raised on a datagram (the v3 path
        # counts pysnmp's rejections as malformed or auth, not as errors).
        assert not receiver.stats.errors, dict(receiver.stats.errors)

    try:
        yield check
    finally:
        loop.run_until_complete(receiver.close())
        loop.close()


TARGETS: tuple[Target, ...] = (
    Target("snmp ber", _BER, plain(_check_codec), sized=lambda n: _many_varbinds(n, trap=False)),
    Target(
        "snmp ber long oid",
        st.integers(50, 70_000).map(_long_oid),
        plain(_check_codec),
        sized=_long_oid,
    ),
    Target("trap wire v1/v3", _BER, plain(_check_wire), sized=_v1_sized),
    Target("trap datagram", _BER, _open_receiver, sized=lambda n: _many_varbinds(n, trap=True)),
)

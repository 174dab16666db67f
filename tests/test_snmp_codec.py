"""The SNMP codec against pysnmp: same bytes out, same values in, for every SNMP type."""

from __future__ import annotations

import contextlib
from typing import Any

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from pyasn1.codec.ber import decoder as ber_decoder
from pyasn1.codec.ber import encoder as ber_encoder
from pysnmp.proto import api, rfc1905

from collectors.snmp.codec import (
    OID,
    DecodeError,
    Message,
    PduType,
    Tag,
    VarBind,
    Version,
    decode_message,
    encode_message,
    encode_request,
    oid_from_text,
)

V2C = api.v2c
V1 = api.v1

# --- what pysnmp makes of our values, and back --------------------------------------------------

_TO_PYSNMP: dict[Tag, Any] = {
    Tag.INTEGER: V2C.Integer,
    Tag.OCTET_STRING: V2C.OctetString,
    Tag.OBJECT_IDENTIFIER: V2C.ObjectIdentifier,
    Tag.IP_ADDRESS: V2C.IpAddress,
    Tag.COUNTER32: V2C.Counter32,
    Tag.GAUGE32: V2C.Gauge32,
    Tag.TIMETICKS: V2C.TimeTicks,
    Tag.OPAQUE: V2C.Opaque,
    Tag.COUNTER64: V2C.Counter64,
}
_EXCEPTION_VALUES = {
    Tag.NO_SUCH_OBJECT: rfc1905.noSuchObject,
    Tag.NO_SUCH_INSTANCE: rfc1905.noSuchInstance,
    Tag.END_OF_MIB_VIEW: rfc1905.endOfMibView,
}
_PDU_CLASSES = {
    PduType.GET: V2C.GetRequestPDU,
    PduType.GET_NEXT: V2C.GetNextRequestPDU,
    PduType.RESPONSE: V2C.ResponsePDU,
    PduType.GET_BULK: V2C.GetBulkRequestPDU,
    PduType.REPORT: V2C.ReportPDU,
}


def _pysnmp_value(vb: VarBind) -> Any:
    if vb.tag == Tag.NULL:
        return V2C.Null("")
    if vb.tag in _EXCEPTION_VALUES:
        return _EXCEPTION_VALUES[vb.tag]
    return _TO_PYSNMP[vb.tag](vb.value)


def pysnmp_encode(message: Message) -> bytes:
    proto = V1 if message.version == Version.V1 else V2C
    pdu = _PDU_CLASSES[message.pdu_type]()
    if message.pdu_type == PduType.GET_BULK:
        proto.apiBulkPDU.set_defaults(pdu)
        proto.apiBulkPDU.set_request_id(pdu, message.request_id)
        proto.apiBulkPDU.set_non_repeaters(pdu, message.error_status)
        proto.apiBulkPDU.set_max_repetitions(pdu, message.error_index)
    else:
        proto.apiPDU.set_defaults(pdu)
        proto.apiPDU.set_request_id(pdu, message.request_id)
        proto.apiPDU.set_error_status(pdu, message.error_status)
        proto.apiPDU.set_error_index(pdu, message.error_index)
    proto.apiPDU.set_varbinds(pdu, [(vb.oid, _pysnmp_value(vb)) for vb in message.varbinds])
    wrapper = proto.Message()
    proto.apiMessage.set_defaults(wrapper)
    proto.apiMessage.set_community(wrapper, message.community)
    proto.apiMessage.set_pdu(wrapper, pdu)
    return bytes(ber_encoder.encode(wrapper))


def _our_value(value: Any) -> tuple[Tag, Any]:
    for tag, exception in _EXCEPTION_VALUES.items():
        if value.tagSet == exception.tagSet:
            return tag, None
    if value.tagSet == V2C.Null.tagSet:
        return Tag.NULL, None
    for tag, kind in _TO_PYSNMP.items():
        if value.tagSet == kind.tagSet:
            if tag in (Tag.OCTET_STRING, Tag.OPAQUE, Tag.IP_ADDRESS):
                return tag, bytes(value.asOctets())
            if tag == Tag.OBJECT_IDENTIFIER:
                return tag, tuple(value)
            return tag, int(value)
    raise AssertionError(f"unexpected pysnmp value {value!r}")


def pysnmp_decode(data: bytes) -> Message:
    version = int(api.decodeMessageVersion(data))
    proto = V1 if version == 0 else V2C
    wrapper, rest = ber_decoder.decode(data, asn1Spec=proto.Message())
    assert not rest
    pdu = proto.apiMessage.get_pdu(wrapper)
    pdu_type = PduType(pdu.tagSet[0][2] | 0xA0)
    bulk = pdu_type == PduType.GET_BULK
    api_pdu = proto.apiBulkPDU if bulk else proto.apiPDU
    return Message(
        version=Version(version),
        community=bytes(proto.apiMessage.get_community(wrapper)),
        pdu_type=pdu_type,
        request_id=int(api_pdu.get_request_id(pdu)),
        error_status=int(api_pdu.get_non_repeaters(pdu) if bulk else api_pdu.get_error_status(pdu)),
        error_index=int(api_pdu.get_max_repetitions(pdu) if bulk else api_pdu.get_error_index(pdu)),
        varbinds=tuple(
            VarBind(tuple(oid), *_our_value(value)) for oid, value in api_pdu.get_varbinds(pdu)
        ),
    )


# --- generated messages --------------------------------------------------------------------------

arcs = st.integers(0, 2**32 - 1)
oids = st.one_of(
    st.tuples(st.integers(0, 1), st.integers(0, 39)),
    st.tuples(st.just(2), st.integers(0, 2**20)),
).flatmap(lambda head: st.lists(arcs, max_size=14).map(lambda tail: (*head, *tail)))
edge_bytes = st.one_of(
    st.binary(max_size=64),
    st.sampled_from([126, 127, 128, 129, 255, 256, 1000]).map(lambda n: bytes(range(256)) * 4)
    .map(lambda b: b[:1000]),  # long-form lengths
)  # fmt: skip
unsigned32 = st.one_of(
    st.integers(0, 2**32 - 1), st.sampled_from([0, 127, 128, 255, 2**31, 2**32 - 1])
)
counter64 = st.one_of(
    st.integers(0, 2**64 - 1), st.integers(2**64 - 1000, 2**64 - 1), st.sampled_from([2**63, 2**32])
)


def values() -> st.SearchStrategy[tuple[Tag, Any]]:
    return st.one_of(
        st.tuples(st.just(Tag.INTEGER), st.integers(-(2**31), 2**31 - 1)),
        st.tuples(st.just(Tag.INTEGER), st.sampled_from([-(2**31), -129, -128, -1, 0, 127, 128])),
        st.tuples(st.just(Tag.OCTET_STRING), edge_bytes),
        st.tuples(st.just(Tag.OBJECT_IDENTIFIER), oids),
        st.tuples(st.just(Tag.IP_ADDRESS), st.binary(min_size=4, max_size=4)),
        st.tuples(st.sampled_from([Tag.COUNTER32, Tag.GAUGE32, Tag.TIMETICKS]), unsigned32),
        st.tuples(st.just(Tag.OPAQUE), st.binary(max_size=40)),
        st.tuples(st.just(Tag.COUNTER64), counter64),
        st.tuples(st.sampled_from([Tag.NULL, *_EXCEPTION_VALUES]), st.none()),
    )


varbinds = st.builds(lambda oid, tv: VarBind(oid, tv[0], tv[1]), oids, values())
responses = st.lists(varbinds, max_size=30).flatmap(
    lambda vbs: st.builds(
        Message,
        version=st.just(Version.V2C),
        community=st.binary(max_size=40),
        pdu_type=st.sampled_from([PduType.RESPONSE, PduType.REPORT]),
        request_id=st.integers(-(2**31), 2**31 - 1),
        error_status=st.integers(0, 18),
        error_index=st.integers(0, len(vbs)),  # pysnmp rejects an index past the list
        varbinds=st.just(tuple(vbs)),
    )
)


@settings(max_examples=400, deadline=None)
@given(responses)
def test_our_bytes_are_pysnmps_bytes(message: Message) -> None:
    # pyasn1 writes some negative integers one byte longer than X.690 8.3.2 allows (-128 as
    # FF 80); both decode alike (tests below), so bytes are compared for the rest.
    assume(message.request_id >= 0)
    assume(all(vb.tag != Tag.INTEGER or vb.value >= 0 for vb in message.varbinds))  # type: ignore[operator]
    assert encode_message(message) == pysnmp_encode(message)


def test_negative_integers_are_minimal_and_pysnmp_reads_them() -> None:
    message = Message(Version.V2C, b"c", PduType.RESPONSE, -128, 0, 0,
                      (VarBind((1, 3, 6), Tag.INTEGER, -128),))  # fmt: skip
    encoded = encode_message(message)
    assert b"\x02\x01\x80" in encoded
    assert pysnmp_decode(encoded) == message


@settings(max_examples=400, deadline=None)
@given(responses)
def test_we_read_what_pysnmp_writes(message: Message) -> None:
    assert decode_message(pysnmp_encode(message)) == message


@settings(max_examples=200, deadline=None)
@given(responses)
def test_pysnmp_reads_what_we_write(message: Message) -> None:
    assert pysnmp_decode(encode_message(message)) == message


@pytest.mark.parametrize(
    ("version", "pdu_type"),
    [
        (Version.V1, PduType.GET),
        (Version.V1, PduType.GET_NEXT),  # v1 has no GETBULK
        (Version.V2C, PduType.GET),
        (Version.V2C, PduType.GET_NEXT),
        (Version.V2C, PduType.GET_BULK),
    ],
)
def test_requests_match_pysnmp(version: Version, pdu_type: PduType) -> None:
    request_oids: list[OID] = [oid_from_text("1.3.6.1.2.1.1.3.0"), (1, 3, 6, 1, 2, 1, 2, 2, 1, 10)]
    ours = encode_request(
        version=version, community=b"public", pdu_type=pdu_type, request_id=123456,
        oids=request_oids, non_repeaters=1, max_repetitions=25,
    )  # fmt: skip
    bulk = pdu_type == PduType.GET_BULK
    theirs = pysnmp_encode(
        Message(version, b"public", pdu_type, 123456, 1 if bulk else 0, 25 if bulk else 0,
                tuple(VarBind(oid, Tag.NULL, None) for oid in request_oids))
    )  # fmt: skip
    assert ours == theirs


@settings(max_examples=500, deadline=None)
@given(st.data())
def test_malformed_packets_raise_decode_error_only(data: st.DataObject) -> None:
    message = data.draw(responses)
    packet = bytearray(encode_message(message))
    how = data.draw(st.sampled_from(["truncate", "flip", "garbage"]))
    if how == "truncate":
        packet = packet[: data.draw(st.integers(0, max(0, len(packet) - 1)))]
    elif how == "flip":
        index = data.draw(st.integers(0, len(packet) - 1))
        packet[index] ^= data.draw(st.integers(1, 255))
    else:
        packet = bytearray(data.draw(st.binary(max_size=200)))
    with contextlib.suppress(DecodeError):
        decode_message(bytes(packet))


@pytest.mark.parametrize(
    ("text", "expected"),
    [("1.3.6.1.2.1.1.3.0", (1, 3, 6, 1, 2, 1, 1, 3, 0)), (".1.3.6", (1, 3, 6))],
)
def test_oid_text(text: str, expected: OID) -> None:
    assert oid_from_text(text) == expected


@pytest.mark.parametrize("text", ["", "1", "1.3.x", "1.-3"])
def test_bad_oid_text(text: str) -> None:
    with pytest.raises(ValueError, match="not a numeric OID"):
        oid_from_text(text)


def _tlv(tag: int, body: bytes) -> bytes:
    length = bytes([len(body)]) if len(body) < 0x80 else bytes([0x81, len(body)])
    return bytes([tag]) + length + body


def test_an_oversized_integer_is_refused_not_built() -> None:
    # A hostile agent's 140-byte INTEGER as sysUpTime's value must not reach the state store.
    varbind = _tlv(0x30, _tlv(0x06, bytes([0x2B, 6, 1, 2, 1, 1, 3, 0])) + _tlv(0x02, b"\x7f" * 140))
    pdu = _tlv(0xA2, _tlv(2, b"\x01") + _tlv(2, b"\x00") + _tlv(2, b"\x00") + _tlv(0x30, varbind))
    message = _tlv(0x30, _tlv(2, b"\x01") + _tlv(4, b"c") + pdu)
    with pytest.raises(DecodeError, match="INTEGER longer than 32 bits"):
        decode_message(message)


def _ber(tag: int, body: bytes) -> bytes:
    """A TLV of any length (the short `_tlv` above stops at 255 bytes)."""
    if len(body) < 0x80:
        return bytes([tag, len(body)]) + body
    length = len(body).to_bytes((len(body).bit_length() + 7) // 8, "big")
    return bytes([tag, 0x80 | len(length)]) + length + body


def _trap_with(oid_body: bytes, value: bytes = b"\x05\x00") -> bytes:
    """An SNMPv2-Trap of one varbind: these OID contents, this encoded value."""
    varbind = _ber(0x30, _ber(0x06, oid_body) + value)
    pdu = _ber(0xA7, _ber(2, b"\x01") + _ber(2, b"\x00") + _ber(2, b"\x00") + _ber(0x30, varbind))
    return _ber(0x30, _ber(2, b"\x01") + _ber(4, b"c") + pdu)


def test_a_sub_identifier_of_32_bits_is_read() -> None:
    # 2**32 - 1, the largest sub-identifier RFC 2578 allows: five bytes of base 128.
    message = decode_message(_trap_with(bytes([0x2B, 6, 1, 0x8F, 0xFF, 0xFF, 0xFF, 0x7F])))
    assert message.varbinds[0].oid == (1, 3, 6, 1, 2**32 - 1)


@pytest.mark.parametrize(
    "oid_body",
    [
        # Six bytes of base 128 for one sub-identifier: past 32 bits.
        bytes([0x2B, 6, 1, 0x81, 0x80, 0x80, 0x80, 0x80, 0x00]),
        # Leading 0x80s pad a small number out to six bytes: still too long to read.
        bytes([0x2B, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01]),
        # One sub-identifier as long as a datagram allows: a huge number built byte by byte
        # (quadratic in its length), then a text too long to print.
        bytes([0x2B]) + b"\xff" * 60_000 + b"\x7f",
        # 129 sub-identifiers, one more than an OID may have.
        bytes([0x2B]) + bytes(range(1, 128)) + b"\x01",
    ],
    ids=["6-byte-sub-id", "padded-sub-id", "60k-byte-sub-id", "129-arcs"],
)
def test_an_oversized_oid_is_malformed(oid_body: bytes) -> None:
    with pytest.raises(DecodeError, match="OID"):
        decode_message(_trap_with(oid_body))


def test_an_oid_of_128_sub_identifiers_is_read() -> None:
    message = decode_message(_trap_with(bytes([0x2B]) + bytes(range(1, 127))))
    assert len(message.varbinds[0].oid) == 128


@pytest.mark.parametrize("address", [b"", b"\x0a\x00\x00", b"\x0a\x00\x00\x01\x00", b"\x00" * 16])
def test_an_ip_address_that_is_not_4_bytes_is_malformed(address: bytes) -> None:
    with pytest.raises(DecodeError, match="IpAddress"):
        decode_message(_trap_with(bytes([0x2B, 6, 1]), _ber(0x40, address)))


# --- the inline fast paths of the varbind decoder -------------------------------------------------


@pytest.mark.parametrize(
    ("encoded", "expected"),
    [
        (b"\x00\x00\x00\x00\x01", 1),  # five bytes, as pyasn1 writes some: range-checked
        (b"\x80\x00\x00\x00", -(2**31)),
        (b"\x7f\xff\xff\xff", 2**31 - 1),
        (b"\xff", -1),
        (b"\x00\x80", 128),
        (b"\x02", 2),  # ifOperStatus down
    ],
)
def test_integers_of_every_length_are_read(encoded: bytes, expected: int) -> None:
    message = decode_message(_trap_with(bytes([0x2B, 6, 1]), _ber(0x02, encoded)))
    assert message.varbinds[0] == VarBind((1, 3, 6, 1), Tag.INTEGER, expected)


@pytest.mark.parametrize(
    "value",
    [
        b"\x02\x00",  # an empty INTEGER
        b"\x02\x05\x00\x80\x00\x00\x00",  # 2**31 in five bytes: past 32 bits
        b"\x41\x00",  # an empty Counter32
        b"\x41\x05\x01\x00\x00\x00\x00",  # a Counter32 of 2**32
    ],
    ids=["empty-integer", "integer-2**31", "empty-counter", "counter-2**32"],
)
def test_numbers_out_of_their_type_are_malformed(value: bytes) -> None:
    with pytest.raises(DecodeError):
        decode_message(_trap_with(bytes([0x2B, 6, 1]), value))


def test_a_value_running_past_its_varbind_is_malformed() -> None:
    # The varbind says 7 bytes; its Counter32 says 4 of them while only 1 is left in it.
    varbind = b"\x30\x07\x06\x02\x2b\x06\x41\x04\x01"
    pdu = _ber(0xA2, _ber(2, b"\x01") + _ber(2, b"\x00") + _ber(2, b"\x00") + _ber(0x30, varbind))
    with pytest.raises(DecodeError, match="past the end"):
        decode_message(_ber(0x30, _ber(2, b"\x01") + _ber(4, b"c") + pdu))


def test_long_form_lengths_read_like_short_ones() -> None:
    # A 300-byte string makes the varbind's and the value's lengths long-form; the counter
    # beside it is short-form and read inline.
    text = bytes(range(256)) + b"x" * 44
    message = Message(Version.V2C, b"c", PduType.RESPONSE, 7, 0, 0, (
        VarBind((1, 3, 6, 1, 2, 1, 2, 2, 1, 2, 1), Tag.OCTET_STRING, text),
        VarBind((1, 3, 6, 1, 2, 1, 2, 2, 1, 10, 1), Tag.COUNTER32, 2**32 - 1),
    ))  # fmt: skip
    assert decode_message(encode_message(message)) == message


def test_a_request_for_very_long_oids_matches_pysnmp() -> None:
    # 100 sub-identifiers of 5 bytes: the varbind's length no longer fits in one byte.
    long_oid: OID = (1, 3, *[2**32 - 1] * 100)
    ours = encode_request(version=Version.V2C, community=b"public", pdu_type=PduType.GET_BULK,
                          request_id=9, oids=[long_oid, (1, 3, 6)], max_repetitions=25)  # fmt: skip
    theirs = pysnmp_encode(
        Message(Version.V2C, b"public", PduType.GET_BULK, 9, 0, 25,
                (VarBind(long_oid, Tag.NULL, None), VarBind((1, 3, 6), Tag.NULL, None)))
    )  # fmt: skip
    assert ours == theirs

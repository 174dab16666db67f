"""A lean BER codec for the SNMP message subset netmon polls with (RFC 3416, v1 and v2c).

pysnmp spends most of a poll building pyasn1 objects; this module reads and writes the few
shapes SNMP polling needs straight from and to bytes: a message is
`SEQUENCE { version, community, PDU { request-id, error-status, error-index, varbinds } }`.
Values come out as plain Python values tagged with their SNMP type, OIDs as tuples of ints
(which compare in OID order). It is proven against pysnmp by differential tests, not trusted.

Anything that does not parse raises `DecodeError`, never another exception: a malformed packet
is counted and dropped by the caller.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import IntEnum
from typing import NamedTuple, TypeVar

T = TypeVar("T")

OID = tuple[int, ...]


class Tag(IntEnum):
    INTEGER = 0x02
    OCTET_STRING = 0x04
    NULL = 0x05
    OBJECT_IDENTIFIER = 0x06
    SEQUENCE = 0x30
    IP_ADDRESS = 0x40
    COUNTER32 = 0x41
    GAUGE32 = 0x42
    TIMETICKS = 0x43
    OPAQUE = 0x44
    COUNTER64 = 0x46
    NO_SUCH_OBJECT = 0x80
    NO_SUCH_INSTANCE = 0x81
    END_OF_MIB_VIEW = 0x82


class PduType(IntEnum):
    GET = 0xA0
    GET_NEXT = 0xA1
    RESPONSE = 0xA2
    SET = 0xA3
    TRAP_V1 = 0xA4
    GET_BULK = 0xA5
    INFORM = 0xA6
    TRAP_V2 = 0xA7
    REPORT = 0xA8


class Version(IntEnum):
    V1 = 0
    V2C = 1


EXCEPTIONS = frozenset({Tag.NO_SUCH_OBJECT, Tag.NO_SUCH_INSTANCE, Tag.END_OF_MIB_VIEW})
_UNSIGNED = frozenset({Tag.COUNTER32, Tag.GAUGE32, Tag.TIMETICKS, Tag.COUNTER64})
_UNSIGNED_LIMIT = {Tag.COUNTER32: 1 << 32, Tag.GAUGE32: 1 << 32, Tag.TIMETICKS: 1 << 32,
                   Tag.COUNTER64: 1 << 64}  # fmt: skip
_TAGS = {int(tag): tag for tag in Tag}
_UNSIGNED_FAST = {int(tag): limit for tag, limit in _UNSIGNED_LIMIT.items()}
_OID_CACHE_SIZE = 50_000  # per direction, cleared whole when full
_OID_CACHE_MAX_BYTES = 32  # only OIDs this short are cached: ~15 MB at most per cache
_PDU_TYPES = {int(kind): kind for kind in PduType}
_MAX_OID_ARCS = 128  # RFC 2578 §3.5; the first sub-identifier holds two arcs
_MAX_SUBID_BYTES = 5  # base 128: 35 bits, room for 32 (and the first's 2.x, x < 2**32 - 80)
_MAX_OID_BYTES = (_MAX_OID_ARCS - 1) * _MAX_SUBID_BYTES

Value = int | bytes | OID | None
"""int for INTEGER and the unsigned types; bytes for OCTET STRING, IpAddress and Opaque; a
tuple for OBJECT IDENTIFIER; None for NULL and the exceptions (noSuchObject...)."""


class VarBind(NamedTuple):
    """One OID and its value. A tuple (not a dataclass) because a poll builds thousands of
    them: the decoder makes each with `tuple.__new__`, ~0.15 µs where a frozen dataclass's
    `__init__` took ~0.4 µs, a tenth of netmon's whole CPU per polled varbind (issue 17)."""

    oid: OID
    tag: Tag
    value: Value

    def text(self) -> str:
        """The value as a person reads it: a string, a dotted OID, a number, or ""."""
        value = self.value
        if isinstance(value, bytes):
            # Many agents NUL-terminate their DisplayStrings (one recorded converter sends
            # "port0\0"); a NUL has no place in a label value.
            return value.decode("utf-8", "replace").replace("\x00", "").strip()
        if isinstance(value, tuple):
            return ".".join(map(str, value))
        return "" if value is None else str(value)


@dataclass(frozen=True, slots=True)
class Message:
    version: Version
    community: bytes
    pdu_type: PduType
    request_id: int
    error_status: int  # non-repeaters in a GetBulk request
    error_index: int  # max-repetitions in a GetBulk request
    varbinds: tuple[VarBind, ...]


class DecodeError(ValueError):
    """The bytes are not an SNMP message this codec understands."""


# ---------------------------------------------------------------------------------------------
# Encoding


def _length(length: int) -> bytes:
    if length < 0x80:
        return bytes((length,))
    body = length.to_bytes((length.bit_length() + 7) // 8, "big")
    return bytes((0x80 | len(body),)) + body


def _tlv(tag: int, body: bytes) -> bytes:
    return bytes((tag,)) + _length(len(body)) + body


def _signed(value: int) -> bytes:
    # Minimal two's complement: -128 is one byte (0x80), 128 is two (0x00 0x80).
    magnitude = value if value >= 0 else ~value
    return value.to_bytes(magnitude.bit_length() // 8 + 1, "big", signed=True)


def _unsigned(value: int) -> bytes:
    # One extra bit so the high bit of the first byte is 0: BER integers are signed.
    return value.to_bytes(value.bit_length() // 8 + 1, "big")


_ENCODED_OIDS: dict[OID, bytes] = {}


def encode_oid(oid: OID) -> bytes:
    encoded = _ENCODED_OIDS.get(oid)
    if encoded is None:
        encoded = _encode_oid(oid)
        if len(encoded) <= _OID_CACHE_MAX_BYTES:
            if len(_ENCODED_OIDS) >= _OID_CACHE_SIZE:
                _ENCODED_OIDS.clear()
            _ENCODED_OIDS[oid] = encoded
    return encoded


def _encode_oid(oid: OID) -> bytes:
    if len(oid) < 2 or oid[0] > 2 or (oid[0] < 2 and oid[1] > 39):
        raise ValueError(f"not an encodable OID: {oid}")
    out = bytearray()
    for arc in (oid[0] * 40 + oid[1], *oid[2:]):
        if arc < 0:
            raise ValueError(f"negative arc in OID: {oid}")
        chunk = [arc & 0x7F]
        arc >>= 7
        while arc:
            chunk.append(0x80 | (arc & 0x7F))
            arc >>= 7
        out.extend(reversed(chunk))
    return bytes(out)


def encode_value(tag: Tag, value: Value) -> bytes:
    if tag == Tag.INTEGER:
        assert isinstance(value, int)
        if not -(1 << 31) <= value < 1 << 31:
            raise ValueError(f"INTEGER out of range: {value}")
        return _tlv(tag, _signed(value))
    if tag in _UNSIGNED:
        assert isinstance(value, int)
        if not 0 <= value < _UNSIGNED_LIMIT[tag]:
            raise ValueError(f"{tag.name} out of range: {value}")
        return _tlv(tag, _unsigned(value))
    if tag in (Tag.OCTET_STRING, Tag.OPAQUE, Tag.IP_ADDRESS):
        assert isinstance(value, bytes)
        if tag == Tag.IP_ADDRESS and len(value) != 4:
            raise ValueError("IpAddress must be 4 bytes")
        return _tlv(tag, value)
    if tag == Tag.OBJECT_IDENTIFIER:
        assert isinstance(value, tuple)
        return _tlv(tag, encode_oid(value))
    if tag == Tag.NULL or tag in EXCEPTIONS:
        return bytes((tag, 0))
    raise ValueError(f"cannot encode {tag!r}")


def encode_message(message: Message) -> bytes:
    varbinds = b"".join(
        _tlv(
            Tag.SEQUENCE,
            _tlv(Tag.OBJECT_IDENTIFIER, encode_oid(vb.oid)) + encode_value(vb.tag, vb.value),
        )
        for vb in message.varbinds
    )
    return _wrap(message.version, message.community, message.pdu_type, message.request_id,
                 message.error_status, message.error_index, varbinds)  # fmt: skip


def _wrap(version: int, community: bytes, pdu_type: int, request_id: int, status: int,
          index: int, varbinds: bytes) -> bytes:  # fmt: skip
    """The message around the encoded varbind list: `encode_message`'s and `encode_request`'s."""
    pdu = _tlv(
        pdu_type,
        _tlv(Tag.INTEGER, _signed(request_id))
        + _tlv(Tag.INTEGER, _signed(status))
        + _tlv(Tag.INTEGER, _signed(index))
        + _tlv(Tag.SEQUENCE, varbinds),
    )
    return _tlv(
        Tag.SEQUENCE,
        _tlv(Tag.INTEGER, _signed(version)) + _tlv(Tag.OCTET_STRING, community) + pdu,
    )


def encode_request(
    *,
    version: Version,
    community: bytes,
    pdu_type: PduType,
    request_id: int,
    oids: tuple[OID, ...] | list[OID],
    non_repeaters: int = 0,
    max_repetitions: int = 0,
) -> bytes:
    """A GET, GETNEXT or GETBULK request for `oids` (values NULL).

    The same bytes as `encode_message` of that request, written without a VarBind per OID nor
    the general value encoder: a poll sends one request per GETBULK step, ~17 OIDs each, and
    going through `encode_message` cost about a tenth of netmon's CPU per polled varbind.
    """
    bulk = pdu_type == PduType.GET_BULK
    parts = []
    for oid in oids:
        encoded = encode_oid(oid)
        if len(encoded) < 0x7C:  # the varbind's length (OID TLV + NULL) fits in one byte
            parts.append(b"\x30%c\x06%c%s\x05\x00" % (len(encoded) + 4, len(encoded), encoded))
        else:
            parts.append(_tlv(Tag.SEQUENCE, _tlv(Tag.OBJECT_IDENTIFIER, encoded) + b"\x05\x00"))
    return _wrap(version, community, pdu_type, request_id, non_repeaters if bulk else 0,
                 max_repetitions if bulk else 0, b"".join(parts))  # fmt: skip


# ---------------------------------------------------------------------------------------------
# Decoding


def _header(data: bytes, pos: int, end: int) -> tuple[int, int, int]:
    """(tag, start of contents, end of contents) of the TLV at `pos`."""
    if pos + 2 > end:
        raise DecodeError("truncated TLV header")
    tag = data[pos]
    length = data[pos + 1]
    pos += 2
    if length & 0x80:
        count = length & 0x7F
        if count == 0 or count > 4 or pos + count > end:
            raise DecodeError("bad length")
        length = int.from_bytes(data[pos : pos + count], "big")
        pos += count
    if pos + length > end:
        raise DecodeError("length runs past the end")
    return tag, pos, pos + length


def _int(data: bytes, start: int, stop: int) -> int:
    if start == stop:
        raise DecodeError("empty integer")
    return int.from_bytes(data[start:stop], "big", signed=True)


_OID_CACHE: dict[bytes, OID] = {}


def decode_oid(data: bytes, start: int, stop: int) -> OID:
    """The OID whose contents are data[start:stop], in time linear in their length.

    A sub-identifier is an unsigned 32-bit number (RFC 2578 §7.1.3), at most five bytes of
    base 128, and an OID has at most 128 of them: anything longer is malformed, so a hostile
    sender cannot make us build one huge number byte by byte (quadratic) or a text too long to
    print.
    """
    if start == stop:
        raise DecodeError("empty OID")
    if stop - start > _MAX_OID_BYTES:
        raise DecodeError("OID longer than 128 sub-identifiers")
    chunk = data[start:stop]
    if max(chunk) < 0x80:  # every sub-identifier in one byte: the common case
        if len(chunk) > _MAX_OID_ARCS - 1:
            raise DecodeError("OID longer than 128 sub-identifiers")
        first = chunk[0]
        head = (first // 40, first % 40) if first < 80 else (2, first - 80)
        return (*head, *chunk[1:])
    arcs: list[int] = []
    value = 0
    size = 0
    for pos in range(start, stop):
        byte = data[pos]
        size += 1
        if size > _MAX_SUBID_BYTES:
            raise DecodeError("OID sub-identifier longer than 32 bits")
        value = (value << 7) | (byte & 0x7F)
        if not byte & 0x80:
            arcs.append(value)
            value = 0
            size = 0
    if data[stop - 1] & 0x80:
        raise DecodeError("OID ends inside a sub-identifier")
    if len(arcs) > _MAX_OID_ARCS - 1:
        raise DecodeError("OID longer than 128 sub-identifiers")
    first = arcs[0]
    head = (first // 40, first % 40) if first < 80 else (2, first - 80)
    return (*head, *arcs[1:])


def _value(tag: int, data: bytes, start: int, stop: int) -> tuple[Tag, Value]:
    kind = _TAGS.get(tag)
    if kind is None:
        raise DecodeError(f"unknown value tag 0x{tag:02x}")
    if kind == Tag.INTEGER:
        # Integer32 (RFC 2578); the length check first so a hostile agent cannot make us
        # build a huge number. (pyasn1 writes some values one byte long, hence 5.)
        if stop - start > 5:
            raise DecodeError("INTEGER longer than 32 bits")
        number = _int(data, start, stop)
        if not -(1 << 31) <= number < 1 << 31:
            raise DecodeError("INTEGER outside 32 bits")
        return kind, number
    if kind in _UNSIGNED:
        if start == stop:
            raise DecodeError("empty integer")
        value = int.from_bytes(data[start:stop], "big")
        if value >= _UNSIGNED_LIMIT[kind]:
            # Some agents send a 32-bit counter's high bit without the leading zero byte;
            # read as signed that would be negative. Unsigned it is right, but too long is not.
            raise DecodeError(f"{kind.name} out of range")
        return kind, value
    if kind == Tag.IP_ADDRESS and stop - start != 4:
        # An IPv4 address, nothing else (RFC 2578 §7.1.5): any other length cannot be shown
        # as an address nor sent back in an inform's answer.
        raise DecodeError("IpAddress not 4 bytes")
    if kind in (Tag.OCTET_STRING, Tag.OPAQUE, Tag.IP_ADDRESS):
        return kind, bytes(data[start:stop])
    if kind == Tag.OBJECT_IDENTIFIER:
        return kind, decode_oid(data, start, stop)
    if kind == Tag.NULL or kind in EXCEPTIONS:
        return kind, None
    raise DecodeError(f"unexpected tag {kind.name} as a value")


def strict(parse: Callable[[bytes], T]) -> Callable[[bytes], T]:
    """A parser that fails only with DecodeError: running off the end of a truncated
    datagram (IndexError) or a bad value (ValueError) is malformed input too."""

    def parse_strictly(data: bytes) -> T:
        try:
            return parse(data)
        except DecodeError:
            raise
        except (IndexError, ValueError) as exc:
            raise DecodeError(str(exc)) from exc

    return parse_strictly


def decode_message(data: bytes) -> Message:
    """Parse a v1/v2c message; raise DecodeError on anything malformed."""
    return strict(_decode)(data)


def _decode(data: bytes) -> Message:
    end = len(data)
    tag, pos, msg_end = _header(data, 0, end)
    if tag != Tag.SEQUENCE:
        raise DecodeError("not a SEQUENCE")
    tag, start, stop = _header(data, pos, msg_end)
    if tag != Tag.INTEGER:
        raise DecodeError("no version")
    version_number = _int(data, start, stop)
    if version_number not in (0, 1):
        raise DecodeError(f"unsupported SNMP version {version_number}")
    tag, start, stop = _header(data, stop, msg_end)
    if tag != Tag.OCTET_STRING:
        raise DecodeError("no community")
    community = bytes(data[start:stop])
    tag, pos, pdu_end = _header(data, stop, msg_end)
    pdu_type = _PDU_TYPES.get(tag)
    if pdu_type is None or pdu_type == PduType.TRAP_V1:
        raise DecodeError(f"unsupported PDU 0x{tag:02x}")
    fields = []
    for _ in range(3):
        tag, start, pos = _header(data, pos, pdu_end)
        if tag != Tag.INTEGER:
            raise DecodeError("bad PDU header")
        fields.append(_int(data, start, pos))
    tag, pos, list_end = _header(data, pos, pdu_end)
    if tag != Tag.SEQUENCE:
        raise DecodeError("no varbind list")
    varbinds = _varbinds(data, pos, list_end)
    return Message(
        version=Version(version_number),
        community=community,
        pdu_type=pdu_type,
        request_id=fields[0],
        error_status=fields[1],
        error_index=fields[2],
        varbinds=tuple(varbinds),
    )


def _varbinds(data: bytes, pos: int, list_end: int) -> list[VarBind]:
    """The varbinds of the list whose contents run from `pos` to `list_end`.

    The hot loop of polling: a GETBULK step brings ~90 varbinds, decoded every poll of every
    device. Short-form headers (nearly every TLV of a varbind) are read inline, everything else
    through `_header`; the names are bound locally and each VarBind built straight from a tuple,
    because per-varbind lookups and calls are what this loop costs.
    """
    varbinds: list[VarBind] = []
    append = varbinds.append
    oids = _OID_CACHE
    tags = _TAGS
    unsigned = _UNSIGNED_FAST
    make = tuple.__new__
    from_bytes = int.from_bytes
    while pos < list_end:
        if data[pos] == 0x30 and data[pos + 1] < 0x80:
            vb_start = pos + 2
            vb_end = vb_start + data[pos + 1]
            if vb_end > list_end:
                raise DecodeError("length runs past the end")
        else:
            tag, vb_start, vb_end = _header(data, pos, list_end)
            if tag != Tag.SEQUENCE:
                raise DecodeError("bad varbind")
        if vb_start + 2 <= vb_end and data[vb_start] == 0x06 and data[vb_start + 1] < 0x80:
            start = vb_start + 2
            stop = start + data[vb_start + 1]
            if stop > vb_end:
                raise DecodeError("length runs past the end")
        else:
            tag, start, stop = _header(data, vb_start, vb_end)
            if tag != Tag.OBJECT_IDENTIFIER:
                raise DecodeError("varbind without OID")
        # Polls bring back the same OIDs again and again (every poll of every device with
        # the same table layout): decoding each once is most of the decoding work saved.
        raw = data[start:stop]
        oid = oids.get(raw)
        if oid is None:
            oid = decode_oid(data, start, stop)
            if len(raw) <= _OID_CACHE_MAX_BYTES:
                if len(oids) >= _OID_CACHE_SIZE:
                    oids.clear()
                oids[raw] = oid
        if stop + 2 <= vb_end and data[stop + 1] < 0x80:
            tag = data[stop]
            start = stop + 2
            stop = start + data[stop + 1]
            if stop > vb_end:
                raise DecodeError("length runs past the end")
        else:
            tag, start, stop = _header(data, stop, vb_end)
        limit = unsigned.get(tag)
        if limit is not None and start < stop:  # counters and gauges: most of a table
            number = from_bytes(data[start:stop], "big")
            if number >= limit:
                raise DecodeError(f"{tags[tag].name} out of range")
            append(make(VarBind, (oid, tags[tag], number)))
        elif tag == 0x02 and 0 < stop - start < 5:
            # INTEGER of up to 4 bytes (ifAdminStatus, ifOperStatus...): always 32 bits.
            append(
                make(VarBind, (oid, Tag.INTEGER, from_bytes(data[start:stop], "big", signed=True)))
            )
        else:
            append(make(VarBind, (oid, *_value(tag, data, start, stop))))
        pos = vb_end
    return varbinds


def oid_from_text(text: str) -> OID:
    """'1.3.6.1.2.1.1.3.0' (a leading dot allowed) to a tuple."""
    parts = text.strip().lstrip(".").split(".")
    try:
        oid = tuple(int(part) for part in parts)
    except ValueError:
        raise ValueError(f"not a numeric OID: {text!r}") from None
    if len(oid) < 2 or any(arc < 0 for arc in oid):
        raise ValueError(f"not a numeric OID: {text!r}")
    return oid


def oid_to_text(oid: OID) -> str:
    return ".".join(map(str, oid))

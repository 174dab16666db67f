"""Reading notification messages straight from bytes: what `collectors.snmp.codec` does not.

The codec already decodes v1/v2c messages with a generic PDU (SNMPv2-Trap and InformRequest
are such PDUs); this module adds the two shapes it leaves out: the v1 Trap-PDU (RFC 1157,
its own layout) and the clear-text header of a v3 message (RFC 3412/3414), which is all the
receiver needs to read before USM takes over. It reuses the codec's TLV and value readers so
there is one BER reader, not two.

Anything that does not parse raises `DecodeError`: the caller counts it and drops it.
"""

from __future__ import annotations

from dataclasses import dataclass

from collectors.snmp.codec import (
    OID,
    DecodeError,
    Tag,
    VarBind,
    _header,  # the codec's own TLV reader, shared rather than copied
    _value,
    decode_oid,
    strict,
)

_TRAP_V1 = 0xA4
_USM = 3


@dataclass(frozen=True, slots=True)
class V1Trap:
    community: bytes
    enterprise: OID
    agent_addr: bytes  # 4 octets; 0.0.0.0 when the agent did not say
    generic: int
    specific: int
    timestamp: int
    varbinds: tuple[VarBind, ...]


@dataclass(frozen=True, slots=True)
class V3Header:
    """The parts of a v3 message that travel in clear (RFC 3412 §6, RFC 3414 §2.4)."""

    engine_id: bytes  # msgAuthoritativeEngineID: the sender's own for a trap, ours for an inform
    user: bytes
    flags: int
    security_model: int
    auth_params: bytes = b""  # msgAuthenticationParameters: the digest, as sent

    @property
    def authenticated(self) -> bool:
        return bool(self.flags & 0x01)


@dataclass(frozen=True, slots=True)
class CommunityHeader:
    """What a v1/v2c message says before its PDU's contents: enough to decide whether to read
    on (who sent it, with which community), at a cost that does not grow with the message."""

    version: int  # 0 (v1) or 1 (v2c)
    community: bytes
    pdu_type: int
    agent_addr: bytes | None  # a v1 Trap-PDU's agent-addr (4 octets); None for v2c


def read_community_header(data: bytes) -> CommunityHeader:
    """The version, community and PDU type of a v1/v2c message, and a v1 trap's agent-addr.

    Reads a handful of TLV headers and skips the enterprise OID undecoded: what it costs is
    bounded, whatever the datagram holds. Raises DecodeError on anything unreadable.
    """
    return strict(_read_community_header)(data)


def _read_community_header(data: bytes) -> CommunityHeader:
    tag, pos, end = _header(data, 0, len(data))
    if tag != Tag.SEQUENCE:
        raise DecodeError("not a SEQUENCE")
    version, pos = _integer(data, pos, end)
    if version not in (0, 1):
        raise DecodeError(f"not an SNMPv1 or v2c message: version {version}")
    community, pos = _octets(data, pos, end)
    pdu_type, pos, pdu_end = _header(data, pos, end)
    if version == 1 or pdu_type != _TRAP_V1:
        return CommunityHeader(version, community, pdu_type, None)
    tag, _, pos = _header(data, pos, pdu_end)
    if tag != Tag.OBJECT_IDENTIFIER:
        raise DecodeError("no enterprise")
    tag, start, pos = _header(data, pos, pdu_end)
    if tag != Tag.IP_ADDRESS or pos - start != 4:
        raise DecodeError("bad agent-addr")
    return CommunityHeader(version, community, pdu_type, bytes(data[start:pos]))


def message_version(data: bytes) -> int:
    """The msgVersion field: 0 (v1), 1 (v2c) or 3; anything unreadable raises DecodeError."""
    tag, pos, end = _header(data, 0, len(data))
    if tag != Tag.SEQUENCE:
        raise DecodeError("not a SEQUENCE")
    tag, start, stop = _header(data, pos, end)
    if tag != Tag.INTEGER or not 0 < stop - start <= 4:
        raise DecodeError("no version")
    return int.from_bytes(data[start:stop], "big", signed=True)


def _integer(data: bytes, pos: int, end: int) -> tuple[int, int]:
    tag, start, stop = _header(data, pos, end)
    if tag != Tag.INTEGER or not 0 < stop - start <= 5:
        raise DecodeError("bad INTEGER")
    return int.from_bytes(data[start:stop], "big", signed=True), stop


def _octets(data: bytes, pos: int, end: int) -> tuple[bytes, int]:
    tag, start, stop = _header(data, pos, end)
    if tag != Tag.OCTET_STRING:
        raise DecodeError("bad OCTET STRING")
    return bytes(data[start:stop]), stop


def decode_v1_trap(data: bytes) -> V1Trap:
    """Parse an SNMPv1 Trap message; raise DecodeError on anything malformed."""
    return strict(_decode_v1_trap)(data)


def _decode_v1_trap(data: bytes) -> V1Trap:
    tag, pos, end = _header(data, 0, len(data))
    if tag != Tag.SEQUENCE:
        raise DecodeError("not a SEQUENCE")
    version, pos = _integer(data, pos, end)
    if version != 0:
        raise DecodeError("not an SNMPv1 message")
    community, pos = _octets(data, pos, end)
    tag, pos, pdu_end = _header(data, pos, end)
    if tag != _TRAP_V1:
        raise DecodeError(f"not a Trap-PDU: 0x{tag:02x}")
    tag, start, pos = _header(data, pos, pdu_end)
    if tag != Tag.OBJECT_IDENTIFIER:
        raise DecodeError("no enterprise")
    enterprise = decode_oid(data, start, pos)
    tag, start, pos = _header(data, pos, pdu_end)
    if tag != Tag.IP_ADDRESS or pos - start != 4:
        raise DecodeError("bad agent-addr")
    agent_addr = bytes(data[start:pos])
    generic, pos = _integer(data, pos, pdu_end)
    specific, pos = _integer(data, pos, pdu_end)
    tag, start, pos = _header(data, pos, pdu_end)
    if tag != Tag.TIMETICKS:
        raise DecodeError("bad time-stamp")
    _, timestamp = _value(tag, data, start, pos)
    assert isinstance(timestamp, int)
    tag, pos, list_end = _header(data, pos, pdu_end)
    if tag != Tag.SEQUENCE:
        raise DecodeError("no varbind list")
    varbinds = []
    while pos < list_end:
        tag, vb_pos, vb_end = _header(data, pos, list_end)
        if tag != Tag.SEQUENCE:
            raise DecodeError("bad varbind")
        tag, start, stop = _header(data, vb_pos, vb_end)
        if tag != Tag.OBJECT_IDENTIFIER:
            raise DecodeError("varbind without OID")
        oid = decode_oid(data, start, stop)
        tag, start, stop = _header(data, stop, vb_end)
        kind, value = _value(tag, data, start, stop)
        varbinds.append(VarBind(oid, kind, value))
        pos = vb_end
    return V1Trap(
        community=community,
        enterprise=enterprise,
        agent_addr=agent_addr,
        generic=generic,
        specific=specific,
        timestamp=timestamp,
        varbinds=tuple(varbinds),
    )


def decode_v3_header(data: bytes) -> V3Header:
    """msgGlobalData and the USM security parameters; the scoped PDU is left to USM."""
    return strict(_decode_v3_header)(data)


def _decode_v3_header(data: bytes) -> V3Header:
    tag, pos, end = _header(data, 0, len(data))
    if tag != Tag.SEQUENCE:
        raise DecodeError("not a SEQUENCE")
    version, pos = _integer(data, pos, end)
    if version != 3:
        raise DecodeError("not an SNMPv3 message")
    tag, global_pos, global_end = _header(data, pos, end)
    if tag != Tag.SEQUENCE:
        raise DecodeError("no msgGlobalData")
    _, global_pos = _integer(data, global_pos, global_end)  # msgID
    _, global_pos = _integer(data, global_pos, global_end)  # msgMaxSize
    flags, global_pos = _octets(data, global_pos, global_end)
    if len(flags) != 1:
        raise DecodeError("bad msgFlags")
    security_model, _ = _integer(data, global_pos, global_end)
    if security_model != _USM:
        raise DecodeError(f"security model {security_model} is not USM")
    params, _ = _octets(data, global_end, end)
    tag, pos, params_end = _header(params, 0, len(params))
    if tag != Tag.SEQUENCE:
        raise DecodeError("bad USM security parameters")
    engine_id, pos = _octets(params, pos, params_end)
    _, pos = _integer(params, pos, params_end)  # msgAuthoritativeEngineBoots
    _, pos = _integer(params, pos, params_end)  # msgAuthoritativeEngineTime
    user, pos = _octets(params, pos, params_end)
    auth_params = _octets(params, pos, params_end)[0] if pos < params_end else b""
    return V3Header(
        engine_id=engine_id,
        user=user,
        flags=flags[0],
        security_model=security_model,
        auth_params=auth_params,
    )

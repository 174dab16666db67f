"""SNMPv3 (USM) polling through pysnmp's asyncio API.

The v1/v2c hot path is our own codec; v3 stays on pysnmp, which does USM (key localisation,
engine discovery, time windows, auth and privacy) well. Its cost per varbind is higher and
reported beside v2c by the benchmark. One SnmpEngine is built once, off the event loop, and
shared by every v3 target. pysnmp's values are turned into the codec's VarBind, so the
collector above does not care which path a device took.

Authentication failures come back as reason "auth", distinct from "timeout": an operator
must see a wrong key as a wrong key.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from pysnmp.hlapi.v3arch.asyncio import (
    ContextData,
    ObjectIdentity,
    ObjectType,
    SnmpEngine,
    UdpTransportTarget,
    UsmUserData,
    bulk_cmd,
    get_cmd,
    usmAesBlumenthalCfb192Protocol,
    usmAesBlumenthalCfb256Protocol,
    usmAesCfb128Protocol,
    usmDESPrivProtocol,
    usmHMAC128SHA224AuthProtocol,
    usmHMAC192SHA256AuthProtocol,
    usmHMAC256SHA384AuthProtocol,
    usmHMAC384SHA512AuthProtocol,
    usmHMACMD5AuthProtocol,
    usmHMACSHAAuthProtocol,
)
from pysnmp.proto import rfc1902, rfc1905

from collectors.base import CollectError
from collectors.snmp.client import ERROR_STATUS_NAMES
from collectors.snmp.codec import OID, Tag, Value, VarBind
from collectors.snmp.walk import ColumnWalker
from netmon.credentials import SnmpCredential

AUTH_PROTOCOLS = {
    "MD5": usmHMACMD5AuthProtocol,
    "SHA": usmHMACSHAAuthProtocol,
    "SHA224": usmHMAC128SHA224AuthProtocol,
    "SHA256": usmHMAC192SHA256AuthProtocol,
    "SHA384": usmHMAC256SHA384AuthProtocol,
    "SHA512": usmHMAC384SHA512AuthProtocol,
}
# AES-192/256 key extension as net-snmp and RFC-draft Blumenthal do it (not Cisco's "C").
PRIV_PROTOCOLS = {
    "DES": usmDESPrivProtocol,
    "AES": usmAesCfb128Protocol,
    "AES128": usmAesCfb128Protocol,
    "AES192": usmAesBlumenthalCfb192Protocol,
    "AES256": usmAesBlumenthalCfb256Protocol,
}
_AUTH_WORDS = ("digest", "unknown usm user", "unknown security name", "decrypt",
               "unsupported security level", "wrong", "authentication")  # fmt: skip

_TAGS: list[tuple[Any, Tag]] = [
    (rfc1905.noSuchObject.tagSet, Tag.NO_SUCH_OBJECT),
    (rfc1905.noSuchInstance.tagSet, Tag.NO_SUCH_INSTANCE),
    (rfc1905.endOfMibView.tagSet, Tag.END_OF_MIB_VIEW),
    (rfc1902.Integer32.tagSet, Tag.INTEGER),
    (rfc1902.OctetString.tagSet, Tag.OCTET_STRING),
    (rfc1902.ObjectIdentifier.tagSet, Tag.OBJECT_IDENTIFIER),
    (rfc1902.IpAddress.tagSet, Tag.IP_ADDRESS),
    (rfc1902.Counter32.tagSet, Tag.COUNTER32),
    (rfc1902.Gauge32.tagSet, Tag.GAUGE32),
    (rfc1902.TimeTicks.tagSet, Tag.TIMETICKS),
    (rfc1902.Opaque.tagSet, Tag.OPAQUE),
    (rfc1902.Counter64.tagSet, Tag.COUNTER64),
]


def to_varbind(name: Any, value: Any) -> VarBind:
    oid: OID = tuple(name)
    for tag_set, tag in _TAGS:
        if value.tagSet == tag_set:
            converted: Value
            if tag in (Tag.NO_SUCH_OBJECT, Tag.NO_SUCH_INSTANCE, Tag.END_OF_MIB_VIEW):
                converted = None
            elif tag in (Tag.OCTET_STRING, Tag.IP_ADDRESS, Tag.OPAQUE):
                converted = bytes(value.asOctets())
            elif tag == Tag.OBJECT_IDENTIFIER:
                converted = tuple(value)
            else:
                converted = int(value)
            return VarBind(oid, tag, converted)
    return VarBind(oid, Tag.NULL, None)


@dataclass(frozen=True, slots=True)
class V3Agent:
    address: str
    port: int
    credential: SnmpCredential = field(repr=False)
    timeout: float = 1.0
    retries: int = 1


class V3Session(ColumnWalker[V3Agent]):
    """SNMPv3 requests over one shared pysnmp engine."""

    def __init__(self) -> None:
        # One engine per credential: pysnmp keys its USM users by (user, engine id) inside an
        # engine, so two sites with the same user name and different keys would keep swapping
        # keys (and failing) on a shared one.
        self._engines: dict[SnmpCredential, SnmpEngine] = {}
        self._lock = asyncio.Lock()
        self.varbinds = 0

    async def _get_engine(self, credential: SnmpCredential) -> SnmpEngine:
        async with self._lock:
            engine = self._engines.get(credential)
            if engine is None:
                # Building an engine loads MIB modules from disk: keep it off the loop.
                engine = self._engines[credential] = await asyncio.to_thread(SnmpEngine)
            return engine

    async def close(self) -> None:
        for engine in self._engines.values():
            engine.close_dispatcher()
        self._engines.clear()

    @staticmethod
    def _user(credential: SnmpCredential) -> UsmUserData:
        # Bytes, so pysnmp never has to encode (and quote) a key in an error of its own.
        auth = credential.auth_key.reveal().encode() if credential.auth_key else None
        priv = credential.priv_key.reveal().encode() if credential.priv_key else None
        return UsmUserData(
            credential.user or "",
            authKey=auth,
            privKey=priv,
            authProtocol=AUTH_PROTOCOLS[credential.auth_protocol]
            if credential.auth_protocol
            else None,
            privProtocol=PRIV_PROTOCOLS[credential.priv_protocol]
            if credential.priv_protocol
            else None,
        )

    async def _request(
        self, agent: V3Agent, oids: Sequence[OID], bulk: int, non_repeaters: int = 0
    ) -> list[VarBind]:
        engine = await self._get_engine(agent.credential)
        transport = await UdpTransportTarget.create(
            (agent.address, agent.port), timeout=agent.timeout, retries=agent.retries
        )
        objects = [ObjectType(ObjectIdentity(".".join(map(str, oid)))) for oid in oids]
        context = ContextData(contextName=agent.credential.context)
        user = self._user(agent.credential)
        if bulk:
            indication, status, index, varbinds = await bulk_cmd(
                engine, user, transport, context, non_repeaters, bulk, *objects, lookupMib=False
            )
        else:
            indication, status, index, varbinds = await get_cmd(
                engine, user, transport, context, *objects, lookupMib=False
            )
        if indication:
            text = str(indication)
            lowered = text.lower()
            if "timeout" in lowered or "no snmp response" in lowered:
                raise CollectError("timeout", f"no answer from {agent.address}:{agent.port}")
            if any(word in lowered for word in _AUTH_WORDS):
                raise CollectError("auth", f"{agent.address}: {text}")
            raise CollectError("snmp-error", f"{agent.address}: {text}")
        if int(status):
            name = ERROR_STATUS_NAMES.get(int(status), str(int(status)))
            raise CollectError("snmp-error", f"{agent.address}: {name} at varbind {int(index)}")
        self.varbinds += len(varbinds)
        return [to_varbind(name, value) for name, value in varbinds]

    async def get(self, agent: V3Agent, oids: Sequence[OID]) -> list[VarBind]:
        return await self._request(agent, oids, bulk=0)

    async def next_varbinds(
        self, agent: V3Agent, oids: list[OID], *, non_repeaters: int, max_repetitions: int
    ) -> list[VarBind]:
        """The successors of `oids`, row by row: one GETBULK."""
        return await self._request(agent, oids, bulk=max_repetitions, non_repeaters=non_repeaters)

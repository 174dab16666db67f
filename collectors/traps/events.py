"""What goes into the trap receiver (who may send) and what comes out (one event per trap).

Pure functions turn a decoded notification into a `TrapEvent`: v1 traps take their v2 form
(RFC 3584 §3.1), the six standard traps get their names, and linkDown/linkUp carry the
interface index. Nothing here does I/O or knows which SNMP version or library decoded it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from collectors.snmp.codec import OID, Tag, VarBind, oid_to_text
from netmon.credentials import SnmpCredential
from netmon.model import TrapEvent

SYS_UPTIME: OID = (1, 3, 6, 1, 2, 1, 1, 3, 0)
SNMP_TRAP_OID: OID = (1, 3, 6, 1, 6, 3, 1, 1, 4, 1, 0)
SNMP_TRAP_ENTERPRISE: OID = (1, 3, 6, 1, 6, 3, 1, 1, 4, 3, 0)
SNMP_TRAP_ADDRESS: OID = (1, 3, 6, 1, 6, 3, 18, 1, 3, 0)
SNMP_TRAPS: OID = (1, 3, 6, 1, 6, 3, 1, 1, 5)
IF_INDEX: OID = (1, 3, 6, 1, 2, 1, 2, 2, 1, 1)
_IF_ENTRY: OID = (1, 3, 6, 1, 2, 1, 2, 2, 1)
_IFX_ENTRY: OID = (1, 3, 6, 1, 2, 1, 31, 1, 1, 1)

STANDARD_TRAPS: dict[str, str] = {
    "1.3.6.1.6.3.1.1.5.1": "coldStart",
    "1.3.6.1.6.3.1.1.5.2": "warmStart",
    "1.3.6.1.6.3.1.1.5.3": "linkDown",
    "1.3.6.1.6.3.1.1.5.4": "linkUp",
    "1.3.6.1.6.3.1.1.5.5": "authenticationFailure",
    "1.3.6.1.6.3.1.1.5.6": "egpNeighborLoss",
}
_LINK_TRAPS = frozenset({"linkDown", "linkUp"})


@dataclass(frozen=True)
class TrapSource:
    """An inventory target allowed to send traps, as the core's resolver returns it.

    `credentials`: its v1/v2c communities and v3 users. `engine_ids`: the v3 engine IDs
    configured for it. `learned_engine_ids`: those learned earlier (before a restart, say) and
    persisted by the core; known like the configured ones, and counted against the cap on
    learning, so a restart does not grant a device a fresh allowance.
    """

    target: str
    credentials: Sequence[SnmpCredential] = field(default=(), repr=False)
    engine_ids: Sequence[bytes] = ()
    learned_engine_ids: Sequence[bytes] = ()


Resolve = Callable[[str], TrapSource | None]


def value_text(varbind: VarBind) -> str:
    """A varbind's value as text: printable strings as they are, other octets in hex."""
    value = varbind.value
    if isinstance(value, bytes):
        if varbind.tag == Tag.IP_ADDRESS and len(value) == 4:
            return ".".join(map(str, value))
        try:
            text = value.decode("utf-8")
        except UnicodeDecodeError:
            return value.hex(":")
        # A trailing NUL is common in DisplayStrings; other control bytes mean binary (a MAC).
        text = text.rstrip("\x00")
        if text.isprintable():
            return text
        return value.hex(":")
    if isinstance(value, tuple):
        return oid_to_text(value)
    return "" if value is None else str(value)


def v1_trap_oid(enterprise: OID, generic: int, specific: int) -> OID:
    """RFC 3584 §3.1: generic 0..5 → snmpTraps.{1..6}; enterprise-specific → enterprise.0.N."""
    if 0 <= generic <= 5:
        return (*SNMP_TRAPS, generic + 1)
    return (*enterprise, 0, specific)


def _if_index(varbinds: Sequence[VarBind]) -> int | None:
    # ifIndex itself when the agent sends it (RFC 2863); else the instance of any ifTable or
    # ifXTable column, which some vendors send instead (ifDescr, ifAdminStatus...).
    fallback = None
    for varbind in varbinds:
        oid = varbind.oid
        if len(oid) == 11 and oid[:10] == IF_INDEX and isinstance(varbind.value, int):
            return varbind.value
        if fallback is None and len(oid) == 11 and oid[:9] == _IF_ENTRY:
            fallback = oid[10]
        elif fallback is None and len(oid) == 12 and oid[:10] == _IFX_ENTRY:
            fallback = oid[11]
    return fallback


def make_event(
    *,
    target: str | None,
    source: str,
    version: str,
    trap_oid: OID,
    uptime_ticks: int | None,
    payload: Sequence[VarBind],
    received_at: float,
) -> TrapEvent:
    oid_text = oid_to_text(trap_oid)
    name = STANDARD_TRAPS.get(oid_text, oid_text)
    return TrapEvent(
        target=target,
        source=source,
        version=version,
        trap_oid=oid_text,
        trap=name,
        varbinds=tuple((oid_to_text(vb.oid), value_text(vb)) for vb in payload),
        if_index=_if_index(payload) if name in _LINK_TRAPS else None,
        uptime_ticks=uptime_ticks,
        received_at=received_at,
    )


def split_v2_varbinds(varbinds: Sequence[VarBind]) -> tuple[OID | None, int | None, list[VarBind]]:
    """(snmpTrapOID.0, sysUpTime.0, the rest) of an SNMPv2-Trap or InformRequest.

    RFC 3416 puts sysUpTime.0 first and snmpTrapOID.0 second; they are looked for anywhere so a
    sloppy agent's trap still has a name.
    """
    trap_oid: OID | None = None
    uptime: int | None = None
    payload = []
    for varbind in varbinds:
        if varbind.oid == SNMP_TRAP_OID and isinstance(varbind.value, tuple):
            trap_oid = varbind.value
        elif varbind.oid == SYS_UPTIME and isinstance(varbind.value, int):
            uptime = varbind.value
        else:
            payload.append(varbind)
    return trap_oid, uptime, payload


def v1_payload(varbinds: Sequence[VarBind], agent_addr: bytes, enterprise: OID) -> list[VarBind]:
    return [
        *varbinds,
        VarBind(SNMP_TRAP_ADDRESS, Tag.IP_ADDRESS, agent_addr),
        VarBind(SNMP_TRAP_ENTERPRISE, Tag.OBJECT_IDENTIFIER, enterprise),
    ]

"""The vocabulary shared by the core and the collectors: what a probe is given and returns.

Observations are frozen dataclasses that collectors build and the state store folds in; nothing
here does I/O or imports a collector, the exporter, alerting or a transport.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Annotated

from pydantic import BeforeValidator

from netmon.credentials import Credential

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}


def parse_duration(value: object) -> object:
    """Accept 1.5, "1.5", "500ms", "2s", "5m", "1h"; other types are left to pydantic."""
    if isinstance(value, str):
        match = _DURATION.match(value)
        if match is None:
            raise ValueError(f"not a duration: {value!r} (examples: 500ms, 2s, 5m, 1h)")
        return float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
    return value


Duration = Annotated[float, BeforeValidator(parse_duration)]
"""Seconds, written as a number or with a unit (ms, s, m, h)."""


def iso(timestamp: float | None) -> str | None:
    """Unix seconds as every JSON netmon writes them: ISO 8601, UTC, milliseconds."""
    if timestamp is None:
        return None
    return dt.datetime.fromtimestamp(timestamp, dt.UTC).isoformat(timespec="milliseconds")


class ProbeRole(StrEnum):
    """What a probe tells about its target; the core asks by role, never by probe name."""

    REACH = "reach"  # whether the target answers at all (ICMP): up and down, loss, RTT
    DEVICE = "device"  # the device's own state (SNMP): uptime, interfaces
    SERVICE = "service"  # one service the target offers (TCP, SIP, HTTP): answers or not
    STATUS = "status"  # the endpoint's own status from its API: registration, calls, peripherals
    REGISTRAR = "registrar"  # a SIP registrar's table of registered contacts (one poll, many AoRs)


@dataclass(frozen=True, slots=True)
class ReachPolicy:
    """How the state store turns echoes into up and down for one target, and how a doubtful
    echo is confirmed.

    Resolved once per target when the inventory is built (from the settings of the probe that
    decides reachability, ICMP), not looked up on every round.

    `down_after` and `up_after` count echoes in a row, confirmation echoes included: a lost
    echo of a target that is up (or a reply from one that is down) is followed at once by
    `confirm` echoes `confirm_spacing` apart, each given `confirm_timeout`, so the verdict
    comes within a second instead of after several rounds.
    """

    down_after: int = 11
    up_after: int = 3
    window: float = 60.0  # seconds of echoes behind RTT percentiles and jitter
    loss_window: float = 600.0  # seconds of regular echoes behind the loss statistics
    confirm: int = 10
    confirm_spacing: float = 0.05
    confirm_timeout: float = 0.5


@dataclass(frozen=True, slots=True)
class ProbeTarget:
    """What a collector needs to know about a target: no labels, no secrets it does not use.

    `credentials` holds only the credentials this target's probes refer to, by name.
    """

    id: str
    address: str
    credentials: Mapping[str, Credential] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Observation:
    """Result of one collection run against one target.

    `ok` says whether the target answered as expected; `reason` says why not, in one of a few
    stable words ("timeout", "refused", "unreachable", "resolve", "parse", ...), so the runner can
    count errors by reason and a person can read it.
    """

    target: str
    collector: str
    ok: bool
    duration: float
    reason: str | None = None
    detail: str | None = None


@dataclass(frozen=True, slots=True)
class EchoRound(Observation):
    """One round of ICMP echoes to a target.

    `rtts` holds one entry per echo sent, in send order: the round-trip time in seconds, or None
    when no reply came within the timeout.
    """

    address: str = ""
    rtts: tuple[float | None, ...] = field(default_factory=tuple)
    # Echoes sent at once to confirm a doubtful one (`ReachPolicy.confirm`): they decide up and
    # down, but stay out of the loss, RTT and jitter statistics, which want echoes sent at
    # regular times, not echoes sent because something looked wrong.
    confirmation: bool = False

    @property
    def sent(self) -> int:
        return len(self.rtts)

    @property
    def received(self) -> int:
        return len(self.rtts) - self.rtts.count(None)  # read several times per echo round


@dataclass(frozen=True, slots=True)
class HttpAnswer(Observation):
    """One GET that got an HTTP answer (whether or not it was the expected one).

    `status_code` is the answer's status; `cert_not_after` the notAfter of the server's
    certificate in unix seconds (None over plain HTTP); `url` what was fetched last (after
    redirects, when they are followed).
    """

    status_code: int | None = None
    cert_not_after: float | None = None
    url: str = ""


@dataclass(frozen=True, slots=True)
class InterfaceSample:
    """One interface as read from IF-MIB; None where the agent did not say."""

    index: int
    name: str
    alias: str
    descr: str
    admin_up: bool | None
    oper_up: bool | None
    speed_bps: int | None
    counter_bits: int  # 64 when the HC counters were read, else 32
    in_octets: int | None
    out_octets: int | None
    in_errors: int | None
    out_errors: int | None
    in_discards: int | None
    out_discards: int | None
    discontinuity: int | None = None  # ifCounterDiscontinuityTime, in sysUpTime ticks
    ticks: int | None = None  # the agent's sysUpTime when the octet counters were read


@dataclass(frozen=True, slots=True)
class DeviceSample(Observation):
    """One SNMP poll of a device: system group and interfaces.

    `missing` names what could not be read while the rest was (a failed subtree does not
    fail the poll).
    """

    uptime_ticks: int | None = None
    sys_name: str = ""
    sys_descr: str = ""
    sys_object_id: str = ""
    interfaces: tuple[InterfaceSample, ...] = ()
    missing: tuple[str, ...] = ()
    # From data-defined modules: (name, type, help, labels, value), name without netmon_.
    metrics: tuple[tuple[str, str, str, tuple[tuple[str, str], ...], float], ...] = ()


@dataclass(frozen=True, slots=True)
class TrapEvent:
    """One notification received, as a person reads it.

    `target` is None for a sender the inventory does not know. `trap_oid` is numeric (v1 traps
    in their v2 form), `trap` the standard name or else the OID. `varbinds` are the payload:
    sysUpTime.0 and snmpTrapOID.0 are taken out into `uptime_ticks` and `trap_oid`; a v1 trap
    gets snmpTrapAddress.0 and snmpTrapEnterprise.0 appended as RFC 3584 says (never its
    community). `received_at` is wall-clock time (time.time()).
    """

    target: str | None
    source: str
    version: str  # "1" | "2c" | "3"
    trap_oid: str
    trap: str
    varbinds: tuple[tuple[str, str], ...]
    if_index: int | None
    uptime_ticks: int | None
    received_at: float

    @property
    def counted_as(self) -> str:
        """`trap` as a counter's label: a standard trap's name, any other trap "other".

        The sender picks the OID, so an OID as a label value would let it make series without
        end; the OID itself is in `trap_oid` for whatever reads the event.
        """
        return self.trap if self.trap != self.trap_oid else "other"


class RegistrationState(StrEnum):
    """A registration as the endpoint (or its registrar) reports it, in one vocabulary for
    every vendor: Cisco's Registered/Registering/Failed/Deregister/Inactive, Poly's up/down."""

    REGISTERED = "registered"
    REGISTERING = "registering"  # in progress: not callable yet, not a fault yet
    FAILED = "failed"  # tried and refused or unanswered (the reason says which)
    UNREGISTERED = "unregistered"  # was registered and is not (Cisco's Deregister, Poly's down)
    INACTIVE = "inactive"  # not set up to register for this protocol: no fault (Cisco Inactive)


@dataclass(frozen=True, slots=True)
class Registration:
    """One protocol's registration: `protocol` "sip" or "h323"; `reason` as the source words it
    (Cisco's Reason, "403 Forbidden"); `address` the AoR/URI or the gatekeeper's address."""

    protocol: str
    state: RegistrationState
    reason: str = ""
    address: str = ""


@dataclass(frozen=True, slots=True)
class Call:
    """One call the endpoint is in (or setting up): `status` lower-case (connected, ringing,
    dialling, ...), `direction` incoming/outgoing, `duration` seconds."""

    status: str
    protocol: str = ""
    direction: str = ""
    remote: str = ""
    duration: float | None = None


class PeripheralKind(StrEnum):
    CAMERA = "camera"
    MICROPHONE = "microphone"
    DISPLAY = "display"
    TOUCH_PANEL = "touch_panel"
    OTHER = "other"


@dataclass(frozen=True, slots=True)
class Peripheral:
    """A camera, microphone, display or touch panel the endpoint reports, connected or not."""

    kind: PeripheralKind
    name: str
    connected: bool


class DiagnosticLevel(StrEnum):
    INFO = "info"
    WARNING = "warning"
    ERROR = "error"
    CRITICAL = "critical"


@dataclass(frozen=True, slots=True)
class Diagnostic:
    """One diagnostics message the endpoint raises about itself (Cisco Diagnostics/Message)."""

    level: DiagnosticLevel
    type: str
    description: str = ""


@dataclass(frozen=True, slots=True)
class MediaStream:
    """One media stream of a call as the endpoint measures it (RTCP / its own counters).

    `direction` "rx" is what the room receives (the quality its people hear and see), "tx"
    what it sends; `media` audio or video; `role` main or presentation (video). `loss_ratio`
    is over the source's last interval, not since the call began; `jitter` in seconds,
    `bitrate` in bit/s. None where the source does not say.
    """

    call: str
    direction: str
    media: str
    role: str = "main"
    codec: str = ""
    loss_ratio: float | None = None
    jitter: float | None = None
    bitrate: float | None = None
    frame_rate: float | None = None
    channel: str = ""  # the source's own number for the stream, unique within its call
    # Whether the receiver conceals lost audio packets (G.711 Appendix I and its kin): hardware
    # codecs do; a baresip without its plc module does not, and scores lower for the same loss.
    plc: bool = True


@dataclass(frozen=True, slots=True)
class EndpointStatus(Observation):
    """One read of an endpoint's own status over its API (Cisco xAPI, Poly REST).

    None or empty where the source does not say: `peripherals` lists only what the endpoint
    reports, `registrations` only the protocols it reports (a Poly Group Series says nothing
    of H.323 when none is configured). `standby` is True in standby, False awake, None unknown.
    `missing` names the parts the source could not give while the rest came (a path the
    firmware lacks), as `DeviceSample.missing` does.
    """

    vendor: str = ""
    model: str = ""
    software: str = ""
    serial: str = ""
    registrations: tuple[Registration, ...] = ()
    calls: tuple[Call, ...] = ()
    standby: bool | None = None
    peripherals: tuple[Peripheral, ...] = ()
    diagnostics: tuple[Diagnostic, ...] = ()
    missing: tuple[str, ...] = ()
    streams: tuple[MediaStream, ...] = ()  # of the calls it is in (read only while in one)


@dataclass(frozen=True, slots=True)
class CallMedia(Observation):
    """One read of only the media statistics of the calls an endpoint is in, between two reads
    of its whole status (`EndpointStatus`): the store puts `streams` in place of the last
    status's while that status still says the endpoint is in a call."""

    streams: tuple[MediaStream, ...] = ()


@dataclass(frozen=True, slots=True)
class Contact:
    """One live contact in a registrar's location table.

    `aor` as the registrar keys it ("room-01" or "room-01@conf.lab"), `contact` the Contact
    URI, `expires` unix seconds (None: permanent), `received` the source address it came from.
    """

    aor: str
    contact: str
    user_agent: str = ""
    expires: float | None = None
    received: str = ""


@dataclass(frozen=True, slots=True)
class RegistrationFailure:
    """The last refused REGISTER of an AoR the registrar remembers: when, and its reply
    ("401 Unauthorized", "403 Forbidden")."""

    aor: str
    reason: str
    at: float  # unix seconds


@dataclass(frozen=True, slots=True)
class RegistrarContacts(Observation):
    """One poll of a registrar: every live contact, and the recent refusals it keeps.

    The poll covers every endpoint registered there; the core joins it to endpoints by AoR.
    """

    registrar: str = ""  # its software, e.g. "kamailio"
    contacts: tuple[Contact, ...] = ()
    failures: tuple[RegistrationFailure, ...] = ()

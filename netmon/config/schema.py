"""What the config file may contain: the top-level `Config` and its sections, strictly.

Unknown keys are errors, values are checked where they are declared, and defaults sit beside
each field. Probe settings stay raw mappings here: `probes.py` validates them with each probe's
own model. It must not import alerting, a sink or a collector's transport.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)

from collectors.traps.settings import TrapSettings
from netmon.config.alerting import AlertingConfig
from netmon.config.availability import AvailabilityConfig
from netmon.config.oncall import OncallConfig
from netmon.config.thresholds import Thresholds
from netmon.credentials import Credential, Secret, SecretValue
from netmon.model import Duration

TARGET_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
LABEL_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
_HOSTNAME_LABEL = re.compile(r"^(?!-)[A-Za-z0-9-]{1,63}(?<!-)$")
RESERVED_LABELS = frozenset(
    {"target", "kind", "site", "district", "group", "name", "address", "instance", "job"}
)
DEFAULT_PORT = 9842


def _check_target_id(value: str) -> str:
    if not TARGET_ID.match(value):
        raise ValueError(
            "not usable as an id: use letters, digits, '.', '_' and '-', starting with a letter "
            "or digit, at most 128 characters (ids become label values and MQTT topic levels)"
        )
    return value


def is_hostname(value: str) -> bool:
    name = value.removesuffix(".")
    if not name or len(name) > 253:
        return False
    labels = name.split(".")
    # An all-numeric last label is a mistyped IP address (300.1.1.1), not a name.
    return all(_HOSTNAME_LABEL.match(label) for label in labels) and not labels[-1].isdigit()


def _check_address(value: str) -> str:
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        pass
    if is_hostname(value):
        return value
    raise ValueError("not an IP address or hostname")


def _check_hostname(value: str) -> str:
    if not is_hostname(value):
        raise ValueError("not a hostname")
    return value


def _check_label_name(value: str) -> str:
    if not LABEL_NAME.match(value):
        raise ValueError("not a Prometheus label name ([a-zA-Z_][a-zA-Z0-9_]*)")
    if value in RESERVED_LABELS or value.startswith("__"):
        raise ValueError(f"label name {value!r} is reserved (netmon sets it)")
    return value


def parse_listen(value: str) -> tuple[str, int]:
    """'HOST:PORT', '[V6]:PORT' or ':PORT' (all interfaces)."""
    host, sep, port_text = value.rpartition(":")
    if not sep or not port_text.isdigit() or not 0 <= int(port_text) <= 65535:
        raise ValueError("expected HOST:PORT, e.g. 127.0.0.1:9842 or [::]:9842")
    host = host.strip("[]") or "0.0.0.0"
    try:
        ipaddress.ip_address(host)
    except ValueError:
        if not is_hostname(host):
            raise ValueError(f"{host!r} is not an IP address or hostname") from None
    return host, int(port_text)


def _check_listen(value: str) -> str:
    parse_listen(value)
    return value


def _check_engine_id(value: str) -> str:
    text = value.lower().removeprefix("0x").replace(":", "")
    try:
        raw = bytes.fromhex(text)
    except ValueError:
        raise ValueError("not hexadecimal (e.g. 80001f8880e9630000d61ff449)") from None
    if not 5 <= len(raw) <= 32:
        raise ValueError(f"an engine ID is 5 to 32 octets (RFC 3411), this is {len(raw)}")
    return text


TargetId = Annotated[str, AfterValidator(_check_target_id)]
Address = Annotated[str, AfterValidator(_check_address)]
LabelName = Annotated[str, AfterValidator(_check_label_name)]
Listen = Annotated[str, AfterValidator(_check_listen)]
Hostname = Annotated[str, AfterValidator(_check_hostname)]
Vendor = Literal["cisco", "poly", "sip", "other"]
Kind = Literal["endpoint", "mcu", "router", "switch", "olt", "cpe", "firewall", "server", "service"]


def probe_list_to_map(value: object) -> object:
    if isinstance(value, list):
        if not all(isinstance(name, str) for name in value):
            raise ValueError(
                "expected a list of probe names ([icmp]) or a mapping of probe name to "
                "settings ({icmp: {timeout: 500ms}})"
            )
        return {name: {} for name in value}
    return value


class StrictModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class HttpConfig(StrictModel):
    model_config = ConfigDict(extra="forbid", frozen=True, arbitrary_types_allowed=True)

    listen: Listen = f"0.0.0.0:{DEFAULT_PORT}"
    token: SecretValue | None = Field(
        default=None,
        description="bearer token for requests that change anything; none = loopback only",
    )
    allowed_hosts: tuple[Hostname, ...] = Field(
        default=(),
        description=(
            "names people and Prometheus reach netmon by (the Host header), besides IP "
            "addresses, localhost, this machine's hostname and the listen address"
        ),
    )

    @field_validator("token")
    @classmethod
    def _token_not_empty(cls, token: Secret | None) -> Secret | None:
        if token is not None and len(token.reveal().strip()) < 16:
            raise ValueError("the token must be at least 16 characters (not blank)")
        return token


class SchedulerConfig(StrictModel):
    max_concurrency: int = Field(default=512, ge=1, description="collector runs at once")


class ShardingConfig(StrictModel):
    """This instance is shard `shard` of `of`: it probes and alerts on the targets whose shard
    key hashes to it (rendezvous hashing, netmon/sharding.py)."""

    shard: int = Field(ge=1, description="this instance's shard, 1..of")
    of: int = Field(ge=1, le=64, description="how many shards the inventory is split into")
    by: Literal["district", "target"] = Field(
        default="district",
        description="district: a district's targets stay together, so its topology alerts "
        "(DistrictUnreachable, endpoints behind a cut uplink) are judged on one shard",
    )
    instances: list[str | list[str]] = Field(
        default_factory=list,
        description="each shard's HTTP address (host:port), in shard order, or the addresses "
        "of its HA replicas, for the shard map Prometheus discovers them by (http_sd)",
    )

    @model_validator(mode="after")
    def _consistent(self) -> ShardingConfig:
        if self.shard > self.of:
            raise ValueError(f"shard {self.shard} of {self.of}: shards are numbered 1..{self.of}")
        if self.instances and len(self.instances) != self.of:
            raise ValueError(f"instances: {len(self.instances)} given for {self.of} shards")
        return self


class MeetingRecordConfig(StrictModel):
    """The meeting quality record (`netmon/meeting_quality/`): a sample per room every
    `interval` while a meeting is on, kept `retention_days` in its own SQLite file."""

    enabled: bool = True
    database: str = Field(
        default="netmon-meetings.sqlite",
        description="relative paths are where alerting.database's are (the state directory)",
    )
    interval: Duration = Field(default=10.0, ge=1.0, description="one sample per room this often")
    retention_days: float = Field(default=400.0, gt=0, description="meetings kept this long")
    max_samples: int = Field(
        default=20_000_000, ge=1000, description="samples kept at most; oldest meetings go first"
    )
    adhoc: bool = Field(default=True, description="record calls outside any scheduled meeting")
    adhoc_idle: Duration = Field(
        default=60.0,
        gt=0,
        description="an ad hoc meeting ends once no room was in a call this long",
    )


class MeetingConfig(StrictModel):
    """A scheduled meeting: its endpoints are checked `check_before` its start."""

    name: str = Field(min_length=1)
    start: AwareDatetime = Field(description="with its time zone, e.g. 2026-12-01T08:00:00+07:00")
    targets: list[TargetId] = Field(default_factory=list)
    groups: list[str] = Field(default_factory=list)
    districts: list[str] = Field(default_factory=list)
    check_before: list[Duration] = Field(
        default_factory=lambda: [1800.0, 300.0], description="default T-30 min and T-5 min"
    )
    duration: Duration = Field(default=7200.0, gt=0, description="how long the meeting runs")
    protocol: Literal["sip", "h323"] = Field(
        default="sip", description="how the rooms are called: a room not registered for it is NO-GO"
    )
    thresholds: dict[str, Any] = Field(
        default_factory=dict, description="stricter limits for this meeting (thresholds keys)"
    )

    @model_validator(mode="after")
    def _has_endpoints(self) -> MeetingConfig:
        if not (self.targets or self.groups or self.districts):
            raise ValueError("a meeting needs targets, groups or districts")
        return self


class TargetConfig(StrictModel):
    id: TargetId
    address: Address
    kind: Kind = "endpoint"
    name: str = ""
    site: str = ""
    district: str = ""
    group: str = ""
    labels: dict[LabelName, str] = Field(default_factory=dict)
    parent: TargetId | None = Field(
        default=None, description="the target this one hangs off (its district switch, say)"
    )
    uplink: str = Field(
        default="", description="interface whose loss cuts off every target behind this one"
    )
    trap_engine_ids: list[Annotated[str, AfterValidator(_check_engine_id)]] = Field(
        default_factory=list, description="SNMPv3 engine IDs (hex) this target sends traps with"
    )
    probes: Annotated[dict[str, dict[str, Any]], BeforeValidator(probe_list_to_map)] = Field(
        default_factory=lambda: {"icmp": dict[str, Any]()}
    )
    vendor: Vendor | None = Field(
        default=None,
        description="cisco or poly: the endpoint's status is read over its API (xapi, poly); "
        "sip: a plain SIP endpoint (its registration comes from the registrar)",
    )
    registrar: TargetId | None = Field(
        default=None, description="the target (with a registrar probe) the endpoint registers to"
    )
    aor: str = Field(
        default="",
        description="its address of record at the registrar (user or user@domain, with or "
        "without sip:); default: the target id",
    )

    @property
    def registrar_aor(self) -> str:
        return self.aor or self.id


class GroupConfig(StrictModel):
    """Defaults for every target of a group; a target's own keys win."""

    vendor: Vendor | None = None
    registrar: TargetId | None = None
    labels: dict[LabelName, str] = Field(default_factory=dict)
    probes: Annotated[dict[str, dict[str, Any]], BeforeValidator(probe_list_to_map)] = Field(
        default_factory=dict
    )


class Config(StrictModel):
    instance: Annotated[str, AfterValidator(_check_target_id)] = "netmon"
    http: HttpConfig = Field(default_factory=HttpConfig)
    scheduler: SchedulerConfig = Field(default_factory=SchedulerConfig)
    thresholds: Thresholds = Field(default_factory=Thresholds)
    alerting: AlertingConfig = Field(default_factory=AlertingConfig)
    trap_receiver: TrapSettings | None = Field(
        default=None, description="receive SNMP traps (listen on UDP 162 by default)"
    )
    meetings: list[MeetingConfig] = Field(default_factory=list)
    meeting_record: MeetingRecordConfig = Field(default_factory=MeetingRecordConfig)
    availability: AvailabilityConfig = Field(
        default_factory=AvailabilityConfig,
        description="the outage journal and how availability reports count it",
    )
    oncall: OncallConfig | None = Field(
        default=None, description="acknowledgements' other half: escalation, rotas, channels"
    )
    sharding: ShardingConfig | None = Field(
        default=None, description="split the inventory over several instances (or --shard K/N)"
    )
    trap_credentials: list[TargetId] = Field(
        default_factory=list,
        description="credentials accepted on traps from any inventory target, besides the "
        "credentials its own SNMP probe uses (one v3 user shared by 200 devices, say)",
    )
    credentials: dict[TargetId, Credential] = Field(default_factory=dict)
    defaults: dict[str, dict[str, Any]] = Field(default_factory=dict)
    groups: dict[str, GroupConfig] = Field(
        default_factory=dict, description="defaults for the targets of each group"
    )
    targets: list[TargetConfig] = Field(default_factory=list)

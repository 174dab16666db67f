"""The configuration file: schema, strict validation, and errors that name the field.

Every problem is reported as `path.to.field: what is wrong`, all of them at once. Unknown keys
and duplicate keys are errors: a typo must never pass silently. Collector settings are validated
by the models that live beside each collector, found through `collectors.registry`.
"""

from __future__ import annotations

import ipaddress
import re
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from collectors import registry
from collectors.base import CollectorSettings
from collectors.traps.settings import TrapSettings
from netmon.alerting.rules import Rule
from netmon.alerting.settings import AlertingConfig, resolve_rules
from netmon.credentials import Secret, SecretValue, SnmpCredential
from netmon.model import Duration, ProbeRole, ProbeTarget, ReachPolicy

TARGET_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
LABEL_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
_HOSTNAME_LABEL = re.compile(r"^(?!-)[A-Za-z0-9-]{1,63}(?<!-)$")
RESERVED_LABELS = frozenset(
    {"target", "kind", "site", "district", "group", "name", "address", "instance", "job"}
)
DEFAULT_PORT = 9842


@dataclass(frozen=True, slots=True)
class ConfigProblem:
    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message


class ConfigError(Exception):
    """A config that cannot be used; `problems` lists every reason."""

    def __init__(self, problems: Sequence[ConfigProblem]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(str(problem) for problem in self.problems))


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
Kind = Literal["endpoint", "mcu", "router", "switch", "olt", "cpe", "firewall", "server", "service"]


def _probe_list_to_map(value: object) -> object:
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

    @field_validator("token")
    @classmethod
    def _token_not_empty(cls, token: Secret | None) -> Secret | None:
        if token is not None and len(token.reveal().strip()) < 16:
            raise ValueError("the token must be at least 16 characters (not blank)")
        return token


class SchedulerConfig(StrictModel):
    max_concurrency: int = Field(default=512, ge=1, description="collector runs at once")


class Thresholds(StrictModel):
    """Quality limits shared by alert rules and readiness checks.

    Defaults are the interactive-video profile: ITU-T G.114 and Cisco's AF41 guidance.
    """

    rtt_warn: Duration = Field(default=0.150, gt=0)
    rtt_bad: Duration = Field(default=0.300, gt=0)
    jitter_warn: Duration = Field(default=0.010, gt=0)
    jitter_bad: Duration = Field(default=0.030, gt=0)
    loss_warn: float = Field(default=0.001, ge=0, le=1)
    loss_bad: float = Field(default=0.01, ge=0, le=1)
    loss_critical: float = Field(default=0.05, ge=0, le=1)


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
    probes: Annotated[dict[str, dict[str, Any]], BeforeValidator(_probe_list_to_map)] = Field(
        default_factory=lambda: {"icmp": dict[str, Any]()}
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
    trap_credentials: list[TargetId] = Field(
        default_factory=list,
        description="credentials accepted on traps from any inventory target, besides the "
        "credentials its own SNMP probe uses (one v3 user shared by 200 devices, say)",
    )
    credentials: dict[TargetId, SnmpCredential] = Field(default_factory=dict)
    defaults: dict[str, dict[str, Any]] = Field(default_factory=dict)
    targets: list[TargetConfig] = Field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Target:
    """A validated inventory entry with each probe's settings resolved against the defaults."""

    id: str
    address: str
    kind: str
    name: str
    site: str
    district: str
    group: str
    labels: tuple[tuple[str, str], ...]
    probes: tuple[tuple[str, CollectorSettings], ...]
    credentials: tuple[tuple[str, SnmpCredential], ...] = ()
    parent: str | None = None
    uplink: str = ""
    trap_engine_ids: tuple[str, ...] = ()
    # From the probe that decides up and down (ICMP), resolved once when the inventory is built.
    reach_policy: ReachPolicy | None = None

    @property
    def display_name(self) -> str:
        return self.name or self.id

    @property
    def is_room(self) -> bool:
        """A conference room (endpoint or MCU): what meetings, checks and the page are about."""
        return self.kind in ("endpoint", "mcu")

    def probe(self, name: str) -> CollectorSettings | None:
        # Called for every result recorded: a scan of one or two pairs, no dict built.
        return next((settings for probe, settings in self.probes if probe == name), None)

    def device_probe(self) -> tuple[str, CollectorSettings] | None:
        """The probe that reads the device's own state (SNMP), if one is configured."""
        return next((p for p in self.probes if p[1].role is ProbeRole.DEVICE), None)

    def service_probes(self) -> list[tuple[str, CollectorSettings]]:
        """The probes of the services the target offers (TCP, SIP, HTTP)."""
        return [p for p in self.probes if p[1].role is ProbeRole.SERVICE]

    def probe_role(self, name: str) -> ProbeRole | None:
        settings = self.probe(name)
        return None if settings is None else settings.role

    def is_service_probe(self, name: str) -> bool:
        return self.probe_role(name) is ProbeRole.SERVICE

    @property
    def probe_target(self) -> ProbeTarget:
        return ProbeTarget(id=self.id, address=self.address, credentials=dict(self.credentials))


@dataclass(frozen=True, slots=True)
class Inventory:
    config: Config
    defaults: Mapping[str, CollectorSettings]
    targets: Mapping[str, Target]
    rules: Mapping[str, Rule] = field(default_factory=dict)

    def summary(self) -> str:
        kinds = Counter(target.kind for target in self.targets.values())
        probes = Counter(name for target in self.targets.values() for name, _ in target.probes)
        kind_text = ", ".join(f"{count} {kind}" for kind, count in sorted(kinds.items()))
        probe_text = ", ".join(f"{name} x{count}" for name, count in sorted(probes.items()))
        return (
            f"instance {self.config.instance}: {len(self.targets)} targets"
            + (f" ({kind_text})" if kind_text else "")
            + (f"; probes: {probe_text}" if probe_text else "")
        )


def format_location(location: Sequence[int | str]) -> str:
    text = ""
    for part in location:
        if isinstance(part, int):
            text += f"[{part}]"
        elif part == "[key]":
            continue
        else:
            text += f".{part}" if text else str(part)
    return text


_MESSAGES = {
    "missing": "required",
    "extra_forbidden": "unknown key (check the spelling)",
}


def _problems(exc: ValidationError, prefix: Sequence[int | str] = ()) -> list[ConfigProblem]:
    problems = []
    for error in exc.errors():
        message = _MESSAGES.get(error["type"], error["msg"]).removeprefix("Value error, ")
        location = [*prefix, *error["loc"]]
        if error["type"] == "literal_error" and "expected" in error.get("ctx", {}):
            message = f"must be one of {error['ctx']['expected']}"
        problems.append(ConfigProblem(format_location(location), message))
    return problems


class _UniqueKeyLoader(yaml.SafeLoader):
    """A YAML loader that refuses duplicate keys instead of keeping the last one."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, int] = {}
        for key_node, _value in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None,
                    None,
                    f"duplicate key {key!r} (first on line {seen[key] + 1})",
                    key_node.start_mark,
                )
            seen[key] = key_node.start_mark.line
        return super().construct_mapping(node, deep=deep)


def parse_yaml(text: str, source: str) -> Any:
    try:
        return yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "somewhere"
        raise ConfigError([ConfigProblem(source, f"YAML error at {where}: {exc.problem}")]) from exc
    except yaml.YAMLError as exc:
        raise ConfigError([ConfigProblem(source, f"YAML error: {exc}")]) from exc


def load_file(path: str | Path) -> Inventory:
    """Read and validate a config file (blocking: call it off the event loop)."""
    source = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError([ConfigProblem(source, f"cannot read: {exc}")]) from exc
    return load_data(parse_yaml(text, source))


def load_data(raw: Any) -> Inventory:
    """Validate already-parsed config data, reporting every problem at once."""
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError([ConfigProblem("", "the config must be a mapping of keys to values")])
    problems: list[ConfigProblem] = []
    config: Config | None = None
    try:
        config = Config.model_validate(raw)
    except ValidationError as exc:
        problems.extend(_problems(exc))

    defaults, default_problems = _resolve_defaults(raw.get("defaults"))
    problems.extend(default_problems)
    raw_targets = raw.get("targets")
    if isinstance(raw_targets, list):
        problems.extend(_duplicate_ids(raw_targets))
        problems.extend(_parent_problems(raw_targets))
        problems.extend(_probe_problems(raw_targets, raw.get("defaults")))

    raw_credentials = raw.get("credentials")
    known = set(raw_credentials) if isinstance(raw_credentials, dict) else set()
    problems.extend(_credential_problems(raw, known))

    rules: dict[str, Rule] = {}
    if config is not None:
        problems.extend(_meeting_problems(config))
        rules, rule_problems = resolve_rules(config.alerting, config.thresholds)
        problems.extend(ConfigProblem(f"alerting.rules.{p}", m) for p, m in rule_problems)
    if problems or config is None:
        raise ConfigError(_dedupe(problems))
    targets = {
        target.id: _resolve_target(target, defaults, config.credentials)
        for target in config.targets
    }
    return Inventory(config=config, defaults=defaults, targets=targets, rules=rules)


def _dedupe(problems: list[ConfigProblem]) -> list[ConfigProblem]:
    return list(dict.fromkeys(problems))


def _resolve_defaults(raw: object) -> tuple[dict[str, CollectorSettings], list[ConfigProblem]]:
    problems: list[ConfigProblem] = []
    resolved: dict[str, CollectorSettings] = {}
    sections = raw if isinstance(raw, dict) else {}
    for name in sections:
        if name not in registry.PROBES:
            problems.append(
                ConfigProblem(
                    f"defaults.{name}", f"unknown probe; known: {', '.join(registry.names())}"
                )
            )
    for name in registry.names():
        section = sections.get(name) or {}
        if not isinstance(section, dict):
            continue  # the Config schema already reported it
        try:
            resolved[name] = registry.settings_model(name).model_validate(section)
        except ValidationError as exc:
            problems.extend(_problems(exc, ("defaults", name)))
    return resolved, problems


def _duplicate_ids(raw_targets: list[Any]) -> list[ConfigProblem]:
    first_seen: dict[str, int] = {}
    problems = []
    for index, entry in enumerate(raw_targets):
        if not isinstance(entry, dict) or not isinstance(entry.get("id"), str):
            continue
        target_id = entry["id"]
        if target_id in first_seen:
            problems.append(
                ConfigProblem(
                    f"targets[{index}].id",
                    f"duplicate id {target_id!r} (first used by targets[{first_seen[target_id]}])",
                )
            )
        else:
            first_seen[target_id] = index
    return problems


def _meeting_problems(config: Config) -> list[ConfigProblem]:
    ids = {target.id for target in config.targets}
    problems = []
    names: set[str] = set()
    for index, meeting in enumerate(config.meetings):
        where = f"meetings[{index}]"
        if meeting.name in names:
            problems.append(ConfigProblem(f"{where}.name", f"duplicate meeting {meeting.name!r}"))
        names.add(meeting.name)
        for position, target in enumerate(meeting.targets):
            if target not in ids:
                problems.append(
                    ConfigProblem(f"{where}.targets[{position}]", f"unknown target {target!r}")
                )
        try:
            meeting_thresholds(config, meeting)
        except ValidationError as exc:
            problems.extend(_problems(exc, (where, "thresholds")))
    return problems


def meeting_targets(inventory: Inventory, meeting: MeetingConfig) -> list[Target]:
    """The rooms (endpoints, MCUs) of a meeting: its targets, groups and districts."""
    rooms = [t for t in inventory.targets.values() if t.is_room]
    groups, districts = set(meeting.groups), {d.casefold() for d in meeting.districts}
    members = {t.id: t for t in rooms if t.group in groups}
    members.update({t.id: t for t in rooms if t.district.casefold() in districts})
    members.update({t: inventory.targets[t] for t in meeting.targets if t in inventory.targets})
    return sorted(members.values(), key=lambda t: t.id)


def meeting_windows(inventory: Inventory) -> list[tuple[float, float, frozenset[str]]]:
    """(from, until, rooms) per meeting: from its first check until it ends."""
    windows = []
    for meeting in inventory.config.meetings:
        start = meeting.start.timestamp()
        ahead = max(meeting.check_before, default=0.0)
        rooms = frozenset(t.id for t in meeting_targets(inventory, meeting))
        windows.append((start - ahead, start + meeting.duration, rooms))
    return windows


def meeting_thresholds(config: Config, meeting: MeetingConfig) -> Thresholds:
    """The config's thresholds with the meeting's stricter ones over them."""
    if not meeting.thresholds:
        return config.thresholds
    return Thresholds.model_validate({**config.thresholds.model_dump(), **meeting.thresholds})


def _parent_problems(raw_targets: list[Any]) -> list[ConfigProblem]:
    """A parent must be another target, and following parents must never come back around."""
    parents = {
        entry["id"]: (index, entry.get("parent"))
        for index, entry in enumerate(raw_targets)
        if isinstance(entry, dict) and isinstance(entry.get("id"), str)
    }
    problems = []
    for target_id, (index, parent) in parents.items():
        if parent is None:
            continue
        where = f"targets[{index}].parent"
        if parent == target_id:
            problems.append(ConfigProblem(where, "a target cannot be its own parent"))
        elif parent not in parents:
            problems.append(ConfigProblem(where, f"unknown target {parent!r}"))
        else:
            seen = {target_id}
            current: Any = parent
            while current is not None and current in parents:
                if current in seen:
                    problems.append(ConfigProblem(where, f"parents form a loop through {parent!r}"))
                    break
                seen.add(current)
                current = parents[current][1]
    return problems


def _probe_problems(raw_targets: list[Any], raw_defaults: object) -> list[ConfigProblem]:
    problems = []
    defaults = raw_defaults if isinstance(raw_defaults, dict) else {}
    for index, entry in enumerate(raw_targets):
        if not isinstance(entry, dict):
            continue
        try:
            probes = _probe_list_to_map(entry.get("probes", {}))
        except ValueError:
            continue  # the schema reports it
        if not isinstance(probes, dict):
            continue
        for name, override in probes.items():
            where = f"targets[{index}].probes.{name}"
            if name not in registry.PROBES:
                problems.append(
                    ConfigProblem(where, f"unknown probe; known: {', '.join(registry.names())}")
                )
                continue
            if override is None:
                override = {}
            if not isinstance(override, dict):
                problems.append(ConfigProblem(where, "expected a mapping of settings"))
                continue
            section = defaults.get(name)
            base: dict[str, Any] = section if isinstance(section, dict) else {}
            try:
                settings = registry.settings_model(name).model_validate({**base, **override})
                for field, message in settings.usage_problems():
                    problems.append(ConfigProblem(f"{where}.{field}", message))
            except ValidationError as exc:
                for problem in _problems(exc):
                    field = problem.path.split(".", 1)[0].split("[", 1)[0]
                    # Blame the target only for what the target itself sets.
                    if field in override or not problem.path:
                        problems.append(
                            ConfigProblem(f"{where}.{problem.path}".rstrip("."), problem.message)
                        )
    return problems


def _credential_problems(raw: dict[str, Any], known: set[str]) -> list[ConfigProblem]:
    """Every probe setting named `credential` must name an entry of `credentials`."""
    defined = ", ".join(sorted(known)) or "none"
    problems = []

    def check(path: str, section: object) -> None:
        if isinstance(section, dict) and isinstance(section.get("credential"), str):
            name = section["credential"]
            if name not in known:
                problems.append(
                    ConfigProblem(
                        f"{path}.credential", f"unknown credential {name!r} (defined: {defined})"
                    )
                )

    defaults = raw.get("defaults")
    if isinstance(defaults, dict):
        for name, section in defaults.items():
            check(f"defaults.{name}", section)
    trap_credentials = raw.get("trap_credentials")
    for index, name in enumerate(trap_credentials if isinstance(trap_credentials, list) else []):
        if isinstance(name, str) and name not in known:
            message = f"unknown credential {name!r} (defined: {defined})"
            problems.append(ConfigProblem(f"trap_credentials[{index}]", message))
    targets = raw.get("targets")
    for index, entry in enumerate(targets if isinstance(targets, list) else []):
        probes = entry.get("probes") if isinstance(entry, dict) else None
        if isinstance(probes, dict):
            for name, section in probes.items():
                check(f"targets[{index}].probes.{name}", section)
    return problems


def _resolve_target(
    target: TargetConfig,
    defaults: Mapping[str, CollectorSettings],
    credentials: Mapping[str, SnmpCredential],
) -> Target:
    probes = []
    used: dict[str, SnmpCredential] = {}
    for name, override in target.probes.items():
        base = defaults[name]
        settings = base if not override else base.model_validate({**base.model_dump(), **override})
        probes.append((name, settings))
        reference = getattr(settings, "credential", None)
        if isinstance(reference, str) and reference in credentials:
            used[reference] = credentials[reference]
    return Target(
        id=target.id,
        address=target.address,
        kind=target.kind,
        name=target.name,
        site=target.site,
        district=target.district,
        group=target.group,
        labels=tuple(sorted(target.labels.items())),
        probes=tuple(probes),
        credentials=tuple(sorted(used.items())),
        parent=target.parent,
        uplink=target.uplink,
        trap_engine_ids=tuple(target.trap_engine_ids),
        reach_policy=next(
            (policy for _, s in probes if (policy := s.reach_policy()) is not None), None
        ),
    )

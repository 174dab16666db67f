"""Loading a config: YAML in (duplicate keys refused), every problem found, an Inventory out.

Runs the schema, each probe's settings and the checks that span sections (unique ids, parents
that exist and form no loop, credentials and meeting targets that exist, rules), and reports
all problems at once. It must not import alerting or a collector's transport: `netmon validate`
loads this and nothing of the running service.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from collectors import registry
from netmon.config.alerting import resolve_rules
from netmon.config.errors import (
    ConfigError,
    ConfigProblem,
    format_location,
    validation_problems,
)
from netmon.config.groups import expand_targets
from netmon.config.probes import (
    TargetProbes,
    resolve_defaults,
    resolve_target,
    resolve_target_probes,
)
from netmon.config.rules import Rule
from netmon.config.schema import Config
from netmon.credentials import credential_kind
from netmon.inventory import Inventory
from netmon.meetings import meeting_thresholds
from netmon.model import ProbeRole
from netmon.sharding import apply_sharding


class _UniqueKeyLoader(yaml.SafeLoader):
    """A YAML loader that refuses duplicate keys instead of keeping the last one."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, int] = {}
        for key_node, _value in node.value:
            key = self.construct_object(key_node, deep=deep)
            try:
                hash(key)
            except TypeError:  # `? [a]`: a list or mapping as a key
                raise yaml.constructor.ConstructorError(
                    None,
                    None,
                    "a key must be a name or other single value, not a list or mapping",
                    key_node.start_mark,
                ) from None
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
    except (ValueError, TypeError, OverflowError, AttributeError) as exc:
        # An explicit tag on a value it cannot hold: `!!int 0x`, `!!binary =`; PyYAML's
        # `!!timestamp x` fails with an AttributeError of its own.
        raise ConfigError(
            [ConfigProblem(source, f"YAML error: a bad tagged value: {exc}")]
        ) from exc
    except RecursionError:  # PyYAML composes nested collections recursively
        raise ConfigError([ConfigProblem(source, "YAML error: nested too deeply")]) from None


def load_file(path: str | Path, *, shard: tuple[int, int] | None = None) -> Inventory:
    """Read and validate a config file (blocking: call it off the event loop); `shard` (K, N)
    is `netmon run --shard K/N`, over the file's `sharding`."""
    source = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError([ConfigProblem(source, f"cannot read: {exc}")]) from exc
    return load_data(parse_yaml(text, source), shard=shard)


def _unencodable(value: Any, location: list[int | str]) -> Iterator[ConfigProblem]:
    """Text that cannot be written as UTF-8 (a lone surrogate, as YAML's "\\udc80" makes):
    it would pass validation and then fail in the alert database, the logs and MQTT."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            yield ConfigProblem(
                format_location(location), "text with an unpaired surrogate (not valid Unicode)"
            )
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _unencodable(key, location)
            yield from _unencodable(item, [*location, str(key)])
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _unencodable(item, [*location, index])


MAX_DEPTH = 32  # a real config nests about 8 levels
MAX_NODES = 1_000_000  # values, aliases counted each time they are used; ~50x a big inventory


def _shape_problem(raw: Any) -> ConfigProblem | None:
    """Data too deep or too big to validate: YAML aliases make a list that contains itself
    (`a: &x [*x]`) or a billion laughs in a few lines, and every check below walks the data
    recursively. Walked here without recursion, and given up at the first limit passed."""
    stack: list[tuple[Any, list[int | str]]] = [(raw, [])]
    nodes = 0
    while stack:
        value, location = stack.pop()
        nodes += 1
        if nodes > MAX_NODES:
            return ConfigProblem("", f"more than {MAX_NODES} values (YAML aliases?)")
        if len(location) > MAX_DEPTH:
            return ConfigProblem(
                format_location(location[:MAX_DEPTH]), f"nested deeper than {MAX_DEPTH} levels"
            )
        if isinstance(value, dict):
            stack.extend((item, [*location, str(key)]) for key, item in value.items())
        elif isinstance(value, list):
            stack.extend((item, [*location, index]) for index, item in enumerate(value))
    return None


def _report_mail_problems(config: Config) -> list[ConfigProblem]:
    name = config.availability.mail_channel
    if name is None:
        return []
    channels = config.oncall.channels if config.oncall is not None else []
    kinds = {channel.name: channel.kind for channel in channels}
    if kinds.get(name) != "email":
        known = sorted(n for n, kind in kinds.items() if kind == "email")
        message = f"no e-mail channel {name!r} in oncall.channels (e-mail channels: {known})"
        return [ConfigProblem("availability.mail_channel", message)]
    return []


def load_data(raw: Any, *, shard: tuple[int, int] | None = None) -> Inventory:
    """Validate already-parsed config data, reporting every problem at once."""
    if raw is None:
        raw = {}
    if shard is not None and isinstance(raw, dict):
        sharding = raw.get("sharding")
        raw = {
            **raw,
            "sharding": {**(sharding if isinstance(sharding, dict) else {}),
                         "shard": shard[0], "of": shard[1]},
        }  # fmt: skip
    if not isinstance(raw, dict):
        raise ConfigError([ConfigProblem("", "the config must be a mapping of keys to values")])
    shape = _shape_problem(raw)
    if shape is not None:
        raise ConfigError([shape])
    problems: list[ConfigProblem] = list(_unencodable(raw, []))
    expanded = expand_targets(raw)
    if expanded is not None:
        raw = {**raw, "targets": expanded}
    config: Config | None = None
    try:
        config = Config.model_validate(raw)
    except ValidationError as exc:
        problems.extend(validation_problems(exc))

    defaults = resolve_defaults(raw.get("defaults"))
    problems.extend(defaults.problems)
    overridden: TargetProbes = {}
    raw_targets = raw.get("targets")
    if isinstance(raw_targets, list):
        problems.extend(_duplicate_ids(raw_targets))
        problems.extend(_parent_problems(raw_targets))
        overridden, probe_problems = resolve_target_probes(raw_targets, defaults)
        problems.extend(probe_problems)

    raw_credentials = raw.get("credentials")
    known = (
        {name: credential_kind(entry) for name, entry in raw_credentials.items()}
        if isinstance(raw_credentials, dict)
        else {}
    )
    problems.extend(_credential_problems(raw, known))

    rules: dict[str, Rule] = {}
    if config is not None:
        problems.extend(_meeting_problems(config))
        problems.extend(_registrar_problems(config))
        problems.extend(_report_mail_problems(config))
        rules, rule_problems = resolve_rules(config.alerting, config.thresholds)
        problems.extend(ConfigProblem(f"alerting.rules.{p}", m) for p, m in rule_problems)
    if problems or config is None:
        raise ConfigError(_dedupe(problems))
    # Valid, so config.targets[index] is raw_targets[index], whose overrides were resolved.
    settings = defaults.settings
    targets = {
        target.id: resolve_target(index, target, overridden, settings, config.credentials)
        for index, target in enumerate(config.targets)
    }
    inventory = Inventory(config=config, defaults=settings, targets=targets, rules=rules)
    return apply_sharding(inventory, config)


def _dedupe(problems: list[ConfigProblem]) -> list[ConfigProblem]:
    return list(dict.fromkeys(problems))


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
            problems.extend(validation_problems(exc, (where, "thresholds")))
    return problems


def _registrar_problems(config: Config) -> list[ConfigProblem]:
    """A target's `registrar` must be a target whose probes read a registrar."""
    registrars = {
        target.id
        for target in config.targets
        if any(
            name in registry.PROBES and registry.settings_model(name).role is ProbeRole.REGISTRAR
            for name in target.probes
        )
    }
    problems = []
    for index, target in enumerate(config.targets):
        if target.registrar is not None and target.registrar not in registrars:
            known = ", ".join(sorted(registrars)) or "none"
            message = (
                f"{target.registrar!r} is not a registrar (a target with a registrar probe "
                f"such as kamailio; registrars: {known})"
            )
            problems.append(ConfigProblem(f"targets[{index}].registrar", message))
    return problems


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


def _credential_problems(raw: dict[str, Any], known: dict[str, str]) -> list[ConfigProblem]:
    """Every probe setting named `credential` must name an entry of `credentials` of the kind
    the probe speaks (an SNMP community for snmp, a user and password for a codec's API)."""
    defined = ", ".join(sorted(known)) or "none"
    problems = []

    def check(path: str, probe: str, section: object) -> None:
        if not (isinstance(section, dict) and isinstance(section.get("credential"), str)):
            return
        name = section["credential"]
        if name not in known:
            message = f"unknown credential {name!r} (defined: {defined})"
            problems.append(ConfigProblem(f"{path}.credential", message))
            return
        wanted = registry.settings_model(probe).credential_kind if probe in registry.PROBES else ""
        if wanted and known[name] != wanted:
            message = f"credential {name!r} is an {known[name]} credential; {probe} needs {wanted}"
            problems.append(ConfigProblem(f"{path}.credential", message))

    defaults = raw.get("defaults")
    if isinstance(defaults, dict):
        for name, section in defaults.items():
            check(f"defaults.{name}", name, section)
    trap_credentials = raw.get("trap_credentials")
    for index, name in enumerate(trap_credentials if isinstance(trap_credentials, list) else []):
        if isinstance(name, str) and name not in known:
            message = f"unknown credential {name!r} (defined: {defined})"
            problems.append(ConfigProblem(f"trap_credentials[{index}]", message))
        elif isinstance(name, str) and known[name] != "snmp":
            message = f"credential {name!r} is not an SNMP credential"
            problems.append(ConfigProblem(f"trap_credentials[{index}]", message))
    targets = raw.get("targets")
    for index, entry in enumerate(targets if isinstance(targets, list) else []):
        probes = entry.get("probes") if isinstance(entry, dict) else None
        if isinstance(probes, dict):
            for name, section in probes.items():
                check(f"targets[{index}].probes.{name}", name, section)
    return problems

"""Each target's probe settings: the defaults of every probe, and a target's overrides over them.

Settings are validated by the model that lives beside each collector, found through
`collectors.registry`; a target is blamed only for what it sets itself. It must not import a
collector module (the registry gives the models without their transports).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError

from collectors import registry
from collectors.base import CollectorSettings
from netmon.config.errors import ConfigProblem, validation_problems
from netmon.config.schema import TargetConfig, probe_list_to_map
from netmon.credentials import SnmpCredential
from netmon.inventory import Target


def resolve_defaults(raw: object) -> tuple[dict[str, CollectorSettings], list[ConfigProblem]]:
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
            problems.extend(validation_problems(exc, ("defaults", name)))
    return resolved, problems


def probe_problems(raw_targets: list[Any], raw_defaults: object) -> list[ConfigProblem]:
    problems = []
    defaults = raw_defaults if isinstance(raw_defaults, dict) else {}
    for index, entry in enumerate(raw_targets):
        if not isinstance(entry, dict):
            continue
        try:
            probes = probe_list_to_map(entry.get("probes", {}))
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
                for problem in validation_problems(exc):
                    field = problem.path.split(".", 1)[0].split("[", 1)[0]
                    # Blame the target only for what the target itself sets.
                    if field in override or not problem.path:
                        problems.append(
                            ConfigProblem(f"{where}.{problem.path}".rstrip("."), problem.message)
                        )
    return problems


def resolve_target(
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

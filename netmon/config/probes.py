"""Each target's probe settings: the defaults of every probe, and a target's overrides over them.

Settings are validated by the model that lives beside each collector, found through
`collectors.registry`, and each only once: every probe's defaults once, and each target's
override once, merged over the raw defaults; a target without an override shares the defaults'
settings. A target is blamed only for what it sets itself. It must not import a collector
module (the registry gives the models without their transports).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from collectors import registry
from collectors.base import CollectorSettings
from netmon.config.errors import ConfigProblem, validation_problems
from netmon.config.schema import TargetConfig, probe_list_to_map
from netmon.credentials import Credential
from netmon.inventory import Target


def _check(name: str, data: dict[str, Any]) -> CollectorSettings | ValidationError:
    """One validation of one probe's settings: the settings, or why there are none."""
    try:
        return registry.settings_model(name).model_validate(data)
    except ValidationError as exc:
        return exc


@dataclass(frozen=True, slots=True)
class Defaults:
    """Every probe's `defaults` section as written (`raw`) and validated (`checked`)."""

    raw: dict[str, dict[str, Any]]
    checked: dict[str, CollectorSettings | ValidationError]
    problems: list[ConfigProblem] = field(default_factory=list)

    @property
    def settings(self) -> dict[str, CollectorSettings]:
        """The valid ones (all of them when the config has no problem)."""
        return {
            name: checked
            for name, checked in self.checked.items()
            if not isinstance(checked, ValidationError)
        }


def resolve_defaults(raw: object) -> Defaults:
    problems: list[ConfigProblem] = []
    sections = raw if isinstance(raw, dict) else {}
    for name in sections:
        if name not in registry.PROBES:
            problems.append(
                ConfigProblem(
                    f"defaults.{name}", f"unknown probe; known: {', '.join(registry.names())}"
                )
            )
    bases: dict[str, dict[str, Any]] = {}
    checked: dict[str, CollectorSettings | ValidationError] = {}
    for name in registry.names():
        section = sections.get(name) or {}
        # A section that is not a mapping is reported by the Config schema; targets that use
        # the probe are still checked, over no defaults.
        bases[name] = section if isinstance(section, dict) else {}
        checked[name] = result = _check(name, bases[name])
        if isinstance(section, dict) and isinstance(result, ValidationError):
            problems.extend(validation_problems(result, ("defaults", name)))
    return Defaults(raw=bases, checked=checked, problems=problems)


TargetProbes = dict[tuple[int, str], CollectorSettings]
"""(index in `targets`, probe name) -> settings, for the probes a target overrides."""


def resolve_target_probes(
    raw_targets: list[Any], defaults: Defaults
) -> tuple[TargetProbes, list[ConfigProblem]]:
    """Validate each target's overrides over the defaults, once each."""
    problems = []
    resolved: TargetProbes = {}
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
            # No override: the defaults' own validation is this target's.
            checked = (
                _check(name, {**defaults.raw[name], **override})
                if override
                else defaults.checked[name]
            )
            if isinstance(checked, ValidationError):
                for problem in validation_problems(checked):
                    first = problem.path.split(".", 1)[0].split("[", 1)[0]
                    # Blame the target only for what the target itself sets.
                    if first in override or not problem.path:
                        problems.append(
                            ConfigProblem(f"{where}.{problem.path}".rstrip("."), problem.message)
                        )
                continue
            if override:
                resolved[index, name] = checked
            for field_name, message in checked.usage_problems():
                problems.append(ConfigProblem(f"{where}.{field_name}", message))
    return resolved, problems


def resolve_target(
    index: int,
    target: TargetConfig,
    overridden: TargetProbes,
    defaults: Mapping[str, CollectorSettings],
    credentials: Mapping[str, Credential],
) -> Target:
    """The runtime target of `targets[index]`, once every problem has been ruled out."""
    probes = []
    used: dict[str, Credential] = {}
    for name in target.probes:
        settings = overridden.get((index, name))
        if settings is None:
            settings = defaults[name]
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
        vendor=target.vendor or "",
        registrar=target.registrar,
        aor=target.registrar_aor if target.registrar is not None else "",
        reach_policy=next(
            (policy for _, s in probes if (policy := s.reach_policy()) is not None), None
        ),
    )

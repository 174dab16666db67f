"""Defaults per group and the status probe a vendor implies, applied to the raw targets before
they are validated, so that 215 endpoints are not 215 stanzas.

A target's own keys win over its group's; `probes` and `labels` merge key by key (a target's
`probes: {xapi: {credential: hall}}` over its group's `probes: {xapi: {interval: 60s}}`).
A target with `vendor: cisco` reads its status over `xapi`, one with `vendor: poly` over
`poly`, whether or not its probes name them.
"""

from __future__ import annotations

from typing import Any

from netmon.config.schema import probe_list_to_map

# Which probe reads the status of each vendor's endpoints; "sip" and "other" have no API
# (their registration comes from the registrar, if any).
VENDOR_PROBES = {"cisco": "xapi", "poly": "poly"}
MERGED_KEYS = ("probes", "labels")
DEFAULT_PROBES: dict[str, Any] = {"icmp": {}}  # TargetConfig's default


def _as_map(value: Any) -> Any:
    try:
        return probe_list_to_map(value)
    except ValueError:
        return value  # the schema reports it where it was written


def _merged(own: dict[str, Any], inherited: dict[str, Any], *, nested: bool) -> dict[str, Any]:
    """`own` over `inherited`, in own's order first; with `nested`, a probe both name is
    merged setting by setting (the target's settings win)."""
    merged = {**own, **{k: v for k, v in inherited.items() if k not in own}}
    if nested:
        for name, settings in own.items():
            base = inherited.get(name)
            if isinstance(settings, dict) and isinstance(base, dict):
                merged[name] = {**base, **settings}
    return merged


def expand_targets(raw: dict[str, Any]) -> list[Any] | None:
    """The raw `targets` list with group defaults and vendor probes applied; None when there
    is no list (the schema reports it)."""
    targets = raw.get("targets")
    if not isinstance(targets, list):
        return None
    groups = raw.get("groups")
    groups = groups if isinstance(groups, dict) else {}
    expanded = []
    for entry in targets:
        if not isinstance(entry, dict):
            expanded.append(entry)
            continue
        group = groups.get(entry.get("group")) if isinstance(entry.get("group"), str) else None
        target = dict(entry)
        if isinstance(group, dict):
            for key, value in group.items():
                if key not in MERGED_KEYS:
                    target.setdefault(key, value)
                    continue
                # A target without probes of its own has the default ones (ICMP), which a
                # group's probes add to rather than replace.
                own = _as_map(target.get(key, DEFAULT_PROBES if key == "probes" else {}))
                inherited = _as_map(value)
                if isinstance(own, dict) and isinstance(inherited, dict):
                    target[key] = _merged(own, inherited, nested=key == "probes")
        probe = VENDOR_PROBES.get(target.get("vendor"))  # type: ignore[arg-type]
        if probe is not None:
            probes = _as_map(target.get("probes", DEFAULT_PROBES))
            if isinstance(probes, dict) and probe not in probes:
                target["probes"] = {**probes, probe: {}}
        expanded.append(target)
    return expanded

"""SNMP modules as data: which OIDs to read and which metrics they become.

A module lists scalars and table columns, each with a metric name, a type (gauge, counter,
info, stateset), an optional scale, and for tables the labels taken from the row index and
from other columns (lookups). Modules ship in `modules.yaml` beside this file and can be added
to or overridden in the config (`module_definitions` in the SNMP probe settings). Only numeric
OIDs: MIB names are resolved when a module is written, never at run time.

`system` and `if_mib` are built in: their metrics need code (rates from sysUpTime, 64-bit
fallback, interface selection), so a module list names them like any other.
"""

from __future__ import annotations

import re
from functools import cache
from importlib import resources
from typing import Annotated, Literal

import yaml
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from collectors.snmp.codec import OID, Tag, VarBind, oid_from_text

BUILT_IN = ("system", "if_mib")
_METRIC_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
_LABEL_NAME = re.compile(r"^[a-z_][a-z0-9_]*$")
_RESERVED = {"target", "instance", "job"}
_BUILT_IN_PREFIXES = ("interface_", "device_", "snmp_", "icmp_", "target_", "probe_",
                      "collector_", "scheduler_", "config_", "build_", "alert")  # fmt: skip


def _metric_name(value: str) -> str:
    if not _METRIC_NAME.match(value):
        raise ValueError("metric names are lower case letters, digits and _ (netmon_ is added)")
    if value.startswith("netmon_"):
        raise ValueError("leave out the netmon_ prefix; netmon adds it")
    if value.startswith(_BUILT_IN_PREFIXES):
        raise ValueError(f"{value!r} would clash with netmon's own metrics; choose another name")
    return value


def _label_name(value: str) -> str:
    if not _LABEL_NAME.match(value) or value in _RESERVED:
        raise ValueError(f"not a usable label name: {value!r}")
    return value


def _numeric_oid(value: str) -> str:
    oid_from_text(value)  # raises with a clear message
    return value.lstrip(".")


MetricName = Annotated[str, AfterValidator(_metric_name)]
LabelName = Annotated[str, AfterValidator(_label_name)]
NumericOid = Annotated[str, AfterValidator(_numeric_oid)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class MetricDef(_Strict):
    name: MetricName
    oid: NumericOid
    type: Literal["gauge", "counter", "info", "stateset"] = "gauge"
    help: str = ""
    scale: float | None = None
    states: dict[int, str] = Field(default_factory=dict, description="for stateset")

    @model_validator(mode="after")
    def _consistent(self) -> MetricDef:
        if self.type == "stateset" and not self.states:
            raise ValueError("a stateset needs states: {1: up, 2: down, ...}")
        if self.type == "counter" and self.name.endswith("_total"):
            raise ValueError("leave out _total on counters; netmon adds it")
        if self.type == "info" and not self.name.endswith("_info"):
            raise ValueError("info metrics end in _info")
        return self

    @property
    def oid_tuple(self) -> OID:
        return oid_from_text(self.oid)


class TableDef(_Strict):
    index_label: LabelName = "index"
    lookups: dict[LabelName, NumericOid] = Field(
        default_factory=dict, description="label name: column whose value labels the row"
    )
    columns: list[MetricDef]


class ModuleDef(_Strict):
    description: str = ""
    scalars: list[MetricDef] = Field(default_factory=list)
    tables: list[TableDef] = Field(default_factory=list)


class BuiltinModule(_Strict):
    """What a built-in module reads: named OIDs its code relies on."""

    builtin: Literal[True]
    description: str = ""
    oids: dict[str, NumericOid]

    def oid(self, name: str) -> OID:
        return oid_from_text(self.oids[name])


@cache
def _shipped_file() -> dict[str, dict[str, object]]:
    text = resources.files("collectors.snmp").joinpath("modules.yaml").read_text("utf-8")
    raw: dict[str, dict[str, object]] = yaml.safe_load(text) or {}
    return raw


@cache
def shipped() -> dict[str, ModuleDef]:
    """The data-defined modules that come with netmon."""
    return {
        name: ModuleDef.model_validate(body)
        for name, body in _shipped_file().items()
        if not body.get("builtin")
    }


@cache
def builtin(name: str) -> BuiltinModule:
    """What the built-in module `name` (system, if_mib) reads."""
    return BuiltinModule.model_validate(_shipped_file()[name])


def clash(modules: list[tuple[str, ModuleDef]]) -> str | None:
    """Why these modules cannot be exported together, if they cannot: one metric name with two
    types, or a label that two parts of a row would both set."""
    types: dict[str, tuple[str, str]] = {}
    for module_name, module in modules:
        tables = [(table, [table.index_label, *table.lookups]) for table in module.tables]
        for metric, labels in [(m, []) for m in module.scalars] + [
            (m, labels) for table, labels in tables for m in table.columns
        ]:
            seen = types.setdefault(metric.name, (metric.type, module_name))
            if seen[0] != metric.type:
                return (
                    f"metric {metric.name!r} is a {seen[0]} in module {seen[1]!r} and a "
                    f"{metric.type} in module {module_name!r}"
                )
            own = {"stateset": "state", "info": metric.name.removesuffix("_info")}.get(metric.type)
            names = [*labels, *([own] if own else [])]
            if len(set(names)) != len(names):
                return f"metric {metric.name!r} in module {module_name!r} sets a label twice"
    return None


# A metric sample produced by a module: name (without prefix), type, help, labels, value.
ModuleSample = tuple[str, str, str, tuple[tuple[str, str], ...], float]


def _number(varbind: VarBind | None) -> float | None:
    if varbind is None or varbind.tag in (Tag.NO_SUCH_OBJECT, Tag.NO_SUCH_INSTANCE):
        return None
    return float(varbind.value) if isinstance(varbind.value, int) else None


def samples_for(
    metric: MetricDef, varbind: VarBind | None, labels: tuple[tuple[str, str], ...]
) -> list[ModuleSample]:
    """What one value becomes: one sample, or one per state for a stateset."""
    if metric.type == "info":
        if varbind is None:
            return []
        text = varbind.text()
        field = metric.name.removesuffix("_info")
        return [(metric.name, "info", metric.help, (*labels, (field, text)), 1.0)]
    number = _number(varbind)
    if number is None:
        return []
    if metric.type == "stateset":
        return [
            (metric.name, "stateset", metric.help, (*labels, ("state", state)),
             1.0 if int(number) == code else 0.0)
            for code, state in sorted(metric.states.items())
        ]  # fmt: skip
    if metric.scale is not None:
        number *= metric.scale
    return [(metric.name, metric.type, metric.help, labels, number)]

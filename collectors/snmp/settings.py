"""The `snmp` probe's settings: what to poll on a device and how, validated at config load.

Apart from the collector so that the config can validate them without importing the SNMP
transport (pysnmp, for v3): `netmon validate` must stay quick. It must not import the client,
v3 or the collector.
"""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field, model_validator

from collectors.base import CollectorSettings
from collectors.snmp.modules import BUILT_IN, ModuleDef, clash, shipped
from netmon.model import Duration, ProbeRole


class SnmpSettings(CollectorSettings):
    role: ClassVar[ProbeRole] = ProbeRole.DEVICE
    credential_kind: ClassVar[str] = "snmp"

    interval: Duration = Field(default=30.0, gt=0)
    timeout: Duration = Field(default=2.0, gt=0, description="per request")
    retries: int = Field(default=1, ge=0, le=5)
    port: int = Field(default=161, ge=1, le=65535)
    credential: str | None = Field(default=None, description="a name from `credentials`")
    max_repetitions: int = Field(default=25, ge=1, le=200)
    max_interfaces: int = Field(default=4096, ge=1, description="rows read per table, at most")
    lookup_max_age: Duration = Field(
        default=3600.0, gt=0, description="re-read interface names at least this often"
    )
    modules: tuple[str, ...] = Field(
        default=BUILT_IN, description="what to poll: system, if_mib, shipped or own modules"
    )
    module_definitions: dict[str, ModuleDef] = Field(
        default_factory=dict, description="modules of your own, or overrides of shipped ones"
    )

    @model_validator(mode="after")
    def _known_modules(self) -> SnmpSettings:
        known = {*BUILT_IN, *shipped(), *self.module_definitions}
        unknown = [name for name in self.modules if name not in known]
        if unknown:
            raise ValueError(
                f"unknown module {', '.join(map(repr, unknown))}; known: {', '.join(sorted(known))}"
            )
        problem = clash(
            [(name, self.module(name)) for name in self.modules if name not in BUILT_IN]
        )
        if problem:
            raise ValueError(problem)
        return self

    def module(self, name: str) -> ModuleDef:
        return self.module_definitions.get(name) or shipped()[name]

    interfaces: tuple[str, ...] = Field(
        default=(), description="glob patterns on ifName, ifDescr or ifAlias; empty = all"
    )

    def usage_problems(self) -> list[tuple[str, str]]:
        if self.credential is None:
            return [("credential", "required: the name of an entry in credentials")]
        return []

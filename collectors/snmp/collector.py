"""The scheduler's SNMP collector: system group and IF-MIB interfaces of one device per run.

One GET reads the system scalars (sysUpTime is the clock for rates); the ifTable and ifXTable
columns netmon needs are walked side by side in GETBULK steps, with the 64-bit HC octet
counters when the agent has them and the 32-bit ones otherwise. If the system GET fails the
device is unreachable; if only the interface walk fails, the system facts are still kept and
the walk's failure is named in `missing`.
"""

from __future__ import annotations

import asyncio
import fnmatch
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, ClassVar

from collectors.base import CollectError, CollectorSettings
from collectors.resolve import Resolver
from collectors.snmp.client import Agent, SnmpClient
from collectors.snmp.codec import OID, Tag, VarBind, Version, oid_from_text
from collectors.snmp.modules import BUILT_IN, ModuleDef, ModuleSample, builtin, samples_for
from collectors.snmp.settings import SnmpSettings
from collectors.snmp.v3 import V3Agent, V3Session
from collectors.snmp.walk import Clock, TableResult
from netmon.credentials import SnmpCredential
from netmon.model import DeviceSample, InterfaceSample, ProbeTarget

_SYSTEM_MODULE = builtin("system")
_IF_MIB = builtin("if_mib")
SYSTEM = _SYSTEM_MODULE.oid("sys_uptime")[:-2]
SYS_DESCR, SYS_OBJECT_ID, SYS_UPTIME, SYS_NAME = (
    _SYSTEM_MODULE.oid(name) for name in ("sys_descr", "sys_object_id", "sys_uptime", "sys_name")
)
IF_TABLE_LAST_CHANGE = _IF_MIB.oid("if_table_last_change")
IF_ENTRY = _IF_MIB.oid("in_octets32")[:-1]
COLUMNS: dict[str, OID] = {
    name: _IF_MIB.oid(name) for name in _IF_MIB.oids if name != "if_table_last_change"
}
# Text columns change rarely; they are cached per device (see _LookupCache).
LOOKUP_COLUMNS = ("descr", "name", "alias")
_VERSIONS = {"1": Version.V1, "2c": Version.V2C}


@dataclass
class _Lookups:
    """A device's interface names, kept between polls.

    Re-read when the device rebooted (sysUpTime went back), when ifTableLastChange moved, when
    an interface shows up that the cache does not know, or after `lookup_max_age`.
    """

    uptime_ticks: int
    table_last_change: int | None
    read_at: float
    rows: dict[OID, tuple[VarBind | None, VarBind | None, VarBind | None]]

    def valid(self, uptime: int | None, last_change: int | None, max_age: float) -> bool:
        return (
            uptime is not None
            and uptime >= self.uptime_ticks
            and last_change == self.table_last_change
            and time.monotonic() - self.read_at < max_age
        )


def _text(varbind: VarBind | None) -> str:
    return "" if varbind is None else varbind.text()


def _int(varbind: VarBind | None) -> int | None:
    if varbind is None or not isinstance(varbind.value, int):
        return None
    return varbind.value


def _status(varbind: VarBind | None) -> bool | None:
    value = _int(varbind)
    return None if value is None else value == 1


@dataclass(frozen=True, slots=True)
class _Session:
    """One device's requests, whichever path (our codec for v1/v2c, pysnmp for v3) they take."""

    get: Callable[[list[OID]], Awaitable[list[VarBind]]]
    walk: Callable[[list[OID], int, int, Clock | None], Awaitable[TableResult]]
    v1: bool = False


class SnmpCollector:
    name: ClassVar[str] = "snmp"
    settings_model: ClassVar[type[CollectorSettings]] = SnmpSettings

    def __init__(
        self, *, client: SnmpClient | None = None, resolver: Resolver | None = None
    ) -> None:
        self._client = client or SnmpClient()
        self._owns_client = client is None
        self._v3 = V3Session()
        self._lookups: dict[tuple[str, str, int], _Lookups] = {}
        self._resolver = resolver or Resolver()
        self._last_sweep = time.monotonic()

    @property
    def varbinds_received(self) -> int:
        return self._client.stats.varbinds + self._v3.varbinds

    async def start(self) -> None:
        if self._owns_client:
            await self._client.start()

    async def close(self) -> None:
        if self._owns_client:
            await self._client.close()
        await self._v3.close()
        await self._resolver.close()

    def _forget_unused_lookups(self, max_age: float) -> None:
        """Drop cached names of devices not polled for a while (removed by a reload...)."""
        now = time.monotonic()
        if now - self._last_sweep < 600:
            return
        self._last_sweep = now
        for key in [k for k, v in self._lookups.items() if now - v.read_at > 2 * max_age]:
            del self._lookups[key]

    async def _address(self, host: str, timeout: float) -> str:
        """An IP literal as is; a name resolved (IPv4 first) through the shared resolver."""
        try:
            async with asyncio.timeout(timeout):
                return (await self._resolver.resolve(host, ipv4_first=True)).ip
        except TimeoutError:
            raise CollectError("resolve", f"cannot resolve {host}") from None

    async def _session(self, target: ProbeTarget, settings: SnmpSettings) -> _Session:
        credential = target.credentials.get(settings.credential or "")
        if not isinstance(credential, SnmpCredential):  # the config allows no other
            raise CollectError("config", f"no SNMP credential {settings.credential!r}")
        address = await self._address(target.address, settings.timeout)
        if credential.snmp_version == "3":
            v3_agent = V3Agent(
                address=address,
                port=settings.port,
                credential=credential,
                timeout=settings.timeout,
                retries=settings.retries,
            )
            return _Session(
                get=lambda oids: self._v3.get(v3_agent, oids),
                walk=lambda columns, repetitions, rows, clock: self._v3.walk_columns(
                    v3_agent, columns, max_repetitions=repetitions, max_rows=rows, clock=clock
                ),
            )
        assert credential.community is not None
        agent = Agent(
            address=address,
            port=settings.port,
            version=_VERSIONS[credential.snmp_version],
            community=credential.community.reveal().encode(),
            timeout=settings.timeout,
            retries=settings.retries,
        )
        return _Session(
            get=lambda oids: self._client.get(agent, oids),
            walk=lambda columns, repetitions, rows, clock: self._client.walk_columns(
                agent, columns, max_repetitions=repetitions, max_rows=rows, clock=clock
            ),
            v1=agent.version == Version.V1,
        )

    async def collect(self, target: ProbeTarget, settings: CollectorSettings) -> DeviceSample:
        assert isinstance(settings, SnmpSettings)
        started = time.monotonic()
        session = await self._session(target, settings)
        system = {
            vb.oid: vb
            for vb in await session.get(
                # An RFC 1213-only v1 agent would fail the whole GET on the IF-MIB scalar.
                [SYS_DESCR, SYS_OBJECT_ID, SYS_UPTIME, SYS_NAME]
                + ([] if session.v1 else [IF_TABLE_LAST_CHANGE])
            )
            if vb.tag not in (Tag.NO_SUCH_OBJECT, Tag.NO_SUCH_INSTANCE)
        }
        key = (target.id, target.address, settings.port)
        self._forget_unused_lookups(settings.lookup_max_age)
        uptime = _int(system.get(SYS_UPTIME))
        last_change = _int(system.get(IF_TABLE_LAST_CHANGE))
        lookups = self._lookups.get(key)
        if lookups is not None and not lookups.valid(uptime, last_change, settings.lookup_max_age):
            lookups = None
        missing: list[str] = []
        interfaces: tuple[InterfaceSample, ...] = ()
        reason: str | None = None
        detail: str | None = None
        if "if_mib" in settings.modules:
            try:
                interfaces, truncated, fresh = await self._interfaces(session, settings, lookups)
                if fresh is not None and uptime is not None and truncated is None:
                    self._lookups[key] = _Lookups(uptime, last_change, time.monotonic(), fresh)
                elif fresh is None and lookups is not None:
                    lookups.uptime_ticks = uptime or lookups.uptime_ticks
                if truncated is not None:
                    # Keep what was read; say why the table may be incomplete.
                    reason = truncated.replace(" ", "-").lower()
                    detail = f"interface walk stopped early: {truncated}"
            except CollectError as exc:
                missing.append("interfaces")
                reason, detail = exc.reason, f"interfaces: {exc.detail}"
        metrics: list[ModuleSample] = []
        for name in settings.modules:
            if name in BUILT_IN:
                continue
            try:
                metrics += await self._module(session, settings, settings.module(name))
            except CollectError as exc:
                # A failed module is reported; the rest of the poll is kept.
                missing.append(name)
                reason, detail = exc.reason, f"module {name}: {exc.detail}"
        return DeviceSample(
            target=target.id,
            collector=self.name,
            ok=True,
            duration=time.monotonic() - started,
            reason=reason,
            detail=detail,
            uptime_ticks=uptime,
            sys_name=_text(system.get(SYS_NAME)),
            sys_descr=_text(system.get(SYS_DESCR)),
            sys_object_id=_text(system.get(SYS_OBJECT_ID)),
            interfaces=interfaces,
            missing=tuple(missing),
            metrics=tuple(metrics),
        )

    async def _module(
        self, session: _Session, settings: SnmpSettings, module: ModuleDef
    ) -> list[ModuleSample]:
        out: list[ModuleSample] = []
        if module.scalars:
            values = {vb.oid: vb for vb in await session.get([m.oid_tuple for m in module.scalars])}
            for metric in module.scalars:
                out += samples_for(metric, values.get(metric.oid_tuple), ())
        for table in module.tables:
            lookup_names = list(table.lookups)
            columns = [m.oid_tuple for m in table.columns] + [
                oid_from_text(table.lookups[label]) for label in lookup_names
            ]
            result = await session.walk(
                columns, settings.max_repetitions, settings.max_interfaces, None
            )
            metric_columns = result.columns[: len(table.columns)]
            lookup_columns = result.columns[len(table.columns) :]
            for metric, rows in zip(table.columns, metric_columns, strict=True):
                for index, varbind in sorted(rows.items()):
                    labels = [(table.index_label, ".".join(map(str, index)))]
                    for label, lookup in zip(lookup_names, lookup_columns, strict=True):
                        labels.append((label, _text(lookup.get(index))))
                    out += samples_for(metric, varbind, tuple(labels))
        return out

    async def _interfaces(
        self, session: _Session, settings: SnmpSettings, lookups: _Lookups | None
    ) -> tuple[tuple[InterfaceSample, ...], str | None, dict[OID, Any] | None]:
        """The interfaces; with valid cached lookups only the numeric columns are walked.

        Returns the samples, why the walk stopped early (if it did), and freshly read lookup
        rows to cache (None when the cache was used).
        """
        names = [name for name in COLUMNS if lookups is None or name not in LOOKUP_COLUMNS]
        table = await session.walk(
            [COLUMNS[name] for name in names],
            settings.max_repetitions,
            settings.max_interfaces,
            # sysUpTime rides along on every step, so the octet counters are timed exactly.
            ((*SYSTEM, 3), frozenset(i for i, n in enumerate(names) if "octets" in n)),
        )
        stamps = dict(zip(names, table.ticks, strict=False))
        by_name = dict(zip(names, table.columns, strict=True))
        # The union of the columns' row indexes in C, not a comprehension over every varbind.
        indexes = sorted(index for index in set().union(*table.columns) if len(index) == 1)
        if lookups is not None and any(index not in lookups.rows for index in indexes):
            # An interface the cache does not know: read everything again, now.
            return await self._interfaces(session, settings, None)
        fresh: dict[OID, Any] | None = None
        if lookups is None:
            fresh = {
                index: tuple(by_name[name].get(index) for name in LOOKUP_COLUMNS)
                for index in indexes
            }
        cached_rows = fresh if fresh is not None else lookups.rows if lookups else {}
        # Each column's rows bound once: a 300-port switch is ~300 rows of 16 columns a poll,
        # and a dict of the row built per interface cost ~5 % of netmon's CPU per varbind.
        speeds, high_speeds = by_name["speed"], by_name["high_speed"]
        admins, opers, discontinuities = by_name["admin"], by_name["oper"], by_name["discontinuity"]
        in32, out32 = by_name["in_octets32"], by_name["out_octets32"]
        in64, out64 = by_name["in_octets64"], by_name["out_octets64"]
        in_errors, out_errors = by_name["in_errors"], by_name["out_errors"]
        in_discards, out_discards = by_name["in_discards"], by_name["out_discards"]
        ticks32, ticks64 = stamps.get("in_octets32", {}), stamps.get("in_octets64", {})
        samples = []
        for index in indexes:
            descr, name, alias = cached_rows[index]
            in_octets, out_octets = in64.get(index), out64.get(index)
            hc = in_octets is not None and out_octets is not None
            if not hc:
                in_octets, out_octets = in32.get(index), out32.get(index)
            high_speed = _int(high_speeds.get(index))
            speed = high_speed * 1_000_000 if high_speed else _int(speeds.get(index))
            sample = InterfaceSample(
                index=index[0],
                name=_text(name) or _text(descr),
                alias=_text(alias),
                descr=_text(descr),
                admin_up=_status(admins.get(index)),
                oper_up=_status(opers.get(index)),
                speed_bps=speed,
                counter_bits=64 if hc else 32,
                in_octets=_int(in_octets),
                out_octets=_int(out_octets),
                in_errors=_int(in_errors.get(index)),
                out_errors=_int(out_errors.get(index)),
                in_discards=_int(in_discards.get(index)),
                out_discards=_int(out_discards.get(index)),
                discontinuity=_int(discontinuities.get(index)),
                ticks=(ticks64 if hc else ticks32).get(index),
            )
            if _selected(sample, settings.interfaces):
                samples.append(sample)
        return tuple(samples), table.truncated, fresh


def _selected(sample: InterfaceSample, patterns: tuple[str, ...]) -> bool:
    if not patterns:
        return True
    return any(
        fnmatch.fnmatchcase(text, pattern)
        for pattern in patterns
        for text in (sample.name, sample.descr, sample.alias)
        if text
    )

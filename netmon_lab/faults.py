"""Faults injected into the running demo lab: what a fault is, its validation, the injector.

A fault is data (a kind, what it hits, a value) with an id. The injector keeps the faults in
force and turns all of them together into the lab's state: the ICMP responder's per-address loss
and delay, which district links are cut, which simulated interfaces report oper-down. That state
is recomputed from every fault on each change, so overlapping faults combine (two losses of 10 %
lose 19 %, delays add, jitters add their spreads, two bursts come as often as both together with
lengths spanning both ranges, a loss is the good state's loss between bursts, down wins over a
flap) and clearing one leaves the others' effect in place.

The lab is reached through two narrow seams, `EndpointControl` (the namespace network) and
`DeviceControl` (the SNMP simulator), so the logic here is tested with fakes and the seams
against the real programs. This module must not import the service or the HTTP layer.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime as dt
import itertools
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from netmon_lab.fault_kinds import (
    DEVICE_KINDS,
    NETWORK_KINDS,
    PING_KINDS,
    ROOM_KINDS,
    parse_every,
    parse_length,
    parse_level,
    parse_value,
)
from netmon_lab.fault_kinds import FIELDS as FIELDS
from netmon_lab.fault_kinds import FaultInputError as FaultInputError
from netmon_lab.fault_kinds import FaultKind as FaultKind
from netmon_lab.responder import Impairment
from netmon_lab.room_faults import RoomControl, RoomFaults, rooms_of
from netmon_lab.room_faults import summary as room_summary
from netmon_lab.snmpsim import SimDevice, SimInterface, slug, uplink_ports

log = logging.getLogger(__name__)

OPER_UP, OPER_DOWN = 1, 2


class FaultUnavailableError(RuntimeError):
    """This kind of fault cannot be injected in this demo; the message says why."""


class FaultNotFoundError(LookupError):
    pass


@dataclass(frozen=True)
class Fault:
    id: str
    kind: FaultKind
    created: float
    summary: str
    target: str | None = None
    address: str | None = None
    district: str | None = None
    device: str | None = None
    interface: int | None = None  # ifIndex
    ifname: str | None = None
    value: float | None = None
    every: float | None = None  # burst: mean seconds between bursts
    length: tuple[int, int] | None = None  # burst: echoes lost in a row, at least and at most
    level: str | None = None  # diagnostic: warning, error or critical
    endpoints: tuple[str, ...] = ()  # endpoints this fault makes fail
    interfaces: tuple[tuple[str, int], ...] = ()  # (device id, ifIndex) it sets oper-down
    standing: bool = False  # part of the lab from its start; clearing all leaves it in force

    def to_json(self) -> dict[str, Any]:
        document: dict[str, Any] = {"id": self.id, "kind": self.kind.value}
        for name in ("target", "address", "district", "device", "interface", "ifname", "value",
                     "every", "level"):  # fmt: skip
            if getattr(self, name) is not None:
                document[name] = getattr(self, name)
        if self.length is not None:
            document["length"] = list(self.length)
        document["summary"] = self.summary
        document["standing"] = self.standing
        document["created"] = dt.datetime.fromtimestamp(self.created, dt.UTC).isoformat(
            timespec="seconds"
        )
        document["endpoints"] = list(self.endpoints)
        document["interfaces"] = [
            {"device": device, "ifindex": index} for device, index in self.interfaces
        ]
        return document


class EndpointControl(Protocol):
    """The namespace network the demo's endpoints live in."""

    async def impair(self, impairments: Mapping[str, Impairment]) -> None: ...

    async def cut(self, districts: set[str]) -> None: ...


class DeviceControl(Protocol):
    """The SNMP simulator of the demo's devices."""

    async def set_oper_status(self, overrides: Mapping[str, Mapping[int, int]]) -> None: ...


@dataclass(frozen=True)
class LabState:
    """What the faults in force make of the lab; empty when there are none."""

    impairments: dict[str, Impairment] = field(default_factory=dict)  # by address
    cut: frozenset[str] = frozenset()  # districts whose link is down
    oper_status: dict[str, dict[int, int]] = field(default_factory=dict)
    rooms: dict[str, RoomFaults] = field(default_factory=dict)  # by endpoint


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:g} ms"


class FaultInjector:
    """The faults in force in one demo lab, and their effect on it.

    `endpoints` maps each endpoint id to (address, district); `devices` are the simulated SNMP
    devices. `network` or `devices_control` may be None, with the reason in `network_reason` or
    `devices_reason`: faults that need them are then refused with that reason.
    """

    def __init__(
        self,
        *,
        endpoints: Mapping[str, tuple[str, str]],
        devices: Sequence[SimDevice],
        network: EndpointControl | None,
        devices_control: DeviceControl | None,
        network_reason: str = "",
        devices_reason: str = "",
        rooms: RoomControl | None = None,
    ) -> None:
        self._endpoints = dict(endpoints)
        self._devices = list(devices)
        self._device_by_id = {device.id: device for device in devices}
        self._network = network
        self._devices_control = devices_control
        self._rooms = rooms
        self._network_reason = network_reason or "the demo's endpoints are not in a namespace"
        self._devices_reason = devices_reason or "the demo runs without simulated devices"
        self._districts: dict[str, list[str]] = {}
        for endpoint, (_, district) in self._endpoints.items():
            self._districts.setdefault(district, []).append(endpoint)
        self._faults: dict[str, Fault] = {}
        self._ids = itertools.count(1)
        self._standing_ids = itertools.count(1)
        self._flap_down: dict[str, bool] = {}
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._applied = LabState()
        self._apply_lock = asyncio.Lock()
        self._closed = False

    # -- reading -----------------------------------------------------------------------------

    def faults(self) -> list[Fault]:
        return list(self._faults.values())

    def unavailable(self) -> dict[str, str]:
        """Kinds of fault this demo cannot inject, with the reason."""
        reasons: dict[str, str] = {}
        for kind in FaultKind:
            if kind in NETWORK_KINDS and self._network is None:
                reasons[kind.value] = self._network_reason
            elif kind in DEVICE_KINDS and self._devices_control is None:
                reasons[kind.value] = self._devices_reason
            elif kind in ROOM_KINDS and self._rooms is None:
                reasons[kind.value] = "the demo runs without codec simulators"
        return reasons

    def state(self) -> LabState:
        """The lab state the faults in force call for."""
        keep: dict[str, float] = {}
        delay: dict[str, float] = {}
        jitter: dict[str, float] = {}
        bursts: dict[str, tuple[float, int, int]] = {}  # bursts per second, shortest, longest
        cut: set[str] = set()
        wanted: dict[tuple[str, int], list[int]] = {}
        for fault in self._faults.values():
            address = fault.address or ""
            value = fault.value or 0.0
            if fault.kind is FaultKind.ENDPOINT_DOWN:
                keep[address] = 0.0
            elif fault.kind is FaultKind.LOSS:
                keep[address] = keep.get(address, 1.0) * (1.0 - value)
            elif fault.kind is FaultKind.DELAY:
                delay[address] = delay.get(address, 0.0) + value
            elif fault.kind is FaultKind.JITTER:
                jitter[address] = jitter.get(address, 0.0) + value
            elif fault.kind is FaultKind.BURST:
                assert fault.every is not None
                assert fault.length is not None
                rate, low, high = bursts.get(address, (0.0, *fault.length))
                bursts[address] = (
                    rate + 1 / fault.every, min(low, fault.length[0]), max(high, fault.length[1])
                )  # fmt: skip
            elif fault.kind is FaultKind.UPLINK_CUT:
                cut.add(fault.district or "")
            for port in fault.interfaces:
                wanted.setdefault(port, []).append(OPER_DOWN)
            if fault.kind is FaultKind.INTERFACE_FLAP:
                assert fault.device is not None
                assert fault.interface is not None
                phase = OPER_DOWN if self._flap_down.get(fault.id) else OPER_UP
                wanted.setdefault((fault.device, fault.interface), []).append(phase)
        impairments: dict[str, Impairment] = {}
        plain = Impairment()
        for address in set(keep) | set(delay) | set(jitter) | set(bursts):
            rate, low, high = bursts.get(address, (0.0, plain.burst_min, plain.burst_max))
            impairments[address] = Impairment(
                loss=round(1.0 - keep.get(address, 1.0), 6),
                delay=delay.get(address, 0.0),
                jitter=round(jitter.get(address, 0.0), 6),
                burst_every=round(1 / rate, 6) if rate else 0.0,
                burst_min=low,
                burst_max=high,
            )
        oper: dict[str, dict[int, int]] = {}
        for (device, index), statuses in wanted.items():
            oper.setdefault(device, {})[index] = OPER_DOWN if OPER_DOWN in statuses else OPER_UP
        rooms = rooms_of(
            (fault.kind, fault.target or "", fault.level)
            for fault in self._faults.values()
            if fault.kind in ROOM_KINDS
        )
        for endpoint, (address, _) in self._endpoints.items():
            if (impairment := impairments.get(address)) is not None and impairment.loss:
                rooms[endpoint] = dataclasses.replace(
                    rooms.get(endpoint, RoomFaults()), path_loss=impairment.loss
                )
        return LabState(impairments, frozenset(cut), oper, rooms)

    # -- changing ----------------------------------------------------------------------------

    async def add(self, request: Mapping[str, object], *, standing: str = "") -> Fault:
        """Validate a fault request (see FIELDS), put it in force, return it.

        A `standing` fault (its text says why the site is like that) belongs to the lab, as a
        rural satellite link belongs to a real province: it is listed with the others but
        clearing all faults leaves it; clearing it by id works."""
        if self._closed:
            raise FaultUnavailableError("the demo is stopping")
        fault = self._build(request, "")  # ids only for faults that are valid
        if standing:
            fault = dataclasses.replace(
                fault,
                id=f"s{next(self._standing_ids)}",
                summary=f"{fault.summary} ({standing})",
                standing=True,
            )
        else:
            fault = dataclasses.replace(fault, id=f"f{next(self._ids)}")
        self._faults[fault.id] = fault
        if fault.kind is FaultKind.INTERFACE_FLAP:
            self._flap_down[fault.id] = True  # a flap starts by going down
        try:
            await self._apply()
        except BaseException:
            self._forget(fault.id)
            with contextlib.suppress(Exception):
                await self._apply()
            raise
        if fault.kind is FaultKind.INTERFACE_FLAP:
            self._tasks[fault.id] = asyncio.create_task(
                self._flap(fault), name=f"demo-fault-{fault.id}"
            )
        log.info("demo fault injected", extra={"fault": fault.id, "summary": fault.summary})
        return fault

    async def clear(self, fault_id: str) -> Fault:
        fault = self._faults.get(fault_id)
        if fault is None:
            raise FaultNotFoundError(fault_id)
        await self._stop_tasks([fault_id])
        self._forget(fault_id)
        await self._apply()
        log.info("demo fault cleared", extra={"fault": fault.id, "summary": fault.summary})
        return fault

    async def clear_all(self) -> list[Fault]:
        """Clear every injected fault; the standing ones stay."""
        cleared = [fault for fault in self._faults.values() if not fault.standing]
        await self._stop_tasks([fault.id for fault in cleared])
        for fault in cleared:
            self._forget(fault.id)
        await self._apply()
        if cleared:
            log.info("demo faults cleared", extra={"faults": len(cleared)})
        return cleared

    async def close(self) -> None:
        """Stop the flap timers; the lab itself is torn down by its owner."""
        self._closed = True
        await self._stop_tasks(list(self._tasks))

    def _forget(self, fault_id: str) -> None:
        self._faults.pop(fault_id, None)
        self._flap_down.pop(fault_id, None)

    async def _stop_tasks(self, fault_ids: list[str]) -> None:
        tasks = [task for fid in fault_ids if (task := self._tasks.pop(fid, None)) is not None]
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=5)

    async def _apply(self) -> None:
        """Bring the lab to what the faults in force call for, touching only what changed."""
        async with self._apply_lock:
            state = self.state()
            applied = self._applied
            if self._network is not None and state.impairments != applied.impairments:
                await self._network.impair(state.impairments)
                self._applied = applied = dataclasses.replace(
                    applied, impairments=state.impairments
                )
            if self._network is not None and state.cut != applied.cut:
                await self._network.cut(set(state.cut))
                self._applied = applied = dataclasses.replace(applied, cut=state.cut)
            if self._devices_control is not None and state.oper_status != applied.oper_status:
                await self._devices_control.set_oper_status(state.oper_status)
                self._applied = applied = dataclasses.replace(
                    applied, oper_status=state.oper_status
                )
            if self._rooms is not None and state.rooms != applied.rooms:
                await self._rooms.set_rooms(state.rooms)
                self._applied = dataclasses.replace(applied, rooms=state.rooms)

    async def _flap(self, fault: Fault) -> None:
        assert fault.value is not None
        failing = False
        while True:
            await asyncio.sleep(fault.value / 2)
            self._flap_down[fault.id] = not self._flap_down.get(fault.id, False)
            try:
                await self._apply()
            except Exception:  # keep flapping; say so once, and once when it works again
                if not failing:
                    log.exception("demo fault: flapping failed", extra={"fault": fault.id})
                failing = True
            else:
                if failing:
                    log.info("demo fault: flapping works again", extra={"fault": fault.id})
                failing = False

    # -- validation --------------------------------------------------------------------------

    def _build(self, request: Mapping[str, object], fault_id: str) -> Fault:
        raw_kind = request.get("kind")
        try:
            kind = FaultKind(raw_kind if isinstance(raw_kind, str) else "")
        except ValueError:
            kinds = ", ".join(kind.value for kind in FaultKind)
            message = "missing" if raw_kind is None else f"unknown fault kind {raw_kind!r}"
            raise FaultInputError("kind", f"{message} (one of: {kinds})") from None
        reason = self.unavailable().get(kind.value)
        if reason is not None:
            raise FaultUnavailableError(f"{kind.value} faults are unavailable: {reason}")
        fields = FIELDS[kind]
        for name in request:
            if name != "kind" and name not in fields:
                raise FaultInputError(
                    name, f"not a field of {kind.value} (it takes: {', '.join(fields)})"
                )
        for name in fields:
            if request.get(name) is None:
                raise FaultInputError(name, f"required for {kind.value}")
        now = time.time()
        if kind in ROOM_KINDS:
            target = self._endpoint(request["target"])
            assert self._rooms is not None  # unavailable() refused it otherwise
            refusal = self._rooms.refusal(target, kind)
            if refusal is not None:
                raise FaultInputError("target", refusal)
            level = parse_level(request["level"]) if kind is FaultKind.DIAGNOSTIC else None
            summary = room_summary(kind, target, level)
            return Fault(id=fault_id, kind=kind, created=now, target=target, level=level,
                         summary=summary, endpoints=(target,))  # fmt: skip
        if kind in PING_KINDS:
            target = self._endpoint(request["target"])
            address = self._endpoint_address(target)
            where = f"{target} ({address})"
            if kind is FaultKind.BURST:
                every, length = parse_every(request["every"]), parse_length(request["length"])
                span = f"{length[0]}" if length[0] == length[1] else f"{length[0]}-{length[1]}"
                return Fault(
                    id=fault_id, kind=kind, created=now, target=target, address=address,
                    every=every, length=length, endpoints=(target,),
                    summary=f"{where} loses bursts of {span} pings in a row, on average "
                    f"every {every:g} s",
                )  # fmt: skip
            value = None if kind is FaultKind.ENDPOINT_DOWN else parse_value(kind, request["value"])
            summary = {
                FaultKind.ENDPOINT_DOWN: f"{where} does not answer pings",
                FaultKind.LOSS: f"{where} loses {(value or 0) * 100:g}% of pings",
                FaultKind.DELAY: f"{where} answers pings {_ms(value or 0)} later",
                FaultKind.JITTER: f"{where} answers pings with ± {_ms(value or 0)} jitter "
                f"(each reply up to {_ms(value or 0)} earlier or later, at random)",
            }[kind]
            return Fault(id=fault_id, kind=kind, created=now, summary=summary, target=target,
                         address=address, value=value, endpoints=(target,))  # fmt: skip
        if kind is FaultKind.UPLINK_CUT:
            district = self._district(request["district"])
            ports = uplink_ports(self._devices, district)
            endpoints = tuple(self._districts[district])
            named = " and ".join(f"{device.id} {interface.name}" for device, interface in ports)
            summary = f"uplink of {district} cut: {len(endpoints)} endpoints unreachable" + (
                f", {named} oper-down" if named else ""
            )
            return Fault(
                id=fault_id, kind=kind, created=now, summary=summary, district=district,
                endpoints=endpoints,
                interfaces=tuple((device.id, interface.index) for device, interface in ports),
            )  # fmt: skip
        device = self._device(request["device"])
        interface = self._interface(device, request["interface"])
        port = f"{device.id} interface {interface.index} ({interface.name})"
        if kind is FaultKind.INTERFACE_DOWN:
            return Fault(id=fault_id, kind=kind, created=now, summary=f"{port} oper-down",
                         device=device.id, interface=interface.index, ifname=interface.name,
                         interfaces=((device.id, interface.index),))  # fmt: skip
        period = parse_value(kind, request["value"])
        return Fault(
            id=fault_id, kind=kind, created=now, value=period,
            summary=f"{port} flaps: down {period / 2:g} s, up {period / 2:g} s, and again",
            device=device.id, interface=interface.index, ifname=interface.name,
        )  # fmt: skip

    def _endpoint(self, raw: object) -> str:
        text = str(raw).strip()
        if text in self._endpoints:
            return text
        for endpoint, (address, _) in self._endpoints.items():
            if text == address:
                return endpoint
        example = next(iter(self._endpoints), "ep-...")
        raise FaultInputError(
            "target",
            f"no endpoint {text!r} in the demo (ids as in /api/v1/targets, e.g. {example})",
        )

    def _endpoint_address(self, endpoint: str) -> str:
        return self._endpoints[endpoint][0]

    def _district(self, raw: object) -> str:
        text = str(raw).strip()
        wanted = slug(text.removeprefix("sw-"))
        for district in self._districts:
            if text == district or slug(district) == wanted:
                return district
        examples = ", ".join(repr(d) for d in list(self._districts)[:3])
        raise FaultInputError(
            "district",
            f"no district {text!r} (a name as in the inventory, its switch id or its name "
            f"without accents, e.g. {examples})",
        )

    def _device(self, raw: object) -> SimDevice:
        text = str(raw).strip()
        device = self._device_by_id.get(text) or self._device_by_id.get(text.lower())
        if device is None:
            raise FaultInputError(
                "device",
                f"no simulated device {text!r} (e.g. core-router, a district switch such as "
                f"sw-ba-thuoc, or cpe-<endpoint id>)",
            )
        return device

    def _interface(self, device: SimDevice, raw: object) -> SimInterface:
        text = str(raw).strip()
        for interface in device.interfaces:
            if (text.isdigit() and int(text) == interface.index) or (
                text.lower() == interface.name.lower()
            ):
                return interface
        known = ", ".join(f"{i.index} {i.name}" for i in device.interfaces[:4])
        more = ", ..." if len(device.interfaces) > 4 else ""
        raise FaultInputError(
            "interface",
            f"{device.id} has no interface {text!r} (an ifIndex or ifName: {known}{more})",
        )

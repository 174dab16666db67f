"""Simulated SNMP devices for the demo lab, served by snmpsim.

The lab's network: one core router with a 10G port per district, a district aggregation switch
per district (24-48 access ports and a 10G uplink), and a CPE router in front of every
conference endpoint (a 100M WAN port and a LAN port). Each device is an `.snmprec` file whose
octet counters advance at a steady rate (snmpsim's `numeric` variation module, 32-bit counters
wrapping), so the demo shows real traffic and utilisation; one district uplink flaps.

snmpsim picks the device by community, so every device here has its own community and the demo
config one credential per device. Rates are derived from the device id, so a lab looks the same
on every run.

An interface's oper status can be overridden while snmpsim runs (`SnmpSimulator.set_oper_status`,
the demo's interface faults): the device's file is rewritten with a fixed value. snmpsim 1.2
reopens and re-indexes a data file whose mtime (whole seconds) changed since it last read it, on
the next request for that device, so every rewrite gets an mtime a second past the previous one.
A fixed value rather than a changed variation, because snmpsim keeps each variation's parsed
settings per OID for as long as it runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shutil
import socket
import sys
import tempfile
import time
import unicodedata
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

SYS = "1.3.6.1.2.1.1"
IF = "1.3.6.1.2.1.2.2.1"
IFX = "1.3.6.1.2.1.31.1.1.1"
HUAWEI_ROUTER = "1.3.6.1.4.1.2011.2.224.67"
HUAWEI_SWITCH = "1.3.6.1.4.1.2011.2.23.425"
TPLINK_CPE = "1.3.6.1.4.1.11863.1.1.3"
UPLINK_ALIAS = "uplink to core"  # how a district switch's uplink is recognised


@dataclass(frozen=True)
class SimInterface:
    index: int
    name: str
    alias: str
    speed_bps: int
    in_bps: float  # simulated traffic, bits per second
    out_bps: float
    flapping: bool = False
    admin_down: bool = False
    initial_octets: int | None = None  # where the counters start; derived from the id if None


@dataclass(frozen=True)
class SimDevice:
    id: str
    kind: str  # router, switch, cpe
    name: str
    district: str
    community: str
    sys_descr: str
    sys_object_id: str
    interfaces: tuple[SimInterface, ...] = field(default_factory=tuple)
    high_capacity: bool = True  # False: an old agent with 32-bit counters only


def _fraction(*parts: object) -> float:
    """A stable pseudo-random number in [0, 1) for a device or port."""
    return zlib.crc32("/".join(map(str, parts)).encode()) / 2**32


def slug(text: str) -> str:
    """'Bá Thước' -> 'ba-thuoc': letters without their marks (đ is a letter of its own)."""
    decomposed = unicodedata.normalize("NFKD", text.replace("đ", "d").replace("Đ", "D"))
    ascii_text = "".join(c for c in decomposed if not unicodedata.combining(c)).lower()
    return re.sub(r"[^a-z0-9]+", "-", ascii_text).strip("-") or "x"


def build_lab(endpoints: list[dict[str, str]]) -> list[SimDevice]:
    """The simulated devices for a list of endpoint targets (id, name, district)."""
    districts = sorted({endpoint.get("district", "") for endpoint in endpoints} - {""})
    devices: list[SimDevice] = []
    core_ports = []
    for number, district in enumerate(districts, start=1):
        load = 0.1 + 0.5 * _fraction("core", district)
        core_ports.append(
            SimInterface(
                index=number,
                name=f"XGigabitEthernet0/0/{number}",
                alias=f"to {district}",
                speed_bps=10_000_000_000,
                in_bps=load * 10e9 * 0.3,
                out_bps=load * 10e9,
            )
        )
    devices.append(
        SimDevice(
            id="core-router",
            kind="router",
            name="Core router (provincial data centre)",
            district="",
            community="sim-core-router",
            sys_descr="Huawei NE40E-X8A, VRP V800R021",
            sys_object_id=HUAWEI_ROUTER,
            interfaces=tuple(core_ports),
        )
    )
    for number, district in enumerate(districts, start=1):
        name = slug(district)
        ports = 24 if _fraction("ports", district) < 0.5 else 48
        interfaces = [
            SimInterface(
                index=port,
                name=f"GigabitEthernet0/0/{port}",
                alias=f"access {port}",
                speed_bps=1_000_000_000,
                in_bps=1e6 + 40e6 * _fraction(district, port),
                out_bps=1e6 + 120e6 * _fraction(port, district),
            )
            for port in range(1, ports + 1)
        ]
        uplink_load = 0.2 + 0.7 * _fraction("uplink", district)
        interfaces.append(
            SimInterface(
                index=ports + 1,
                name="XGigabitEthernet0/0/1",
                alias=UPLINK_ALIAS,
                speed_bps=10_000_000_000,
                in_bps=uplink_load * 10e9,
                out_bps=uplink_load * 10e9 * 0.25,
                flapping=number == 1,  # one uplink flaps, as real ones do
            )
        )
        devices.append(
            SimDevice(
                id=f"sw-{name}",
                kind="switch",
                name=f"Aggregation switch {district}",
                district=district,
                community=f"sim-sw-{name}",
                sys_descr="Huawei S5735-S48T4X, VRP V200R021",
                sys_object_id=HUAWEI_SWITCH,
                interfaces=tuple(interfaces),
            )
        )
    for endpoint in endpoints:
        wan_load = 0.02 + 0.5 * _fraction("wan", endpoint["id"])
        devices.append(
            SimDevice(
                id=f"cpe-{endpoint['id']}",
                kind="cpe",
                name=f"CPE {endpoint.get('name', endpoint['id'])}",
                district=endpoint.get("district", ""),
                community=f"sim-cpe-{endpoint['id']}",
                sys_descr="TP-Link ER605 v2, firmware 2.2.3",
                sys_object_id=TPLINK_CPE,
                interfaces=(
                    SimInterface(1, "WAN", "broadband uplink", 100_000_000,
                                 wan_load * 100e6, wan_load * 0.4 * 100e6),
                    SimInterface(2, "LAN1", "conference endpoint", 1_000_000_000,
                                 wan_load * 0.4 * 100e6, wan_load * 100e6),
                    SimInterface(3, "LAN2", "spare", 1_000_000_000, 0, 0, admin_down=True),
                ),
            )
        )  # fmt: skip
    return devices


def uplink_ports(devices: list[SimDevice], district: str) -> list[tuple[SimDevice, SimInterface]]:
    """Both ends of a district's uplink: its switch's uplink and the core router's port to it."""
    ends = []
    for device in devices:
        for interface in device.interfaces:
            if (
                device.kind == "switch"
                and device.district == district
                and interface.alias == UPLINK_ALIAS
            ) or (device.kind == "router" and interface.alias == f"to {district}"):
                ends.append((device, interface))
    return ends  # fmt: skip


def _text(value: str) -> str:
    return "4x|" + value.encode("utf-8").hex()


def snmprec(device: SimDevice, oper_status: Mapping[int, int] | None = None) -> str:
    """The device as snmpsim data: one `OID|type|value` line each, in OID order.

    `oper_status` fixes ifOperStatus (1 up, 2 down) of the interfaces it names, by ifIndex.
    """
    oper_status = oper_status or {}
    boot_ticks = int(8_640_000 * (1 + 30 * _fraction("uptime", device.id)))  # 1-31 days
    rows: list[tuple[str, str]] = [
        (f"{SYS}.1.0", _text(device.sys_descr)),
        (f"{SYS}.2.0", f"6|{device.sys_object_id}"),
        (f"{SYS}.3.0", f"67:numeric|rate=100,initial={boot_ticks}"),
        (f"{SYS}.5.0", _text(device.id)),
        ("1.3.6.1.2.1.2.1.0", f"2|{len(device.interfaces)}"),
    ]
    for interface in device.interfaces:
        i = interface.index
        start = interface.initial_octets
        if start is None:
            start = int(2**31 * _fraction("octets", device.id, i))
        in_rate, out_rate = interface.in_bps / 8, interface.out_bps / 8
        oper = "2|2" if interface.admin_down else "2|1"
        if interface.flapping:
            # Down about a third of each 2-minute cycle.
            oper = "2:numeric|function=cos,rate=0.0524,scale=0.99,initial=1.5,min=1,max=2"
        if i in oper_status:
            oper = f"2|{oper_status[i]}"
        rows += [
            (f"{IF}.1.{i}", f"2|{i}"),
            (f"{IF}.2.{i}", _text(interface.name)),
            (f"{IF}.3.{i}", "2|6"),
            (f"{IF}.5.{i}", f"66|{min(interface.speed_bps, 4_294_967_295)}"),
            (f"{IF}.7.{i}", "2|2" if interface.admin_down else "2|1"),
            (f"{IF}.8.{i}", oper),
            (f"{IF}.10.{i}", f"65:numeric|rate={in_rate:.0f},initial={start},wrap=1"),
            (f"{IF}.13.{i}", "65:numeric|rate=0.001,initial=0"),
            (f"{IF}.14.{i}", "65:numeric|rate=0.002,initial=0"),
            (f"{IF}.16.{i}", f"65:numeric|rate={out_rate:.0f},initial={start},wrap=1"),
            (f"{IF}.19.{i}", "65:numeric|rate=0.001,initial=0"),
            (f"{IF}.20.{i}", "65:numeric|rate=0.001,initial=0"),
            (f"{IFX}.1.{i}", _text(interface.name)),
            (f"{IFX}.15.{i}", f"66|{interface.speed_bps // 1_000_000}"),
            (f"{IFX}.18.{i}", _text(interface.alias)),
        ]
        if device.high_capacity:
            rows += [
                (f"{IFX}.6.{i}", f"70:numeric|rate={in_rate:.0f},initial={start}"),
                (f"{IFX}.10.{i}", f"70:numeric|rate={out_rate:.0f},initial={start}"),
            ]
    rows.sort(key=lambda row: tuple(int(part) for part in row[0].split(".")))
    return "".join(f"{oid}|{value}\n" for oid, value in rows)


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def snmp_answers(port: int, community: str) -> bool:
    """True when an agent on 127.0.0.1:port answers a v2c GET of sysUpTime."""
    from collectors.snmp.codec import PduType, Version, encode_request

    packet = encode_request(
        version=Version.V2C, community=community.encode(), pdu_type=PduType.GET,
        request_id=1, oids=[(1, 3, 6, 1, 2, 1, 1, 3, 0)],
    )  # fmt: skip
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(0.3)
        sock.sendto(packet, ("127.0.0.1", port))
        try:
            sock.recvfrom(65535)
        except (TimeoutError, ConnectionRefusedError):
            return False
    return True


def snmpsim_command() -> str:
    found = shutil.which("snmpsim-command-responder", path=str(Path(sys.executable).parent))
    found = found or shutil.which("snmpsim-command-responder")
    if found is None:
        raise FileNotFoundError(
            "snmpsim-command-responder not found: install netmon with its 'lab' extra"
        )
    return found


class SnmpSimulator:
    """snmpsim serving `devices` on a free loopback UDP port, for as long as the context lasts."""

    def __init__(self, devices: list[SimDevice], *, workdir: Path | None = None) -> None:
        self.devices = devices
        self._workdir = workdir
        self._tempdir: tempfile.TemporaryDirectory[str] | None = None
        self._process: asyncio.subprocess.Process | None = None
        self.port = 0
        self._by_id = {device.id: device for device in devices}
        self._oper_status: dict[str, dict[int, int]] = {}
        self._mtimes: dict[str, int] = {}
        self._lock = asyncio.Lock()

    async def __aenter__(self) -> SnmpSimulator:
        if self._workdir is None:
            self._tempdir = tempfile.TemporaryDirectory(prefix="netmon-snmpsim-")
            self._workdir = Path(self._tempdir.name)
        data = self._workdir / "data"
        cache = self._workdir / "cache"
        await asyncio.to_thread(self._write, data, cache)
        self.port = free_udp_port()
        self._process = await asyncio.create_subprocess_exec(
            snmpsim_command(),
            f"--data-dir={data}",
            f"--cache-dir={cache}",
            f"--agent-udpv4-endpoint=127.0.0.1:{self.port}",
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
            env={**os.environ, "SNMPSIM_ALLOW_ROOT": "true"},
        )
        try:
            await self._wait_ready(self._process)
        except BaseException:
            await self.__aexit__(None, None, None)  # no snmpsim left behind
            raise
        return self

    async def _wait_ready(self, process: asyncio.subprocess.Process) -> None:
        probe = self.devices[0].community
        deadline = time.monotonic() + 120
        while not await asyncio.to_thread(snmp_answers, self.port, probe):
            if process.returncode is not None:
                raise RuntimeError(f"snmpsim exited with {process.returncode}")
            if time.monotonic() > deadline:
                raise TimeoutError("snmpsim did not answer within 120 s")
            await asyncio.sleep(0.2)

    def _write(self, data: Path, cache: Path) -> None:
        data.mkdir(parents=True, exist_ok=True)
        cache.mkdir(parents=True, exist_ok=True)
        for device in self.devices:
            path = data / f"{device.community}.snmprec"
            text = snmprec(device)
            if not path.exists() or path.read_text() != text:
                path.write_text(text)

    @property
    def oper_status(self) -> dict[str, dict[int, int]]:
        """The overrides in force: device id -> {ifIndex: 1 up / 2 down}."""
        return {device: dict(table) for device, table in self._oper_status.items()}

    async def set_oper_status(self, overrides: Mapping[str, Mapping[int, int]]) -> None:
        """Replace every oper-status override; devices absent get their recorded behaviour
        back. A changed device is visible from the next request for it."""
        unknown = set(overrides) - set(self._by_id)
        if unknown:
            raise KeyError(f"no simulated device {sorted(unknown)[0]!r}")
        wanted = {device: dict(table) for device, table in overrides.items() if table}
        async with self._lock:
            changed = {
                device
                for device in set(wanted) | set(self._oper_status)
                if wanted.get(device) != self._oper_status.get(device)
            }
            if changed:
                await asyncio.to_thread(self._rewrite, {d: wanted.get(d, {}) for d in changed})
            self._oper_status = wanted

    def _rewrite(self, tables: Mapping[str, Mapping[int, int]]) -> None:
        assert self._workdir is not None
        for device_id, table in tables.items():
            device = self._by_id[device_id]
            path = self._workdir / "data" / f"{device.community}.snmprec"
            staging = path.with_suffix(".tmp")
            staging.write_text(snmprec(device, table))
            # snmpsim compares whole-second mtimes: each version of a file needs its own second.
            last = self._mtimes.get(device_id)
            if last is None:
                last = int(path.stat().st_mtime)
            second = max(int(time.time()), last + 1)
            os.utime(staging, (second, second))
            self._mtimes[device_id] = second
            staging.replace(path)  # atomic: snmpsim never reads half a file

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._process is not None and self._process.returncode is None:
            self._process.terminate()
            try:
                async with asyncio.timeout(10):
                    await self._process.wait()
            except TimeoutError:
                self._process.kill()
                await self._process.wait()
        if self._tempdir is not None:
            with contextlib.suppress(OSError):
                self._tempdir.cleanup()

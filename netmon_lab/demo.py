"""The built-in lab: 215 simulated conference endpoints and 243 simulated SNMP devices.

`Lab` builds the demo inventory and owns whatever the lab needs while it runs; it is an async
context manager so its parts start on enter and stop on exit without touching the service.

When this process may build network namespaces (root, checked through its capabilities), the
endpoints live in one of their own (`netmon_lab.netns.EndpointNetwork`) with addresses from
198.18.0.0/15, answered by a responder that can be told to drop, lose or delay; the devices are
served by snmpsim on loopback. `Lab.faults` then injects faults (`netmon_lab.faults`), and
`Lab.routes()` is the HTTP API for them. Otherwise the endpoints are the loopback addresses of
the CSV, answered by the kernel, and faults that need the namespace are refused with the reason.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import logging
import subprocess
import tempfile
import time
from importlib import resources
from pathlib import Path
from types import TracebackType
from typing import Any

import aiohttp
import yaml
from aiohttp import web

from netmon.config.loader import load_data
from netmon.config.schema import parse_listen
from netmon.inventory import Inventory
from netmon.inventory_import import csv_to_config
from netmon.service import Service
from netmon.state import Reach
from netmon_lab import netns
from netmon_lab.fault_api import PATH as FAULTS_PATH
from netmon_lab.fault_api import fault_routes
from netmon_lab.fault_client import DEFAULT_URL
from netmon_lab.faults import FaultInjector
from netmon_lab.meeting_api import meeting_routes
from netmon_lab.netns import EndpointNetwork, LabUnavailableError
from netmon_lab.oncall_lab import OncallLab
from netmon_lab.rooms import DemoRooms
from netmon_lab.snmpsim import UPLINK_ALIAS, SimDevice, SnmpSimulator, build_lab, slug

log = logging.getLogger(__name__)


def demo_endpoints_csv() -> str:
    return resources.files("netmon_lab").joinpath("data/endpoints.csv").read_text(encoding="utf-8")


# Short, so utilisation shows within half a minute; snmpsim then uses about half a core here.
SNMP_INTERVAL = "15s"


def demo_config(listen: str) -> dict[str, Any]:
    data = csv_to_config(demo_endpoints_csv(), instance="netmon-demo")
    data["http"] = {"listen": listen}
    return data


def add_devices(data: dict[str, Any], devices: list[SimDevice], port: int) -> dict[str, Any]:
    """The simulated devices as SNMP targets of the demo config, one credential each, and the
    topology: endpoints hang off their district switch, whose uplink interface is named, and
    the switches off the core router, so a cut uplink is one district alert. The CPEs hang off
    nothing: they answer SNMP from loopback even while their district is cut."""
    credentials = dict(data.get("credentials", {}))
    switches = {device.district: device for device in devices if device.kind == "switch"}
    routers = [device.id for device in devices if device.kind == "router"]
    targets = []
    for target in data["targets"]:
        switch = switches.get(target.get("district", ""))
        targets.append({**target, "parent": switch.id} if switch else target)
    for device in devices:
        credentials[device.id] = {"snmp_version": "2c", "community": device.community}
        entry: dict[str, Any] = {
            "id": device.id,
            "address": "127.0.0.1",
            "kind": device.kind,
            "name": device.name,
            "district": device.district,
            "group": {"router": "core", "switch": "aggregation", "cpe": "access"}[device.kind],
            "probes": {"snmp": {"credential": device.id, "port": port, "interval": SNMP_INTERVAL}},
        }
        if device.kind == "switch":
            uplinks = [i.name for i in device.interfaces if i.alias == UPLINK_ALIAS]
            entry.update({"uplink": uplinks[0]} if uplinks else {})
            entry.update({"parent": routers[0]} if routers else {})
        targets.append(entry)
    return {**data, "credentials": credentials, "targets": targets}


# A real province always has a few sites in trouble; these give a readiness check of the
# demo something to find (one WARN, two NO-GO, all in the district the banner suggests
# checking). `netmon demo fault clear s1` makes a site healthy.
STANDING_FAULTS: tuple[tuple[dict[str, object], str], ...] = (
    (
        {"kind": "delay", "target": "ep-ba-thuoc-xa06", "value": 0.18},
        "standing: congested ADSL line → readiness WARN",
    ),
    (
        {"kind": "delay", "target": "ep-ba-thuoc-xa07", "value": 0.5},
        "standing: VSAT satellite link → readiness NO-GO",
    ),
    (
        {"kind": "camera-unplug", "target": "ep-ba-thuoc-xa04"},
        "standing: camera cable pulled when the room was rearranged → readiness NO-GO",
    ),
)

DEFAULT_MQTT = "127.0.0.1:1883"
DEFAULT_ALERTMANAGER = "http://127.0.0.1:9093"


async def detect_sinks(mqtt: str, alertmanager: str) -> dict[str, Any]:
    """The alert sinks of the demo: a broker and an Alertmanager when they answer where they
    usually listen, so a new user sees alerts travel without writing a config."""
    found: dict[str, Any] = {}
    if mqtt:
        host, port = parse_listen(mqtt)
        try:
            _, writer = await asyncio.wait_for(asyncio.open_connection(host, port), 1.0)
            writer.close()
            found["mqtt"] = {"host": host, "port": port, "reconnect_max": "5s"}
        except (OSError, TimeoutError):
            pass
    if alertmanager:
        try:
            timeout = aiohttp.ClientTimeout(total=2)
            async with (
                aiohttp.ClientSession(timeout=timeout) as session,
                session.get(alertmanager.rstrip("/") + "/-/healthy") as response,
            ):
                if response.status == 200:
                    found["alertmanager"] = {"urls": [alertmanager.rstrip("/")]}
        except (aiohttp.ClientError, TimeoutError):
            pass
    return found


class Lab:
    """The demo's simulated world: the 215 endpoints (in a namespace of their own when this
    process may build one, else on loopback), simulated SNMP devices (core router, district
    switches, a CPE per endpoint) served by snmpsim, and the faults injected into them."""

    def __init__(
        self,
        *,
        listen: str,
        with_devices: bool = True,
        with_network: bool = True,
        with_rooms: bool = True,
        with_oncall: bool = True,
        mqtt: str = DEFAULT_MQTT,
        alertmanager: str = DEFAULT_ALERTMANAGER,
    ) -> None:
        self._listen = listen
        self._with_rooms = with_rooms
        self._with_oncall = with_oncall
        self.oncall: OncallLab | None = None
        self.oncall_unavailable = ""  # why the demo pages nobody, when it does not
        self.rooms: DemoRooms | None = None
        self.mqtt = mqtt
        self._alertmanager = alertmanager
        self.sinks: dict[str, Any] = {}
        self.config_file: Path | None = None
        self._with_devices = with_devices
        self._with_network = with_network
        self._stack = contextlib.AsyncExitStack()
        self.inventory: Inventory = load_data(demo_config(listen))
        self.network: EndpointNetwork | None = None
        self.network_unavailable = ""  # why the endpoints are on loopback, when they are
        self.simulator: SnmpSimulator | None = None
        self.faults = FaultInjector(endpoints={}, devices=[], network=None, devices_control=None)
        self.workdir = Path()  # a directory of this run's own (the alert database), once entered

    async def __aenter__(self) -> Lab:
        try:
            await self._enter()
        except BaseException:
            await self._stack.aclose()
            raise
        return self

    async def _enter(self) -> None:
        self.workdir = Path(
            self._stack.enter_context(tempfile.TemporaryDirectory(prefix="netmon-demo-"))
        )
        data = demo_config(self._listen)
        endpoints = [
            {"id": t["id"], "name": t.get("name", ""), "district": t.get("district", "")}
            for t in data["targets"]
        ]
        if self._with_network:
            self.network = await self._start_network(endpoints)
        else:
            self.network_unavailable = "the demo was started without its namespace network"
        if self.network is not None:
            addresses = self.network.addresses
            data["targets"] = [{**t, "address": addresses[t["id"]]} for t in data["targets"]]
        devices: list[SimDevice] = []
        if self._with_devices:
            devices = build_lab(endpoints)
            self.simulator = await self._stack.enter_async_context(SnmpSimulator(devices))
            log.info(
                "simulated SNMP devices ready",
                extra={"devices": len(devices), "port": self.simulator.port},
            )
            data = add_devices(data, devices, self.simulator.port)
        if self._with_rooms:
            rooms = [
                {
                    "id": t["id"],
                    "level": str(t.get("group", "")),
                    **{k: str(v) for k, v in t.get("labels", {}).items()},
                }
                for t in data["targets"]
                if t.get("kind") == "endpoint"
            ]
            self.rooms = await self._stack.enter_async_context(DemoRooms(rooms))
            data = self.rooms.config(data)
        self.sinks = await detect_sinks(self.mqtt, self._alertmanager)
        if self.sinks:
            data["alerting"] = {**data.get("alerting", {}), **self.sinks}
        if self._with_oncall and importlib.util.find_spec("aiosmtpd") is None:
            self.oncall_unavailable = "aiosmtpd is not installed (pip install 'netmon[lab]')"
        elif self._with_oncall:
            self.oncall = OncallLab()
            self._stack.push_async_callback(self.oncall.close)
            await self.oncall.start()
            districts = sorted({e["district"] for e in endpoints if e["district"]})
            data["oncall"] = self.oncall.config(districts, f"http://{self._listen}/")
        self.inventory = load_data(data)
        # The lab's config as a file, so `netmon check --config` can check the lab's endpoints.
        self.config_file = self.workdir / "netmon-demo.yaml"
        self.config_file.write_text(
            "# the running demo's config (removed when the demo stops)\n"
            + yaml.safe_dump(data, allow_unicode=True, sort_keys=False, width=100),
            encoding="utf-8",
        )
        self.faults = FaultInjector(
            endpoints={t["id"]: (t["address"], t.get("district", "")) for t in data["targets"]
                       if t.get("kind") == "endpoint"},
            devices=devices,
            network=self.network,
            devices_control=self.simulator,
            network_reason=self.network_unavailable,
            rooms=self.rooms,
        )  # fmt: skip
        self._stack.push_async_callback(self.faults.close)
        unavailable = self.faults.unavailable()
        for request, story in STANDING_FAULTS:
            if request["kind"] not in unavailable:
                await self.faults.add(request, standing=story)

    async def _start_network(self, endpoints: list[dict[str, str]]) -> EndpointNetwork | None:
        reason = netns.unavailable_reason()
        if reason is not None:
            self.network_unavailable = reason
            return None
        started = time.monotonic()
        network = EndpointNetwork(
            endpoints={e["id"]: e["district"] for e in endpoints},
            slugs={e["district"]: slug(e["district"]) for e in endpoints},
        )
        try:
            await self._stack.enter_async_context(network)
        except (LabUnavailableError, OSError, subprocess.SubprocessError) as exc:
            self.network_unavailable = f"the namespace network could not be built: {exc}"
            log.warning(
                "demo endpoints stay on loopback", extra={"reason": self.network_unavailable}
            )
            return None
        log.info(
            "demo endpoint network ready",
            extra={
                "namespace": network.namespace,
                "block": network.block,
                "seconds": round(time.monotonic() - started, 3),
            },
        )
        return network

    def routes(self) -> list[web.RouteDef]:
        """The fault and meeting APIs, for `Service(extra_routes=...)`."""
        meeting = meeting_routes(self.rooms) if self.rooms is not None else []
        oncall = self.oncall.routes() if self.oncall is not None else []
        return [*fault_routes(self.faults), *meeting, *oncall]

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self._stack.aclose()


def status_line(service: Service) -> str:
    counts = dict.fromkeys(Reach, 0)
    for state in service.store.targets.values():
        if state.icmp is not None or state.target.probe("icmp") is not None:
            counts[state.reach] += 1
    answering, devices = service.store.devices_answering()
    line = (
        f"endpoints: {counts[Reach.UP]} up, {counts[Reach.DOWN]} down, "
        f"{counts[Reach.UNKNOWN]} unknown"
    )
    return line + (f"; SNMP devices: {answering} of {devices} answering" if devices else "")


async def _report(service: Service, every: float) -> None:
    while True:
        await asyncio.sleep(every)
        print(status_line(service), flush=True)


def _banner(lab: Lab, url: str) -> str:
    endpoints = sum(1 for t in lab.inventory.targets.values() if t.kind == "endpoint")
    devices = sum(1 for t in lab.inventory.targets.values() if t.device_probe() is not None)
    if lab.network is not None:
        where = (
            f"{endpoints} conference endpoints in network namespace {lab.network.namespace} "
            f"({lab.network.block})"
        )
    else:
        where = f"{endpoints} conference endpoints on loopback"
    lines = [
        f"netmon demo: {where}" + (f", {devices} simulated SNMP devices" if devices else ""),
        f"  metrics       {url}/metrics",
        f"  targets API   {url}/api/v1/targets",
        f"  alerts API    {url}/api/v1/alerts",
        f"  status page   {url}/",
        f"  faults API    {url}{FAULTS_PATH}",
    ]
    if lab.config_file is not None:
        lines.append(f"  config        {lab.config_file}")
        lines.append(
            f'Check a district: netmon check --config {lab.config_file} --district "Bá Thước"'
        )
        lines.append(
            f"Availability today: netmon report --config {lab.config_file} --from today"
            f" --format html -o report.html  (or {url}/api/v1/reports/availability?format=html)"
        )
    lines += _sink_lines(lab)
    if lab.oncall is not None:
        lines += lab.oncall.banner(url_option="" if url == DEFAULT_URL else f" --url {url}")
    elif lab.oncall_unavailable:
        lines.append(f"On call: no pages in this demo ({lab.oncall_unavailable})")
    sip = lab.rooms.sip if lab.rooms is not None else None
    if sip is not None and sip.reason is None:
        lines.append(
            f"SIP registrar: Kamailio with {len(sip.rooms)} plain SIP rooms registered by baresip "
            f"(netmon reads it at {sip.rpc_url})"
        )
    elif sip is not None:
        lines.append(f"SIP registrar: none, so no plain SIP rooms ({sip.reason})")
    softphones = lab.rooms.softphones if lab.rooms is not None else None
    if softphones is not None and softphones.lab is not None:
        lines.append(
            "Softphone rooms making real calls in the demo's meeting: "
            f"{', '.join(softphones.rooms)} (baresip, read by the baresip probe)"
        )
    elif softphones is not None:
        lines.append(
            f"Softphone rooms: none, so the demo's meeting is simulated ({softphones.reason})"
        )
    standing = [fault for fault in lab.faults.faults() if fault.standing]
    if standing:
        lines.append("Standing faults of the lab (netmon demo fault list shows every fault):")
        lines += [f"  {fault.id}  {fault.summary}" for fault in standing]
    unavailable = lab.faults.unavailable()
    url_option = "" if url == DEFAULT_URL else f" --url {url}"
    for kind, example in (
        ("endpoint-down", "ep-so-01"),
        ("interface-down", "cpe-ep-so-01 WAN"),
    ):
        if kind not in unavailable:
            lines.append(
                f"Inject a fault: netmon demo fault add {kind} {example}{url_option} "
                "(all kinds: netmon demo fault add --help)"
            )
            break
    if unavailable:
        reasons: dict[str, list[str]] = {}
        for kind, reason in unavailable.items():
            reasons.setdefault(reason, []).append(kind)
        for reason, kinds in reasons.items():
            lines.append(f"Faults unavailable ({', '.join(kinds)}): {reason}")
    if lab.rooms is not None and lab.rooms.meeting_rooms():
        lines.append(
            f"Hold a meeting: netmon demo meeting start{url_option} (call quality on /metrics: "
            "netmon_call_audio_mos; netmon demo meeting stop ends it)"
        )
    lines.append("Ctrl-C stops it.")
    return "\n".join(lines)


def _sink_lines(lab: Lab) -> list[str]:
    mqtt = lab.sinks.get("mqtt")
    if mqtt is not None:
        lines = [
            f"MQTT: publishing alerts and statuses to {mqtt['host']}:{mqtt['port']} "
            f"(watch: mosquitto_sub -h {mqtt['host']} -p {mqtt['port']} -t 'netmon/#' -v)"
        ]
    elif lab.mqtt:
        lines = [
            f"MQTT: no broker answers at {lab.mqtt}; alerts are at /api/v1/alerts "
            "(start mosquitto and restart the demo to see them on MQTT)"
        ]
    else:
        lines = []
    alertmanager = lab.sinks.get("alertmanager")
    if alertmanager is not None:
        lines.append(f"Alertmanager: sending alerts to {alertmanager['urls'][0]}")
    return lines


async def run_demo(
    *,
    listen: str,
    duration: float | None,
    devices: bool = True,
    network: bool = True,
    mqtt: str = DEFAULT_MQTT,
    alertmanager: str = DEFAULT_ALERTMANAGER,
) -> None:
    async with Lab(
        listen=listen,
        with_devices=devices,
        with_network=network,
        mqtt=mqtt,
        alertmanager=alertmanager,
    ) as lab:
        service = Service(
            inventory=lab.inventory,
            listen=listen,
            extra_routes=lab.routes(),
            alert_db=lab.workdir / "alerts.sqlite",  # a fresh lab each run, fresh alerts too
        )
        reporter: asyncio.Task[None] | None = None

        async def on_ready(running: Service) -> None:
            nonlocal reporter
            print(_banner(lab, running.http_url), flush=True)
            reporter = asyncio.create_task(_report(running, 5.0), name="demo-report")
            if duration is not None:
                asyncio.get_running_loop().call_later(duration, running.stop)

        try:
            await service.run(on_ready=on_ready)
        finally:
            if reporter is not None:
                reporter.cancel()
                await asyncio.gather(reporter, return_exceptions=True)

"""The built-in lab: 215 simulated conference endpoints on loopback addresses.

`Lab` builds the demo inventory and owns whatever the lab needs while it runs. It is an async
context manager so later parts (simulated SNMP devices, SIP endpoints, injected faults) can be
started on enter and stopped on exit without touching the service.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from importlib import resources
from types import TracebackType
from typing import Any

from netmon.config import Inventory, load_data
from netmon.inventory_import import csv_to_config
from netmon.lab.snmpsim import SimDevice, SnmpSimulator, build_lab
from netmon.service import Service
from netmon.state import Reach

log = logging.getLogger(__name__)


def demo_endpoints_csv() -> str:
    return resources.files("netmon").joinpath("data/endpoints.csv").read_text(encoding="utf-8")


# Short, so utilisation shows within half a minute; snmpsim then uses about half a core here.
SNMP_INTERVAL = "15s"


def demo_config(listen: str) -> dict[str, Any]:
    data = csv_to_config(demo_endpoints_csv(), instance="netmon-demo")
    data["http"] = {"listen": listen}
    return data


def add_devices(data: dict[str, Any], devices: list[SimDevice], port: int) -> dict[str, Any]:
    """The simulated devices as SNMP targets of the demo config, one credential each."""
    credentials = dict(data.get("credentials", {}))
    targets = list(data["targets"])
    for device in devices:
        credentials[device.id] = {"snmp_version": "2c", "community": device.community}
        targets.append(
            {
                "id": device.id,
                "address": "127.0.0.1",
                "kind": device.kind,
                "name": device.name,
                "district": device.district,
                "group": {"router": "core", "switch": "aggregation", "cpe": "access"}[device.kind],
                "probes": {
                    "snmp": {"credential": device.id, "port": port, "interval": SNMP_INTERVAL}
                },
            }
        )
    return {**data, "credentials": credentials, "targets": targets}


class Lab:
    """The demo's simulated world: the 215 endpoints on loopback, and simulated SNMP devices
    (core router, district switches, a CPE per endpoint) served by snmpsim."""

    def __init__(self, *, listen: str, with_devices: bool = True) -> None:
        self._listen = listen
        self._with_devices = with_devices
        self._stack = contextlib.AsyncExitStack()
        self.inventory: Inventory = load_data(demo_config(listen))

    async def __aenter__(self) -> Lab:
        data = demo_config(self._listen)
        if self._with_devices:
            endpoints = [
                {"id": t["id"], "name": t.get("name", ""), "district": t.get("district", "")}
                for t in data["targets"]
            ]
            devices = build_lab(endpoints)
            simulator = await self._stack.enter_async_context(SnmpSimulator(devices))
            log.info(
                "simulated SNMP devices ready",
                extra={"devices": len(devices), "port": simulator.port},
            )
            data = add_devices(data, devices, simulator.port)
        self.inventory = load_data(data)
        return self

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


async def run_demo(*, listen: str, duration: float | None, devices: bool = True) -> None:
    async with Lab(listen=listen, with_devices=devices) as lab:
        service = Service(inventory=lab.inventory, listen=listen)
        reporter: asyncio.Task[None] | None = None

        async def on_ready(running: Service) -> None:
            nonlocal reporter
            url = running.http_url
            print(
                f"netmon demo: {len(lab.inventory.targets)} targets on loopback "
                "(conference endpoints, and simulated SNMP devices)\n"
                f"  metrics       {url}/metrics\n"
                f"  targets API   {url}/api/v1/targets\n"
                f"  status page   {url}/\n"
                "Ctrl-C stops it.",
                flush=True,
            )
            reporter = asyncio.create_task(_report(running, 5.0), name="demo-report")
            if duration is not None:
                asyncio.get_running_loop().call_later(duration, running.stop)

        try:
            await service.run(on_ready=on_ready)
        finally:
            if reporter is not None:
                reporter.cancel()

"""The built-in lab: 215 simulated conference endpoints on loopback addresses.

`Lab` builds the demo inventory and owns whatever the lab needs while it runs. It is an async
context manager so later parts (simulated SNMP devices, SIP endpoints, injected faults) can be
started on enter and stopped on exit without touching the service.
"""

from __future__ import annotations

import asyncio
import logging
from importlib import resources
from types import TracebackType
from typing import Any

from netmon.config import Inventory, load_data
from netmon.inventory_import import csv_to_config
from netmon.service import Service
from netmon.state import Reach

log = logging.getLogger(__name__)


def demo_endpoints_csv() -> str:
    return resources.files("netmon").joinpath("data/endpoints.csv").read_text(encoding="utf-8")


def demo_config(listen: str) -> dict[str, Any]:
    data = csv_to_config(demo_endpoints_csv(), instance="netmon-demo")
    data["http"] = {"listen": listen}
    return data


class Lab:
    """The demo's simulated world."""

    def __init__(self, *, listen: str) -> None:
        self.inventory: Inventory = load_data(demo_config(listen))

    async def __aenter__(self) -> Lab:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        return None


async def _report(service: Service, every: float) -> None:
    while True:
        await asyncio.sleep(every)
        counts = dict.fromkeys(Reach, 0)
        for state in service.store.targets.values():
            counts[state.reach] += 1
        print(
            f"targets: {counts[Reach.UP]} up, {counts[Reach.DOWN]} down, "
            f"{counts[Reach.UNKNOWN]} unknown (of {len(service.store.targets)})",
            flush=True,
        )


async def run_demo(*, listen: str, duration: float | None) -> None:
    async with Lab(listen=listen) as lab:
        service = Service(inventory=lab.inventory, listen=listen)
        reporter: asyncio.Task[None] | None = None

        async def on_ready(running: Service) -> None:
            nonlocal reporter
            url = running.http_url
            print(
                f"netmon demo: {len(lab.inventory.targets)} endpoints on loopback\n"
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

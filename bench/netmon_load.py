"""Child process of the ICMP benchmark: netmon's real scheduler, collector and state store.

Usage: python -m bench.netmon_load ADDRESS_FILE SECONDS [--alerting] [--warmup SECONDS]
Prints JSON: echoes sent and received, and the CPU seconds spent while probing (start-up,
imports and socket opening excluded, as fping's are negligible).

`--alerting` adds the alert engine with the default rules, wired as `netmon run` wires it
(netmon.alerting.runtime, its database in a temporary directory, no sinks); `--warmup` probes
that long before the measured SECONDS begin, with the default 60 s windows, so the engine is
measured on full windows (RTT and jitter need 40 replies, loss 60 echoes).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import tempfile
from pathlib import Path

from collectors.icmp import IcmpCollector
from netmon.alerting.runtime import Alerting
from netmon.config.loader import load_data
from netmon.scheduler import Scheduler
from netmon.service import freeze_long_lived
from netmon.state import StateStore


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _split() -> tuple[float, float]:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime, usage.ru_stime


async def main(
    addresses: list[str], seconds: int, *, alerting: bool = False, warmup: int = 0
) -> dict[str, float]:
    icmp: dict[str, object] = {"interval": "1s", "timeout": "800ms"}
    if not warmup:
        icmp["window"] = seconds + 10
    inventory = load_data(
        {
            "defaults": {"icmp": icmp},
            "targets": [{"id": f"t{i}", "address": a} for i, a in enumerate(addresses)],
        }
    )
    store = StateStore()
    store.apply_inventory(inventory)
    workdir = tempfile.TemporaryDirectory()
    alerts = None
    if alerting:
        alerts = Alerting(store=store, inventory=inventory, db_path=Path(workdir.name) / "a.db")
        await alerts.start()
    collector = IcmpCollector()
    await collector.start()
    scheduler = Scheduler(store=store, collectors={"icmp": collector}, max_concurrency=4096)

    def probes_done() -> int:
        return min(s.icmp.sent_total if s.icmp else 0 for s in store.targets.values())

    def probes() -> tuple[int, int]:
        icmps = [s.icmp for s in store.targets.values() if s.icmp]
        return sum(i.sent_total for i in icmps), sum(i.received_total for i in icmps)

    scheduler.apply(inventory)
    freeze_long_lived()  # as `netmon run` does once started
    if warmup:
        await asyncio.sleep(warmup)
    started = _cpu()
    split = _split()
    sent_before, received_before = probes()
    # Sleep through the run and only then poll, so the harness's own wake-ups stay out of
    # the CPU figure.
    await asyncio.sleep(seconds - 0.5)
    while probes_done() < seconds + warmup:
        await asyncio.sleep(0.05)
    await scheduler.stop()
    cpu = _cpu() - started
    user, system = (a - b for a, b in zip(_split(), split, strict=True))
    sent, received = probes()
    await collector.close()
    if alerts is not None:
        await alerts.stop()
    workdir.cleanup()
    return {
        "sent": sent - sent_before,
        "received": received - received_before,
        "cpu_seconds": cpu,
        "user": user,
        "system": system,
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("addresses", type=Path)
    parser.add_argument("seconds", type=int)
    parser.add_argument("--alerting", action="store_true")
    parser.add_argument("--warmup", type=int, default=0)
    args = parser.parse_args()
    address_list = args.addresses.read_text().split()
    result = main(address_list, args.seconds, alerting=args.alerting, warmup=args.warmup)
    print(json.dumps(asyncio.run(result)))

"""Child process of the ICMP benchmark: netmon's real scheduler, collector and state store.

Usage: python -m bench.netmon_load ADDRESS_FILE SECONDS
Prints JSON: echoes sent and received, and the CPU seconds spent while probing (start-up,
imports and socket opening excluded, as fping's are negligible).
"""

from __future__ import annotations

import asyncio
import json
import resource
import sys
from pathlib import Path

from collectors.icmp import IcmpCollector
from netmon.config.loader import load_data
from netmon.scheduler import Scheduler
from netmon.state import StateStore


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _split() -> tuple[float, float]:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime, usage.ru_stime


async def main(addresses: list[str], seconds: int) -> dict[str, float]:
    inventory = load_data(
        {
            "defaults": {"icmp": {"interval": "1s", "timeout": "800ms", "window": seconds + 10}},
            "targets": [{"id": f"t{i}", "address": a} for i, a in enumerate(addresses)],
        }
    )
    store = StateStore()
    store.apply_inventory(inventory)
    collector = IcmpCollector()
    await collector.start()
    scheduler = Scheduler(store=store, collectors={"icmp": collector}, max_concurrency=4096)
    started = _cpu()
    split = _split()
    scheduler.apply(inventory)

    def probes_done() -> int:
        return min(s.icmp.sent_total if s.icmp else 0 for s in store.targets.values())

    # Sleep through the run and only then poll, so the harness's own wake-ups stay out of
    # the CPU figure.
    await asyncio.sleep(seconds - 0.5)
    while probes_done() < seconds:
        await asyncio.sleep(0.05)
    await scheduler.stop()
    cpu = _cpu() - started
    user, system = (a - b for a, b in zip(_split(), split, strict=True))
    await collector.close()
    sent = sum(s.icmp.sent_total for s in store.targets.values() if s.icmp)
    received = sum(s.icmp.received_total for s in store.targets.values() if s.icmp)
    return {"sent": sent, "received": received, "cpu_seconds": cpu, "user": user, "system": system}


if __name__ == "__main__":
    address_list = Path(sys.argv[1]).read_text().split()
    print(json.dumps(asyncio.run(main(address_list, int(sys.argv[2])))))

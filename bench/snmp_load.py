"""Child process of the SNMP benchmark: netmon's SnmpCollector polling one agent N times at once.

Usage: python -m bench.snmp_load ADDRESS PORT TARGETS v2c|v3 COMMUNITY V3_JSON
Prints JSON: varbinds received, CPU seconds and wall seconds of the polling (imports, engine
construction and a warm-up poll excluded). After the warm-up poll the objects alive are moved out
of the garbage collector's sight (`freeze_long_lived`, as `netmon run` does after start-up), so
the figure is the collector's as the service runs it: without that, the collections that scan
every imported module's objects again cost ~14 % more CPU per varbind (issue 17, measured
2026-12-05: 4.9-5.2 against 4.3-4.5 µs).

A 7th argument, "nofreeze", measures without it.
"""

from __future__ import annotations

import asyncio
import json
import resource
import sys
import time

from collectors.snmp.collector import SnmpCollector
from collectors.snmp.settings import SnmpSettings
from netmon.credentials import SnmpCredential
from netmon.model import ProbeTarget
from netmon.service import freeze_long_lived

V3_PROTOCOLS = {"SHA-256": "SHA256", "SHA": "SHA", "AES": "AES128", "MD5": "MD5", "DES": "DES"}


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def main(address: str, port: int, targets: int, mode: str, community: str,
               v3: dict[str, str], freeze: bool = True) -> dict[str, float]:  # fmt: skip
    if mode == "v3":
        credential = SnmpCredential.model_validate({
            "snmp_version": "3", "user": v3["user"],
            "auth_protocol": V3_PROTOCOLS[v3["auth"]], "auth_key": v3["auth_key"],
            "priv_protocol": V3_PROTOCOLS[v3["priv"]], "priv_key": v3["priv_key"],
        })  # fmt: skip
    else:
        credential = SnmpCredential.model_validate({"community": community})
    settings = SnmpSettings(credential="c", port=port, timeout=10, retries=1)
    collector = SnmpCollector()
    await collector.start()
    probe_targets = [
        ProbeTarget(id=f"t{i}", address=address, credentials={"c": credential})
        for i in range(targets)
    ]
    await collector.collect(probe_targets[0], settings)  # warm-up: engine, engine-id discovery
    if freeze:
        freeze_long_lived()
    varbinds_before, cpu_before, started = collector.varbinds_received, _cpu(), time.monotonic()
    samples = await asyncio.gather(*(collector.collect(t, settings) for t in probe_targets))
    wall, cpu = time.monotonic() - started, _cpu() - cpu_before
    varbinds = collector.varbinds_received - varbinds_before
    await collector.close()
    assert all(sample.ok and sample.reason is None for sample in samples), "a poll failed"
    return {"varbinds": varbinds, "cpu_seconds": cpu, "wall_seconds": wall}


if __name__ == "__main__":
    address, port, targets, mode, community, v3 = sys.argv[1:7]
    freeze = sys.argv[7:8] != ["nofreeze"]
    print(json.dumps(asyncio.run(main(address, int(port), int(targets), mode, community,
                                      json.loads(v3), freeze))))  # fmt: skip

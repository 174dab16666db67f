"""Registrar poll benchmark: one `kamailio` probe poll of a registrar with 215 registered AoRs.

A real Kamailio 5.6 registrar (tests/registrar_peer.py: usrloc, registrar, digest auth, the
shipped deploy/kamailio/netmon-registrar.cfg) and one baresip with 215 accounts, each
REGISTERing with its password, as the ~215 rooms would. Once Kamailio lists all 215 AoRs, netmon's
collector polls it `--polls` times (ul.dump and htable.dump regfail on one kept-alive
connection, as every poll runs): the wall time of each poll, the CPU seconds of this process
(the collector: HTTP, JSON decoding, parsing) and of Kamailio's processes per poll, and the
size of the ul.dump answer. The CPU share at the default interval (15 s) is the figure that
counts against issue 15's budget.

Run with `python -m bench.registrar_bench` (no root needed). Plain figures depend on the
machine and on what else runs on it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import statistics
import tempfile
import time
import urllib.request
from dataclasses import asdict, dataclass
from pathlib import Path

from rich.console import Console
from rich.table import Table

from collectors.codec_settings import KamailioSettings
from collectors.registrar.kamailio import KamailioCollector
from netmon.model import ProbeTarget
from tests.helpers import wait_until
from tests.registrar_peer import KamailioRegistrar
from tests.sip_peers import Baresip, _children, registering

console = Console()
ENDPOINTS = 215


@dataclass
class Result:
    aors: int
    polls: int
    answer_bytes: int
    wall_ms_median: float
    wall_ms_p95: float
    netmon_cpu_ms_per_poll: float
    kamailio_cpu_ms_per_poll: float
    netmon_cpu_share_at_15s: float


def _own_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _tree_cpu(pid: int) -> float:
    """CPU seconds of a process and its children (Kamailio's workers), from /proc."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for each in (pid, *_children(pid)):
        try:
            fields = Path(f"/proc/{each}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / ticks  # utime, stime
    return total


def _answer_bytes(url: str) -> int:
    body = b'{"jsonrpc":"2.0","method":"ul.dump","id":1}'
    request = urllib.request.Request(url, data=body)  # noqa: S310
    with urllib.request.urlopen(request, timeout=5) as answer:  # noqa: S310
        return len(answer.read())


async def poll(registrar: KamailioRegistrar, polls: int) -> tuple[list[float], float, float]:
    """Wall seconds of each poll, and CPU seconds per poll of netmon and of Kamailio."""
    collector = KamailioCollector()
    await collector.start()
    target = ProbeTarget("registrar", "127.0.0.1")
    settings = KamailioSettings(url=registrar.rpc_url)
    try:
        seen = await collector.collect(target, settings)  # connect once, warm up
        assert len({c.aor for c in seen.contacts}) == ENDPOINTS, len(seen.contacts)
        walls = []
        cpu, kamailio_cpu = _own_cpu(), _tree_cpu(registrar.process.pid)
        for _ in range(polls):
            started = time.perf_counter()
            seen = await collector.collect(target, settings)
            walls.append(time.perf_counter() - started)
            assert len(seen.contacts) == ENDPOINTS
        cpu = (_own_cpu() - cpu) / polls
        kamailio_cpu = (_tree_cpu(registrar.process.pid) - kamailio_cpu) / polls
    finally:
        await collector.close()
    return walls, cpu, kamailio_cpu


def run(polls: int) -> Result:
    with tempfile.TemporaryDirectory(prefix="registrar-bench-") as tmp:
        users = {f"room-{i:03d}": f"pw-{i:03d}" for i in range(ENDPOINTS)}
        registrar = KamailioRegistrar(Path(tmp) / "kamailio", users=users)
        lines = [registering(u, registrar.port, p, expires=600) for u, p in users.items()]
        agent = Baresip(Path(tmp) / "baresip", user="room-000", accounts=lines)
        try:
            wait_until(
                lambda: len(registrar.aors()) == ENDPOINTS,
                timeout=60,
                what=f"{ENDPOINTS} AoRs registered",
                showing=lambda: len(registrar.aors()),
            )
            size = _answer_bytes(registrar.rpc_url)
            walls, cpu, kamailio_cpu = asyncio.run(poll(registrar, polls))
        finally:
            agent.stop()
            registrar.stop()
    walls.sort()
    return Result(
        aors=ENDPOINTS,
        polls=polls,
        answer_bytes=size,
        wall_ms_median=statistics.median(walls) * 1000,
        wall_ms_p95=walls[int(0.95 * (len(walls) - 1))] * 1000,
        netmon_cpu_ms_per_poll=cpu * 1000,
        kamailio_cpu_ms_per_poll=kamailio_cpu * 1000,
        netmon_cpu_share_at_15s=cpu / 15.0,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--polls", type=int, default=200)
    result = run(parser.parse_args().polls)
    table = Table(title=f"one kamailio poll, {result.aors} AoRs registered ({result.polls} polls)")
    for column in ("ul.dump answer", "wall median", "wall p95", "netmon CPU/poll",
                   "kamailio CPU/poll", "netmon CPU share at 15 s"):  # fmt: skip
        table.add_column(column, justify="right")
    table.add_row(
        f"{result.answer_bytes / 1024:.0f} KiB",
        f"{result.wall_ms_median:.1f} ms",
        f"{result.wall_ms_p95:.1f} ms",
        f"{result.netmon_cpu_ms_per_poll:.2f} ms",
        f"{result.kamailio_cpu_ms_per_poll:.2f} ms",
        f"{result.netmon_cpu_share_at_15s * 100:.3f} %",
    )
    console.print(table)
    out = Path("bench/results")
    out.mkdir(parents=True, exist_ok=True)
    (out / f"registrar-{time.strftime('%Y%m%dT%H%M%S')}.json").write_text(
        json.dumps(asdict(result), indent=2)
    )


if __name__ == "__main__":
    main()

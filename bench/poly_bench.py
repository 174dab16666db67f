"""Poly REST status polling: the CPU netmon spends polling simulated Poly codecs.

The codecs (netmon_lab/poly_sim.py, half VideoOS, half Group Series) run in a child process,
so this process's CPU is the collector's alone. One `PolyCollector` polls every codec once per
round, as the scheduler does every 30 s (the rounds here follow one another at once: CPU per
poll does not depend on the gap, as long as the kept connections stay open, which they do
for KEEPALIVE seconds). The first round logs in and opens the connections; the figure is the
mean of the rounds after it. Each round is timed once with the GETs of a poll one after the
other and once all at once (`collectors.poly.CONCURRENT`), over HTTP and over HTTPS.

Prints CPU milliseconds per round and per codec poll, and the share of one core that polling
every 30 s costs, for the codecs here and scaled to 215. Run: `python -m bench.poly_bench`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console
from rich.table import Table

import collectors.poly as poly
from collectors.codec_settings import PolySettings
from netmon.credentials import ApiCredential, Secret
from netmon.model import ProbeTarget

console = Console(width=120)
PASSWORD = "bench-password-4d1f"  # noqa: S105 - the simulated codecs' own
INTERVAL = 30.0
FLEET = 215


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def _serve(count: int, cert_dir: str | None) -> None:
    """The child: `count` codecs, their ports as one JSON line on stdout, until stdin closes."""
    import ssl

    from netmon_lab.codec_state import CodecState
    from netmon_lab.poly_sim import GROUP_SERIES, VIDEOOS, PolySim

    context = None
    if cert_dir is not None:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(Path(cert_dir) / "device.pem", Path(cert_dir) / "device.key")
    sim = PolySim()
    await sim.start()
    ports = []
    for index in range(count):
        state = CodecState(
            model="Studio X50", software="3.14.1", serial=f"8L{index:012d}", sip_uri="r@lab"
        )
        api = VIDEOOS if index % 2 == 0 else GROUP_SERIES
        codec = await sim.add(state, api=api, password=PASSWORD, ssl_context=context)
        ports.append(codec.port)
    print(json.dumps(ports), flush=True)
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, sys.stdin.read)
    await sim.close()


@dataclass
class Row:
    scheme: str
    concurrent: bool
    codecs: int
    cpu_ms_per_round: float
    wall_ms_per_round: float

    @property
    def core_share_30s(self) -> float:
        return self.cpu_ms_per_round / 1000 / INTERVAL

    @property
    def core_share_fleet(self) -> float:
        return self.core_share_30s * FLEET / self.codecs


async def _measure(ports: list[int], scheme: str, concurrent: bool, rounds: int) -> Row:
    poly.CONCURRENT = concurrent
    collector = poly.PolyCollector()
    await collector.start()
    credential = {"poly": ApiCredential(user="admin", password=Secret(PASSWORD))}
    jobs = [
        (
            ProbeTarget(id=f"room-{port}", address="127.0.0.1", credentials=credential),
            PolySettings(scheme=scheme, port=port, credential="poly", verify_tls=False),
        )
        for port in ports
    ]

    async def one_round() -> None:
        results = await asyncio.gather(
            *(collector.collect(target, settings) for target, settings in jobs),
            return_exceptions=True,
        )
        failed = [r for r in results if isinstance(r, BaseException)]
        if failed:
            raise RuntimeError(f"{len(failed)} polls failed, first: {failed[0]!r}")

    try:
        await one_round()  # logins, connections, TLS handshakes
        cpu, wall = _cpu(), time.perf_counter()
        for _ in range(rounds):
            await one_round()
        cpu, wall = _cpu() - cpu, time.perf_counter() - wall
    finally:
        await collector.close()
    return Row(scheme, concurrent, len(ports), cpu * 1000 / rounds, wall * 1000 / rounds)


def _child(count: int, cert_dir: str | None) -> tuple[subprocess.Popen[str], list[int]]:
    command = [sys.executable, "-m", "bench.poly_bench", "--serve", str(count)]
    if cert_dir is not None:
        command += ["--cert-dir", cert_dir]
    child = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert child.stdout is not None
    ports: list[int] = json.loads(child.stdout.readline())
    return child, ports


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--codecs", type=int, default=70)
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--serve", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--cert-dir", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve is not None:
        asyncio.run(_serve(args.serve, args.cert_dir))
        return
    from tests.test_http_probe import make_certificate

    rows: list[Row] = []
    with tempfile.TemporaryDirectory() as directory:
        make_certificate(Path(directory))
        for scheme in ("http", "https"):
            child, ports = _child(args.codecs, directory if scheme == "https" else None)
            try:
                for concurrent in (False, True, False, True):
                    rows.append(asyncio.run(_measure(ports, scheme, concurrent, args.rounds)))
            finally:
                assert child.stdin is not None
                child.stdin.close()
                child.wait(timeout=30)
    table = Table(title=f"Poly status polls, {args.codecs} codecs, {args.rounds} rounds each")
    for column in ("scheme", "GETs", "CPU ms/round", "CPU ms/poll", "wall ms/round"):
        table.add_column(column, justify="right")
    table.add_column("core @30s", justify="right")
    table.add_column(f"core @30s, {FLEET}", justify="right")
    for row in rows:
        table.add_row(
            row.scheme,
            "concurrent" if row.concurrent else "sequential",
            f"{row.cpu_ms_per_round:.1f}",
            f"{row.cpu_ms_per_round / row.codecs:.2f}",
            f"{row.wall_ms_per_round:.0f}",
            f"{row.core_share_30s:.3%}",
            f"{row.core_share_fleet:.3%}",
        )
    console.print(table)
    console.print(f"(pid {os.getpid()}; the codecs ran in a child process)")


if __name__ == "__main__":
    main()

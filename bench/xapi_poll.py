"""What polling Cisco codecs over xAPI costs netmon: CPU per poll of the xapi collector against
70 simulated codecs (netmon_lab.cisco_sim in its own process), for the whole status in one
request and for one request per status path (what the collector does; the other is the
alternative it was chosen against). `python -m bench.xapi_poll [--codecs 70] [--rounds 3]`
prints the figures.

CPU is this process's (`time.process_time`): the collector, aiohttp and the parser; best of
`rounds` rounds of one poll of every codec, after a first round that begins the sessions.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import time
from xml.etree.ElementTree import Element

from collectors.codec_settings import XAPI_PATHS, XapiSettings
from collectors.xapi import XapiCollector, _Codec
from netmon.credentials import ApiCredential, Secret
from netmon.model import ProbeTarget
from netmon_lab import cisco_xml
from netmon_lab.codec_state import CodecState

PASSWORD = "bench-Pa55"  # noqa: S105 - the simulated codecs' own


class WholeStatus(XapiCollector):
    """The alternative: the whole status in one getxml."""

    async def _status(
        self, codec: _Codec, credential: ApiCredential, settings: XapiSettings
    ) -> Element:
        root = await self._get(codec, credential, "/Status", settings.max_body)
        assert root is not None
        return root


async def measure(collector: XapiCollector, codecs: int, rounds: int) -> tuple[float, float, str]:
    sim = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "netmon_lab.cisco_sim", "--codecs", str(codecs),
        "--password", PASSWORD, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
    )  # fmt: skip
    assert sim.stdout is not None
    assert sim.stdin is not None
    ports = json.loads(await sim.stdout.readline())
    credential = ApiCredential(user="admin", password=Secret(PASSWORD))
    polls = [
        (
            ProbeTarget(id=f"room-{n:02d}", address="127.0.0.1", credentials={"api": credential}),
            XapiSettings(scheme="http", credential="api", timeout=10.0, port=port),
        )
        for n, port in enumerate(ports)
    ]
    await collector.start()
    try:
        walls = []
        for target, settings in polls:  # one by one: how long one poll takes on loopback
            began = time.perf_counter()
            await collector.collect(target, settings)
            walls.append(time.perf_counter() - began)
        wall = statistics.median(walls[1:])
        best = float("inf")
        for _ in range(rounds):
            began = time.process_time()
            await asyncio.gather(*(collector.collect(t, s) for t, s in polls))
            best = min(best, (time.process_time() - began) / codecs)
    finally:
        await collector.close()
        sim.stdin.close()
        counts = (await sim.stdout.readline()).decode()
        await sim.wait()
    return best, wall, counts.strip()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--codecs", type=int, default=70)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    state = CodecState(model="Cisco Webex Codec Pro", software="ce9.15.3.17", serial="FOC1")
    whole = len(cisco_xml.render(state).encode())
    paths = sum(len(cisco_xml.render(state, path).encode()) for path in XAPI_PATHS)
    for label, collector, size in (
        (f"per path, {len(XAPI_PATHS)} requests", XapiCollector(), paths),
        ("whole status, 1 request", WholeStatus(), whole),
    ):
        cpu, wall, counts = await measure(collector, args.codecs, args.rounds)
        print(
            f"{label:24} {size / 1024:4.0f} KB a poll, {wall * 1e3:4.1f} ms a poll (median, "
            f"sessions begun), CPU per poll {cpu * 1e3:4.1f} ms; "
            f"{args.codecs} codecs every 30 s: {cpu * args.codecs / 30 * 100:.2f} % of a core "
            f"(simulator saw {counts})"
        )


if __name__ == "__main__":
    asyncio.run(main())

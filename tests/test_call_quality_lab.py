"""Call quality end to end with real calls: baresip user agents call the lab's hub through
Kamailio and the lab's media relay; a real `netmon run` reads each room's RTCP figures over
the room's baresip control socket (the `baresip` probe) and pings each room's site in a network
namespace of the test's own, whose responder loses what the test says.

Three rooms, as a NOC would meet them in one meeting:
- `clean`: a clean path and a clean call;
- `wan`: 5 % loss on its path, both ways: the call's RTP (the relay) and netmon's pings (the
  namespace's responder) lose alike;
- `lan`: 10 % loss on the call's RTP only (the room's own LAN): netmon's pings are clean.
"""

from __future__ import annotations

import asyncio
import math
import re
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from collectors.baresip import BaresipCollector
from collectors.baresip_ctrl import BaresipControl
from collectors.codec_settings import BaresipSettings
from netmon.model import ProbeTarget, RegistrationState
from netmon_lab.calls import CallLab
from tests.helpers import NetmonProcess, metric_value, samples, write_config
from tests.lab.netlab import NetLab
from tests.sip_peers import program

pytestmark = pytest.mark.peer

HANG = 120.0  # a hang guard only: the alerts' own `for` decides how soon
WAN_LOSS = 0.05
LAN_LOSS = 0.10
PTIME = 0.010  # s: 100 packets a second, so one 10 s poll interval holds ~1,000
Z_999 = 3.29  # two-sided 99.9 %: the loss check fails by chance once in 1,000 runs


async def _get(session: aiohttp.ClientSession, url: str) -> str:
    async with session.get(url, timeout=aiohttp.ClientTimeout(total=5)) as answer:
        return await answer.text()


async def _firing(session: aiohttp.ClientSession, netmon: NetmonProcess) -> dict[Any, Any]:
    async with session.get(netmon.url + "/api/v1/alerts") as answer:
        listing = await answer.json()
    return {
        (alert["alertname"], alert["target"]): alert
        for alert in listing["alerts"]
        if alert["state"] == "firing"
    }


async def test_a_lossy_path_lowers_the_rooms_mos_and_its_alert_names_the_wan(
    netlab: NetLab, tmp_path: Path
) -> None:
    program("kamailio"), program("baresip")  # missing ones fail loudly: make test installs them
    sites = {
        "clean": netlab.add_host(),
        "wan": netlab.add_host(loss=WAN_LOSS, seed=16),
        "lan": netlab.add_host(),
    }
    async with CallLab(list(sites), watch_rooms=False, ptime=int(PTIME * 1000), seed=16) as lab:
        lab.set_impairment("wan", loss=WAN_LOSS)
        lab.set_impairment("lan", loss=LAN_LOSS)
        config = write_config(
            tmp_path / "netmon.yaml",
            {
                "targets": [
                    {
                        "id": room,
                        "address": host.address,
                        "vendor": "sip",
                        "probes": {
                            # 4 pings a second: enough in a minute to tell a clean path from
                            # one losing half the call's share (the hint's binomial test).
                            "icmp": {"interval": "250ms", "timeout": "200ms"},
                            "baresip": {"address": "127.0.0.1", "port": lab.control_port(room)},
                        },
                    }
                    for room, host in sites.items()
                ]
            },
        )
        netmon = await asyncio.to_thread(NetmonProcess, config)
        try:
            await lab.start_meeting()
            async with aiohttp.ClientSession() as session:
                metrics = netmon.url + "/metrics"

                async def mos(room: str) -> float | None:
                    text = await _get(session, metrics)
                    return metric_value(text, "netmon_call_audio_mos", target=room, direction="rx")

                scores: dict[str, float] = {}

                async def all_scored() -> bool:
                    for room in sites:
                        value = await mos(room)
                        if value is None:
                            return False
                        scores[room] = value
                    return True

                await _until_async(all_scored, "every room's MOS on /metrics")
                # G.711 as baresip decodes it (no concealment: its plc module is not loaded).
                assert scores["clean"] >= 4.0
                assert scores["wan"] < scores["clean"] - 1.0
                assert scores["lan"] < scores["clean"] - 1.0

                text = await _get(session, metrics)
                loss = [
                    value
                    for labels, value in samples(text, "netmon_call_stream_loss_ratio")
                    if labels["target"] == "wan"
                    and (labels["direction"], labels["media"]) == ("rx", "audio")
                ]
                assert len(loss) == 1, text
                # The relay drops 5 %; one interval holds at least ~500 packets (one RTCP
                # report apart): the 99.9 % binomial interval around 5 % at that count.
                tolerance = Z_999 * math.sqrt(WAN_LOSS * (1 - WAN_LOSS) / 500)
                assert loss[0] == pytest.approx(WAN_LOSS, abs=tolerance)

                async def degraded() -> bool:
                    firing = await _firing(session, netmon)
                    return all(("CallQualityDegraded", room) in firing for room in ("wan", "lan"))

                await _until_async(degraded, "CallQualityDegraded for wan and lan")
                firing = await _firing(session, netmon)
                wan = firing["CallQualityDegraded", "wan"]["summary"]
                assert re.search(r"\(WAN path: netmon's pings lose [0-9.]+% too\)$", wan), wan
                assert firing["CallQualityDegraded", "lan"]["summary"].endswith(
                    "(room LAN / endpoint: netmon's path to the site is clean)"
                )
                assert not any(target == "clean" for _, target in firing)

            await lab.stop_meeting()
            async with aiohttp.ClientSession() as session:

                async def streams_gone() -> bool:
                    text = await _get(session, metrics)
                    return not samples(text, "netmon_call_audio_mos")

                await _until_async(streams_gone, "the ended calls' series to vanish")
        finally:
            await asyncio.to_thread(netmon.stop)


async def _until_async(condition: Callable[[], Awaitable[bool]], what: str) -> None:
    """Poll `condition` (an HTTP read of netmon) until it holds; fail naming `what`."""
    try:
        async with asyncio.timeout(HANG):
            while not await condition():
                await asyncio.sleep(0.2)
    except TimeoutError:
        raise AssertionError(f"not within {HANG:g}s: {what}") from None


async def test_the_baresip_probe_reads_a_room_again_after_its_socket_was_taken_over() -> None:
    program("kamailio"), program("baresip")
    async with CallLab(["r1"], watch_rooms=False) as lab:
        collector = BaresipCollector()
        target = ProbeTarget(id="r1", address="127.0.0.1")
        settings = BaresipSettings(port=lab.control_port("r1"))
        try:
            idle = await collector.collect(target, settings)
            assert [r.state for r in idle.registrations] == [RegistrationState.REGISTERED]
            assert idle.calls == ()
            assert idle.streams == ()
            # Someone else opens the control socket: baresip hands it over, netmon's
            # connection hears nothing more and the next poll must open it again.
            intruder = await BaresipControl.connect(lab.control_port("r1"))
            await intruder.command("reginfo")
            await intruder.close()
            await lab.start_meeting()

            async def streaming() -> bool:
                status = await collector.collect(target, settings)
                return bool(status.calls) and any(s.direction == "rx" for s in status.streams)

            await _until_async(streaming, "r1's call and its streams read again")
            status = await collector.collect(target, settings)
            assert [(c.status, c.remote.split("@")[0]) for c in status.calls] == [
                ("connected", "sip:hub")
            ]
            assert {(s.media, s.direction, s.codec) for s in status.streams} == {
                ("audio", "rx", "PCMU"),
                ("audio", "tx", "PCMU"),
            }
            await lab.stop_meeting()
            ended = await collector.collect(target, settings)
            assert ended.calls == ()
            assert ended.streams == ()
        finally:
            await collector.close()

"""Real calls: baresip user agents registered to the lab's Kamailio, calling through the lab's
media relay, and the RTCP statistics they report over their control sockets.

Each test owns a `CallLab` (kamailio, the relay, a baresip for the hub and each room, on
ephemeral loopback ports and 127.0.1.x addresses); it waits on the user agents' events, never
on a clock, and checks that no process is left after.
"""

from __future__ import annotations

import asyncio
import math
import os
from collections.abc import AsyncIterator, Callable

import pytest

from collectors.baresip_stats import StreamStats
from netmon_lab.calls import HUB, CallLab, video_available
from tests.sip_peers import program

pytestmark = pytest.mark.peer

# Two-sided 99.9 % normal quantile: a test built on it fails by chance once in 1,000 runs.
Z_999 = 3.29
LOSS = 0.05
# Enough audio packets that the binomial 99.9 % interval is narrow: at 10 ms packets (100 per
# second) 1,500 take ~15 s; n = 1,500 gives ± 3.29·√(0.05·0.95/1500) = ± 1.85 points.
PACKETS = 1500


def _group_alive(pid: int) -> bool:
    try:
        os.killpg(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.fixture
async def lab() -> AsyncIterator[CallLab]:
    program("kamailio"), program("baresip")  # missing ones fail loudly: make test installs them
    async with CallLab(["r1", "r2"], video=video_available(), ptime=10, seed=16) as lab:
        yield lab
    left = [p.pid for p in lab.processes if _group_alive(p.pid)]
    assert left == [], f"processes (or their workers) left running: {left}"


def stream(stats: list[StreamStats], media: str, direction: str, call: str = "") -> StreamStats:
    found = [s for s in stats if (s.media, s.direction) == (media, direction) and call in s.call_id]
    assert len(found) == 1, stats
    return found[0]


def flowing(media: str, packets: int, call: str = "") -> Callable[[list[StreamStats]], bool]:
    def check(stats: list[StreamStats]) -> bool:
        return any(
            s.media == media and s.direction == "rx" and s.packets >= packets and call in s.call_id
            for s in stats
        )

    return check


async def test_a_clean_g711_call_shows_packets_both_ways_and_no_loss(lab: CallLab) -> None:
    await lab.start_meeting(["r1"])
    assert lab.in_call() == ["r1"]
    stats = await lab.until("r1", flowing("audio", 200))
    call = stream(stats, "audio", "rx").call_id
    hub = await lab.until(HUB, flowing("audio", 200, call))
    # The hub's next report carries r1's receiver report about the hub's packets, and back.
    stats = await lab.until("r1", lambda s: stream(s, "audio", "tx").packets >= 200)
    for side in (stats, [s for s in hub if s.call_id == call]):
        rx, tx = stream(side, "audio", "rx"), stream(side, "audio", "tx")
        assert rx.codec == "PCMU" or side is not stats
        assert rx.packets >= 200
        assert tx.packets >= 200
        assert rx.loss_ratio <= 0.005, rx
        assert 0 <= rx.jitter < 0.05
    if lab.video:
        video = await lab.until("r1", flowing("video", 50))
        assert stream(video, "video", "rx").codec == "VP8"
        assert stream(video, "video", "rx").loss_ratio <= 0.005
    # Every packet went through the relay, both ways: the SDPs named it, not the peers.
    host = lab.host("r1")
    assert lab.relay.counters(host, "inbound").forwarded >= 200
    assert lab.relay.counters(host, "outbound").forwarded >= 200
    assert lab.relay.counters(host, "inbound").dropped == 0


async def test_loss_injected_toward_one_room_is_what_that_room_measures(lab: CallLab) -> None:
    lab.set_impairment("r1", loss=LOSS, direction="inbound")
    await lab.start_meeting()
    stats = await lab.until("r1", flowing("audio", PACKETS), timeout=60)
    rx = stream(stats, "audio", "rx")
    n = rx.expected
    tolerance = Z_999 * math.sqrt(LOSS * (1 - LOSS) / n)
    assert abs(rx.loss_ratio - LOSS) <= tolerance, (rx.loss_ratio, n, tolerance)
    # The relay dropped at least what r1 counts missing (it has counted on since the report).
    relay = lab.relay.counters(lab.host("r1"), "inbound")
    assert 0 < rx.lost <= relay.dropped
    # Nothing else lost: r1's own packets, and the other room both ways.
    assert lab.relay.counters(lab.host("r1"), "outbound").dropped == 0
    clean = await lab.until("r2", flowing("audio", 500))
    assert stream(clean, "audio", "rx").lost == 0
    hub = lab.stats(HUB)
    assert all(s.lost == 0 for s in hub if s.direction == "rx"), hub


async def test_hanging_up_ends_the_calls_and_their_streams(lab: CallLab) -> None:
    await lab.start_meeting()
    await lab.until("r2", flowing("audio", 100))
    assert lab.relay.calls == 2
    await lab.stop_meeting()
    assert lab.in_call() == []
    assert lab.stats("r1") == lab.stats("r2") == []
    # The BYE passed Kamailio, which told the relay: no ports held for the ended calls.
    async with asyncio.timeout(5):
        while lab.relay.calls:
            await asyncio.sleep(0.05)
    assert lab.relay.ports() == 0

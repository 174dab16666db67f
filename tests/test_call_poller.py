"""A call's media read every `call_interval` while the room is in a call, and never otherwise
(netmon/call_poller.py): on the fake clock with a collector of the test's own (the grid, the
start and end of polling, failures, reloads, shutdown), then against the lab's Cisco and Poly
simulators (the media request counted at the codec, the streams in the store and on /metrics
changing between two 30 s status polls)."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator
from typing import Any, ClassVar

import pytest
from pydantic import ValidationError

from collectors.base import CollectError, CollectorSettings, MediaCollector
from collectors.codec_settings import PolySettings, XapiSettings
from collectors.poly import PolyCollector
from collectors.xapi import XapiCollector
from netmon.call_poller import CallPoller, stats_name
from netmon.credentials import ApiCredential, Secret
from netmon.exporter_calls import call_families
from netmon.inventory import Inventory, Target
from netmon.model import (
    Call,
    CallMedia,
    EndpointStatus,
    MediaStream,
    Observation,
    ProbeTarget,
)
from netmon.state import StateStore, TargetState
from netmon_lab.cisco_sim import CiscoSim
from netmon_lab.codec_state import CodecState, SimCall
from netmon_lab.poly_sim import VIDEOOS, PolySim
from tests.fake_clock import FakeClock
from tests.helpers import until

PASSWORD = "Mat-khau-call-5521"  # noqa: S105 - the simulated codecs'
ROOM_ID = "hall"


def _target(settings: CollectorSettings, *, probe: str = "xapi", port: int = 0) -> Target:
    return Target(
        id=ROOM_ID,
        address="127.0.0.1",
        kind="endpoint",
        name="Provincial hall",
        site="",
        district="Center",
        group="",
        labels=(),
        probes=((probe, settings),),
        credentials=(("codec", ApiCredential(user="admin", password=Secret(PASSWORD))),),
        vendor="cisco",
    )


def _inventory(*targets: Target) -> Inventory:
    return Inventory(config=None, defaults={}, targets={t.id: t for t in targets})  # type: ignore[arg-type]


def _stream(loss: float) -> MediaStream:
    return MediaStream(
        call="1", direction="rx", media="audio", codec="G711Mu", loss_ratio=loss, jitter=0.004,
        bitrate=64000, channel="1",
    )  # fmt: skip


def _status(*, in_call: bool, loss: float = 0.0, ok: bool = True) -> Observation:
    if not ok:
        return Observation(ROOM_ID, "xapi", ok=False, duration=5.0, reason="timeout")
    return EndpointStatus(
        target=ROOM_ID,
        collector="xapi",
        ok=True,
        duration=0.05,
        vendor="cisco",
        calls=(Call("connected", "sip", "outgoing", "so-y-te@conf.lab"),) if in_call else (),
        streams=(_stream(loss),) if in_call else (),
    )


class FakeMedia:
    """A status collector whose media reads the test sees and steers."""

    name: ClassVar[str] = "xapi"
    settings_model: ClassVar[type[CollectorSettings]] = XapiSettings

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock
        self.reads: list[float] = []  # when each media read began
        self.loss = 0.02
        self.fail: str | None = None
        self.hang = False

    async def start(self) -> None:
        pass

    async def close(self) -> None:
        pass

    async def collect(self, target: ProbeTarget, settings: CollectorSettings) -> Observation:
        raise AssertionError("the status poll is the test's, not the poller's")

    async def collect_media(self, target: ProbeTarget, settings: CollectorSettings) -> CallMedia:
        self.reads.append(self.clock())
        if self.hang:
            await asyncio.Event().wait()
        if self.fail is not None:
            raise CollectError(self.fail, "the codec refused the connection")
        return CallMedia(
            target=target.id, collector="xapi", ok=True, duration=0.01,
            streams=(_stream(self.loss),),
        )  # fmt: skip


class StatusOnly:
    """A collector without `collect_media` (as baresip's): the poller leaves it alone."""

    name: ClassVar[str] = "xapi"
    settings_model: ClassVar[type[CollectorSettings]] = XapiSettings

    async def start(self) -> None:
        pass

    async def close(self) -> None:
        pass

    async def collect(self, target: ProbeTarget, settings: CollectorSettings) -> Observation:
        raise AssertionError("not called here")


class Room:
    """A store with one room, a poller on the fake clock, and the test's collector."""

    def __init__(self, settings: XapiSettings | None = None, collector: Any = None) -> None:
        self.clock = FakeClock()
        self.store = StateStore()
        self.target = _target(settings or XapiSettings(credential="codec"))
        self.store.apply_inventory(_inventory(self.target))
        self.media = FakeMedia(self.clock)
        self.collectors = {"xapi": collector if collector is not None else self.media}
        self.poller = CallPoller(
            self.store, self.collectors, max_concurrency=4,
            clock=self.clock, sleep=self.clock.sleep,
        )  # fmt: skip
        self.heard: list[Observation] = []
        self.store.on_record(lambda _, observation: self.heard.append(observation))

    def status(self, **values: Any) -> None:
        self.store.record(_status(**values))

    @property
    def state(self) -> TargetState:
        return self.store.targets[ROOM_ID]

    def loss(self) -> float | None:
        status = self.state.status
        assert status is not None
        (stream,) = status.streams
        return stream.loss_ratio


@pytest.fixture
async def room() -> AsyncIterator[Room]:
    room = Room()
    try:
        yield room
    finally:
        await room.poller.stop()


# --- the settings ------------------------------------------------------------------------------


def test_call_interval_is_10_s_by_default_and_must_outlast_the_timeout() -> None:
    settings = XapiSettings(credential="codec")
    assert (settings.interval, settings.call_interval) == (30.0, 10.0)
    assert settings.media_interval() == 10.0
    assert (
        PolySettings(credential="codec", call_interval="5s", timeout="2s").media_interval() == 5.0
    )
    with pytest.raises(ValidationError, match="call_interval"):
        XapiSettings(credential="codec", timeout=10)
    # Not shorter than the status interval: the status polls read the media already.
    assert XapiSettings(credential="codec", interval=10).media_interval() is None
    assert XapiSettings(credential="codec", interval=10, timeout=8).media_interval() is None


# --- on the fake clock -------------------------------------------------------------------------


async def test_in_a_call_the_media_are_read_every_call_interval(room: Room) -> None:
    start = room.clock()
    room.status(in_call=True, loss=0.0)
    assert room.poller.polling() == {ROOM_ID}
    await room.clock.advance(9.9)
    assert room.media.reads == []  # the status read has just read them
    await room.clock.advance(0.1)
    assert room.media.reads == [start + 10]
    assert room.loss() == 0.02  # the fresh figure, in place of the status poll's
    room.media.loss = 0.07
    await room.clock.advance(10)
    assert room.media.reads == [start + 10, start + 20]  # on a grid: no drift
    assert room.loss() == 0.07
    await room.clock.advance(10)
    assert room.media.reads == [start + 10, start + 20]  # t = 30: the status poll's turn
    room.status(in_call=True, loss=0.01)
    assert room.loss() == 0.01
    await room.clock.advance(20)
    assert room.media.reads == [start + 10, start + 20, start + 40, start + 50]
    # The listeners (the alert engine) heard of each read; the status probe's state is the
    # status poll's alone.
    assert sum(isinstance(o, CallMedia) for o in room.heard) == 4
    assert room.state.probes["xapi"].duration == 0.05
    assert room.store.stats.collector_duration[stats_name("xapi")].count == 4
    assert room.poller.reads == 4


async def test_the_reads_follow_the_status_polls_and_go_on_without_them(room: Room) -> None:
    start = room.clock()
    room.status(in_call=True)
    await room.clock.advance(15)
    room.status(in_call=True)  # a status read at +15 (a readiness check's): the grid follows
    await room.clock.advance(20)
    assert room.media.reads == [start + 10, start + 25, start + 35]
    # The next status poll is due at +45: the read is left to it. It does not come (late):
    # the reads go on a call_interval after it was due.
    await room.clock.advance(30)
    assert room.media.reads == [start + 10, start + 25, start + 35, start + 55, start + 65]


async def test_a_room_not_in_a_call_has_no_media_read(room: Room) -> None:
    room.status(in_call=False)
    await room.clock.advance(120)
    assert room.media.reads == []
    assert room.poller.polling() == set()
    assert room.clock.sleeping == 0


async def test_the_end_of_the_call_stops_the_polling(room: Room) -> None:
    room.status(in_call=True)
    await room.clock.advance(10)
    assert len(room.media.reads) == 1
    room.status(in_call=True)  # still in the call: the same task goes on, on its grid
    await room.clock.advance(10)
    assert len(room.media.reads) == 2
    room.status(in_call=False)
    assert room.poller.polling() == set()
    await room.clock.advance(120)
    assert len(room.media.reads) == 2
    assert room.clock.sleeping == 0
    room.status(in_call=True)  # the next call polls again
    await room.clock.advance(10)
    assert len(room.media.reads) == 3


async def test_a_failed_status_read_stops_the_polling(room: Room) -> None:
    room.status(in_call=True)
    room.status(in_call=True, ok=False)
    assert room.poller.polling() == set()
    await room.clock.advance(60)
    assert room.media.reads == []


async def test_failed_reads_are_counted_and_change_nothing(room: Room) -> None:
    room.status(in_call=True, loss=0.01)
    room.media.fail = "refused"
    await room.clock.advance(20)
    assert len(room.media.reads) == 2
    assert room.store.stats.collector_errors[(stats_name("xapi"), "refused")] == 2
    assert room.loss() == 0.01  # the status poll's figures stand
    assert room.state.probes["xapi"].success  # the room's status is the status poll's word
    room.media.fail = None
    await room.clock.advance(10)
    room.status(in_call=True, loss=0.01)  # t = 30
    await room.clock.advance(10)
    assert room.loss() == 0.02


async def test_a_hanging_read_times_out_within_its_interval(room: Room) -> None:
    room.status(in_call=True)
    room.media.hang = True
    await room.clock.advance(10)
    assert len(room.media.reads) == 1
    room.media.hang = False  # for the reads to come: this one hangs on
    await room.clock.advance(10)  # the deadline: one call_interval
    assert room.store.stats.collector_errors[(stats_name("xapi"), "timeout")] == 1
    assert len(room.media.reads) == 2  # the next slot came on time
    assert room.loss() == 0.02


async def test_a_read_that_ends_after_the_call_is_not_taken(room: Room) -> None:
    room.status(in_call=True)
    room.media.hang = True
    await room.clock.advance(10)
    room.status(in_call=False)  # ends the task mid-read
    await room.clock.advance(10)
    assert room.state.status is not None
    assert room.state.status.streams == ()
    assert not room.store.record_media(
        CallMedia(target=ROOM_ID, collector="xapi", ok=True, duration=0.0, streams=(_stream(0.5),))
    )  # the store takes media only into a status that says the room is in a call


async def test_without_collect_media_or_a_shorter_call_interval_nothing_is_polled() -> None:
    plain = Room(collector=StatusOnly())
    assert not isinstance(StatusOnly(), MediaCollector)
    plain.status(in_call=True)
    assert plain.poller.polling() == set()
    slow = Room(XapiSettings(credential="codec", interval=10, timeout=5))
    slow.status(in_call=True)
    assert slow.poller.polling() == set()
    await slow.clock.advance(60)
    assert slow.media.reads == []


async def test_a_reload_restarts_with_new_settings_and_ends_removed_targets(room: Room) -> None:
    start = room.clock()
    room.status(in_call=True)
    await room.clock.advance(10)
    faster = _target(XapiSettings(credential="codec", call_interval=5, timeout=2))
    room.store.apply_inventory(_inventory(faster))
    room.poller.apply()
    assert room.poller.polling() == {ROOM_ID}
    await room.clock.advance(10)
    assert room.media.reads == [start + 10, start + 15, start + 20]
    room.store.apply_inventory(_inventory())
    room.poller.apply()
    assert room.poller.polling() == set()
    await room.clock.advance(60)
    assert len(room.media.reads) == 3
    assert room.clock.sleeping == 0


async def test_stop_cancels_every_task(room: Room) -> None:
    room.status(in_call=True)
    await room.clock.advance(10)
    await room.poller.stop()
    assert room.poller.polling() == set()
    assert room.clock.sleeping == 0
    room.status(in_call=True)  # a late status read starts nothing after stop
    assert room.poller.polling() == set()


# --- against the simulators ---------------------------------------------------------------------


MEDIA_LOCATION = "/Status/MediaChannels"
MEDIASTATS_PATH = "/rest/conferences/0/mediastats"


def _codec_state() -> CodecState:
    return CodecState(
        model="Cisco Webex Room Kit", software="ce11.9", serial="FOC2117N3HK",
        sip_uri="hall@conf.lab",
    )  # fmt: skip


class Live:
    """A room's status polled by hand every 30 s (as the scheduler does), its media by the
    poller: both on the fake clock, the HTTP on loopback in real time."""

    def __init__(self, collector: Any, settings: CollectorSettings, probe: str) -> None:
        self.clock = FakeClock()
        self.store = StateStore()
        self.target = _target(settings, probe=probe)
        self.store.apply_inventory(_inventory(self.target))
        self.collector = collector
        self.poller = CallPoller(
            self.store, {probe: collector}, max_concurrency=4,
            clock=self.clock, sleep=self.clock.sleep,
        )  # fmt: skip

    async def status_poll(self) -> None:
        settings = self.target.probes[0][1]
        async with asyncio.timeout(10):
            status = await self.collector.collect(self.target.probe_target, settings)
        self.store.record(status)

    async def media_poll(self, seconds: float = 10) -> None:
        """Let `seconds` pass on the fake clock, and the media read they start end."""
        before = self.poller.reads
        await self.clock.advance(seconds)
        await until(lambda: self.poller.reads == before + 1, what="the media read")

    def rx_audio_loss(self) -> float | None:
        streams = self.store.targets[ROOM_ID].status
        assert streams is not None
        (audio,) = [s for s in streams.streams if (s.direction, s.media) == ("rx", "audio")]
        return audio.loss_ratio

    def metric_loss(self) -> float:
        (family,) = [f for f in call_families(self.store) if f.name.endswith("loss_ratio")]
        (sample,) = [
            s for s in family.samples
            if (s.labels["direction"], s.labels["media"]) == ("rx", "audio")
        ]  # fmt: skip
        return float(sample.value)


@pytest.fixture
async def cisco() -> AsyncIterator[tuple[CiscoSim, XapiCollector]]:
    probe = XapiCollector()
    await probe.start()
    try:
        async with CiscoSim(password=PASSWORD) as sim:
            yield sim, probe
    finally:
        await probe.close()


async def test_a_cisco_room_in_a_call_has_its_media_read_every_10_s(
    cisco: tuple[CiscoSim, XapiCollector],
) -> None:
    sim, probe = cisco
    codec = await sim.add(_codec_state())
    settings = XapiSettings(scheme="http", port=codec.port, credential="codec")
    live = Live(probe, settings, "xapi")
    try:
        # Out of a call: status polls every 30 s, not one media request.
        for _ in range(3):
            await live.status_poll()
            await live.clock.advance(30)
        assert codec.locations[MEDIA_LOCATION] == 0
        assert live.poller.polling() == set()
        assert live.clock.sleeping == 0

        codec.state.calls.append(SimCall("so-y-te@conf.lab", rx_loss=0.01))
        await live.status_poll()  # t = 0: the call is found, its media read with the status
        assert codec.locations[MEDIA_LOCATION] == 1
        first = live.rx_audio_loss()
        assert first is not None
        assert 0 < first < 0.02
        codec.state.calls[0].rx_loss = 0.08
        await live.media_poll()  # t = 10: the media alone, one getxml
        assert codec.locations[MEDIA_LOCATION] == 2
        requests = dict(codec.locations)
        assert sum(requests.values()) == 2 + 4 * len(settings.paths)  # nothing else was asked
        loss = live.rx_audio_loss()
        assert loss is not None
        assert loss > 0.05
        assert live.metric_loss() == loss  # /metrics has it before the next status poll
        codec.state.calls[0].rx_loss = 0.03
        await live.media_poll()  # t = 20
        assert codec.locations[MEDIA_LOCATION] == 3
        loss = live.rx_audio_loss()
        assert loss is not None
        assert 0.02 < loss < 0.05

        await live.clock.advance(10)  # t = 30: the status poll's turn, no media read of its own
        assert codec.locations[MEDIA_LOCATION] == 3
        await live.status_poll()  # reads them
        assert codec.locations[MEDIA_LOCATION] == 4
        await live.media_poll()  # t = 40
        assert codec.locations[MEDIA_LOCATION] == 5

        codec.state.calls.clear()
        await live.media_poll()  # t = 50: the codec reports no media channels any more
        assert codec.locations[MEDIA_LOCATION] == 6
        status = live.store.targets[ROOM_ID].status
        assert status is not None
        assert status.streams == ()  # the call's series vanish before the next status poll
        await live.clock.advance(10)  # t = 60
        await live.status_poll()  # says the call is over
        assert live.poller.polling() == set()
        await live.clock.advance(60)
        assert codec.locations[MEDIA_LOCATION] == 6
        assert live.clock.sleeping == 0
    finally:
        await live.poller.stop()


@pytest.fixture
async def poly() -> AsyncIterator[tuple[PolySim, PolyCollector]]:
    probe = PolyCollector()
    await probe.start()
    sim = PolySim()
    await sim.start()
    try:
        yield sim, probe
    finally:
        await probe.close()
        await sim.close()


async def test_a_poly_room_in_a_call_has_its_media_read_every_10_s(
    poly: tuple[PolySim, PolyCollector],
) -> None:
    sim, probe = poly
    codec = await sim.add(dataclasses.replace(_codec_state(), model="Studio X50"),
                          api=VIDEOOS, password=PASSWORD)  # fmt: skip
    settings = PolySettings(scheme="http", port=codec.port, credential="codec", timeout=3)
    live = Live(probe, settings, "poly")
    try:
        await live.status_poll()
        await live.clock.advance(60)
        assert codec.paths[MEDIASTATS_PATH] == 0
        assert live.poller.polling() == set()

        codec.state.calls.append(SimCall("so-y-te@conf.lab", rx_loss=0.01))
        await live.status_poll()
        assert codec.paths[MEDIASTATS_PATH] == 1
        assert live.rx_audio_loss() == 0.01
        gets = codec.gets
        codec.state.calls[0].rx_loss = 0.06
        await live.media_poll()
        assert codec.paths[MEDIASTATS_PATH] == 2
        assert codec.gets == gets + 1  # the mediastats GET alone, on the kept login
        assert codec.logins == 1
        assert live.rx_audio_loss() == 0.06
        assert live.metric_loss() == 0.06
        codec.expire_sessions()  # a session lost between status polls: logged in again
        codec.state.calls[0].rx_loss = 0.04
        await live.media_poll()
        assert live.rx_audio_loss() == 0.04
        assert codec.logins == 2
        assert codec.paths[MEDIASTATS_PATH] == 4  # refused once, asked again after the login

        codec.state.calls.clear()
        await live.status_poll()
        assert live.poller.polling() == set()
        await live.clock.advance(60)
        assert codec.paths[MEDIASTATS_PATH] == 4
        assert live.clock.sleeping == 0
    finally:
        await live.poller.stop()


# --- wired into the service --------------------------------------------------------------------


async def test_the_service_polls_a_call_s_media_and_stops_cleanly(
    cisco: tuple[CiscoSim, XapiCollector],
) -> None:
    """netmon itself, in real time (short intervals): the poller is wired to the scheduler's
    status polls, reads while the call lasts, stops when it ends and at shutdown."""
    from netmon.config.loader import load_data
    from netmon.service import Service

    sim, _ = cisco
    codec = await sim.add(_codec_state())
    codec.state.calls.append(SimCall("so-y-te@conf.lab", rx_loss=0.01))
    inventory = load_data(
        {
            "alerting": {"enabled": False},
            "meeting_record": {"enabled": False},
            "credentials": {"codec": {"user": "admin", "password": PASSWORD}},
            "targets": [
                {
                    "id": ROOM_ID, "address": "127.0.0.1", "kind": "endpoint", "vendor": "cisco",
                    "probes": {
                        "xapi": {
                            "credential": "codec", "scheme": "http", "port": codec.port,
                            "interval": "2s", "call_interval": "200ms", "timeout": "150ms",
                        },
                    },
                },
            ],
        }
    )  # fmt: skip
    service = Service(inventory=inventory, listen="127.0.0.1:0")

    async def scenario(service: Service) -> None:
        poller = service._call_poller
        assert poller is not None
        try:
            # The first status poll finds the call; then the media alone, several times before
            # the next status poll (2 s later).
            await until(lambda: poller.reads >= 3, what="media reads")
            assert codec.locations["/Status/SIP/Registration"] == 1
            assert codec.locations[MEDIA_LOCATION] >= 4  # the status poll's, and the poller's
            assert poller.polling() == {ROOM_ID}
            codec.state.calls.clear()
            await until(lambda: not poller.polling(), what="the end of the call seen")
            assert codec.locations["/Status/SIP/Registration"] == 2
            reads = codec.locations[MEDIA_LOCATION]
            status = service.store.targets[ROOM_ID].status
            assert status is not None
            assert status.streams == ()
            # Out of the call until the next status poll: ten call_intervals, no media read.
            await until(
                lambda: codec.locations["/Status/SIP/Registration"] == 3, what="a status poll"
            )
            assert codec.locations[MEDIA_LOCATION] == reads
        finally:
            service.stop()

    async with asyncio.timeout(20):
        await service.run(on_ready=scenario)
    assert not [t for t in asyncio.all_tasks() if t.get_name().startswith("call-media")]

"""The call families: each stream of a call a room is in, as the room measures it, and the
quality score netmon estimates from it.

A stream's series exist while its call does (the room reports its media channels only then),
so the streams of ended calls vanish by themselves. The audio MOS is ITU-T G.107's E-model
(`netmon.quality`) from the stream's loss and jitter and netmon's own RTT to the site (half
of it as the one-way network delay); the video score is a G.1070 estimate whose coefficients
are unverified (README, "Call quality"), so its name says estimate.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import Metric

from netmon.call_quality import stream_score
from netmon.exporter_sink import Family, MetricSink, Sink, numbered
from netmon.state import StateStore, TargetState

# `channel` keeps two streams of one call apart (Cisco multistream, a Poly in multipoint).
STREAM_LABELS = ["target", "call", "channel", "direction", "media", "role"]


LOSS = Family(
    "netmon_call_stream_loss_ratio",
    "gauge",
    "share of the stream's packets lost over the room's last statistics interval",
    STREAM_LABELS,
)
JITTER = Family(
    "netmon_call_stream_jitter_seconds",
    "gauge",
    "the stream's interarrival jitter as the room measures it",
    STREAM_LABELS,
)
RATE = Family(
    "netmon_call_stream_bytes_per_second",
    "gauge",
    "the stream's rate (x 8 for bit/s)",
    STREAM_LABELS,
)
FRAMES = Family(
    "netmon_call_stream_frames_per_second",
    "gauge",
    "a video stream's frame rate",
    STREAM_LABELS,
)
MOS = Family(
    "netmon_call_audio_mos",
    "gauge",
    "estimated MOS of the call's audio in one direction (ITU-T G.107 E-model: the "
    "stream's loss and jitter, netmon's RTT to the site)",
    ["target", "call", "channel", "direction", "codec"],
)
VIDEO = Family(
    "netmon_call_video_quality_estimate",
    "gauge",
    "estimated video quality, 1-5 (ITU-T G.1070 with unverified coefficients: an estimate)",
    STREAM_LABELS,
)
CALL_FAMILIES = numbered(LOSS, JITTER, RATE, FRAMES, MOS, VIDEO)


def call_families(store: StateStore) -> Iterator[Metric]:
    sink = MetricSink(CALL_FAMILIES)
    for target_id, state in store.exported_targets().items():
        emit_calls(sink, target_id, state)
    yield from sink.metrics.values()


def emit_calls(sink: Sink, target_id: str, state: TargetState) -> None:
    view = state.endpoint_view()
    if view is None or view.status is None:
        return
    rtt = state.path_rtt
    for stream in view.status.streams:
        labels = [
            target_id, stream.call, stream.channel, stream.direction, stream.media, stream.role
        ]  # fmt: skip
        if stream.loss_ratio is not None:
            sink.add(LOSS, labels, stream.loss_ratio)
        if stream.jitter is not None:
            sink.add(JITTER, labels, stream.jitter)
        if stream.bitrate is not None:
            sink.add(RATE, labels, stream.bitrate / 8)
        if stream.frame_rate is not None:
            sink.add(FRAMES, labels, stream.frame_rate)
        score = stream_score(stream, rtt)
        if score is None:
            continue
        if stream.media == "audio":
            sink.add(
                MOS,
                [target_id, stream.call, stream.channel, stream.direction, score.codec],
                score.mos,
            )
        else:
            sink.add(VIDEO, labels, score.mos)

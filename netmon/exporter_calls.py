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

from prometheus_client.core import GaugeMetricFamily, Metric

from netmon.call_quality import stream_score
from netmon.state import StateStore

# `channel` keeps two streams of one call apart (Cisco multistream, a Poly in multipoint).
STREAM_LABELS = ["target", "call", "channel", "direction", "media", "role"]


def call_families(store: StateStore) -> Iterator[Metric]:
    loss = GaugeMetricFamily(
        "netmon_call_stream_loss_ratio",
        "share of the stream's packets lost over the room's last statistics interval",
        labels=STREAM_LABELS,
    )
    jitter = GaugeMetricFamily(
        "netmon_call_stream_jitter_seconds",
        "the stream's interarrival jitter as the room measures it",
        labels=STREAM_LABELS,
    )
    rate = GaugeMetricFamily(
        "netmon_call_stream_bytes_per_second",
        "the stream's rate (x 8 for bit/s)",
        labels=STREAM_LABELS,
    )
    frames = GaugeMetricFamily(
        "netmon_call_stream_frames_per_second", "a video stream's frame rate", labels=STREAM_LABELS
    )
    mos = GaugeMetricFamily(
        "netmon_call_audio_mos",
        "estimated MOS of the call's audio in one direction (ITU-T G.107 E-model: the "
        "stream's loss and jitter, netmon's RTT to the site)",
        labels=["target", "call", "channel", "direction", "codec"],
    )
    video = GaugeMetricFamily(
        "netmon_call_video_quality_estimate",
        "estimated video quality, 1-5 (ITU-T G.1070 with unverified coefficients: an estimate)",
        labels=STREAM_LABELS,
    )
    for target_id, state in store.targets.items():
        view = state.endpoint_view()
        if view is None or view.status is None:
            continue
        rtt = state.path_rtt
        for stream in view.status.streams:
            labels = [
                target_id, stream.call, stream.channel, stream.direction, stream.media, stream.role
            ]  # fmt: skip
            if stream.loss_ratio is not None:
                loss.add_metric(labels, stream.loss_ratio)
            if stream.jitter is not None:
                jitter.add_metric(labels, stream.jitter)
            if stream.bitrate is not None:
                rate.add_metric(labels, stream.bitrate / 8)
            if stream.frame_rate is not None:
                frames.add_metric(labels, stream.frame_rate)
            score = stream_score(stream, rtt)
            if score is None:
                continue
            if stream.media == "audio":
                mos.add_metric(
                    [target_id, stream.call, stream.channel, stream.direction, score.codec],
                    score.mos,
                )
            else:
                video.add_metric(labels, score.mos)
    yield from (loss, jitter, rate, frames, mos, video)

"""What the rest of netmon calls: one stream's measured figures in, a `QualityEstimate` out.

Units are netmon's (seconds, ratios, bits per second); the models' own units (ms, percent,
kbit/s) stay inside. Pure functions: the caller brings the figures (an endpoint's media
statistics, netmon's own path RTT to the site) and keeps the results.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

from netmon.quality import emodel
from netmon.quality.codecs import AUDIO_CODECS, G711_NO_PLC, normalize_codec
from netmon.quality.video import COEFFICIENTS, video_quality_g1070

JITTER_BUFFER_FACTOR = 2.0
"""The receiver's jitter buffer is taken as twice the RFC 3550 interarrival jitter it reports:
an adaptive buffer sized to cover most of the delay variation around the mean."""
JITTER_BUFFER_MIN_S = 0.020
"""...and never below 20 ms (one packet at the usual 20 ms packetisation), the least a
receiver holds however smooth the path."""


@dataclass(frozen=True, slots=True)
class QualityEstimate:
    """One stream's estimated quality and every figure that went into it.

    `mos` is MOS-CQE (1..4.5) from the E-model for audio, G.1070's Vq (1..5) for video.
    `estimate` is True when a stand-in or unverified coefficient went into the score (Opus
    audio, all video); `notes` say which, and any input that was missing.
    """

    media: str  # "audio" or "video"
    codec: str  # the canonical name (netmon.quality.codecs.normalize_codec)
    mos: float
    r: float | None  # the E-model's R (audio only)
    estimate: bool
    inputs: Mapping[str, float]
    notes: tuple[str, ...] = ()


def jitter_buffer_delay(jitter: float | None) -> float:
    """Seconds of jitter buffer for a stream with this interarrival jitter (seconds):
    max(2 x jitter, 20 ms); 20 ms when the jitter is unknown."""
    if jitter is None:
        return JITTER_BUFFER_MIN_S
    _check_non_negative("jitter", jitter)
    return max(JITTER_BUFFER_FACTOR * jitter, JITTER_BUFFER_MIN_S)


def one_way_delay(rtt: float | None, jitter: float | None, codec_delay: float) -> float:
    """Mouth-to-ear delay in seconds: half the path RTT netmon measures to the site, plus the
    receiver's jitter buffer, plus the codec's packetisation and look-ahead. An unknown RTT
    counts as 0 (the delay is then a lower bound; `audio_mos` notes it)."""
    _check_non_negative("codec_delay", codec_delay)
    network = 0.0
    if rtt is not None:
        _check_non_negative("rtt", rtt)
        network = rtt / 2.0
    return network + jitter_buffer_delay(jitter) + codec_delay


def estimate_burst_ratio(loss_ratio: float, mean_burst_packets: float | None = None) -> float:
    """G.107's BurstR from measured statistics (clause 7.5, and RFC 3611 clause 4.7.2).

    BurstR is the mean length of the observed loss bursts over the mean length random loss
    would give at the same loss probability. Random (Bernoulli) loss with probability P has
    bursts of mean length 1/(1 - P), so

        BurstR = mean_burst_packets x (1 - P)

    which is G.107's 1/(p + q) for the two-state Markov model (`burst_ratio_markov`) with
    mean burst 1/q and P = p/(p + q). Without run lengths from the source (most endpoint
    APIs give only counts), BurstR = 1: loss is taken as random. Also 1 when there is no loss
    or all is lost (no bursts to measure).
    """
    _check_ratio("loss_ratio", loss_ratio)
    if mean_burst_packets is None or loss_ratio in (0.0, 1.0):
        return 1.0
    if not math.isfinite(mean_burst_packets) or mean_burst_packets < 1.0:
        raise ValueError(
            f"mean_burst_packets: a burst is at least 1 packet: {mean_burst_packets!r}"
        )
    return mean_burst_packets * (1.0 - loss_ratio)


def burst_ratio_markov(p: float, q: float) -> float:
    """BurstR = 1 / (p + q) (G.107 clause 7.5): p the probability that a packet is lost after
    a received one, q that one is received after a lost one. p + q = 1 is random loss."""
    _check_ratio("p", p)
    _check_ratio("q", q)
    if p + q == 0.0:
        raise ValueError("p + q = 0: the loss state never changes")
    return 1.0 / (p + q)


def audio_mos(
    codec: str | None,
    loss_ratio: float,
    burst_ratio: float = 1.0,
    rtt: float | None = None,
    jitter: float | None = None,
    *,
    plc: bool = True,
) -> QualityEstimate | None:
    """The E-model's R and MOS for one received audio stream.

    codec as the endpoint names it; loss_ratio the stream's current packet loss (0..1, e.g.
    Cisco's LastIntervalLost over lost + received); burst_ratio G.107's BurstR
    (`estimate_burst_ratio`; 1 for random loss); rtt netmon's path RTT to the site and jitter the
    stream's interarrival jitter, both in seconds. plc=False scores G.711 without packet-loss
    concealment (Bpl 4.3 instead of 25.1).

    None for a codec the narrowband E-model cannot score: wideband ones (G.722, AAC-LD...,
    rated on G.107.1's other scale), video and unknown names.
    """
    name = normalize_codec(codec)
    row = AUDIO_CODECS.get(name) if name is not None else None
    if row is None:
        return None
    if row.name == "G.711" and not plc:
        row = G711_NO_PLC
    _check_ratio("loss_ratio", loss_ratio)
    if not math.isfinite(burst_ratio) or burst_ratio <= 0:
        raise ValueError(f"burst_ratio: must be positive: {burst_ratio!r}")
    delay = one_way_delay(rtt, jitter, row.delay_ms / 1000.0)
    inputs = emodel.EModelInputs.for_delay(
        delay * 1000.0, ie=row.ie, bpl=row.bpl, ppl=loss_ratio * 100.0, burst_r=burst_ratio
    )
    r = emodel.rating(inputs)
    notes: list[str] = []
    if row.estimate:
        notes.append(row.source)
    if rtt is None:
        notes.append("no path RTT: network delay not counted, R is an upper bound")
    return QualityEstimate(
        media="audio",
        codec=row.name,
        mos=emodel.mos_from_r(r),
        r=r,
        estimate=row.estimate,
        inputs={
            "loss_ratio": loss_ratio,
            "burst_ratio": burst_ratio,
            "jitter_buffer_seconds": jitter_buffer_delay(jitter),
            "codec_delay_seconds": row.delay_ms / 1000.0,
            "one_way_delay_seconds": delay,
            "ie": row.ie,
            "bpl": row.bpl,
            "ie_eff": emodel.effective_equipment_impairment(
                row.ie, row.bpl, inputs.ppl, inputs.burst_r
            ),
            "id": emodel.delay_impairment(inputs),
            **({} if rtt is None else {"rtt_seconds": rtt}),
            **({} if jitter is None else {"jitter_seconds": jitter}),
        },
        notes=tuple(notes),
    )


def parse_resolution(resolution: tuple[int, int] | str | None) -> tuple[int, int] | None:
    """(width, height) from (1280, 720) or "1280x720"; None when unknown or unreadable."""
    if resolution is None:
        return None
    if isinstance(resolution, str):
        parts = resolution.lower().replace("*", "x").split("x")
        if len(parts) != 2 or not all(p.strip().isdigit() for p in parts):
            return None
        resolution = (int(parts[0]), int(parts[1]))
    width, height = resolution
    return (width, height) if width > 0 and height > 0 else None


def video_quality(
    codec: str | None,
    bitrate_bps: float,
    frame_rate: float,
    loss_ratio: float,
    resolution: tuple[int, int] | str | None = None,
) -> QualityEstimate | None:
    """G.1070's video quality Vq for one received video stream: always an estimate, its
    coefficients unverified (`netmon.quality.video`).

    None for a codec G.1070 has no coefficients for (H.265, VP8, VP9, AV1, H.263, unknown),
    and for a stream that carries no video now (no bit rate or no frames).
    """
    name = normalize_codec(codec)
    if name is None or name not in COEFFICIENTS:
        return None
    coefficients = COEFFICIENTS[name]
    _check_ratio("loss_ratio", loss_ratio)
    for label, value in (("bitrate_bps", bitrate_bps), ("frame_rate", frame_rate)):
        _check_non_negative(label, value)
    if bitrate_bps == 0 or frame_rate == 0:
        return None
    notes = [coefficients.source]
    size = parse_resolution(resolution)
    if size is None:
        notes.append("resolution unknown: scored as " + coefficients.name)
    elif size[0] * size[1] > coefficients.max_pixels:
        notes.append(
            f"{size[0]}x{size[1]} is above the coefficients' {coefficients.name}: extrapolated"
        )
    vq = video_quality_g1070(coefficients, bitrate_bps / 1000.0, frame_rate, loss_ratio * 100.0)
    inputs = {"bitrate_bps": bitrate_bps, "frame_rate": frame_rate, "loss_ratio": loss_ratio}
    if size is not None:
        inputs |= {"width": float(size[0]), "height": float(size[1])}
    return QualityEstimate(
        media="video",
        codec=name,
        mos=vq,
        r=None,
        estimate=True,
        inputs=inputs,
        notes=tuple(notes),
    )


def _check_ratio(name: str, value: float) -> None:
    if not (math.isfinite(value) and 0.0 <= value <= 1.0):
        raise ValueError(f"{name}: not a ratio between 0 and 1: {value!r}")


def _check_non_negative(name: str, value: float) -> None:
    if not (math.isfinite(value) and value >= 0.0):
        raise ValueError(f"{name}: not a non-negative number: {value!r}")

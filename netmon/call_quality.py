"""One call stream's score, netmon's own path figures to the site, and where a fault lies.

Shared by the call families of /metrics (`exporter_calls`), the alert engine's call-quality
signals and hint (`alerting/signals.py`) and the meeting quality record (`meeting_quality/`),
so that the MOS a dashboard shows, the one an alert judges and the one a report keeps are
one number, computed one way.
"""

from __future__ import annotations

from typing import Literal

from netmon.model import MediaStream
from netmon.quality import QualityEstimate, audio_mos, video_quality
from netmon.state import TargetState

# Below this, a call's loss is not what spoils it: its packets are late, not lost.
LOSSLESS = 0.005

FaultSide = Literal["wan", "room", "delay"]


def stream_score(stream: MediaStream, rtt: float | None) -> QualityEstimate | None:
    """The E-model MOS of an audio stream (its loss and jitter, `rtt` netmon's RTT to the
    site), G.1070's estimate of a video stream; None where it cannot be scored (nothing
    measured this interval, a wideband codec, a video stream carrying nothing now)."""
    if stream.loss_ratio is None:
        return None
    if stream.media == "audio":
        return audio_mos(
            stream.codec, stream.loss_ratio, rtt=rtt, jitter=stream.jitter, plc=stream.plc
        )
    if stream.bitrate and stream.frame_rate:
        return video_quality(stream.codec, stream.bitrate, stream.frame_rate, stream.loss_ratio)
    return None


def path_loss(state: TargetState) -> float | None:
    """The share of netmon's own echoes to the site lost over its sliding window: the path
    figure a call's loss is compared with (None without echoes)."""
    icmp = state.icmp
    return icmp.window.loss_ratio() if icmp is not None else None


def fault_side(call_loss: float | None, path_lost: float | None) -> FaultSide:
    """Where a poor call's fault lies: "delay" when the call loses (almost) nothing (late
    packets: delay and jitter), "wan" when netmon's own path to the site loses at least half
    as much as the call, "room" (its LAN, the endpoint) when the path is cleaner than that."""
    if not call_loss or call_loss < LOSSLESS:
        return "delay"
    if path_lost is not None and path_lost >= call_loss / 2:
        return "wan"
    return "room"

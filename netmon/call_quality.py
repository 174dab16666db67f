"""One call stream's score, netmon's own path figures to the site, and where a fault lies.

Shared by the call families of /metrics (`exporter_calls`), the alert engine's call-quality
signals and hint (`alerting/signals.py`) and the meeting quality record (`meeting_quality/`),
so that the MOS a dashboard shows, the one an alert judges and the one a report keeps are
one number, computed one way.
"""

from __future__ import annotations

import math
from typing import Literal

from netmon.model import MediaStream
from netmon.quality import QualityEstimate, audio_mos, video_quality
from netmon.state import TargetState

# Below this, a call's loss is not what spoils it: its packets are late, not lost.
LOSSLESS = 0.005

# wan: netmon's own path loses alike; room: the path is clearly cleaner (its LAN, the endpoint);
# delay: the call loses (almost) nothing, its packets are late; unknown: too few pings to say.
FaultSide = Literal["wan", "room", "delay", "unknown"]

# How sure "the path is cleaner than the call" must be before the room is blamed: the chance
# that a path losing half the call's share would lose this few of netmon's pings, or fewer.
CLEANER_PATH_P = 0.01


def binomial_cdf(k: int, n: int, p: float) -> float:
    """P(X <= k) for X ~ Binomial(n, p), summed in logs (n up to thousands of echoes)."""
    if k >= n or p <= 0.0:
        return 1.0
    if p >= 1.0:
        return 0.0
    log_p, log_q = math.log(p), math.log1p(-p)
    total = 0.0
    for i in range(k + 1):
        log_term = (
            math.lgamma(n + 1) - math.lgamma(i + 1) - math.lgamma(n - i + 1)
            + i * log_p + (n - i) * log_q
        )  # fmt: skip
        total += math.exp(log_term)
    return min(total, 1.0)


def path_explains(lost: int, sent: int, call_loss: float) -> bool | None:
    """Whether netmon's own pings to the site lose like the call does: True when they lose
    some and are not clearly cleaner than half the call's loss (the path explains it), False
    when they are clearly cleaner (binomial, CLEANER_PATH_P), None when too few pings say
    either (a minute of 1 s pings cannot tell a clean path from a 5 % one by itself)."""
    if sent <= 0:
        return None
    if binomial_cdf(lost, sent, call_loss / 2) < CLEANER_PATH_P:
        return False
    return True if lost > 0 else None


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


def echo_counts(state: TargetState) -> tuple[int, int] | None:
    """(sent, lost) of netmon's regular echoes to the site since it was first pinged: the
    difference between two reads is the pings of that interval."""
    icmp = state.icmp
    if icmp is None:
        return None
    return icmp.sent_total, icmp.sent_total - icmp.received_total


def fault_side(call_loss: float | None, path_lost: int, path_sent: int) -> FaultSide:
    """Where a poor call's fault lies, from the call's loss and netmon's own pings to the site
    over the same time (`path_explains`): the one rule of CallQualityDegraded's hint and of
    the meeting record's summary."""
    if not call_loss or call_loss < LOSSLESS:
        return "delay"
    explains = path_explains(path_lost, path_sent, call_loss)
    if explains is None:
        return "unknown"
    return "wan" if explains else "room"

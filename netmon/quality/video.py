"""Video quality Vq of ITU-T G.1070, "Opinion model for video-telephony applications" — an
ESTIMATE with UNVERIFIED COEFFICIENTS.

The video quality estimation function (G.1070 clause 11.2 in the 04/2007 edition; the same
equations in the 07/2012 and 06/2018 editions), bit rate BrV in kbit/s, frame rate FrV in
frames/s, packet loss PplV in percent:

    Vq      = 1 + Icoding * exp(-PplV / DPplV)
    Icoding = IOfr * exp(-(ln FrV - ln Ofr)^2 / (2 DFrV^2))
    Ofr     = v1 + v2 BrV                     (1 <= Ofr <= 30)
    IOfr    = v3 - v3 / (1 + (BrV / v4)^v5)   (0 <= IOfr <= 4)
    DFrV    = v6 + v7 BrV
    DPplV   = v10 + v11 exp(-FrV / v8) + v12 exp(-BrV / v9)

The coefficients v1..v12 depend on codec, resolution and display size; G.1070 gives them as
provisional values in an appendix (Appendix I of the 04/2007 edition: MPEG-4 at QVGA and
QQVGA; a VGA set was added in a later amendment/edition). The Recommendation's text was not
available to check them against, so every set below is UNVERIFIED, with where its numbers
come from said next to it, and every Vq this module gives is an estimate:

- MPEG4_QVGA: MPEG-4, QVGA, 4.2-inch display, as G.1070 (04/2007) Appendix I is commonly
  quoted in the literature on the model (e.g. the papers extending it to monitoring).
  Recalled, not read from the Recommendation.
- H264_VGA: H.264, VGA, 9.2-inch display, G.1070 (07/2012) as transcribed in public code;
  the only H.264 set, and the one used for conference rooms. Unverified.

Rooms send 720p/1080p at 1-6 Mbit/s, beyond the VGA and the bit-rate range these sets were
fitted on; above VGA the H.264 set is extrapolated, and the result says so. Codecs without a
set (H.265, VP8, VP9, AV1, H.263) get no Vq at all rather than a borrowed one.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class G1070Coefficients:
    """v1..v12 of the video quality estimation function, and where they come from."""

    name: str
    v: tuple[float, float, float, float, float, float, float, float, float, float, float, float]
    source: str
    max_pixels: int  # the resolution the set was fitted at; beyond it Vq is extrapolated


MPEG4_QVGA = G1070Coefficients(
    "MPEG-4 QVGA 4.2-inch",
    (1.431, 2.228e-2, 3.759, 184.1, 1.161, 1.446, 3.881e-4, 2.116, 467.4, 2.736, 15.28, 4.170),
    "UNVERIFIED: G.1070 (04/2007) App. I, MPEG-4 QVGA, as quoted in the literature",
    320 * 240,
)
H264_VGA = G1070Coefficients(
    "H.264 VGA 9.2-inch",
    (5.517, 1.29e-2, 3.459, 178.53, 1.02, 1.15, 3.55e-4, 0.114, 513.77, 0.736, -6.451, 13.684),
    "UNVERIFIED: G.1070 (07/2012), H.264 VGA 9.2-inch, as transcribed in public code",
    640 * 480,
)

COEFFICIENTS: dict[str, G1070Coefficients] = {"MPEG-4": MPEG4_QVGA, "H.264": H264_VGA}
"""The coefficient set per canonical codec name (`netmon.quality.codecs.normalize_codec`)."""


def video_quality_g1070(
    coefficients: G1070Coefficients, bitrate_kbps: float, frame_rate: float, loss_percent: float
) -> float:
    """Vq (1..5) of G.1070's video quality estimation function; an estimate (see the module).

    The clamps on Ofr (1..30) and IOfr (0..4) are the Recommendation's; Vq itself is kept in
    1..5 because a set used outside its fitted range can leave it (a negative DPplV, say).
    """
    for name, value in (("bitrate", bitrate_kbps), ("frame_rate", frame_rate)):
        if not math.isfinite(value) or value <= 0:
            raise ValueError(f"{name}: must be a positive number, not {value!r}")
    if not 0.0 <= loss_percent <= 100.0:
        raise ValueError(f"loss: {loss_percent} is not a percentage")
    v1, v2, v3, v4, v5, v6, v7, v8, v9, v10, v11, v12 = coefficients.v
    ofr = min(30.0, max(1.0, v1 + v2 * bitrate_kbps))
    iofr = min(4.0, max(0.0, v3 - v3 / (1.0 + math.pow(bitrate_kbps / v4, v5))))
    dfrv = v6 + v7 * bitrate_kbps
    icoding = iofr * math.exp(-((math.log(frame_rate) - math.log(ofr)) ** 2) / (2.0 * dfrv**2))
    dpplv = v10 + v11 * math.exp(-frame_rate / v8) + v12 * math.exp(-bitrate_kbps / v9)
    if loss_percent == 0.0:
        loss_factor = 1.0
    elif dpplv > 0.0:
        loss_factor = math.exp(-loss_percent / dpplv)
    else:  # a set outside its fitted range: no robustness left, any loss takes it all
        loss_factor = 0.0
    return min(5.0, max(1.0, 1.0 + icoding * loss_factor))

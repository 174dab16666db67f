"""Call quality as a score: ITU-T G.107's E-model for audio, ITU-T G.1070's video quality
estimate for video. Pure functions, no I/O, no imports from the rest of netmon.

- `emodel`: G.107 itself (R, its impairment factors, MOS from R), in the Recommendation's
  units and symbols.
- `codecs`: the codec table (G.113 Appendix I's Ie and Bpl, each codec's delay) and the names
  endpoints report mapped to one spelling.
- `video`: G.1070's Vq; its coefficients are unverified, so every video score is an estimate.
- `estimate`: the façade the rest of netmon calls, in netmon's units (seconds, ratios, bit/s).
"""

from netmon.quality.codecs import normalize_codec
from netmon.quality.estimate import (
    QualityEstimate,
    audio_mos,
    burst_ratio_markov,
    estimate_burst_ratio,
    jitter_buffer_delay,
    one_way_delay,
    video_quality,
)

__all__ = [
    "QualityEstimate",
    "audio_mos",
    "burst_ratio_markov",
    "estimate_burst_ratio",
    "jitter_buffer_delay",
    "normalize_codec",
    "one_way_delay",
    "video_quality",
]

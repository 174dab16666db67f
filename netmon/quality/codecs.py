"""Codecs as the quality models know them: the E-model's (Ie, Bpl) per narrowband codec, each
codec's own delay, and the names endpoints report mapped onto one spelling.

Sources
- Ie and Bpl: ITU-T G.113 (11/2007) "Transmission impairments due to speech processing",
  Appendix I, Table I.1 (provisional planning values of Ie) and Table I.3 (provisional planning
  values of Bpl, random loss). These are E-model values on the narrowband scale of G.107
  (R up to 93.2 for an unimpaired call).
- Wideband codecs (G.722, G.722.1, G.722.2/AMR-WB, AAC-LD, ...) are rated on a different
  scale: ITU-T G.107.1 (the wideband E-model, R up to 129) with Ie,WB values of G.113
  Appendix IV. A G.722 call put through the narrowband model would be scored against the
  wrong ceiling, so they have no row here and `audio_mos` gives no estimate for them.
- Opus is in neither table. Its row is a stand-in, marked as an estimate (see `OPUS`).
- Codec delay: packetisation (frames per packet x frame length, 20 ms packets as RFC 3551
  sets for G.711 and G.729 and as RFC 7587 recommends for Opus) plus the encoder's
  look-ahead: G.729 Annex A 5 ms (G.729 clause 2), Opus 6.5 ms at 20 ms frames (RFC 6716
  clause 2: 26.5 ms algorithmic delay in all). Decoder processing time is not counted.
"""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class AudioCodec:
    """One narrowband codec's E-model parameters and its one-way delay before the network."""

    name: str
    ie: float  # equipment impairment factor (G.113 Table I.1)
    bpl: float  # packet-loss robustness factor (G.113 Table I.3)
    delay_ms: float  # packetisation + look-ahead
    source: str
    estimate: bool = False  # True when the row is a stand-in, not a published value


G711 = AudioCodec(
    "G.711",
    ie=0.0,
    bpl=25.1,
    delay_ms=20.0,
    source="ITU-T G.113 (11/2007) App. I Tables I.1/I.3: G.711 with PLC (G.711 App. I)",
)
G711_NO_PLC = AudioCodec(
    "G.711 without PLC",
    ie=0.0,
    bpl=4.3,
    delay_ms=20.0,
    source="ITU-T G.113 (11/2007) App. I Tables I.1/I.3: G.711 without PLC",
)
G729A = AudioCodec(
    "G.729A",
    ie=11.0,
    bpl=19.0,
    delay_ms=25.0,
    source="ITU-T G.113 (11/2007) App. I Tables I.1/I.3: G.729A + VAD",
)
# Opus is not in G.113. Stand-in: the G.711-with-PLC row (Ie 0, Bpl 25.1). Why: at the bit
# rates conferencing endpoints use (>= 24 kbit/s), Opus is transparent on the narrowband scale
# (no coding impairment worth an Ie above G.711's 0), and its built-in concealment is at least
# as good as G.711 Appendix I's, whose Bpl is 25.1; in-band FEC would make it more robust still,
# so the stand-in errs on the pessimistic side under loss. An estimate, and marked as one.
OPUS = AudioCodec(
    "Opus",
    ie=0.0,
    bpl=25.1,
    delay_ms=26.5,
    source="estimate: not in ITU-T G.113; stand-in = G.711 with PLC (Ie 0, Bpl 25.1)",
    estimate=True,
)

AUDIO_CODECS: dict[str, AudioCodec] = {c.name: c for c in (G711, G711_NO_PLC, G729A, OPUS)}
"""Narrowband codecs the E-model can score, by canonical name."""

WIDEBAND_AUDIO = frozenset({"G.722", "G.722.1", "G.722.1C", "G.722.2", "AAC-LD", "G.719"})
"""Audio codecs rated on G.107.1's wideband scale: known, but not scored here."""

VIDEO_CODECS = frozenset({"H.264", "H.265", "H.263", "VP8", "VP9", "AV1", "MPEG-4"})

# Spellings seen in SDP rtpmap lines, Cisco xAPI (Audio/Video Protocol), Poly mediaAlgorithm
# and baresip: compared after upper-casing and dropping spaces, dots, dashes, underscores and a
# trailing clock rate ("PCMU/8000").
_ALIASES: dict[str, str] = {
    **dict.fromkeys(
        (
            "G711",
            "G711U",
            "G711MU",
            "G711ULAW",
            "G711A",
            "G711ALAW",
            "PCMU",
            "PCMA",
            "ULAW",
            "ALAW",
        ),
        "G.711",
    ),
    **dict.fromkeys(("G729", "G729A", "G729AB", "G729B", "G729AVAD"), "G.729A"),
    **dict.fromkeys(("OPUS",), "Opus"),
    **dict.fromkeys(("G722",), "G.722"),
    **dict.fromkeys(("G7221", "SIREN14"), "G.722.1"),
    **dict.fromkeys(("G7221C",), "G.722.1C"),
    **dict.fromkeys(("G7222", "AMRWB"), "G.722.2"),
    **dict.fromkeys(("AACLD", "MPEG4AACLD", "MP4AACLD"), "AAC-LD"),
    **dict.fromkeys(("G719",), "G.719"),
    **dict.fromkeys(("H264", "AVC", "H264SVC"), "H.264"),
    **dict.fromkeys(("H265", "HEVC"), "H.265"),
    **dict.fromkeys(("H263", "H263PLUS", "H2631998", "H263+", "H263PP"), "H.263"),
    **dict.fromkeys(("VP8",), "VP8"),
    **dict.fromkeys(("VP9",), "VP9"),
    **dict.fromkeys(("AV1", "AV01"), "AV1"),
    **dict.fromkeys(("MPEG4", "MP4VES", "MP4V"), "MPEG-4"),
}
_NOISE = re.compile(r"[\s._\-]")
_CLOCK = re.compile(r"/\d+(/\d+)?$")


def normalize_codec(name: str | None) -> str | None:
    """One spelling per codec: "G711u", "PCMU/8000", "g.711" -> "G.711"; "opus" -> "Opus";
    "G722" -> "G.722"; "H264", "AVC" -> "H.264". None for a name netmon does not know."""
    if not name:
        return None
    key = _NOISE.sub("", _CLOCK.sub("", name.strip())).upper()
    return _ALIASES.get(key)

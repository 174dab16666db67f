"""Call quality as a score: ITU-T G.107's E-model for audio. Pure functions, no I/O, no
imports from the rest of netmon.

- `emodel`: G.107 itself (R, its impairment factors, MOS from R), in the Recommendation's
  units and symbols.
- `codecs`: the codec table (G.113 Appendix I's Ie and Bpl, each codec's delay) and the names
  endpoints report mapped to one spelling.
"""

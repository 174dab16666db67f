"""The E-model of ITU-T G.107: the transmission rating R of a narrowband call and its MOS.

Source: Recommendation ITU-T G.107, "The E-model: a computational model for use in
transmission planning" (editions 03/2005 to 06/2015; clause numbers below are the 2011+ ones,
7.1-7.7 and Annex B; the 2005 edition numbers the same clauses 3.1-3.7). Every formula is the
Recommendation's own, with its symbols, so that a reader can hold one against the other:

    R = Ro - Is - Id - Ie,eff + A                                         (7.1)

with every input not set here at the defaults of G.107 Table 3 (clause 7.7), which give
Ro = 94.77, Is = 1.41 and R = 93.2. Only the delays and the codec/loss terms vary in netmon:
the one-way delay Ta is taken as T (talker echo path) and Tr/2 (listener echo loop), as the
Recommendation does for a connection with no echo path of its own beyond the defaults
(TELR 65 dB, WEPL 110 dB).

Not implemented, on purpose: the low and high sidetone rules of clause 7.4 (STMR < 9 dB and
STMR > 20 dB) and the delay-sensitivity parameters mT and sT of the 2014+ editions (their
defaults, 100 ms and 1, give the formula used here). `EModelInputs` refuses inputs outside the
range this module computes, rather than compute them silently wrong.

Pure functions, no I/O; times in milliseconds, loss in percent (as G.107 writes them).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

# G.107 Table 3 (clause 7.7): the default values and the ranges the Recommendation gives for
# them. The defaults are the "standard" connection whose R is 93.2.
DEFAULT_R = 93.2


@dataclass(frozen=True, slots=True)
class EModelInputs:
    """The E-model's inputs, defaults from G.107 Table 3. Times in ms, levels in dB.

    ppl is the packet-loss probability in percent (G.107 writes Ppl in %), burst_r the
    burst ratio BurstR (1 for random loss), ie and bpl the codec's equipment impairment
    factor and packet-loss robustness factor (ITU-T G.113 Appendix I; `netmon.quality.codecs`).
    """

    slr: float = 8.0  # send loudness rating
    rlr: float = 2.0  # receive loudness rating
    stmr: float = 15.0  # sidetone masking rating
    lstr: float = 18.0  # listener sidetone rating
    ds: float = 3.0  # D-value of the telephone, send side
    telr: float = 65.0  # talker echo loudness rating
    wepl: float = 110.0  # weighted echo path loss
    t: float = 0.0  # mean one-way delay of the echo path, ms
    tr: float = 0.0  # round-trip delay in a 4-wire loop, ms
    ta: float = 0.0  # absolute delay in echo-free connections, ms
    qdu: float = 1.0  # number of quantization distortion units
    ie: float = 0.0  # equipment impairment factor
    bpl: float = 1.0  # packet-loss robustness factor
    ppl: float = 0.0  # random packet-loss probability, %
    burst_r: float = 1.0  # burst ratio
    nc: float = -70.0  # circuit noise referred to the 0 dBr point, dBm0p
    nfor: float = -64.0  # noise floor at the receive side, dBmp
    ps: float = 35.0  # room noise at the send side, dB(A)
    pr: float = 35.0  # room noise at the receive side, dB(A)
    a: float = 0.0  # advantage factor

    def __post_init__(self) -> None:
        for name in self.__slots__:
            value = getattr(self, name)
            if not math.isfinite(value):
                raise ValueError(f"{name}: not a finite number: {value!r}")
        if not 9.0 <= self.stmr <= 20.0:
            # Clause 7.4 changes Idte for STMR below 9 dB and above 20 dB; not implemented.
            raise ValueError(f"stmr: {self.stmr} dB is outside 9-20 dB, the range computed here")
        if min(self.t, self.tr, self.ta) < 0:
            raise ValueError("t, tr, ta: a delay cannot be negative")
        if not 0.0 <= self.ppl <= 100.0:
            raise ValueError(f"ppl: {self.ppl} is not a percentage")
        if self.bpl <= 0 or self.burst_r <= 0 or self.qdu < 1:
            raise ValueError("bpl and burst_r must be positive, qdu at least 1")

    @classmethod
    def for_delay(cls, one_way_ms: float, **others: float) -> EModelInputs:
        """Inputs for a connection whose one-way mouth-to-ear delay is `one_way_ms`:
        Ta = T = one_way_ms, Tr = 2 x one_way_ms (the echo paths at their defaults)."""
        return cls(t=one_way_ms, tr=2.0 * one_way_ms, ta=one_way_ms, **others)


def _noise_floor(x: EModelInputs) -> float:
    """No, the power addition of the noise sources (clause 7.2), dBm0p."""
    olr = x.slr + x.rlr
    nos = x.ps - x.slr - x.ds - 100.0 + 0.004 * (x.ps - olr - x.ds - 14.0) ** 2
    pre = x.pr + 10.0 * math.log10(1.0 + 10.0 ** ((10.0 - x.lstr) / 10.0))
    nor = x.rlr - 121.0 + pre + 0.008 * (pre - 35.0) ** 2
    nfo = x.nfor + x.rlr
    return 10.0 * math.log10(
        10.0 ** (x.nc / 10.0) + 10.0 ** (nos / 10.0) + 10.0 ** (nor / 10.0) + 10.0 ** (nfo / 10.0)
    )


def basic_signal_to_noise(x: EModelInputs) -> float:
    """Ro = 15 - 1.5(SLR + No) (clause 7.2); 94.77 at the defaults."""
    return 15.0 - 1.5 * (x.slr + _noise_floor(x))


def _sidetone_impairment(x: EModelInputs) -> float:
    """Ist (clause 7.3), from STMRo, the sidetone with the talker echo through it."""
    stmro = -10.0 * math.log10(
        10.0 ** (-x.stmr / 10.0) + math.exp(-x.t / 4.0) * 10.0 ** (-x.telr / 10.0)
    )
    return (
        12.0 * math.pow(1.0 + ((stmro - 13.0) / 6.0) ** 8, 1.0 / 8.0)
        - 28.0 * math.pow(1.0 + ((stmro + 1.0) / 19.4) ** 35, 1.0 / 35.0)
        - 13.0 * math.pow(1.0 + ((stmro - 3.0) / 33.0) ** 13, 1.0 / 13.0)
        + 29.0
    )


def simultaneous_impairment(x: EModelInputs) -> float:
    """Is = Iolr + Ist + Iq (clause 7.3); 1.41 at the defaults."""
    no = _noise_floor(x)
    ro = basic_signal_to_noise(x)
    xolr = x.slr + x.rlr + 0.2 * (64.0 + no - x.rlr)
    iolr = 20.0 * (math.pow(1.0 + (xolr / 8.0) ** 8, 1.0 / 8.0) - xolr / 8.0)
    q = 37.0 - 15.0 * math.log10(x.qdu)
    g = 1.07 + 0.258 * q + 0.0602 * q * q
    y = (ro - 100.0) / 15.0 + 46.0 / 8.4 - g / 9.0
    z = 46.0 / 30.0 - g / 40.0
    iq = 15.0 * math.log10(1.0 + 10.0**y + 10.0**z)
    return iolr + _sidetone_impairment(x) + iq


def talker_echo_impairment(x: EModelInputs) -> float:
    """Idte (clause 7.4), from T and TELR; 0 at T = 0."""
    roe = -1.5 * (_noise_floor(x) - x.rlr)
    terv = (
        x.telr
        - 40.0 * math.log10((1.0 + x.t / 10.0) / (1.0 + x.t / 150.0))
        + 6.0 * math.exp(-0.3 * x.t * x.t)
    )
    re = 80.0 + 2.5 * (terv - 14.0)
    return ((roe - re) / 2.0 + math.sqrt((roe - re) ** 2 / 4.0 + 100.0) - 1.0) * (
        1.0 - math.exp(-x.t)
    )


def listener_echo_impairment(x: EModelInputs) -> float:
    """Idle (clause 7.4), from Tr, WEPL and Ro; 0.15 at the defaults (Tr = 0)."""
    ro = basic_signal_to_noise(x)
    rle = 10.5 * (x.wepl + 7.0) * math.pow(x.tr + 1.0, -0.25)
    return (ro - rle) / 2.0 + math.sqrt((ro - rle) ** 2 / 4.0 + 169.0)


def absolute_delay_impairment(ta_ms: float) -> float:
    """Idd (clause 7.4): 0 up to Ta = 100 ms, beyond it

        Idd = 25 {(1 + X^6)^(1/6) - 3 (1 + (X/3)^6)^(1/6) + 2},  X = log10(Ta/100) / log10(2)

    The exponent is 6 and its root 1/6 (a sixth power of X, not of Ta): the shape that keeps
    Idd near 0 up to ~150 ms and grows it ~linearly past ~250 ms.
    """
    if not math.isfinite(ta_ms) or ta_ms < 0:
        raise ValueError(f"ta: not a delay: {ta_ms!r}")
    if ta_ms <= 100.0:
        return 0.0
    x = math.log10(ta_ms / 100.0) / math.log10(2.0)
    return 25.0 * (
        math.pow(1.0 + x**6, 1.0 / 6.0) - 3.0 * math.pow(1.0 + (x / 3.0) ** 6, 1.0 / 6.0) + 2.0
    )


def delay_impairment(x: EModelInputs) -> float:
    """Id = Idte + Idle + Idd (clause 7.4)."""
    return talker_echo_impairment(x) + listener_echo_impairment(x) + absolute_delay_impairment(x.ta)


def effective_equipment_impairment(
    ie: float, bpl: float, ppl: float, burst_r: float = 1.0
) -> float:
    """Ie,eff = Ie + (95 - Ie) * Ppl / (Ppl / BurstR + Bpl) (clause 7.5), Ppl in percent.

    Loss enters R here and only here: counting it again elsewhere (a separate loss
    impairment on top of Ie,eff) is a known mistake of simplified implementations.
    """
    if not 0.0 <= ppl <= 100.0:
        raise ValueError(f"ppl: {ppl} is not a percentage")
    if bpl <= 0 or burst_r <= 0:
        raise ValueError("bpl and burst_r must be positive")
    return ie + (95.0 - ie) * ppl / (ppl / burst_r + bpl)


def rating(x: EModelInputs) -> float:
    """R = Ro - Is - Id - Ie,eff + A (clause 7.1); 93.2 at the defaults."""
    return (
        basic_signal_to_noise(x)
        - simultaneous_impairment(x)
        - delay_impairment(x)
        - effective_equipment_impairment(x.ie, x.bpl, x.ppl, x.burst_r)
        + x.a
    )


def mos_from_r(r: float) -> float:
    """MOS (conversational quality, MOS_CQE) from R (G.107 Annex B, equation B-4):

    1 for R < 0; 1 + 0.035 R + 7e-6 R (R - 60)(100 - R) for 0 < R < 100; 4.5 for R > 100.
    The polynomial dips just under 1 (0.989) for 0 < R < 6.5; that is the Recommendation's
    curve and is kept, not clamped.
    """
    if math.isnan(r):
        raise ValueError("r: not a number")
    if r <= 0.0:
        return 1.0
    if r >= 100.0:
        return 4.5
    return 1.0 + 0.035 * r + 7e-6 * r * (r - 60.0) * (100.0 - r)

"""The lab responder's impairments: random loss, Gilbert–Elliott bursts and jitter.

The decisions are pure functions of a seeded `random.Random` and the echoes' arrival times, so
their statistics are checked on long seeded runs without sockets; the bounds are a few standard
errors of the figure, so they say what the model promises rather than what one seed happened to
draw. The flags are then checked against a lab host answering real pings.
"""

from __future__ import annotations

import math
import random
import statistics
from collections.abc import Iterator

import pytest

from collectors.pinger import Pinger
from netmon.windows import jitter as netmon_jitter
from netmon_lab.responder import Impairment, LossModel, parse_table, reply_delay
from tests.lab.netlab import NetLab

# -- random loss ----------------------------------------------------------------------------------


@pytest.mark.parametrize("loss", [0.002, 0.005, 0.01, 0.02, 0.05, 0.3])
def test_random_loss_converges_on_its_rate(loss: float) -> None:
    echoes = 200_000
    model = LossModel(Impairment(loss=loss), random.Random(13))
    lost = sum(model.next_lost(float(second)) for second in range(echoes))
    standard_error = math.sqrt(loss * (1 - loss) / echoes)
    assert abs(lost / echoes - loss) < 4 * standard_error, lost / echoes


def test_random_loss_alone_drops_the_echoes_it_dropped_before_bursts_existed() -> None:
    # The responder drew `rng.random() < loss` for each echo; seeded lab hosts keep their drops.
    model, old = LossModel(Impairment(loss=0.3), random.Random(5)), random.Random(5)
    assert [model.next_lost(t * 0.1) for t in range(1000)] == [
        old.random() < 0.3 for _ in range(1000)
    ]
    untouched = random.Random(5)
    quiet = LossModel(Impairment(delay=0.2), untouched)
    assert not any(quiet.next_lost(float(t)) for t in range(100))
    assert untouched.random() == random.Random(5).random()  # no draw without loss or bursts


# -- bursts ---------------------------------------------------------------------------------------


def _bursts(model: LossModel, times: Iterator[float]) -> tuple[list[int], list[float]]:
    """Run the model over echoes at `times`: each burst's length in echoes, and the seconds from
    the end of each burst (its last lost echo) to the start of the next (its first)."""
    lengths: list[int] = []
    gaps: list[float] = []
    ended: float | None = None
    for now in times:
        before = model.burst_left
        lost = model.next_lost(now)
        if lost and before == 0:  # no random loss in these runs: a loss outside a burst starts one
            lengths.append(model.burst_left + 1)
            if ended is not None:
                gaps.append(now - ended)
        if lost and model.burst_left == 0:
            ended = now
    return lengths, gaps


@pytest.mark.parametrize(
    ("every", "shortest", "longest", "spacing"),
    [(120.0, 5, 10, 1.0), (120.0, 5, 10, 0.5), (30.0, 1, 3, 1.0), (600.0, 8, 8, 1.0)],
    ids=["5-10-every-2m", "twice-as-many-echoes", "short-bursts", "fixed-length"],
)
def test_bursts_are_as_long_and_as_frequent_as_asked(
    every: float, shortest: int, longest: int, spacing: float
) -> None:
    impairment = Impairment(burst_every=every, burst_min=shortest, burst_max=longest)
    model = LossModel(impairment, random.Random(7))
    echoes = 400_000
    lengths, gaps = _bursts(model, (i * spacing for i in range(echoes)))
    assert len(lengths) > 500
    # Every burst within the range, every length of the range drawn, evenly.
    assert min(lengths) == shortest
    assert max(lengths) == longest
    spread = math.sqrt(((longest - shortest + 1) ** 2 - 1) / 12)
    mean_length = (shortest + longest) / 2
    assert abs(statistics.fmean(lengths) - mean_length) <= 4 * spread / math.sqrt(len(lengths))
    # Bursts start as a Poisson process in time: the gaps average `every` seconds however often
    # the address is pinged (up to the echo spacing, as a start is seen at the next echo).
    gap_error = statistics.stdev(gaps) / math.sqrt(len(gaps))
    assert abs(statistics.fmean(gaps) - every) <= 4 * gap_error + spacing, statistics.fmean(gaps)
    assert statistics.stdev(gaps) == pytest.approx(every, rel=0.1)  # exponential: sd = mean


def test_bursts_on_a_lossy_link_lose_the_share_the_docstring_says() -> None:
    # The bad link: 0.5 % random loss and bursts of 5-10 echoes every 2 minutes.
    impairment = Impairment(loss=0.005, burst_every=120, burst_min=5, burst_max=10)
    model = LossModel(impairment, random.Random(11))
    echoes = 1_000_000
    lost = sum(model.next_lost(float(second)) for second in range(echoes))
    bursty = 7.5 / (7.5 + 120)
    expected = 0.005 + (1 - 0.005) * bursty
    # Burst counts are about Poisson: their relative error is 1/sqrt(bursts), ~2 % here.
    bursts = echoes / (7.5 + 120)
    assert abs(lost / echoes - expected) <= 4 * expected / math.sqrt(bursts), lost / echoes


def test_a_burst_loses_every_echo_in_it_and_the_link_answers_between() -> None:
    impairment = Impairment(burst_every=10, burst_min=3, burst_max=3)
    model = LossModel(impairment, random.Random(3))
    outcomes = "".join("x" if model.next_lost(float(t)) else "." for t in range(2000))
    runs = [run for run in outcomes.split(".") if run]
    assert len(runs) > 100
    assert {len(run) for run in runs} == {3}  # bursts never run together, even this frequent


def test_the_first_echo_of_a_new_link_never_starts_a_burst() -> None:
    # Time passes for the chain between echoes only: a fault just injected starts good.
    starts = 0
    for seed in range(200):
        impairment = Impairment(burst_every=1.0, burst_min=2, burst_max=2)
        model = LossModel(impairment, random.Random(seed))
        starts += model.next_lost(1e6)
    assert starts == 0


# -- jitter ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("delay", "jitter", "low", "high"),
    [(0.020, 0.003, 0.017, 0.023), (0.0, 0.003, 0.0, 0.006), (0.002, 0.005, 0.0, 0.010)],
    ids=["20-plus-minus-3ms", "jitter-alone-starts-at-0", "jitter-above-delay"],
)
def test_jitter_spreads_replies_uniformly_and_netmon_reads_three_fifths_of_it(
    delay: float, jitter: float, low: float, high: float
) -> None:
    rng = random.Random(17)
    draws = [reply_delay(Impairment(delay=delay, jitter=jitter), rng) for _ in range(100_000)]
    assert low <= min(draws) < low + 0.0001
    assert high - 0.0001 < max(draws) <= high
    # Uniform: the mean in the middle, each tenth of the window holding a tenth of the replies.
    width = high - low
    error = width / math.sqrt(12 * len(draws))
    assert abs(statistics.fmean(draws) - (low + high) / 2) <= 4 * error
    tenths = [0] * 10
    for draw in draws:
        tenths[min(9, int((draw - low) / width * 10))] += 1
    assert all(abs(count - 10_000) < 4 * math.sqrt(9_000) for count in tenths), tenths
    # What netmon shows: RFC 3550's mean absolute difference of consecutive round trips, the
    # largest 5 % (+2) left out. For a uniform +/- jitter, D = |X - Y| / width has the density
    # 2(1 - u) on 0..1: untrimmed its mean is 1/3 (2/3 of the jitter); without the top share q
    # (u below u_q = 1 - sqrt(q)) it is (u_q^2 - 2 u_q^3 / 3) / (1 - q): 0.62 of the jitter.
    differences = len(draws) - 1
    q = (2 + differences // 20) / differences
    u_q = 1 - math.sqrt(q)
    expected = width * (u_q**2 - 2 * u_q**3 / 3) / (1 - q)
    measured = netmon_jitter(draws)
    assert measured is not None
    assert measured == pytest.approx(expected, rel=0.02)
    assert 0.61 * jitter < expected < 0.63 * jitter


def test_without_jitter_the_delay_is_exact_and_nothing_is_drawn() -> None:
    rng = random.Random(1)
    assert {reply_delay(Impairment(delay=0.2), rng) for _ in range(10)} == {0.2}
    assert rng.random() == random.Random(1).random()


# -- the control line ----------------------------------------------------------------------------

ADDRESS = "198.18.0.5"


def test_the_control_line_takes_every_key_and_leaves_out_ones_at_their_default() -> None:
    line = (
        '{"impairments": {"198.18.0.5": {"loss": 0.005, "delay": 0.02, "jitter": 0.003, '
        '"burst_every": 120, "burst_min": 5, "burst_max": 10}, "198.18.0.6": {"loss": "0.1"}}}'
    )
    table = parse_table(line)
    busy = Impairment(loss=0.005, delay=0.02, jitter=0.003, burst_every=120)
    assert table == {bytes([198, 18, 0, 5]): busy, bytes([198, 18, 0, 6]): Impairment(loss=0.1)}
    assert Impairment(loss=0.1).to_json() == {"loss": 0.1, "delay": 0.0}
    assert busy.to_json() == {
        "loss": 0.005, "delay": 0.02, "jitter": 0.003,
        "burst_every": 120.0, "burst_min": 5, "burst_max": 10,
    }  # fmt: skip


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ('{"los": 0.1}', "unknown los (keys: loss, delay, jitter, burst_every, burst_min, "
                         "burst_max)"),
        ('{"loss": 1.5}', "loss must be 0..1"),
        ('{"loss": true}', "loss must be a number, not True"),
        ('{"jitter": -0.001}', "jitter must be >= 0 seconds"),
        ('{"jitter": "soon"}', "jitter must be a number, not 'soon'"),
        ('{"burst_every": -1}', "burst_every must be >= 0 seconds"),
        ('{"burst_every": 60, "burst_min": 2.5}', "burst_min must be a whole number, not 2.5"),
        ('{"burst_every": 60, "burst_min": 10, "burst_max": 5}',
         "burst_min and burst_max must be whole echoes, 1 <= burst_min <= burst_max"),
        ('{"burst_every": 60, "burst_min": 0}',
         "burst_min and burst_max must be whole echoes, 1 <= burst_min <= burst_max"),
        ("[]", "expected an object with loss, delay, jitter, burst_every, burst_min, burst_max"),
    ],
    ids=["unknown-key", "loss-above-1", "loss-bool", "negative-jitter", "jitter-text",
         "negative-every", "fractional-burst", "min-above-max", "empty-burst", "not-an-object"],
)  # fmt: skip
def test_a_bad_control_line_is_refused_naming_the_address_and_the_key(
    fields: str, message: str
) -> None:
    with pytest.raises(ValueError, match=ADDRESS) as raised:
        parse_table(f'{{"impairments": {{"{ADDRESS}": {fields}}}}}')
    assert str(raised.value) == f"{ADDRESS}: {message}"


# -- the flags, against real pings ---------------------------------------------------------------


@pytest.mark.netns
async def test_the_flags_jitter_replies_and_lose_bursts_of_pings(netlab: NetLab) -> None:
    jittery = netlab.add_host(delay=0.020, jitter=0.005, seed=1)
    bursty = netlab.add_host(burst_every=0.5, burst_min=4, burst_max=6, seed=2)
    async with Pinger() as pinger:
        # 20 ms apart, more than the 10 ms window, so the FIFO never holds a reply back.
        rtts = await pinger.ping(jittery.address, count=60, spacing=0.02, timeout=1.0)
        received = [rtt for rtt in rtts if rtt is not None]
        assert len(received) == 60
        assert min(received) >= 0.015  # a reply never leaves before the window opens
        # On an idle link the round trips vary by well under 0.1 ms; here by ~3.1 ms (0.62 of
        # 5 ms). A busy machine only adds to the spread, so only the floor is asserted.
        measured = netmon_jitter(received)
        assert measured is not None
        assert measured > 0.002, received

        seen: list[str] = []  # each round's pings: "." answered, "x" lost

        async def a_burst_shows() -> bool:
            rtts = await pinger.ping(bursty.address, count=40, spacing=0.05, timeout=0.5)
            seen.append("".join("x" if rtt is None else "." for rtt in rtts))
            return any(len(run) >= 4 for run in seen[-1].split("."))

        # Bursts every ~0.5 s: each round of 2 s very likely holds one; the deadline only
        # catches a responder that never loses a burst.
        for _ in range(20):
            if await a_burst_shows():
                break
        else:
            pytest.fail(f"no run of 4 lost pings in {len(seen)} rounds: {seen}")

"""Issue 14's fuzz campaign, small budget: every parser an outsider can feed, under hypothesis.

Each target (tests/fuzz/) returns a result or raises its own documented error on any
input, never another exception. `make fuzz` (bench/fuzz.py) runs the same targets with a
large budget and times the datagram parsers against their input's size.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings

from tests.fuzz import TARGETS, Target

settings.register_profile(
    "fuzz-quick",
    max_examples=200,
    deadline=None,  # a loaded machine is slow, not wrong; bench/fuzz.py times the parsers
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    derandomize=True,  # the same inputs every run: `make test` does not flake
    database=None,
)
QUICK = settings.get_profile("fuzz-quick")


@pytest.mark.parametrize("target", TARGETS, ids=[target.name for target in TARGETS])
def test_parser_keeps_its_contract_on_any_input(target: Target) -> None:
    with target.open() as check:
        budget = QUICK.max_examples // 4 if target.slow else QUICK.max_examples

        @settings(QUICK, max_examples=budget)
        @given(target.strategy)
        def run(value: object) -> None:
            check(value)

        run()

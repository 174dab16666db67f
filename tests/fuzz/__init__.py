"""Every parser an outsider can feed, as a fuzz target: an input strategy and the contract.

A target's `open()` is a context manager giving `check(value)`: it feeds one input to the
parser and asserts its contract, which is always the same shape: the parser returns a result
or raises ITS documented error (the one its caller catches and counts), never anything else.
Any other exception escapes `check`. `tests/test_fuzz.py` runs every target under hypothesis
with a small budget (part of `make test`); `bench/fuzz.py` with a large one (`make fuzz`).

`sized(n)` builds a worst-case-ish input of about n bytes for the datagram parsers, so the
campaign can show their cost grows linearly with a datagram's size.
"""

from __future__ import annotations

from tests.fuzz import codecs, files, poly, probes, registrar, snmp, snmp_v3
from tests.fuzz.target import Check, Target

TARGETS: tuple[Target, ...] = (
    *probes.TARGETS,
    *codecs.TARGETS,
    *poly.TARGETS,
    *registrar.TARGETS,
    *snmp.TARGETS,
    *snmp_v3.TARGETS,
    *files.TARGETS,
)

__all__ = ["TARGETS", "Check", "Target"]

"""A fuzz target: an input strategy, and `open()` giving `check(value)`, which feeds one input
to a parser and asserts its contract (see tests/fuzz/__init__.py)."""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Callable, Iterator
from typing import Any

from hypothesis import strategies as st

Check = Callable[[Any], None]


@dataclasses.dataclass(frozen=True)
class Target:
    name: str
    strategy: st.SearchStrategy[Any]
    open: Callable[[], contextlib.AbstractContextManager[Check]]
    sized: Callable[[int], Any] | None = None  # datagram parsers: an input of about n bytes
    slow: bool = False  # each input costs a round trip: a smaller share of the budget


def plain(check: Check) -> Callable[[], contextlib.AbstractContextManager[Check]]:
    @contextlib.contextmanager
    def opened() -> Iterator[Check]:
        yield check

    return opened

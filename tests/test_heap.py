"""netmon.heap: glibc's malloc tuned at start-up and trimmed after each gzipped scrape (issue 17).

A fake C library records the calls: what is asked of malloc, and when, is the behaviour; what
the kernel then does with the pages is the memory bench's to measure (bench/memory_bench.py).
"""

from __future__ import annotations

import gzip
from collections.abc import Iterator

import pytest
from aiohttp.test_utils import TestClient, TestServer

from netmon import heap
from netmon.api import build_app
from netmon.config.loader import load_data
from netmon.exporter import build_registry
from netmon.model import EchoRound
from netmon.state import StateStore


class FakeLibc:
    def __init__(self) -> None:
        self.calls: list[tuple[object, ...]] = []

    def libc(self) -> heap.Libc:
        return heap.Libc(mallopt=self._mallopt, malloc_trim=self._trim)

    def _mallopt(self, param: int, value: int) -> int:
        self.calls.append(("mallopt", param, value))
        return 1

    def _trim(self, pad: int) -> int:
        self.calls.append(("malloc_trim", pad))
        return 1


@pytest.fixture
def fake() -> Iterator[FakeLibc]:
    libc = FakeLibc()
    heap.tune(libc.libc())
    libc.calls.clear()
    yield libc
    heap._libc = None  # no later test trims through the fake


def test_tune_fixes_the_mmap_threshold() -> None:
    libc = FakeLibc()
    try:
        assert heap.tune(libc.libc())
    finally:
        heap._libc = None
    assert libc.calls == [("mallopt", heap.M_MMAP_THRESHOLD, heap.MMAP_THRESHOLD)]


def test_told_to_leave_malloc_alone_it_finds_no_library() -> None:
    assert heap.glibc({heap.ENV: "default"}) is None
    assert heap.glibc({heap.ENV: " Default "}) is None


def test_trim_without_tune_does_nothing() -> None:
    heap._libc = None
    assert not heap.trim()


async def test_each_gzipped_scrape_is_trimmed_after_its_gzip(fake: FakeLibc) -> None:
    store = StateStore()
    store.apply_inventory(load_data({"targets": [{"id": "a", "address": "192.0.2.1"}]}))
    store.record(EchoRound(target="a", collector="icmp", ok=True, duration=0.01,
                           rtts=(0.0007,), address="192.0.2.1"))  # fmt: skip
    app = build_app(store=store, registry=build_registry(store), is_ready=lambda: True)
    async with TestClient(TestServer(app), auto_decompress=False) as client:
        plain = await client.get("/metrics", headers={"Accept-Encoding": "identity"})
        assert plain.status == 200
        assert plain.headers.get("Content-Encoding") is None
        assert fake.calls == []  # an uncompressed scrape is left as it was
        for n in (1, 2):
            zipped = await client.get("/metrics", headers={"Accept-Encoding": "gzip"})
            assert zipped.headers["Content-Encoding"] == "gzip"
            text = gzip.decompress(await zipped.read()).decode()
            assert 'netmon_icmp_rtt_seconds_bucket{le="0.001",target="a"} 1.0' in text
            assert fake.calls == [("malloc_trim", 0)] * n

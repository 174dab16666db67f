"""The one name resolver of the collectors: TTLs, negative caching and refresh on a fake clock."""

from __future__ import annotations

import asyncio
import socket
import threading

import pytest

from collectors.base import CollectError
from collectors.resolve import Address, Resolver, system_lookup

V4 = Address(socket.AF_INET, "192.0.2.10")
V6 = Address(socket.AF_INET6, "2001:db8::10")


class FakeDns:
    """Answers from a table; counts lookups; can hold a lookup until released."""

    def __init__(self) -> None:
        self.records: dict[str, list[Address]] = {"ep.example": [V6, V4]}
        self.asked: list[str] = []
        self.gate: asyncio.Event | None = None

    async def __call__(self, host: str) -> list[Address]:
        self.asked.append(host)
        if self.gate is not None:
            await self.gate.wait()
        if host not in self.records:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return self.records[host]


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def dns() -> FakeDns:
    return FakeDns()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def resolver(dns: FakeDns, clock: Clock) -> Resolver:
    return Resolver(lookup=dns, clock=clock)


async def _settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("192.0.2.1", Address(socket.AF_INET, "192.0.2.1")),
        ("2001:DB8::1", Address(socket.AF_INET6, "2001:db8::1")),
    ],
)
async def test_a_literal_is_used_as_is_and_never_looked_up(
    resolver: Resolver, dns: FakeDns, host: str, expected: Address
) -> None:
    assert resolver.peek(host) == expected
    assert await resolver.resolve(host) == expected
    assert dns.asked == []


async def test_the_resolver_order_holds_unless_ipv4_is_preferred(resolver: Resolver) -> None:
    assert await resolver.resolve("ep.example") == V6
    assert await resolver.resolve("ep.example", ipv4_first=True) == V4


async def test_an_answer_is_kept_for_the_ttl(
    resolver: Resolver, dns: FakeDns, clock: Clock
) -> None:
    await resolver.resolve("ep.example")
    clock.now += 299
    await resolver.resolve("ep.example")
    assert resolver.peek("ep.example") == V6
    assert dns.asked == ["ep.example"]


async def test_an_expired_answer_is_served_while_it_is_refreshed(
    resolver: Resolver, dns: FakeDns, clock: Clock
) -> None:
    await resolver.resolve("ep.example")
    dns.records["ep.example"] = [Address(socket.AF_INET, "192.0.2.99")]
    dns.gate = asyncio.Event()
    clock.now += 300
    assert await resolver.resolve("ep.example") == V6  # no wait for the slow refresh
    assert resolver.peek("ep.example") == V6
    dns.gate.set()
    await _settle()
    assert resolver.peek("ep.example") == Address(socket.AF_INET, "192.0.2.99")
    assert dns.asked == ["ep.example", "ep.example"]  # one refresh, however many asked


async def test_a_failure_is_remembered_for_the_negative_ttl(
    resolver: Resolver, dns: FakeDns, clock: Clock
) -> None:
    for _ in range(3):
        with pytest.raises(CollectError) as caught:
            await resolver.resolve("ghost.example")
        assert (caught.value.reason, caught.value.detail) == (
            "resolve",
            "cannot resolve ghost.example",
        )
    assert dns.asked == ["ghost.example"]
    clock.now += 30
    dns.records["ghost.example"] = [V4]
    assert await resolver.resolve("ghost.example") == V4  # an expired failure is asked again
    assert dns.asked == ["ghost.example", "ghost.example"]


async def test_a_refresh_that_fails_replaces_the_address(
    resolver: Resolver, dns: FakeDns, clock: Clock
) -> None:
    await resolver.resolve("ep.example")
    del dns.records["ep.example"]
    clock.now += 300
    assert resolver.peek("ep.example") == V6
    await _settle()
    failure = resolver.peek("ep.example")
    assert isinstance(failure, CollectError)
    assert failure.reason == "resolve"


async def test_peek_never_waits_and_starts_one_lookup(resolver: Resolver, dns: FakeDns) -> None:
    dns.gate = asyncio.Event()
    assert resolver.peek("ep.example") is None
    assert resolver.peek("ep.example") is None
    await _settle()
    dns.gate.set()
    await _settle()
    assert resolver.peek("ep.example") == V6
    assert dns.asked == ["ep.example"]


async def test_a_caller_that_stops_waiting_leaves_the_lookup_to_finish(
    resolver: Resolver, dns: FakeDns
) -> None:
    dns.gate = asyncio.Event()
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.01):
            await resolver.resolve("ep.example")
    dns.gate.set()
    await _settle()
    assert resolver.peek("ep.example") == V6
    assert dns.asked == ["ep.example"]


async def test_a_lookup_slower_than_its_bound_is_a_failure(dns: FakeDns, clock: Clock) -> None:
    dns.gate = asyncio.Event()  # never set
    resolver = Resolver(lookup=dns, clock=clock, lookup_timeout=0.01)
    with pytest.raises(CollectError) as caught:
        await resolver.resolve("ep.example")
    assert caught.value.reason == "resolve"


async def test_names_not_asked_for_are_forgotten(
    resolver: Resolver, dns: FakeDns, clock: Clock
) -> None:
    await resolver.resolve("ep.example")
    clock.now += 600  # expired a whole TTL ago: gone from the config
    with pytest.raises(CollectError):
        await resolver.resolve("ghost.example")
    dns.gate = asyncio.Event()
    assert resolver.peek("ep.example") is None  # unknown again, not served stale


async def test_close_cancels_lookups_in_flight(resolver: Resolver, dns: FakeDns) -> None:
    dns.gate = asyncio.Event()
    assert resolver.peek("ep.example") is None
    await _settle()
    await resolver.close()
    assert resolver.peek("192.0.2.1") == Address(socket.AF_INET, "192.0.2.1")


async def test_the_system_lookup_finds_localhost() -> None:
    addresses = await system_lookup("localhost")
    assert addresses
    assert {a.ip for a in addresses} <= {"127.0.0.1", "::1"}


async def test_a_dns_outage_never_takes_the_threads_the_rest_of_netmon_needs(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # In an outage the system resolver holds each lookup's thread for tens of seconds. With
    # hundreds of names on the loop's default executor, reading the config on SIGHUP (which
    # waits for a thread) would wait for DNS too.
    released = threading.Event()
    real = socket.getaddrinfo

    def hanging(host: str, *args: object, **kwargs: object) -> object:
        if host.endswith(".outage.example"):
            released.wait(30)
            raise socket.gaierror(socket.EAI_AGAIN, "Temporary failure in name resolution")
        return real(host, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(socket, "getaddrinfo", hanging)
    lookups = [asyncio.ensure_future(system_lookup(f"ep-{n}.outage.example")) for n in range(40)]
    try:
        async with asyncio.timeout(10):  # only catches the hang this test is about
            assert await asyncio.to_thread(lambda: "config read") == "config read"
    finally:
        released.set()
        results = await asyncio.gather(*lookups, return_exceptions=True)
    assert all(isinstance(result, socket.gaierror) for result in results)

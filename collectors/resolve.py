"""Host names to addresses for every collector: one cache, one TTL rule, one error.

An IP literal is used as is and never looked up. A name is looked up (getaddrinfo) and its
answer kept for `ttl` (300 s); a name that does not resolve is remembered as such for
`negative_ttl` (30 s), so a dead name costs one lookup per half minute, not one per probe run.
An answer past its TTL is still served while one background lookup refreshes it, so a slow
resolver never delays a probe of a name it already knew; the refresh's outcome, an address or a
failure, replaces it. A failure past its TTL is looked up again by the next caller that waits.
One lookup runs per name however many probes ask, and each is bounded by `lookup_timeout`
(5 s); lookups run on their own few threads, so a DNS outage never takes the threads the rest
of netmon needs. Every failure is `CollectError("resolve", "cannot resolve <name>")`.

Callers bound their own wait (the probe's timeout) and say their own words when it runs out; the
lookup goes on in the background and its answer serves the next run. This module does no other
I/O and must not import anything from the exporter, alerting or MQTT.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import ipaddress
import socket
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from collectors.base import CollectError

TTL = 300.0
NEGATIVE_TTL = 30.0
LOOKUP_TIMEOUT = 5.0


@dataclass(frozen=True, slots=True)
class Address:
    family: int  # socket.AF_INET or socket.AF_INET6
    ip: str  # canonical text of the address


Lookup = Callable[[str], Awaitable[Sequence[Address]]]


# getaddrinfo blocks a thread until the system resolver gives up (tens of seconds in a DNS
# outage), whatever `lookup_timeout` says to the caller. On the event loop's default executor
# a few hundred names would hold every thread, and everything else that needs one (reading the
# config on SIGHUP, starting a collector) would wait for DNS: lookups get threads of their own.
LOOKUP_THREADS = 4
_lookup_executor = concurrent.futures.ThreadPoolExecutor(
    LOOKUP_THREADS, thread_name_prefix="netmon-dns"
)


async def system_lookup(host: str) -> list[Address]:
    """The system resolver's addresses for `host`, in its order (RFC 6724: reachable first)."""
    loop = asyncio.get_running_loop()
    infos = await loop.run_in_executor(
        _lookup_executor,
        functools.partial(socket.getaddrinfo, host, None, type=socket.SOCK_STREAM),
    )
    found: list[Address] = []
    for family, _, _, _, sockaddr in infos:
        address = Address(int(family), str(sockaddr[0]))
        if address not in found:
            found.append(address)
    return found


# Every probe run asks (10,000 a second at 10,000 targets); ipaddress parses in pure Python.
@functools.lru_cache(maxsize=65536)
def literal(host: str) -> Address | None:
    """`host` as an Address if it is an IP literal, else None."""
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return None
    return Address(socket.AF_INET6 if ip.version == 6 else socket.AF_INET, str(ip))


def _pick(addresses: Sequence[Address], ipv4_first: bool) -> Address:
    if ipv4_first:
        # Stable: among IPv4 (and then IPv6) addresses the resolver's order still holds.
        return sorted(addresses, key=lambda a: a.family != socket.AF_INET)[0]
    return addresses[0]


@dataclass(frozen=True, slots=True)
class _Answer:
    addresses: tuple[Address, ...]  # empty: the name did not resolve
    expires: float


class Resolver:
    """A cache of name lookups shared by a collector's runs; `close()` cancels lookups."""

    def __init__(
        self,
        *,
        ttl: float = TTL,
        negative_ttl: float = NEGATIVE_TTL,
        lookup_timeout: float = LOOKUP_TIMEOUT,
        lookup: Lookup = system_lookup,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._ttl = ttl
        self._negative_ttl = negative_ttl
        self._lookup_timeout = lookup_timeout
        self._lookup = lookup
        self._clock = clock
        self._answers: dict[str, _Answer] = {}
        self._lookups: dict[str, asyncio.Task[None]] = {}

    def peek(self, host: str, *, ipv4_first: bool = False) -> Address | CollectError | None:
        """The address to use now, without waiting: CollectError if the name does not resolve,
        None if no answer is in yet. Starts (or refreshes) a background lookup when needed."""
        address = literal(host)
        if address is not None:
            return address
        answer = self._answers.get(host)
        if answer is None or answer.expires <= self._clock():
            self._start_lookup(host)
        if answer is None:
            return None
        if not answer.addresses:
            return _failure(host)
        return _pick(answer.addresses, ipv4_first)

    async def resolve(self, host: str, *, ipv4_first: bool = False) -> Address:
        """The address to use now, waiting for a lookup if there is no answer or only an
        expired failure. The caller bounds the wait; the lookup itself is bounded too."""
        address = literal(host)
        if address is not None:
            return address
        answer = self._answers.get(host)
        if answer is None or (not answer.addresses and answer.expires <= self._clock()):
            self._start_lookup(host)
            await asyncio.shield(self._lookups[host])
        found = self.peek(host, ipv4_first=ipv4_first)
        if isinstance(found, Address):
            return found
        raise found or _failure(host)

    async def close(self) -> None:
        lookups = list(self._lookups.values())
        for task in lookups:
            task.cancel()
        await asyncio.gather(*lookups, return_exceptions=True)
        self._answers.clear()

    def _start_lookup(self, host: str) -> None:
        if host not in self._lookups:
            self._lookups[host] = asyncio.create_task(self._run(host), name=f"resolve:{host}")

    async def _run(self, host: str) -> None:
        try:
            async with asyncio.timeout(self._lookup_timeout):
                addresses = tuple(await self._lookup(host))
        except (OSError, TimeoutError):
            addresses = ()
        finally:
            self._lookups.pop(host, None)
        now = self._clock()
        ttl = self._ttl if addresses else self._negative_ttl
        self._answers[host] = _Answer(addresses, now + ttl)
        # A name nobody asked for within a TTL of its expiry is gone from the config.
        for name in [n for n, a in self._answers.items() if a.expires + self._ttl <= now]:
            del self._answers[name]


def _failure(host: str) -> CollectError:
    return CollectError("resolve", f"cannot resolve {host}")

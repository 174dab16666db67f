"""The TCP connect probe against real sockets: a listener, a closed port, a host cut off in a
namespace, IPv6 loopback, a name; and its settings as the config sees them."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from collectors.base import CollectError
from collectors.tcp import TcpCollector, TcpSettings
from netmon.config.errors import ConfigError
from netmon.config.loader import load_data
from netmon.model import ProbeTarget
from tests.lab.netlab import NetLab

HANG = 30.0  # seconds: far beyond any probe timeout here; reached only by a hang


@pytest.fixture
async def tcp() -> AsyncIterator[TcpCollector]:
    collector = TcpCollector()
    await collector.start()
    try:
        yield collector
    finally:
        await collector.close()


def _listener(host: str, family: int = socket.AF_INET) -> socket.socket:
    # The kernel completes handshakes into the backlog: no accept() is needed to be "up".
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.bind((host, 0))
    sock.listen(16)
    return sock


@pytest.fixture
def listener() -> Iterator[socket.socket]:
    with _listener("127.0.0.1") as sock:
        yield sock


def _settings(**values: Any) -> TcpSettings:
    return TcpSettings.model_validate(values)


async def _failure(
    tcp: TcpCollector, address: str, settings: TcpSettings
) -> tuple[CollectError, float]:
    loop = asyncio.get_running_loop()
    started = loop.time()
    # Only a hang guard: how fast a failure is known is said by its reason (refused, timeout),
    # never by a wall-clock bound that a loaded machine can miss.
    async with asyncio.timeout(HANG):
        with pytest.raises(CollectError) as caught:
            await tcp.collect(ProbeTarget(id="ep", address=address), settings)
    return caught.value, loop.time() - started


async def test_a_listener_is_up_with_its_connect_time(
    tcp: TcpCollector, listener: socket.socket
) -> None:
    port = listener.getsockname()[1]
    observation = await tcp.collect(
        ProbeTarget(id="ep-1", address="127.0.0.1"), _settings(port=port)
    )
    assert observation.ok
    assert observation.target == "ep-1"
    assert observation.collector == "tcp"
    assert observation.reason is None
    assert observation.duration > 0


async def test_a_closed_port_is_refused_at_once(tcp: TcpCollector) -> None:
    with _listener("127.0.0.1") as sock:
        port = sock.getsockname()[1]  # free now, closed once the block ends
    error, _ = await _failure(tcp, "127.0.0.1", _settings(port=port))
    assert error.reason == "refused"
    # Refused, not a timeout: the probe did not wait out its 3 s timeout to say so.
    assert error.detail == f"connection refused (port {port})"


@pytest.mark.netns
async def test_a_host_cut_off_times_out_within_the_timeout(
    tcp: TcpCollector, netlab: NetLab
) -> None:
    host = netlab.add_host()
    host.link_down()
    error, elapsed = await _failure(tcp, host.address, _settings(timeout=1.0))
    assert error.reason == "timeout"
    assert error.detail == "no answer within 1s (port 1720)"
    assert elapsed >= 1.0  # it waited the whole timeout; no upper bound: a loaded machine is slow


async def test_ipv6_loopback(tcp: TcpCollector) -> None:
    with _listener("::1", socket.AF_INET6) as sock:
        port = sock.getsockname()[1]
        observation = await tcp.collect(ProbeTarget(id="ep6", address="::1"), _settings(port=port))
    assert observation.ok
    with _listener("::1", socket.AF_INET6) as sock:
        port = sock.getsockname()[1]
    error, _ = await _failure(tcp, "::1", _settings(port=port))
    assert error.reason == "refused"


async def test_a_name_is_resolved(tcp: TcpCollector) -> None:
    family, _, _, _, sockaddr = socket.getaddrinfo("localhost", None, type=socket.SOCK_STREAM)[0]
    with _listener(str(sockaddr[0]), family) as sock:
        port = sock.getsockname()[1]
        observation = await tcp.collect(
            ProbeTarget(id="ep", address="localhost"), _settings(port=port)
        )
    assert observation.ok


def test_defaults() -> None:
    settings = TcpSettings()
    assert (settings.port, settings.interval, settings.timeout) == (1720, 30.0, 3.0)


@pytest.mark.parametrize(
    ("probe", "problem"),
    [
        ({"timeout": "30s"}, ": timeout 30s must be shorter than the interval 30s"),
        ({"port": 0}, ".port: Input should be greater than or equal to 1"),
        ({"port": 70000}, ".port: Input should be less than or equal to 65535"),
        ({"prot": 1720}, ".prot: unknown key (check the spelling)"),
    ],
)
def test_bad_settings(probe: dict[str, Any], problem: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_data({"targets": [{"id": "ep", "address": "10.0.0.1", "probes": {"tcp": probe}}]})
    assert [str(p) for p in caught.value.problems] == ["targets[0].probes.tcp" + problem]


def test_a_target_sets_its_port() -> None:
    inventory = load_data(
        {
            "defaults": {"tcp": {"interval": "10s"}},
            "targets": [{"id": "ep", "address": "10.0.0.1", "probes": {"tcp": {"port": 1719}}}],
        }
    )
    settings = inventory.targets["ep"].probe("tcp")
    assert isinstance(settings, TcpSettings)
    assert (settings.port, settings.interval, settings.timeout) == (1719, 10.0, 3.0)

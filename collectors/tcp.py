"""TCP connect: can a connection to the target's port be opened (H.323 call signalling by default)?

A run resolves the address if it is a name, opens one connection and closes it at once; the
connect time is the result. Why it failed is one of `refused` (something answered with a reset:
the host is there, the service is not), `timeout`, `unreachable` (the network said so) or
`resolve`. Every wait is bounded by the probe's timeout.

This module must not import anything from the exporter, alerting or MQTT.
"""

from __future__ import annotations

import asyncio
import errno
import ipaddress
import socket
import time
from typing import ClassVar

from pydantic import Field, model_validator

from collectors.base import CollectError, CollectorSettings
from netmon.model import Duration, Observation, ProbeTarget

# H.323 call signalling (H.225.0 over TCP): what a room system listens on when it can take a call.
H323_PORT = 1720
RESOLVE_TTL = 300.0

_UNREACHABLE = {
    errno.EHOSTUNREACH,
    errno.ENETUNREACH,
    errno.EHOSTDOWN,
    errno.ENETDOWN,
    errno.EADDRNOTAVAIL,
    errno.EACCES,  # an ICMP "administratively prohibited" from a firewall
    errno.EPERM,  # a local firewall rule
}


class TcpSettings(CollectorSettings):
    interval: Duration = Field(default=30.0, gt=0)
    timeout: Duration = Field(default=3.0, gt=0, description="for resolving and connecting")
    port: int = Field(default=H323_PORT, ge=1, le=65535)

    @model_validator(mode="after")
    def _timeout_inside_interval(self) -> TcpSettings:
        if self.timeout >= self.interval:
            raise ValueError(
                f"timeout {self.timeout:g}s must be shorter than the interval {self.interval:g}s"
            )
        return self


def _reason(exc: OSError) -> tuple[str, str]:
    if isinstance(exc, ConnectionRefusedError) or exc.errno == errno.ECONNREFUSED:
        return "refused", "connection refused"
    if exc.errno == errno.ETIMEDOUT:
        return "timeout", "connection timed out"
    if exc.errno in _UNREACHABLE:
        return "unreachable", (exc.strerror or "unreachable").lower()
    if isinstance(exc, ConnectionResetError):
        return "refused", "connection reset"
    return "unreachable", (exc.strerror or type(exc).__name__).lower()


class TcpCollector:
    """Opens and closes one TCP connection per run."""

    name: ClassVar[str] = "tcp"
    settings_model: ClassVar[type[CollectorSettings]] = TcpSettings

    def __init__(self, *, resolve_ttl: float = RESOLVE_TTL) -> None:
        self._resolve_ttl = resolve_ttl
        # name: (family, sockaddr, expires); a cached name keeps the connect time honest.
        self._resolved: dict[str, tuple[int, tuple[str, int], float]] = {}

    async def start(self) -> None:
        pass

    async def close(self) -> None:
        self._resolved.clear()

    async def _sockaddr(self, host: str, port: int) -> tuple[int, tuple[str, int]]:
        try:
            literal = ipaddress.ip_address(host)
        except ValueError:
            pass
        else:
            family = socket.AF_INET6 if literal.version == 6 else socket.AF_INET
            return family, (str(literal), port)
        now = time.monotonic()
        cached = self._resolved.get(host)
        if cached is not None and cached[2] > now:
            return cached[0], (cached[1][0], port)
        loop = asyncio.get_running_loop()
        try:
            infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except OSError as exc:
            raise CollectError("resolve", f"cannot resolve {host}") from exc
        if not infos:
            raise CollectError("resolve", f"cannot resolve {host}")
        # The resolver's order (RFC 6724) already prefers what this host can reach.
        family, _, _, _, sockaddr = infos[0]
        address = str(sockaddr[0])
        self._resolved[host] = (family, (address, port), now + self._resolve_ttl)
        for name in [n for n, (_, _, expires) in self._resolved.items() if expires <= now]:
            del self._resolved[name]
        return family, (address, port)

    async def collect(self, target: ProbeTarget, settings: CollectorSettings) -> Observation:
        assert isinstance(settings, TcpSettings)
        loop = asyncio.get_running_loop()
        connect_started = loop.time()
        connecting = False
        try:
            async with asyncio.timeout(settings.timeout):
                family, sockaddr = await self._sockaddr(target.address, settings.port)
                with socket.socket(family, socket.SOCK_STREAM) as sock:
                    sock.setblocking(False)
                    connecting, connect_started = True, loop.time()
                    await loop.sock_connect(sock, sockaddr)
                    connected = loop.time()
        except TimeoutError:
            if not connecting:
                raise CollectError(
                    "resolve", f"no address for {target.address} within {settings.timeout:g}s"
                ) from None
            raise CollectError(
                "timeout", f"no answer within {settings.timeout:g}s (port {settings.port})"
            ) from None
        except OSError as exc:
            reason, detail = _reason(exc)
            raise CollectError(reason, f"{detail} (port {settings.port})") from None
        return Observation(
            target=target.id,
            collector=self.name,
            ok=True,
            duration=connected - connect_started,
        )

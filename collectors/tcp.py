"""TCP connect: can a connection to the target's port be opened (H.323 call signalling by default)?

A run resolves the address if it is a name, opens one connection and closes it at once; the
connect time is the result. Why it failed is one of `refused` (something answered with a reset:
the host is there, the service is not), `timeout`, `unreachable` (the network said so) or
`resolve`. Every wait is bounded by the probe's timeout.

This module must not import anything from the exporter, alerting or MQTT.
"""

from __future__ import annotations

import asyncio
import socket
from typing import ClassVar

from pydantic import Field, model_validator

from collectors.base import CollectError, CollectorSettings
from collectors.reasons import socket_failure
from collectors.resolve import Resolver
from netmon.model import Duration, Observation, ProbeRole, ProbeTarget

# H.323 call signalling (H.225.0 over TCP): what a room system listens on when it can take a call.
H323_PORT = 1720


class TcpSettings(CollectorSettings):
    role: ClassVar[ProbeRole] = ProbeRole.SERVICE
    readiness_label: ClassVar[str] = "TCP connect"
    stops_meeting: ClassVar[bool] = True  # no call signalling, no call

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


class TcpCollector:
    """Opens and closes one TCP connection per run."""

    name: ClassVar[str] = "tcp"
    settings_model: ClassVar[type[CollectorSettings]] = TcpSettings

    def __init__(self, *, resolver: Resolver | None = None) -> None:
        # A cached name keeps the connect time honest: no lookup inside the measurement.
        self._resolver = resolver or Resolver()

    async def start(self) -> None:
        pass

    async def close(self) -> None:
        await self._resolver.close()

    async def collect(self, target: ProbeTarget, settings: CollectorSettings) -> Observation:
        assert isinstance(settings, TcpSettings)
        loop = asyncio.get_running_loop()
        connect_started = loop.time()
        connecting = False
        try:
            async with asyncio.timeout(settings.timeout):
                address = await self._resolver.resolve(target.address)
                with socket.socket(address.family, socket.SOCK_STREAM) as sock:
                    sock.setblocking(False)
                    connecting, connect_started = True, loop.time()
                    await loop.sock_connect(sock, (address.ip, settings.port))
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
            failure = socket_failure(exc)
            raise CollectError(failure.reason, f"{failure.text} (port {settings.port})") from None
        return Observation(
            target=target.id,
            collector=self.name,
            ok=True,
            duration=connected - connect_started,
        )

"""SIP OPTIONS probe (RFC 3261): is an endpoint's SIP stack alive, and how fast does it answer?

One OPTIONS transaction per run, over UDP or TCP. Any final response (2xx-6xx) means the stack
is alive: a room system answers 404 to a user it does not host and 486 or 503 when busy, and
each of those proves it parses SIP and answers. The code and reason phrase are kept in the
observation, so a person can still tell "200 OK" from "503 Service Unavailable".

UDP uses one socket per probe, connected to the target, so that an ICMP port unreachable comes
back to it as ConnectionRefusedError; the request is retransmitted as RFC 3261 17.1.2.2 says
(after T1, 2T1, 4T1... capped at T2; every T2 once a provisional response came). A malformed
datagram is counted and dropped, and the probe goes on waiting for a valid answer. TCP connects,
sends, reads with bounded buffers and closes. Every wait is bounded by the probe's timeout.

This module must not import anything from netmon (exporter, alerting, MQTT).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import importlib.metadata
import itertools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

from pydantic import Field, field_validator, model_validator

from collectors.base import CollectError, CollectorSettings
from collectors.reasons import socket_failure
from collectors.resolve import Resolver
from collectors.sip_message import (
    SIP_PORT,
    SIP_USER,
    MalformedResponseError,
    NotAResponseError,
    OptionsRequest,
    ParsedResponse,
    build_options,
    hostport,
    matches,
    parse_response,
    printable,
    request_length,
)
from netmon.model import Duration, Observation, ProbeRole, ProbeTarget

# RFC 3261 17.1.2.2: retransmissions of a non-INVITE request never wait longer than T2.
T2 = 4.0
# A response head larger than this is not an OPTIONS answer worth reading (RFC 3261 does not
# cap it; 64 KiB is the largest UDP datagram anyway).
MAX_MESSAGE = 64 * 1024


@functools.cache
def _default_user_agent() -> str:
    # The package's metadata, not `import netmon`: collectors stay independent of the core.
    try:
        return f"netmon/{importlib.metadata.version('netmon')}"
    except importlib.metadata.PackageNotFoundError:
        return "netmon"


class SipSettings(CollectorSettings):
    """SIP OPTIONS probe settings: one transaction every `interval`, bounded by `timeout`."""

    role: ClassVar[ProbeRole] = ProbeRole.SERVICE
    readiness_label: ClassVar[str] = "SIP OPTIONS"
    stops_meeting: ClassVar[bool] = True  # no SIP signalling, no call

    interval: Duration = Field(default=30.0, gt=0)
    timeout: Duration = Field(default=3.0, gt=0, description="for the whole transaction")
    transport: Literal["udp", "tcp"] = "udp"
    port: int = Field(default=SIP_PORT, ge=1, le=65535)
    user: str | None = Field(
        default=None,
        description="user part of the request URI; a UA answers 404 to other users, still alive",
    )
    t1: Duration = Field(default=0.5, gt=0, description="first UDP retransmission interval")
    user_agent: str = Field(default_factory=_default_user_agent, min_length=1, max_length=100)

    @field_validator("user", mode="before")
    @classmethod
    def _numeric_user(cls, value: object) -> object:
        # Room systems are often numbered (user: 1001): YAML reads that as an int.
        return str(value) if isinstance(value, int) and not isinstance(value, bool) else value

    @field_validator("user")
    @classmethod
    def _sip_user(cls, value: str | None) -> str | None:
        if value is not None and not SIP_USER.match(value):
            raise ValueError(
                f"not a SIP user part: {value!r} (letters, digits and -_.!~*'()&=+$,;?/%)"
            )
        return value

    @field_validator("user_agent")
    @classmethod
    def _printable(cls, value: str) -> str:
        if not value.isprintable():
            raise ValueError("must be printable text on one line")
        return value

    @model_validator(mode="after")
    def _fits(self) -> SipSettings:
        if self.timeout >= self.interval:
            raise ValueError(
                f"timeout {self.timeout:g}s must be shorter than the interval {self.interval:g}s"
            )
        if self.t1 >= self.timeout:
            raise ValueError(
                f"t1 {self.t1:g}s must be shorter than the timeout {self.timeout:g}s, "
                "or the request is never retransmitted"
            )
        return self


@dataclass(frozen=True, slots=True)
class SipResponse(Observation):
    """The final response to one OPTIONS request.

    `duration` runs from the first transmission of the request to this response, so a UDP
    answer that needed a retransmission shows the wait. `requests_sent` counts the original
    and its retransmissions; `server` is the Server (or User-Agent) header, when there is one.
    """

    status_code: int = 0
    reason_phrase: str = ""
    transport: str = ""
    server: str = ""
    requests_sent: int = 0


def _os_failure(exc: OSError, where: str) -> CollectError:
    failure = socket_failure(exc, dialogue=True)
    if failure.reason == "refused":
        # Over UDP this is the ICMP port unreachable that the connected socket was told of.
        how = "port unreachable" if where.startswith("udp") else "connection refused"
        return CollectError("refused", f"{where}: {how} (nothing listens there)")
    if failure.reason == "protocol":
        return CollectError("protocol", f"{where}: connection reset by the endpoint")
    return CollectError(failure.reason, f"{where}: {exc.strerror or type(exc).__name__}")


class _Transaction:
    """One request's client transaction: what came back, and when."""

    def __init__(self, loop: asyncio.AbstractEventLoop, on_malformed: Callable[[], None]) -> None:
        self._loop = loop
        self._on_malformed = on_malformed
        self.request: OptionsRequest | None = None
        self.final: asyncio.Future[tuple[ParsedResponse, float]] = loop.create_future()
        # Replaced after each wake-up: lets the sender re-arm its timer on a provisional answer.
        self.progress: asyncio.Future[None] = loop.create_future()
        self.provisional: ParsedResponse | None = None
        self.malformed = 0
        self.first_problem = ""

    def feed(self, data: bytes) -> None:
        """Take one whole message off the wire; raises MalformedResponseError if unreadable."""
        if self.final.done() or self.request is None:
            return
        if not data.strip(b"\r\n"):
            return  # an RFC 5626 keep-alive
        try:
            response = parse_response(data)
        except NotAResponseError:
            return
        except MalformedResponseError as exc:
            self.malformed += 1
            self.first_problem = self.first_problem or str(exc)
            self._on_malformed()
            raise
        if not matches(self.request, response):
            return
        if response.status_code < 200:
            self.provisional = response
            if not self.progress.done():
                self.progress.set_result(None)
            return
        self.final.set_result((response, self._loop.time()))

    def fail(self, error: CollectError) -> None:
        if not self.final.done():
            self.final.set_exception(error)


class _UdpProtocol(asyncio.DatagramProtocol):
    def __init__(self, transaction: _Transaction, where: str) -> None:
        self._transaction = transaction
        self._where = where

    def datagram_received(self, data: bytes, addr: tuple[str | int, ...]) -> None:
        # A malformed datagram is counted by the transaction and dropped: a valid answer may
        # still follow.
        with contextlib.suppress(MalformedResponseError):
            self._transaction.feed(data)

    def error_received(self, exc: Exception) -> None:
        if isinstance(exc, OSError):
            self._transaction.fail(_os_failure(exc, self._where))


class SipCollector:
    """Sends one SIP OPTIONS per run to a target and reports its final answer."""

    name: ClassVar[str] = "sip"
    settings_model: ClassVar[type[CollectorSettings]] = SipSettings

    def __init__(self, *, resolver: Resolver | None = None) -> None:
        self._resolver = resolver or Resolver()
        self._cseq = itertools.count(1)
        self.malformed_responses = 0
        self.retransmissions = 0

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        await self._resolver.close()

    def _count_malformed(self) -> None:
        self.malformed_responses += 1

    def _next_cseq(self) -> int:
        return next(self._cseq) % (1 << 31) or 1

    async def collect(self, target: ProbeTarget, settings: CollectorSettings) -> SipResponse:
        assert isinstance(settings, SipSettings)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + settings.timeout
        family, address = await self._resolve(target.address, deadline)
        transaction = _Transaction(loop, self._count_malformed)
        where = f"{settings.transport}:{hostport(address, settings.port, always=True)}"
        if settings.transport == "udp":
            sent, first_sent = await self._udp(
                target, settings, family, address, transaction, deadline, where
            )
        else:
            sent, first_sent = await self._tcp(
                target, settings, address, transaction, deadline, where
            )
        response, received = transaction.final.result()
        return SipResponse(
            target=target.id,
            collector=self.name,
            ok=True,
            duration=received - first_sent,
            detail=f"{response.status_code} {response.reason_phrase}".strip(),
            status_code=response.status_code,
            reason_phrase=response.reason_phrase,
            transport=settings.transport,
            server=printable(response.header("server") or response.header("user-agent") or ""),
            requests_sent=sent,
        )

    async def _resolve(self, host: str, deadline: float) -> tuple[int, str]:
        """(address family, IP address) of a target: a literal as is, a name resolved (IPv4
        first)."""
        try:
            async with asyncio.timeout_at(deadline):
                address = await self._resolver.resolve(host, ipv4_first=True)
        except TimeoutError:
            raise CollectError(
                "resolve", f"resolving {host} took longer than the timeout"
            ) from None
        return address.family, address.ip

    def _request(
        self,
        target: ProbeTarget,
        settings: SipSettings,
        sockname: tuple[str | int, ...],
    ) -> OptionsRequest:
        return build_options(
            host=target.address,
            port=settings.port,
            user=settings.user,
            transport=settings.transport,
            local_host=str(sockname[0]),
            local_port=int(sockname[1]),
            cseq=self._next_cseq(),
            user_agent=settings.user_agent,
        )

    async def _udp(
        self,
        target: ProbeTarget,
        settings: SipSettings,
        family: int,
        address: str,
        transaction: _Transaction,
        deadline: float,
        where: str,
    ) -> tuple[int, float]:
        loop = asyncio.get_running_loop()
        transport: asyncio.DatagramTransport | None = None
        sent = 0
        try:
            async with asyncio.timeout_at(deadline):
                try:
                    transport, _ = await loop.create_datagram_endpoint(
                        lambda: _UdpProtocol(transaction, where),
                        remote_addr=(address, settings.port),
                        family=family,
                    )
                except OSError as exc:
                    raise _os_failure(exc, where) from None
                request = self._request(target, settings, transport.get_extra_info("sockname"))
                transaction.request = request
                first_sent = loop.time()
                interval = settings.t1
                next_send = first_sent
                while not transaction.final.done():
                    now = loop.time()
                    if now >= next_send:
                        if sent:
                            self.retransmissions += 1
                        transport.sendto(request.data)
                        sent += 1
                        next_send = now + interval
                        interval = min(2 * interval, T2)
                    waiters: set[asyncio.Future[Any]] = {transaction.final, transaction.progress}
                    await asyncio.wait(
                        waiters, timeout=next_send - now, return_when=asyncio.FIRST_COMPLETED
                    )
                    if transaction.progress.done():
                        # RFC 3261 17.1.2.2: once proceeding, retransmit every T2.
                        transaction.progress = loop.create_future()
                        next_send = loop.time() + T2
                        interval = T2
        except TimeoutError:
            raise _no_answer(transaction, settings, sent) from None
        finally:
            if transport is not None:
                transport.close()
            if not transaction.final.done():
                transaction.final.cancel()
            else:
                # Retrieved even when unused (it raced the deadline), or asyncio logs it as lost.
                transaction.final.exception()
        exception = transaction.final.exception()
        if exception is not None:
            raise exception
        return sent, first_sent

    async def _tcp(
        self,
        target: ProbeTarget,
        settings: SipSettings,
        address: str,
        transaction: _Transaction,
        deadline: float,
        where: str,
    ) -> tuple[int, float]:
        writer: asyncio.StreamWriter | None = None
        try:
            async with asyncio.timeout_at(deadline):
                try:
                    reader, writer = await asyncio.open_connection(
                        address, settings.port, limit=MAX_MESSAGE
                    )
                except OSError as exc:
                    raise _os_failure(exc, where) from None
                request = self._request(target, settings, writer.get_extra_info("sockname"))
                transaction.request = request
                first_sent = asyncio.get_running_loop().time()
                writer.write(request.data)
                await writer.drain()
                while not transaction.final.done():
                    message = await _read_message(reader, where)
                    try:
                        transaction.feed(message)
                    except MalformedResponseError as exc:
                        # On a stream, one bad message leaves no way to find the next one.
                        raise CollectError("parse", f"{where}: {exc}") from None
        except TimeoutError:
            raise _no_answer(transaction, settings, 1) from None
        except OSError as exc:
            raise _os_failure(exc, where) from None
        finally:
            if writer is not None:
                writer.close()
                with contextlib.suppress(OSError, TimeoutError):
                    async with asyncio.timeout(0.5):
                        await writer.wait_closed()
        return 1, first_sent


async def _read_message(reader: asyncio.StreamReader, where: str) -> bytes:
    """One SIP message off a stream, framed by its Content-Length (RFC 3261 18.3)."""
    try:
        head = await reader.readuntil(b"\r\n\r\n")
        while not head.strip(b"\r\n"):
            head = await reader.readuntil(b"\r\n\r\n")  # keep-alives (RFC 5626)
    except asyncio.LimitOverrunError:
        raise CollectError(
            "parse", f"{where}: response head larger than {MAX_MESSAGE // 1024} KiB"
        ) from None
    except asyncio.IncompleteReadError as exc:
        if exc.partial.strip():
            raise CollectError("parse", f"{where}: connection closed mid-message") from None
        raise CollectError("protocol", f"{where}: connection closed without a response") from None
    except ConnectionResetError:
        raise CollectError("protocol", f"{where}: connection reset without a response") from None
    try:
        response = parse_response(head)
    except NotAResponseError:
        length = request_length(head)
    except MalformedResponseError:
        return head  # the transaction counts and reports it
    else:
        try:
            length = response.content_length
        except MalformedResponseError as exc:  # where the body ends is unknown
            raise CollectError("parse", f"{where}: {exc}") from None
    if length > MAX_MESSAGE:
        raise CollectError("parse", f"{where}: body of {length} bytes announced")
    if length:
        try:
            await reader.readexactly(length)
        except asyncio.IncompleteReadError:
            raise CollectError("parse", f"{where}: connection closed mid-body") from None
    return head


def _no_answer(transaction: _Transaction, settings: SipSettings, sent: int) -> CollectError:
    wait = f"{settings.timeout:g}s"
    if transaction.malformed and transaction.provisional is None:
        return CollectError(
            "parse",
            f"{transaction.malformed} malformed repl{'y' if transaction.malformed == 1 else 'ies'}"
            f" and no valid response within {wait}: {transaction.first_problem}",
        )
    if transaction.provisional is not None:
        provisional = transaction.provisional
        return CollectError(
            "timeout",
            f"{provisional.status_code} {provisional.reason_phrase}, then no final response "
            f"within {wait}",
        )
    if transaction.request is None:
        return CollectError("timeout", f"no connection within {wait}")
    requests = f"{sent} request{'s' if sent != 1 else ''} sent"
    return CollectError("timeout", f"no response to OPTIONS within {wait} ({requests})")

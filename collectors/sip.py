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
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

from pydantic import Field, field_validator, model_validator

from collectors.base import CollectError, CollectorSettings
from collectors.reasons import socket_failure
from collectors.resolve import Resolver
from netmon.model import Duration, Observation, ProbeRole, ProbeTarget

SIP_PORT = 5060
# RFC 3261 17.1.2.2: retransmissions of a non-INVITE request never wait longer than T2.
T2 = 4.0
# A response head larger than this is not an OPTIONS answer worth reading (RFC 3261 does not
# cap it; 64 KiB is the largest UDP datagram anyway).
MAX_MESSAGE = 64 * 1024
MAGIC_COOKIE = "z9hG4bK"  # RFC 3261 8.1.1.7: marks a branch as globally unique

# RFC 3261 25.1, `user`: unreserved / escaped / user-unreserved characters.
_USER = re.compile(r"^[A-Za-z0-9\-_.!~*'()&=+$,;?/%]+$")
_STATUS_LINE = re.compile(r"^SIP/2\.0 ([1-6]\d\d)(?: (.*))?$")
_REQUEST_LINE = re.compile(r"^[A-Za-z]+ \S+ SIP/2\.0$")
_BRANCH = re.compile(r";\s*branch\s*=\s*([^;,\s]+)", re.IGNORECASE)
_HEAD_END = re.compile(rb"\r?\n\r?\n")
# RFC 3261 7.3.3: compact header names.
_COMPACT = {
    "v": "via",
    "i": "call-id",
    "f": "from",
    "t": "to",
    "l": "content-length",
    "m": "contact",
    "c": "content-type",
    "k": "supported",
    "s": "subject",
    "e": "content-encoding",
}


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
        if value is not None and not _USER.match(value):
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


class MalformedResponseError(ValueError):
    """A message that is not a SIP response we can read; the text says why, shortly."""


class _NotAResponseError(MalformedResponseError):
    """A well-formed SIP request: not for us to answer, nor a sign of a broken peer."""


@dataclass(frozen=True, slots=True)
class ParsedResponse:
    status_code: int
    reason_phrase: str
    headers: tuple[tuple[str, str], ...]  # full lower-case names, in message order

    def header(self, name: str) -> str | None:
        for key, value in self.headers:
            if key == name:
                return value
        return None

    @property
    def content_length(self) -> int:
        text = self.header("content-length")
        if text is None:
            return 0
        if not text.isdigit():
            raise MalformedResponseError(f"bad Content-Length {text[:20]!r}")
        return int(text)


@dataclass(frozen=True, slots=True)
class OptionsRequest:
    """One OPTIONS request as sent, and the keys its responses must carry."""

    data: bytes
    call_id: str
    branch: str
    cseq: int


def _host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def _hostport(host: str, port: int, *, always: bool = False) -> str:
    return _host(host) if port == SIP_PORT and not always else f"{_host(host)}:{port}"


def build_options(
    *,
    host: str,
    port: int,
    user: str | None,
    transport: Literal["udp", "tcp"],
    local_host: str,
    local_port: int,
    cseq: int,
    user_agent: str,
    branch: str | None = None,
    call_id: str | None = None,
    tag: str | None = None,
) -> OptionsRequest:
    """A well-formed OPTIONS request (RFC 3261 8.1.1, 11.1) from local_host:local_port."""
    branch = branch or MAGIC_COOKIE + secrets.token_hex(8)
    call_id = call_id or secrets.token_hex(12)
    tag = tag or secrets.token_hex(6)
    uri = f"sip:{user + '@' if user else ''}{_hostport(host, port)}"
    contact = f"sip:netmon@{_hostport(local_host, local_port, always=True)}"
    if transport == "tcp":
        contact += ";transport=tcp"
    lines = [
        f"OPTIONS {uri} SIP/2.0",
        # rport (RFC 3581): answer to the port we sent from, even behind a NAT.
        f"Via: SIP/2.0/{transport.upper()} {_hostport(local_host, local_port, always=True)}"
        f";branch={branch};rport",
        "Max-Forwards: 70",
        f"From: <sip:netmon@{_host(local_host)}>;tag={tag}",
        f"To: <{uri}>",
        f"Call-ID: {call_id}",
        f"CSeq: {cseq} OPTIONS",
        f"Contact: <{contact}>",
        "Accept: application/sdp",
        f"User-Agent: {user_agent}",
        "Content-Length: 0",
    ]
    data = ("\r\n".join(lines) + "\r\n\r\n").encode()
    return OptionsRequest(data=data, call_id=call_id, branch=branch, cseq=cseq)


def _printable(text: str, limit: int = 100) -> str:
    # Reason phrases and Server headers end up in logs and the API: keep them short and tame.
    cleaned = "".join(ch if ch.isprintable() else "?" for ch in text.strip())
    return cleaned[:limit]


def parse_response(data: bytes) -> ParsedResponse:
    """The status line and headers of a SIP response; the body, if any, is not looked at."""
    match = _HEAD_END.search(data)
    head_bytes = data[: match.start()] if match else data
    try:
        head = head_bytes.decode("utf-8")
    except UnicodeDecodeError:
        raise MalformedResponseError("not UTF-8 text") from None
    lines = head.lstrip("\r\n").replace("\r\n", "\n").split("\n")
    status = _STATUS_LINE.match(lines[0])
    if status is None:
        if _REQUEST_LINE.match(lines[0]):
            raise _NotAResponseError("a SIP request, not a response")
        raise MalformedResponseError(f"no SIP/2.0 status line: {_printable(lines[0], 40)!r}")
    headers: list[tuple[str, str]] = []
    for line in lines[1:]:
        if line[:1] in (" ", "\t") and headers:
            # RFC 3261 7.3.1: a line starting with white space continues the previous header.
            name, value = headers[-1]
            headers[-1] = (name, f"{value} {line.strip()}")
            continue
        name, colon, value = line.partition(":")
        name = name.strip().lower()
        if not colon or not name or " " in name:
            raise MalformedResponseError(f"bad header line: {_printable(line, 40)!r}")
        headers.append((_COMPACT.get(name, name), value.strip()))
    response = ParsedResponse(
        int(status.group(1)), _printable(status.group(2) or ""), tuple(headers)
    )
    for required in ("via", "call-id", "cseq"):
        if response.header(required) is None:
            raise MalformedResponseError(f"no {required.title()} header")
    return response


def matches(request: OptionsRequest, response: ParsedResponse) -> bool:
    """Whether `response` answers `request` (RFC 3261 17.1.3: top Via branch and CSeq method;
    the Call-ID too, since ours is unique)."""
    if response.header("call-id") != request.call_id:
        return False
    top_via = (response.header("via") or "").split(",", 1)[0]
    branch = _BRANCH.search(top_via)
    if branch is None or branch.group(1) != request.branch:
        return False
    number, _, method = (response.header("cseq") or "").partition(" ")
    return number.strip() == str(request.cseq) and method.strip().upper() == "OPTIONS"


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
        except _NotAResponseError:
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
        where = f"{settings.transport}:{_hostport(address, settings.port, always=True)}"
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
            server=_printable(response.header("server") or response.header("user-agent") or ""),
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
        length = parse_response(head).content_length
    except _NotAResponseError:
        length = _request_length(head)
    except MalformedResponseError:
        return head  # the transaction counts and reports it
    if length > MAX_MESSAGE:
        raise CollectError("parse", f"{where}: body of {length} bytes announced")
    if length:
        try:
            await reader.readexactly(length)
        except asyncio.IncompleteReadError:
            raise CollectError("parse", f"{where}: connection closed mid-body") from None
    return head


def _request_length(head: bytes) -> int:
    for line in head.decode("utf-8", "replace").split("\r\n")[1:]:
        name, _, value = line.partition(":")
        if name.strip().lower() in ("content-length", "l") and value.strip().isdigit():
            return int(value.strip())
    return 0


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

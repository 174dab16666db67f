"""ICMP echo to many addresses over ONE shared socket per address family.

Replies are matched to requests by identifier, sequence and a per-socket token in the payload, so
every other ICMP packet the host sees is ignored. Round-trip times are kernel to kernel: from the
moment the kernel queued the request for its interface (a TX software timestamp, SO_TIMESTAMPING
with SOF_TIMESTAMPING_TX_SCHED, read back from the socket's error queue) to the moment it
received the reply (SO_TIMESTAMPNS), rather than from when Python got round to either: under
load, or in a garbage collection between building a packet and sending it, the process can be
tens of milliseconds late; the kernel is not. Where the kernel gives no TX timestamp, the send
time is taken immediately before `sendmsg`, after every allocation of the echo.

As root (or with CAP_NET_RAW) the sockets are raw; otherwise unprivileged ICMP datagram sockets,
which need the process group inside `net.ipv4.ping_group_range`. The ICMP collector
(`collectors/icmp.py`) runs its rounds over one `Pinger`; so does the readiness check's burst.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import ipaddress
import logging
import os
import secrets
import socket
import struct
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

from collectors.base import CollectError
from collectors.icmp_wire import (
    ANCILLARY_SPACE,
    ERRQUEUE_ANCILLARY,
    ERRQUEUE_DATA,
    HEADER,
    ICMP6_ECHO_REPLY,
    ICMP6_FILTER,
    ICMP_ECHO_REPLY,
    ICMP_FILTER,
    SO_TIMESTAMPING,
    SO_TIMESTAMPNS,
    SOF_TIMESTAMPING_SOFTWARE,
    SOF_TIMESTAMPING_TX_SCHED,
    SOL_RAW,
    TOKEN_LEN,
    canonical_address,
    echo_in,
    echo_request,
    marking,
    timestamp_ns,
    word_sum,
)

log = logging.getLogger(__name__)


class PingOutcome(NamedTuple):
    rtts: tuple[float | None, ...]  # per echo, in send order; None when lost
    error: str | None  # why sending failed, when it did (no route, refused by a firewall...)


@dataclass(slots=True, eq=False)
class _Batch:
    """Echoes sent together (one ping() or ping_many() call) and what became of them."""

    results: list[list[float | None]]  # per address, per echo; None until answered
    done: asyncio.Future[None]
    errors: dict[int, str] = field(default_factory=dict)  # per address: why a send failed
    outstanding: int = 0
    sending: bool = True

    def settle(self) -> None:
        self.outstanding -= 1
        if self.outstanding == 0 and not self.sending and not self.done.done():
            self.done.set_result(None)


@dataclass(slots=True)
class _Pending:
    address: str
    batch: _Batch
    target_index: int
    echo_index: int
    sent_realtime_ns: int = 0
    sent_monotonic_ns: int = 0
    kernel_sent: bool = False  # sent_realtime_ns is the kernel's TX timestamp


@dataclass(slots=True)
class _FamilySocket:
    """One ICMP socket for one address family, with its pending echoes."""

    family: int
    sock: socket.socket
    identifier: int
    raw: bool
    pending: dict[int, _Pending] = field(default_factory=dict)
    next_sequence: int = 0
    write_waiters: list[asyncio.Future[None]] = field(default_factory=list)
    tos_refused: bool = False
    tx_timestamps: bool = False  # the kernel stamps our echoes as they leave


class Pinger:
    """Sends echoes and matches replies over one socket per address family.

    Use as `async with Pinger() as pinger: await pinger.ping("192.0.2.1", count=5)`.
    """

    def __init__(self, *, receive_buffer: int = 4 * 1024 * 1024) -> None:
        self._receive_buffer = receive_buffer
        self._sockets: dict[int, _FamilySocket] = {}
        self._token = secrets.token_bytes(TOKEN_LEN)
        self._loop: asyncio.AbstractEventLoop | None = None
        self.mode = "unopened"
        self.malformed_replies = 0
        self._parsed: dict[str, tuple[int, str]] = {}
        self._payloads: dict[int, tuple[bytes, int]] = {}

    async def __aenter__(self) -> Pinger:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        v4 = self._open(socket.AF_INET)
        self._sockets[socket.AF_INET] = v4
        self.mode = "raw" if v4.raw else "datagram"
        try:
            self._sockets[socket.AF_INET6] = self._open(socket.AF_INET6)
        except OSError as exc:
            log.warning("ICMPv6 unavailable, IPv6 targets will fail: %s", exc)
        log.info(
            "ICMP sockets open",
            extra={
                "mode": self.mode,
                "families": ",".join(
                    "ipv4" if fam == socket.AF_INET else "ipv6" for fam in self._sockets
                ),
                "why": "privileged raw sockets"
                if v4.raw
                else "unprivileged ICMP datagram sockets (no CAP_NET_RAW)",
            },
        )

    async def close(self) -> None:
        for fsock in self._sockets.values():
            if self._loop is not None:
                self._loop.remove_reader(fsock.sock.fileno())
                self._loop.remove_writer(fsock.sock.fileno())
            for waiter in fsock.write_waiters:
                waiter.cancel()
            for pending in fsock.pending.values():
                if not pending.batch.done.done():
                    pending.batch.done.cancel()
            fsock.pending.clear()
            fsock.sock.close()
        self._sockets.clear()
        self.mode = "closed"

    def _open(self, family: int) -> _FamilySocket:
        proto = socket.IPPROTO_ICMP if family == socket.AF_INET else socket.IPPROTO_ICMPV6
        try:
            sock = socket.socket(family, socket.SOCK_RAW, proto)
            raw = True
        except PermissionError:
            try:
                sock = socket.socket(family, socket.SOCK_DGRAM, proto)
            except PermissionError as exc:
                raise PermissionError(
                    "ICMP needs a raw socket (root or CAP_NET_RAW) or an unprivileged ICMP "
                    f"socket (group {os.getgid()} inside net.ipv4.ping_group_range)"
                ) from exc
            raw = False
        sock.setblocking(False)
        sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, self._receive_buffer)
        if raw:
            # Let only echo replies through, so the loop is not woken by every ICMP packet
            # (our own echo requests on loopback, neighbour discovery, unreachables...).
            if family == socket.AF_INET:
                blocked = 0xFFFFFFFF & ~(1 << ICMP_ECHO_REPLY)
                sock.setsockopt(SOL_RAW, ICMP_FILTER, struct.pack("I", blocked))
            else:
                words = [0xFFFFFFFF] * 8
                words[ICMP6_ECHO_REPLY >> 5] &= ~(1 << (ICMP6_ECHO_REPLY & 31))
                sock.setsockopt(socket.IPPROTO_ICMPV6, ICMP6_FILTER, struct.pack("8I", *words))
            identifier = secrets.randbelow(0x10000)
        else:
            sock.bind(("", 0) if family == socket.AF_INET else ("::", 0))
            identifier = sock.getsockname()[1]  # the kernel rewrites the id to the "port"
        fsock = _FamilySocket(family=family, sock=sock, identifier=identifier, raw=raw)
        with contextlib.suppress(OSError):
            flags = SOF_TIMESTAMPING_TX_SCHED | SOF_TIMESTAMPING_SOFTWARE
            sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPING, flags)
            fsock.tx_timestamps = True
        assert self._loop is not None
        self._loop.add_reader(sock.fileno(), self._make_reader(fsock))
        return fsock

    async def ping(
        self,
        address: str,
        *,
        count: int = 1,
        spacing: float = 0.02,
        timeout: float = 1.0,
        size: int = 56,
        dscp: int = 0,
    ) -> tuple[float | None, ...]:
        """Send `count` echoes `spacing` seconds apart; return each one's RTT or None if lost."""
        family, _ = self._parse(address)
        if family not in self._sockets:
            version = 4 if family == socket.AF_INET else 6
            raise CollectError("unreachable", f"no ICMP socket for IPv{version}")
        outcomes = await self.ping_many(
            [address], count=count, spacing=spacing, timeout=timeout, size=size, dscp=dscp
        )
        return outcomes[0].rtts

    async def ping_many(
        self,
        addresses: Sequence[str],
        *,
        count: int = 1,
        spacing: float = 0.02,
        timeout: float = 1.0,
        size: int = 56,
        dscp: int = 0,
    ) -> list[PingOutcome]:
        """Ping many IP addresses at once: `count` echoes to each, `spacing` apart.

        One task, one timer per round of echoes and one wake-up at the end, however many
        addresses: per-echo tasks and timers would cost more CPU than the echoes themselves.
        """
        loop = asyncio.get_running_loop()
        parsed = [self._parse(address) for address in addresses]
        batch = _Batch(results=[[None] * count for _ in addresses], done=loop.create_future())
        in_flight: list[tuple[_FamilySocket, int, _Pending]] = []
        timers: list[asyncio.TimerHandle] = []
        payload, payload_sum = self._payload(size)
        try:
            for echo_index in range(count):
                if echo_index:
                    await asyncio.sleep(spacing)
                sent_this_round = len(in_flight)
                for target_index, (family, canonical) in enumerate(parsed):
                    fsock = self._sockets.get(family)
                    if fsock is None:
                        continue  # no socket for this family: the echo is lost
                    sequence = self._send(
                        fsock, canonical, payload, payload_sum, dscp, batch,
                        target_index, echo_index,
                    )  # fmt: skip
                    while sequence is None:  # the send buffer is full: wait for room
                        await self._writable(fsock, loop)
                        sequence = self._send(
                            fsock, canonical, payload, payload_sum, dscp, batch,
                            target_index, echo_index,
                        )  # fmt: skip
                    if sequence >= 0:
                        in_flight.append((fsock, sequence, fsock.pending[sequence]))
                round_echoes = in_flight[sent_this_round:]
                if round_echoes:
                    timers.append(loop.call_later(timeout, self._expire, round_echoes, batch))
            batch.sending = False
            if batch.outstanding:
                await batch.done
            return [
                PingOutcome(tuple(results), batch.errors.get(index))
                for index, results in enumerate(batch.results)
            ]
        finally:
            for timer in timers:
                timer.cancel()
            # Only after cancellation are some still pending; drop them so they cannot leak.
            for fsock, sequence, pending in in_flight:
                if fsock.pending.get(sequence) is pending:
                    del fsock.pending[sequence]

    def _payload(self, size: int) -> tuple[bytes, int]:
        """The payload for a size, with its checksum contribution; the same for every echo."""
        cached = self._payloads.get(size)
        if cached is None:
            payload = self._token + bytes(size - TOKEN_LEN)
            cached = self._payloads[size] = (payload, word_sum(payload))
        return cached

    def _parse(self, address: str) -> tuple[int, str]:
        """(family, canonical text) of an IP literal; cached, as the same targets come back."""
        parsed = self._parsed.get(address)
        if parsed is None:
            ip = ipaddress.ip_address(address)
            parsed = (socket.AF_INET if ip.version == 4 else socket.AF_INET6, str(ip))
            if len(self._parsed) > 100_000:
                self._parsed.clear()
            self._parsed[address] = parsed
        return parsed

    def _send(
        self,
        fsock: _FamilySocket,
        address: str,
        payload: bytes,
        payload_sum: int,
        dscp: int,
        batch: _Batch,
        target_index: int,
        echo_index: int,
    ) -> int | None:
        """Send one echo; its sequence number, or None if the socket buffer is full."""
        sequence = self._next_sequence(fsock)
        packet = echo_request(fsock.family, fsock.identifier, sequence, payload, payload_sum)
        destination: tuple[str, int] | tuple[str, int, int, int] = (
            (address, 0) if fsock.family == socket.AF_INET else (address, 0, 0, 0)
        )
        pending = _Pending(
            address=address, batch=batch, target_index=target_index, echo_index=echo_index
        )
        fsock.pending[sequence] = pending
        ancillary = self._tos_ancillary(fsock, dscp)
        buffers = [packet]
        while True:
            try:
                # The last thing before the send: nothing that allocates comes between (a
                # collection there would be counted as network time when no TX timestamp comes).
                pending.sent_realtime_ns = time.time_ns()
                pending.sent_monotonic_ns = time.monotonic_ns()
                fsock.sock.sendmsg(buffers, ancillary, 0, destination)
                break
            except BlockingIOError:
                del fsock.pending[sequence]
                return None
            except OSError as exc:
                refused_marking = ancillary and exc.errno in (
                    errno.EINVAL, errno.EPERM, errno.EOPNOTSUPP
                )  # fmt: skip
                if refused_marking and self._send_unmarked(fsock, packet, destination, exc):
                    break
                del fsock.pending[sequence]
                # One destination's failure (no route, a firewall, a broadcast address) is a
                # lost echo for that target, never an error for the others in the batch.
                batch.errors[target_index] = exc.strerror or str(exc)
                return -1
        batch.outstanding += 1
        return sequence

    @staticmethod
    def _send_unmarked(
        fsock: _FamilySocket,
        packet: bytes,
        destination: tuple[str, int] | tuple[str, int, int, int],
        refusal: OSError,
    ) -> bool:
        """Retry without DSCP; if that works, the OS refused the marking, not the packet."""
        try:
            fsock.sock.sendmsg([packet], [], 0, destination)
        except OSError:
            return False
        fsock.tos_refused = True
        log.warning(
            "the OS refused the DSCP marking; echoes go unmarked",
            extra={"error": refusal.strerror},
        )
        return True

    @staticmethod
    async def _writable(fsock: _FamilySocket, loop: asyncio.AbstractEventLoop) -> None:
        """Wait until the socket's send buffer has room; any number of senders may wait."""
        fd = fsock.sock.fileno()
        waiter: asyncio.Future[None] = loop.create_future()

        def wake_all() -> None:
            loop.remove_writer(fd)
            waiters, fsock.write_waiters = fsock.write_waiters, []
            for future in waiters:
                if not future.done():
                    future.set_result(None)

        if not fsock.write_waiters:
            loop.add_writer(fd, wake_all)
        fsock.write_waiters.append(waiter)
        await waiter

    @staticmethod
    def _tos_ancillary(fsock: _FamilySocket, dscp: int) -> list[tuple[int, int, bytes]]:
        if dscp == 0 or fsock.tos_refused:
            return []
        return marking(fsock.family, dscp)

    @staticmethod
    def _next_sequence(fsock: _FamilySocket) -> int:
        for _ in range(0x10000):
            sequence = fsock.next_sequence
            fsock.next_sequence = (sequence + 1) & 0xFFFF
            if sequence not in fsock.pending:
                return sequence
        raise CollectError("busy", "65536 echoes in flight on one socket")

    @staticmethod
    def _expire(echoes: list[tuple[_FamilySocket, int, _Pending]], batch: _Batch) -> None:
        for fsock, sequence, pending in echoes:
            # Identity, not sequence: the number may already belong to a newer echo.
            if fsock.pending.get(sequence) is pending:
                del fsock.pending[sequence]
                batch.settle()

    def _make_reader(self, fsock: _FamilySocket) -> Callable[[], None]:
        def on_readable() -> None:
            # TX timestamps first: a request's is queued before its reply can arrive. (The
            # error queue wakes the reader too: epoll reports EPOLLERR to a read interest.)
            if fsock.tx_timestamps:
                self._drain_errqueue(fsock)
            # Drain everything queued: one wake-up may cover hundreds of replies.
            while True:
                try:
                    data, ancillary, _flags, source = fsock.sock.recvmsg(2048, ANCILLARY_SPACE)
                except (BlockingIOError, InterruptedError):
                    return
                except OSError as exc:
                    log.debug("ICMP receive error: %s", exc)
                    return
                self._on_packet(fsock, data, ancillary, source[0])

        return on_readable

    def _drain_errqueue(self, fsock: _FamilySocket) -> None:
        """Take the kernel's TX timestamps: each comes with the echo as it left (headers of
        every layer first, so the echo is found by its token)."""
        while True:
            try:
                data, ancillary, _flags, _source = fsock.sock.recvmsg(
                    ERRQUEUE_DATA, ERRQUEUE_ANCILLARY, socket.MSG_ERRQUEUE
                )
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                log.debug("ICMP error queue: %s", exc)
                return
            stamp = timestamp_ns(ancillary, SO_TIMESTAMPING)
            echo = echo_in(data, self._token)
            if not stamp or echo is None:
                continue
            identifier, sequence = echo
            pending = fsock.pending.get(sequence)
            # Never earlier than our own stamp (a wall clock stepped back meanwhile).
            if (
                identifier == fsock.identifier
                and pending is not None
                and not pending.kernel_sent
                and stamp >= pending.sent_realtime_ns
            ):
                pending.sent_realtime_ns = stamp
                pending.kernel_sent = True

    def _on_packet(
        self,
        fsock: _FamilySocket,
        data: bytes,
        ancillary: list[tuple[int, int, bytes]],
        source: str,
    ) -> None:
        received_monotonic_ns = time.monotonic_ns()
        if fsock.family == socket.AF_INET and fsock.raw:
            if len(data) < 20:
                self.malformed_replies += 1
                return
            data = data[(data[0] & 0x0F) * 4 :]
        if len(data) < HEADER.size + TOKEN_LEN:
            self.malformed_replies += 1
            return
        icmp_type, _code, _sum, identifier, sequence = HEADER.unpack_from(data)
        reply_type = ICMP_ECHO_REPLY if fsock.family == socket.AF_INET else ICMP6_ECHO_REPLY
        if icmp_type != reply_type or identifier != fsock.identifier:
            return
        if data[HEADER.size : HEADER.size + TOKEN_LEN] != self._token:
            return  # another pinger on this host that happened to pick our identifier
        pending = fsock.pending.get(sequence)
        if pending is None or (
            pending.address != source and pending.address != canonical_address(source)
        ):
            return  # late (already counted lost), duplicate, or from the wrong host
        del fsock.pending[sequence]
        rtt_ns = received_monotonic_ns - pending.sent_monotonic_ns
        if received := timestamp_ns(ancillary, SO_TIMESTAMPNS):
            kernel_rtt_ns = received - pending.sent_realtime_ns
            # The kernel stamp is on the wall clock; if it was stepped meanwhile, fall back.
            if 0 <= kernel_rtt_ns <= rtt_ns:
                rtt_ns = kernel_rtt_ns
        pending.batch.results[pending.target_index][pending.echo_index] = rtt_ns / 1e9
        pending.batch.settle()

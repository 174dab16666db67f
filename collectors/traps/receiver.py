"""The SNMP trap and inform receiver: one UDP socket, every SNMP version, events out.

v1 and v2c notifications are decoded by our own codec (`collectors.snmp.codec` plus
`wire.py` for the v1 Trap-PDU), which is several times cheaper than pysnmp per trap; v3 goes
through pysnmp's USM (`usm.py`), which does the cryptography. Informs are acknowledged once
they are accepted. Who may send comes from the core's `resolve` callback (address → inventory
target and its credentials); what arrives goes out through `on_trap` as a `TrapEvent`, and
engine IDs learned from v3 senders through `on_engine_id`, for the core to persist.

Refusing costs little and comes first, before a notification is decoded: a sender the
inventory does not know is counted and dropped on its address alone (for v1, its agent-addr
too), so are its informs, which are never answered; a known sender has a token bucket that
drops a storm, and a v1/v2c community is checked on the message's first few bytes. Only then
is the PDU read. v3 messages with engine IDs not yet known, each of which USM must register a
user for to try, get a few tries a minute per target (`usm.py`). Malformed datagrams are
counted and dropped, and an unknown, rate-limited or failing sender is logged at most once a
minute. Communities and keys never reach a log line, an event or a counter label.

It imports nothing from the core: the core passes callbacks and reads `stats`.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import hmac
import logging
import socket
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from collectors.snmp.codec import DecodeError, PduType, decode_message, encode_message
from collectors.traps.events import (
    Resolve,
    TrapSource,
    make_event,
    split_v2_varbinds,
    v1_payload,
    v1_trap_oid,
)
from collectors.traps.limits import LogGate, TokenBuckets
from collectors.traps.settings import TrapSettings
from collectors.traps.usm import UsmReceiver, V3Result
from collectors.traps.wire import (
    V3Header,
    decode_v1_trap,
    decode_v3_header,
    message_version,
    read_community_header,
)
from netmon.model import TrapEvent

log = logging.getLogger(__name__)

_DRAIN = 256  # datagrams read per wake-up before other tasks get the loop back
_RECEIVE_BUFFER = 4 * 1024 * 1024  # absorbs a burst while the loop is busy elsewhere
_SO_RCVBUFFORCE = 33  # Linux; the socket module names it only from Python 3.12
# pysnmp decodes an authenticated v3 message at about 3 ms a KB, on the loop: a 64 KB trap from
# a key holder would stall pinging for 0.2 s. Real traps are under 1.5 KB; 8 KB holds about
# a hundred varbinds and costs 25 ms at most. v1/v2c go through netmon's own linear decoder.
MAX_V3_DATAGRAM = 8192
_MAX_PENDING_V3 = 256  # v3 messages waiting for a credential's keys to be hashed
_MAX_UNKNOWN_ADDRESSES = 1024  # distinct addresses counted one by one; the rest as "other"
_LOG_INTERVAL = 60.0
# Tries of a v3 engine ID not yet known, per target: a device whose engine ID changed needs
# one; a forger cycling fresh IDs costs USM a registration each, so it gets no more than this.
_LEARN_TRIES = 4
_LEARN_PERIOD = 60.0
_NOTIFICATIONS = frozenset({PduType.TRAP_V2, PduType.INFORM})
_NOTIFICATION_TAGS = {0: frozenset({int(PduType.TRAP_V1)}),
                      1: frozenset(int(kind) for kind in _NOTIFICATIONS)}  # fmt: skip
ERROR_REASONS = ("receiver", "delivery", "v3")
"""Why `TrapStats.errors` counted an exception: a datagram our own code failed on; the
`on_trap` consumer raising; a v3 message whose keys or USM processing failed off the loop."""
_NO_ADDRESS = b"\x00\x00\x00\x00"


@dataclass
class TrapStats:
    """Counters for the core to export; read them on the event loop (or take a snapshot()).

    received: (target, trap) → notifications delivered from inventory targets; trap is a
      standard trap's name or "other" (TrapEvent.counted_as), never an OID the sender chose.
    unknown_sources: address → notifications from addresses the inventory does not know
      (delivered with target None when readable; a v3 one that USM cannot read is only
      counted); beyond 1024 distinct addresses they are counted under "other".
    auth_failures: target → wrong community, or a v3 message USM refused.
    rate_limited: target → dropped by the per-source rate limit; `rate_limited_unknown` for
      unknown sources.
    v3_rate_limited: target → v3 messages with an engine ID not yet known, dropped before USM
      once the target has used its few tries a minute (forged headers, mostly).
    malformed: datagrams that are not a readable SNMP notification (an oversized OID too).
    engine_ids_learned: v3 engine IDs learned (each also reported through on_engine_id).
    errors: reason (one of ERROR_REASONS) → exceptions, each logged at most once a minute.
    """

    received: Counter[tuple[str, str]] = field(default_factory=Counter)
    unknown_sources: Counter[str] = field(default_factory=Counter)
    auth_failures: Counter[str] = field(default_factory=Counter)
    rate_limited: Counter[str] = field(default_factory=Counter)
    rate_limited_unknown: int = 0
    v3_rate_limited: Counter[str] = field(default_factory=Counter)
    malformed: int = 0
    engine_ids_learned: int = 0
    errors: Counter[str] = field(default_factory=Counter)

    def snapshot(self) -> TrapStats:
        return replace(
            self,
            received=Counter(self.received),
            unknown_sources=Counter(self.unknown_sources),
            auth_failures=Counter(self.auth_failures),
            rate_limited=Counter(self.rate_limited),
            v3_rate_limited=Counter(self.v3_rate_limited),
            errors=Counter(self.errors),
        )


class TrapListenError(OSError):
    """The trap port could not be bound; the message says why and what to do."""


class TrapReceiver:
    """`async with TrapReceiver(settings, resolve=..., on_trap=..., on_engine_id=...)`."""

    def __init__(
        self,
        settings: TrapSettings,
        *,
        resolve: Resolve,
        on_trap: Callable[[TrapEvent], None],
        on_engine_id: Callable[[str, bytes], None],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings
        self.stats = TrapStats()
        self._resolve = resolve
        self._on_trap = on_trap
        self._on_engine_id = on_engine_id
        self._buckets = TokenBuckets(rate=settings.rate_limit, burst=settings.burst, clock=clock)
        self._log_gate = LogGate(interval=_LOG_INTERVAL, clock=clock)
        self._usm = UsmReceiver(
            engine_id=settings.engine_id_octets,
            max_learned=settings.max_learned_engine_ids,
            learn_limit=TokenBuckets(
                rate=_LEARN_TRIES / _LEARN_PERIOD, burst=_LEARN_TRIES, clock=clock
            ),
            send=self._send,
        )
        self._sock: socket.socket | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._pending: set[asyncio.Task[None]] = set()
        self._port = 0

    async def __aenter__(self) -> TrapReceiver:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    @property
    def port(self) -> int:
        """The bound UDP port (the real one when the settings asked for port 0)."""
        return self._port

    @property
    def engine_id(self) -> bytes:
        """netmon's own engine ID: what v3 inform senders must use (they discover it)."""
        return self._usm.engine_id

    async def start(self) -> None:
        host, port = self.settings.address
        sock = self._bind(host, port)
        try:
            await self._usm.start()
        except BaseException:
            sock.close()
            raise
        self._loop = asyncio.get_running_loop()
        self._sock = sock
        self._port = int(sock.getsockname()[1])
        self._loop.add_reader(sock.fileno(), self._on_readable)
        log.info(
            "SNMP trap receiver listening",
            extra={"address": host, "port": self._port, "engine_id": self.engine_id.hex()},
        )

    @staticmethod
    def _bind(host: str, port: int) -> socket.socket:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_DGRAM)
        try:
            sock.setblocking(False)
            try:
                # Past net.core.rmem_max when allowed (CAP_NET_ADMIN): a burst from 200
                # devices after a core link flap must not be lost in the kernel.
                sock.setsockopt(socket.SOL_SOCKET, _SO_RCVBUFFORCE, _RECEIVE_BUFFER)
            except OSError:
                with contextlib.suppress(OSError):
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, _RECEIVE_BUFFER)
            sock.bind((host, port))
        except PermissionError:
            sock.close()
            hint = (
                ". Ports below 1024 need root or the CAP_NET_BIND_SERVICE capability "
                "(systemd: AmbientCapabilities=CAP_NET_BIND_SERVICE; or "
                "`setcap cap_net_bind_service=+ep` on the interpreter), "
                "or listen on a port of 1024 or above and point the devices there"
                if port < 1024
                else ""
            )
            raise TrapListenError(
                f"cannot listen for SNMP traps on UDP {host}:{port}: permission denied{hint}"
            ) from None
        except OSError as exc:
            sock.close()
            hint = (
                " (another trap receiver, such as snmptrapd, is using it)"
                if exc.errno == errno.EADDRINUSE
                else ""
            )
            raise TrapListenError(
                f"cannot listen for SNMP traps on UDP {host}:{port}: {exc.strerror}{hint}"
            ) from None
        return sock

    async def close(self) -> None:
        sock, self._sock = self._sock, None
        if sock is not None and self._loop is not None:
            self._loop.remove_reader(sock.fileno())
        for task in self._pending:
            task.cancel()
        for task in list(self._pending):
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._pending.clear()
        await self._usm.close()
        if sock is not None:
            sock.close()

    # -- the socket ----------------------------------------------------------------------------

    def _send(self, data: bytes, address: tuple[Any, ...]) -> None:
        sock = self._sock
        if sock is None:
            return
        try:
            sock.sendto(data, address)
        except OSError as exc:
            # A full send buffer drops the answer; the sender of an inform retries.
            log.debug("trap receiver could not answer %s: %s", address[0], exc.strerror)

    def _on_readable(self) -> None:
        sock = self._sock
        if sock is None:
            return
        for _ in range(_DRAIN):
            try:
                data, address = sock.recvfrom(65535)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                log.debug("trap receive error: %s", exc.strerror)
                continue
            try:
                self._on_datagram(data, address)
            except Exception:
                self._error("receiver", "trap receiver error (dropped one datagram)")

    def _error(self, reason: str, message: str) -> None:
        self.stats.errors[reason] += 1
        if self._log_gate.open(("error", reason)):
            log.exception(message, extra={"reason": reason})

    def _on_datagram(self, data: bytes, address: tuple[Any, ...]) -> None:
        ip = str(address[0])
        if ip.startswith("::ffff:"):  # an IPv4 sender on a dual-stack socket
            ip = ip[7:]
        source = self._resolve(ip)
        try:
            version = message_version(data)
            if version == 3:
                if source is None:  # no key to check it with: not worth USM's work
                    self._unknown(ip)
                elif not self._buckets.allow(ip):
                    self._rate_limited(ip, source)
                elif len(data) > MAX_V3_DATAGRAM:
                    raise DecodeError(
                        f"a v3 datagram of {len(data)} bytes (over {MAX_V3_DATAGRAM}): not decoded"
                    )
                else:
                    self._on_v3(data, address, ip, source, decode_v3_header(data))
                return
            if version not in _NOTIFICATION_TAGS:
                raise DecodeError(f"SNMP version {version}")
            # Who sent it and with which community, from the first few bytes: a sender that
            # fails either costs no more than that, however big its datagram.
            head = read_community_header(data)
            if head.pdu_type not in _NOTIFICATION_TAGS[version]:
                raise DecodeError(f"not a notification: PDU 0x{head.pdu_type:02x}")
            if head.agent_addr is not None and head.agent_addr != _NO_ADDRESS:
                # The agent's own address names the device even when the trap was relayed or
                # left by another interface; the UDP source is the fallback.
                agent = ".".join(map(str, head.agent_addr))
                if agent != ip:
                    source = self._resolve(agent) or source
            if source is None:
                self._unknown(ip)
                return
            if not self._buckets.allow(ip):
                self._rate_limited(ip, source)
                return
            name = "1" if version == 0 else "2c"
            if not _community_ok(source, head.community):
                self._auth_failure(source.target, ip, name, "wrong community")
                return
            if version == 1:
                self._on_v2c(data, address, ip, source)
            else:
                self._on_v1(data, ip, source)
        except DecodeError as exc:
            self._malformed(ip, str(exc))

    # -- v1 and v2c: from a known source with one of its communities ---------------------------

    def _on_v2c(self, data: bytes, address: tuple[Any, ...], ip: str,
                source: TrapSource) -> None:  # fmt: skip
        message = decode_message(data)
        if message.pdu_type not in _NOTIFICATIONS:
            raise DecodeError(f"not a notification: {message.pdu_type.name}")
        trap_oid, uptime, payload = split_v2_varbinds(message.varbinds)
        if trap_oid is None:
            raise DecodeError("no snmpTrapOID.0")
        if message.pdu_type == PduType.INFORM:
            # Answered only here: a known source whose community was right. An answer to
            # anyone else would make the port a reflector for spoofed requests.
            answer = replace(message, pdu_type=PduType.RESPONSE, error_status=0, error_index=0)
            self._send(encode_message(answer), address)
        self._deliver(source, ip, "2c", trap_oid, uptime, payload)

    def _on_v1(self, data: bytes, ip: str, source: TrapSource) -> None:
        trap = decode_v1_trap(data)
        trap_oid = v1_trap_oid(trap.enterprise, trap.generic, trap.specific)
        payload = v1_payload(trap.varbinds, trap.agent_addr, trap.enterprise)
        self._deliver(source, ip, "1", trap_oid, trap.timestamp, payload)

    # -- v3 ------------------------------------------------------------------------------------

    def _on_v3(self, data: bytes, address: tuple[Any, ...], ip: str, source: TrapSource | None,
               header: V3Header) -> None:  # fmt: skip
        credential = self._usm.credential_for(source, header.user)
        # While earlier messages wait for their keys, a later one waits behind them, or a
        # device's warmStart could be delivered before the coldStart it sent first.
        if credential is None or (self._usm.keys_ready(credential) and not self._pending):
            self._v3_result(self._usm.receive(data, address, header, source), ip, source)
            return
        if len(self._pending) >= _MAX_PENDING_V3:
            self._rate_limited(ip, source)
            return
        # First message for this credential: hash its passphrases off the loop, then go on.
        task = asyncio.create_task(
            self._v3_later(data, address, ip, source, header), name="traps-v3-first"
        )
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def _v3_later(self, data: bytes, address: tuple[Any, ...], ip: str,
                        source: TrapSource | None, header: V3Header) -> None:  # fmt: skip
        credential = self._usm.credential_for(source, header.user)
        assert credential is not None
        try:
            await self._usm.prepare(credential)
            self._v3_result(self._usm.receive(data, address, header, source), ip, source)
        except asyncio.CancelledError:
            raise
        except Exception:
            self._error("v3", "trap receiver error (dropped one v3 message)")

    def _v3_result(self, result: V3Result, ip: str, source: TrapSource | None) -> None:
        if result.outcome == "delivered":
            trap_oid, uptime, payload = split_v2_varbinds(result.varbinds)
            if trap_oid is None:
                self._malformed(ip, "no snmpTrapOID.0")
                return
            if result.learned is not None and source is not None:
                self.stats.engine_ids_learned += 1
                log.info(
                    "SNMPv3 engine ID learned",
                    extra={"target": source.target, "source": ip,
                           "engine_id": result.learned.hex()},
                )  # fmt: skip
                self._on_engine_id(source.target, result.learned)
            self._deliver(source, ip, "3", trap_oid, uptime, payload)
        elif result.outcome == "auth":
            if source is None:
                self._unknown(ip)
            else:
                self._auth_failure(source.target, ip, "3", result.reason)
        elif result.outcome == "malformed":
            self._malformed(ip, result.reason)
        elif result.outcome == "throttled" and source is not None:
            self._v3_rate_limited(ip, source)
        # "handshake": engine ID discovery or time sync for an inform, answered by USM itself.

    # -- outcomes ------------------------------------------------------------------------------

    def _deliver(self, source: TrapSource | None, ip: str, version: str,
                 trap_oid: tuple[int, ...], uptime: int | None,
                 payload: Any) -> None:  # fmt: skip
        event = make_event(
            target=source.target if source is not None else None,
            source=ip,
            version=version,
            trap_oid=trap_oid,
            uptime_ticks=uptime,
            payload=payload,
            received_at=time.time(),
        )
        if source is None:
            self._unknown(ip)
        else:
            self.stats.received[(source.target, event.counted_as)] += 1
        try:
            self._on_trap(event)
        except Exception:
            self._error("delivery", "a trap's consumer failed (the trap is counted)")

    def _unknown(self, ip: str) -> None:
        unknown = self.stats.unknown_sources
        key = ip if ip in unknown or len(unknown) < _MAX_UNKNOWN_ADDRESSES else "other"
        unknown[key] += 1
        if self._log_gate.open(("unknown", ip)):
            log.warning("SNMP trap from a source not in the inventory", extra={"source": ip})

    def _auth_failure(self, target: str, ip: str, version: str, reason: str) -> None:
        self.stats.auth_failures[target] += 1
        if self._log_gate.open(("auth", ip)):
            log.warning(
                "SNMP trap authentication failed",
                extra={"target": target, "source": ip, "version": version, "reason": reason},
            )

    def _rate_limited(self, ip: str, source: TrapSource | None) -> None:
        if source is None:
            self.stats.rate_limited_unknown += 1
        else:
            self.stats.rate_limited[source.target] += 1
        if self._log_gate.open(("rate", ip)):
            log.warning(
                "SNMP traps dropped: source over its rate limit",
                extra={
                    "target": source.target if source is not None else None,
                    "source": ip,
                    "rate_limit": self.settings.rate_limit,
                    "burst": self.settings.burst,
                },
            )

    def _v3_rate_limited(self, ip: str, source: TrapSource) -> None:
        self.stats.v3_rate_limited[source.target] += 1
        if self._log_gate.open(("v3_rate", ip)):
            log.warning(
                "SNMPv3 traps dropped: too many engine IDs not yet known from one source "
                "(a forged header, or a device that cannot authenticate)",
                extra={"target": source.target, "source": ip,
                       "tries_per_minute": _LEARN_TRIES},
            )  # fmt: skip

    def _malformed(self, ip: str, reason: str) -> None:
        self.stats.malformed += 1
        if self._log_gate.open(("malformed", ip)):
            log.info("malformed SNMP datagram dropped", extra={"source": ip, "reason": reason})


def _community_ok(source: TrapSource, community: bytes) -> bool:
    for credential in source.credentials:
        secret = credential.community
        if (
            credential.snmp_version != "3"
            and secret is not None
            and hmac.compare_digest(secret.reveal().encode(), community)
        ):
            return True
    return False

"""SNMPv3 notifications through pysnmp's USM, fed from the receiver's own socket.

USM (key localisation, digests, privacy, time windows, discovery Reports for informs) is what
pysnmp does well, so v3 goes through it; the socket stays ours, so one port serves every
version and v1/v2c never pay for pysnmp. pysnmp sees the socket as a small carrier that takes
datagrams in and sends its answers (inform responses, Reports) back out.

USM looks a user up by (authoritative engine ID, user name). For an inform the authoritative
engine is netmon's own, for a trap it is the *sender's*, so a trap is only readable when the
user is registered for that sender's engine ID (snmptrapd's `createUser -e`). Users are
registered lazily, on the first message that needs them, for the source's configured engine
IDs and for engine IDs learned from the message header, and learning is provisional: the
registration stays, and is reported, only when pysnmp authenticated the message with it.
Learning never skips authentication, is only done for inventory sources, and at most
`max_learned` engine IDs per target (those learned before a restart included), so spoofed
packets cannot fill the table. Trying an engine ID not yet known costs a registration and its
undoing (about 8 ms of loop), so each target gets only a few such tries a minute (`learn_limit`,
asked before anything is registered): a forged header with a known user name and a fresh
engine ID on every message is dropped as "throttled", not authenticated.

Passphrases become master keys (a megabyte of hashing each) once per credential, off the loop;
localising a master key for an engine ID is one hash, done on the loop when a user is
registered (about 4 ms in pysnmp). Keys never go into logs, errors or results.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from pysnmp.carrier.asyncio.base import AbstractAsyncioTransport
from pysnmp.carrier.asyncio.dgram.udp import DOMAIN_NAME, UdpTransportAddress
from pysnmp.entity import config
from pysnmp.entity.engine import SnmpEngine
from pysnmp.entity.rfc3413 import ntfrcv
from pysnmp.proto import rfc1902

from collectors.snmp.codec import VarBind
from collectors.snmp.v3 import AUTH_PROTOCOLS, PRIV_PROTOCOLS, to_varbind
from collectors.traps.events import TrapSource
from collectors.traps.limits import TokenBuckets
from collectors.traps.wire import V3Header
from netmon.credentials import SnmpCredential

log = logging.getLogger(__name__)

Address = tuple[Any, ...]
Send = Callable[[bytes, Address], None]
Outcome = Literal["delivered", "handshake", "auth", "malformed", "throttled"]

_SM_FAILURE = "rfc3412.prepareDataElements:sm-failure"
_ENGINE_ID_OCTETS = (5, 32)  # RFC 3411 SnmpEngineID; empty only in discovery
# pysnmp's error indications by class name, as an operator should read them.
_HANDSHAKE = frozenset({"UnknownEngineID", "NotInTimeWindow"})
_MALFORMED = frozenset({"ParseError", "SerializationError"})
_AUTH_REASONS = {
    "AuthenticationFailure": "wrong digest (auth key or protocol)",
    "UnknownSecurityName": "unknown user for this engine ID",
    # Inside USM pysnmp says invalidMsg only when the user table lookup itself fails.
    "InvalidMsg": "unknown user for this engine ID",
    "DecryptionError": "decryption failed (privacy key or protocol)",
    "UnsupportedSecurityLevel": "security level not allowed for the user",
}


@dataclass(frozen=True, slots=True)
class V3Result:
    outcome: Outcome
    varbinds: tuple[VarBind, ...] = ()
    reason: str = ""
    learned: bytes | None = None  # an engine ID learned by this message


@dataclass(frozen=True, slots=True)
class _MasterKeys:
    auth_protocol: tuple[int, ...]
    auth_key: Any  # pyasn1 OctetString, or None
    priv_protocol: tuple[int, ...]
    priv_key: Any


def _master_keys(credential: SnmpCredential) -> _MasterKeys:
    auth_protocol = (
        AUTH_PROTOCOLS[credential.auth_protocol]
        if credential.auth_protocol
        else config.USM_AUTH_NONE
    )
    priv_protocol = (
        PRIV_PROTOCOLS[credential.priv_protocol]
        if credential.priv_protocol
        else config.USM_PRIV_NONE
    )
    auth_key = priv_key = None
    if credential.auth_key is not None:
        auth_key = config.AUTH_SERVICES[auth_protocol].hash_passphrase(
            credential.auth_key.reveal().encode()
        )
    if credential.priv_key is not None:
        priv_key = config.PRIV_SERVICES[priv_protocol].hash_passphrase(
            auth_protocol, credential.priv_key.reveal().encode()
        )
    return _MasterKeys(tuple(auth_protocol), auth_key, tuple(priv_protocol), priv_key)


class _Carrier(AbstractAsyncioTransport):  # type: ignore[misc]
    """pysnmp's transport, minus the socket: datagrams are handed in, answers handed out."""

    ADDRESS_TYPE = UdpTransportAddress

    def __init__(self, send: Send) -> None:
        self._send = send

    def send_message(self, outgoingMessage: Any, transportAddress: Any) -> None:  # noqa: N803
        self._send(bytes(outgoingMessage), tuple(transportAddress))

    def feed(self, data: bytes, address: Address) -> None:
        callback = self._callback_function
        if callback is not None:
            callback(self, UdpTransportAddress(address), data)


class UsmReceiver:
    """One pysnmp engine that authenticates, decrypts and answers v3 notifications."""

    def __init__(self, *, engine_id: bytes, max_learned: int, learn_limit: TokenBuckets,
                 send: Send) -> None:  # fmt: skip
        self.engine_id = engine_id
        self._max_learned = max_learned
        self._learn_limit = learn_limit  # per target: tries of an engine ID not yet known
        self._carrier = _Carrier(send)
        self._engine: SnmpEngine | None = None
        self._receiver: Any = None
        self._keys: dict[SnmpCredential, _MasterKeys] = {}
        self._hashing: dict[SnmpCredential, asyncio.Task[_MasterKeys]] = {}
        self._users: dict[tuple[bytes, bytes], SnmpCredential] = {}
        self._learned: dict[str, set[bytes]] = {}
        # Set by pysnmp's callbacks during one synchronous feed().
        self._notification: tuple[VarBind, ...] | None = None
        self._failure: str | None = None

    async def start(self) -> None:
        # Building an engine loads MIB modules from disk: keep it off the loop.
        engine = await asyncio.to_thread(
            SnmpEngine, snmpEngineID=rfc1902.OctetString(self.engine_id)
        )
        self._receiver = ntfrcv.NotificationReceiver(engine, self._on_notification)
        engine.observer.register_observer(self._on_sm_failure, _SM_FAILURE)
        # Registering the carrier gives the engine its dispatcher, whose timer expires
        # pysnmp's per-message caches.
        config.add_transport(engine, DOMAIN_NAME, self._carrier)
        self._engine = engine

    async def close(self) -> None:
        for task in self._hashing.values():
            task.cancel()
        for task in self._hashing.values():
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._hashing.clear()
        engine, self._engine = self._engine, None
        if engine is None:
            return
        dispatcher = engine.transport_dispatcher
        timer = getattr(dispatcher, "loopingcall", None)
        self._receiver.close(engine)
        engine.observer.unregister_observer(self._on_sm_failure)
        engine.close_dispatcher()
        if timer is not None:
            timer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await timer

    # -- credentials and keys ------------------------------------------------------------------

    @staticmethod
    def credential_for(source: TrapSource | None, user: bytes) -> SnmpCredential | None:
        if source is None or not user:
            return None
        for credential in source.credentials:
            if credential.snmp_version == "3" and (credential.user or "").encode() == user:
                return credential
        return None

    def keys_ready(self, credential: SnmpCredential) -> bool:
        return credential in self._keys

    async def prepare(self, credential: SnmpCredential) -> None:
        """Hash the credential's passphrases off the loop, once, however many ask at once."""
        if credential in self._keys:
            return
        task = self._hashing.get(credential)
        if task is None:
            task = asyncio.create_task(
                asyncio.to_thread(_master_keys, credential), name="traps-usm-keys"
            )
            self._hashing[credential] = task
        try:
            keys = await asyncio.shield(task)
        finally:
            if task.done():
                self._hashing.pop(credential, None)
        self._keys[credential] = keys

    def _register(self, engine_id: bytes, credential: SnmpCredential) -> None:
        """Make `credential` the user of its name for `engine_id` (a no-op when it is)."""
        assert self._engine is not None
        user = (credential.user or "").encode()
        if self._users.get((engine_id, user)) == credential:
            return
        keys = self._keys[credential]
        config.add_v3_user(
            self._engine,
            user,
            keys.auth_protocol,
            keys.auth_key,
            keys.priv_protocol,
            keys.priv_key,
            securityEngineId=rfc1902.OctetString(engine_id),
            authKeyType=config.USM_KEY_TYPE_MASTER,
            privKeyType=config.USM_KEY_TYPE_MASTER,
        )
        self._users[(engine_id, user)] = credential

    def _unregister(self, engine_id: bytes, credential: SnmpCredential,
                    previous: SnmpCredential | None) -> None:  # fmt: skip
        assert self._engine is not None
        user = (credential.user or "").encode()
        if previous is not None:
            # Another target's user of the same name had this engine ID: give it back.
            self._register(engine_id, previous)
            return
        config.delete_v3_user(self._engine, user, securityEngineId=rfc1902.OctetString(engine_id))
        self._users.pop((engine_id, user), None)

    @staticmethod
    def _digest_ok(*, keys: _MasterKeys, engine_id: bytes, header: V3Header, data: bytes) -> bool:
        """Whether the message's digest is right for the key localised for `engine_id`.

        Checked before a user is registered for an engine ID not yet known: registering and
        unregistering one costs pysnmp ~20 ms on the loop, so a storm of forged messages with
        random engine IDs would stall everything else; this costs one hash and one HMAC.
        pysnmp authenticates the message again once the user is registered."""
        if not header.authenticated or keys.auth_key is None:
            return False
        service = config.AUTH_SERVICES[keys.auth_protocol]
        try:
            local = service.localize_key(keys.auth_key, rfc1902.OctetString(engine_id))
            service.authenticate_incoming_message(
                local, rfc1902.OctetString(header.auth_params), data
            )
        except Exception:  # pysnmp's StatusInformation or ProtocolError: not authentic
            return False
        return True

    # -- receiving -----------------------------------------------------------------------------

    def receive(self, data: bytes, address: Address, header: V3Header,
                source: TrapSource | None) -> V3Result:  # fmt: skip
        """Run one v3 message through USM; the caller has prepared the credential's keys."""
        if self._engine is None:
            return V3Result("malformed", reason="receiver closed")
        engine_id = header.engine_id
        if engine_id and not _ENGINE_ID_OCTETS[0] <= len(engine_id) <= _ENGINE_ID_OCTETS[1]:
            # No engine has such an ID, and pysnmp raises when a user is registered for one:
            # refused before that, even when the digest is right (the sender holds the key).
            return V3Result("malformed", reason="engine ID not 5 to 32 octets")
        credential = self.credential_for(source, header.user)
        learning = False
        previous: SnmpCredential | None = None
        if source is not None and credential is not None and engine_id:
            learned = self._learned.setdefault(source.target, set())
            if (
                engine_id == self.engine_id
                or engine_id in source.engine_ids
                or engine_id in source.learned_engine_ids
                or engine_id in learned
            ):
                self._register(engine_id, credential)
            elif credential.auth_key is None:
                pass  # without authentication nothing proves the engine ID is the device's
            elif (
                len(learned.union(source.learned_engine_ids).difference(source.engine_ids))
                >= self._max_learned
            ):
                return V3Result(
                    "auth",
                    reason=f"unknown engine ID and {self._max_learned} already learned",
                )
            elif not self._digest_ok(keys=self._keys[credential], engine_id=engine_id,
                                     header=header, data=data):  # fmt: skip
                refusal = (
                    "AuthenticationFailure" if header.authenticated else "UnsupportedSecurityLevel"
                )
                return V3Result("auth", reason=_AUTH_REASONS[refusal])
            elif not self._learn_limit.allow(source.target):
                return V3Result("throttled", reason="too many unknown engine IDs")
            else:
                learning = True
                previous = self._users.get((engine_id, header.user))
                self._register(engine_id, credential)
        self._notification = None
        self._failure = None
        try:
            self._carrier.feed(data, address)
        except Exception as exc:  # pysnmp raises more than its documented errors on junk
            log.debug("pysnmp rejected a v3 message: %s", type(exc).__name__)
            self._failure = "ParseError"
        notification, failure = self._notification, self._failure
        self._notification = self._failure = None
        if notification is not None:
            if learning and source is not None:
                self._learned[source.target].add(engine_id)
                return V3Result("delivered", notification, learned=engine_id)
            return V3Result("delivered", notification)
        if learning and credential is not None and previous != credential:
            self._unregister(engine_id, credential, previous)
        if failure in _HANDSHAKE or (failure is None and not (engine_id and header.user)):
            return V3Result("handshake")
        if failure is None or failure in _MALFORMED:
            return V3Result("malformed", reason=failure or "not a notification")
        return V3Result("auth", reason=_AUTH_REASONS.get(failure, failure))

    def _on_notification(self, snmpEngine: Any, stateReference: Any, contextEngineId: Any,  # noqa: N803
                         contextName: Any, varBinds: Any, cbCtx: Any) -> None:  # noqa: N803  # fmt: skip
        self._notification = tuple(to_varbind(name, value) for name, value in varBinds)

    def _on_sm_failure(self, snmpEngine: Any, execpoint: Any, variables: Any,  # noqa: N803
                       cbCtx: Any) -> None:  # noqa: N803  # fmt: skip
        status = variables.get("statusInformation")
        indication = status.get("errorIndication") if status is not None else None
        self._failure = type(indication).__name__ if indication is not None else "unknown"

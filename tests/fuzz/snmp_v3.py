"""Fuzz targets: SNMPv3 traps that pass USM's digest check (authNoPriv and authPriv).

`tests/fuzz/snmp.py` feeds the receiver forged v3 headers, which USM refuses at the digest;
these targets sign every message with the sending user's key (`v3_messages.build`), so the
mutation reaches what an authenticated sender can reach: decryption, the scoped PDU, the
varbinds and the receiver's handling of them. Three places are mutated, one per target: the
plaintext scoped PDU (then encrypted), the ciphertext and its salt, and the USM security
parameters and message header (engine ID, boots, time, user, flags, digest length).

The contract is the receiver's: nothing escapes `_on_datagram`, no exception of our own is
counted in `stats.errors`, and each datagram ends in exactly one counter (delivered, or
dropped as malformed, auth, unknown, rate limited), so a dropped trap always has a reason,
unless USM answered it with a Report (a handshake: discovery, time window). An
unmutated message must be delivered, or the target would be fuzzing the digest check again.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import itertools
from collections.abc import Iterator
from typing import Any

from hypothesis import strategies as st

from collectors.snmp.codec import Message, PduType, Tag, VarBind, Version
from collectors.traps.events import TrapSource
from collectors.traps.receiver import TrapReceiver, TrapStats
from collectors.traps.settings import TrapSettings
from collectors.traps.usm import V3Result
from tests.fuzz import v3_messages as v3
from tests.fuzz.snmp import _EDITS, _VARBINDS, _mutate, _varbinds, _with_trap_oid
from tests.fuzz.target import Check, Target

ENGINE = bytes.fromhex("8000000904666f7a7a")  # the source's configured engine ID
OTHER_ENGINE = bytes.fromhex("8000000904666f7a7b")  # also configured for it
OWN_ENGINE = bytes.fromhex("80000009046e65746d6f6e")  # the receiver's: an inform's engine
_ADDRESS = ("192.0.2.1", 162)
_SOURCE = TrapSource(
    target="ep1",
    credentials=tuple(user.credential() for user in v3.USERS),
    engine_ids=(ENGINE, OTHER_ENGINE),
)
_PRIVATE = tuple(user for user in v3.USERS if user.priv)

Case = tuple[bytes, bool]  # (datagram, whether it is intact and must be delivered)


def _varbind_octets(varbinds: list[VarBind]) -> bytes:
    return _varbinds(list(_with_message_head(varbinds)))


def _with_message_head(varbinds: list[VarBind]) -> tuple[VarBind, ...]:
    empty = Message(Version.V2C, b"", PduType.TRAP_V2, 1, 0, 0, tuple(varbinds))
    return _with_trap_oid(empty).varbinds


_VARBIND_LIST = st.one_of(
    _VARBINDS.map(_varbind_octets),
    _VARBINDS.map(_varbind_octets),
    st.binary(max_size=80),  # a list body that is not varbinds at all
)
_SALT = st.integers(0, (1 << 64) - 1)

# --- the plaintext scoped PDU -----------------------------------------------------------------


def _scoped_case(args: tuple[Any, ...]) -> Case:
    user, varbinds, tag, request_id, context_engine_id, context, edits, salt = args
    pdu = v3.trap_pdu(varbinds, tag=tag, request_id=request_id)
    plain = v3.scoped_pdu(pdu, context_engine_id=context_engine_id, context=context)
    mutated = _mutate(plain, edits)
    data = v3.build(v3.seal(user, ENGINE, mutated, boots=1, time=100, salt=salt))
    intact = mutated == plain and tag == v3.TRAP_V2 and varbinds.startswith(_TRAP_HEAD)
    return data, intact and -(1 << 31) <= request_id < 1 << 31  # request-id is an Integer32


_TRAP_HEAD = _varbind_octets([])
_SCOPED = st.tuples(
    st.sampled_from(v3.USERS),
    _VARBIND_LIST,
    st.sampled_from([v3.TRAP_V2, v3.TRAP_V2, v3.INFORM, v3.GET, 0xA8, 0x30]),
    st.integers(-(1 << 40), 1 << 40),
    st.one_of(st.just(ENGINE), st.binary(max_size=40)),
    st.one_of(st.just(b""), st.binary(max_size=20)),
    _EDITS,
    _SALT,
).map(_scoped_case)


def _scoped_sized(size: int) -> Case:
    """An intact authPriv trap of about `size` bytes: as many Counter64 varbinds as fit."""
    one = VarBind((1, 3, 6, 1, 2, 1, 2, 2, 1, 10, 1000), Tag.COUNTER64, (1 << 63) + 12345)
    base = len(v3.valid_trap(v3.USERS[0], ENGINE, _TRAP_HEAD))
    per = len(_varbinds([one]))
    body = _TRAP_HEAD + _varbinds([one]) * max(0, (size - base) // per)
    return v3.valid_trap(v3.USERS[0], ENGINE, body), True


# --- the ciphertext and its salt --------------------------------------------------------------


def _cipher_case(args: tuple[Any, ...]) -> Case:
    user, varbinds, edits, salt, priv_params = args
    plain = v3.scoped_pdu(v3.trap_pdu(varbinds), context_engine_id=ENGINE)
    parts = v3.seal(user, ENGINE, plain, boots=1, time=100, salt=salt)
    ciphertext, _ = v3.encrypt(user, v3.keys(user, ENGINE)[1], 1, 100, salt, plain)
    mutated = _mutate(ciphertext, edits)
    tail = parts.usm_tail if priv_params is None else v3.tlv(0x04, priv_params)
    intact = mutated == ciphertext and tail == parts.usm_tail and varbinds.startswith(_TRAP_HEAD)
    return v3.build(dataclasses.replace(parts, scoped=v3.tlv(0x04, mutated), usm_tail=tail)), intact


_CIPHER = st.tuples(
    st.sampled_from(_PRIVATE),
    _VARBIND_LIST,
    _EDITS,
    _SALT,
    st.one_of(st.none(), st.none(), st.binary(max_size=17)),
).map(_cipher_case)

# --- the USM security parameters and the message header ---------------------------------------

# Mostly what a device sends, so most messages get as far as USM; then the edges of
# Integer32 and of the header's reader, then anything.
_INTS = st.one_of(
    st.just(1),
    st.just(1),
    st.integers(0, (1 << 31) - 1),
    st.sampled_from([-1, (1 << 31) - 1, 1 << 31, 1 << 32, -(1 << 31) - 1]),
    st.integers(-(1 << 64), 1 << 64),
)
_HEADERS = st.one_of(
    st.just((1, 1500, 3)),
    st.just((1, 1500, 3)),
    st.tuples(_INTS, st.one_of(st.just(1500), _INTS), st.sampled_from([3, 3, 3, 3, 0, 2])),
)


def _params_case(args: tuple[Any, ...]) -> Case:
    user, engine_id, boots, time, name, flags, digest, salt, priv_params, header, edits, tag = args
    msg_id, max_size, model = header
    plain = v3.scoped_pdu(v3.trap_pdu(_TRAP_HEAD, tag=tag), context_engine_id=engine_id)
    parts = v3.seal(user, engine_id, plain, boots=boots, time=time, salt=salt)
    head = v3.usm_head(engine_id, boots, time, user.name.encode() if name is None else name)
    tail = parts.usm_tail if priv_params is None else v3.tlv(0x04, priv_params)
    head_edits, tail_edits = edits
    mutated = dataclasses.replace(
        parts,
        usm_head=_mutate(head, head_edits),
        usm_tail=_mutate(tail, tail_edits),
        flags=parts.flags if flags is None else flags,
        digest_length=parts.digest_length if digest is None else digest,
        msg_id=msg_id,
        max_size=max_size,
        security_model=model,
    )
    intact = mutated == dataclasses.replace(parts, msg_id=msg_id, max_size=max_size) and (
        engine_id in (ENGINE, OTHER_ENGINE) and tag == v3.TRAP_V2 and 0 <= boots < (1 << 31) - 1
    )
    in_range = 0 <= time < 1 << 31 and 0 <= msg_id < 1 << 31 and 484 <= max_size < 1 << 31
    return v3.build(mutated), intact and in_range  # RFC 3412's ranges


_PARAMS = st.tuples(
    st.sampled_from(v3.USERS),
    st.one_of(  # configured, the receiver's own (an inform's), discovery's empty one, any
        st.sampled_from([ENGINE, OTHER_ENGINE, OWN_ENGINE, b""]), st.binary(min_size=1, max_size=40)
    ),
    _INTS,  # msgAuthoritativeEngineBoots
    _INTS,  # msgAuthoritativeEngineTime
    st.one_of(  # the user name: the signer's (None), another user's, none, any
        st.none(),
        st.none(),
        st.sampled_from([u.name.encode() for u in v3.USERS] + [b""]),
        st.binary(max_size=40),
    ),
    st.one_of(st.none(), st.none(), st.integers(0, 255)),  # msgFlags: the user's, or any
    st.one_of(st.none(), st.none(), st.integers(0, 60)),  # the digest field's length
    _SALT,
    st.one_of(st.none(), st.none(), st.binary(max_size=17)),  # msgPrivacyParameters
    _HEADERS,  # msgID, msgMaxSize, msgSecurityModel
    st.tuples(*[st.one_of(st.just([]), st.just([]), _EDITS)] * 2),  # around the digest
    st.sampled_from([v3.TRAP_V2, v3.TRAP_V2, v3.INFORM, v3.GET]),
).map(_params_case)


# --- the receiver -----------------------------------------------------------------------------


def _counted(stats: TrapStats) -> int:
    """Datagrams that ended in a counter: delivered, or dropped with a reason."""
    return (
        sum(stats.received.values())
        + sum(stats.unknown_sources.values())
        + sum(stats.auth_failures.values())
        + sum(stats.rate_limited.values())
        + stats.rate_limited_unknown
        + sum(stats.v3_rate_limited.values())
        + stats.malformed
    )


@contextlib.contextmanager
def _open_v3_receiver() -> Iterator[Check]:
    loop = asyncio.new_event_loop()
    # Each input a quarter of a minute after the last: a fresh engine ID gets its try at
    # learning (four a minute) instead of being throttled before USM, and learning has no cap.
    ticks = itertools.count(step=15.0)
    receiver = TrapReceiver(
        TrapSettings.model_validate(
            {
                "listen": "127.0.0.1:0",
                "rate_limit": 1e9,
                "burst": 1e9,
                "engine_id": OWN_ENGINE.hex(),
                "max_learned_engine_ids": 1 << 30,
            }
        ),
        resolve=lambda ip: _SOURCE if ip == _ADDRESS[0] else None,
        on_trap=lambda event: None,
        on_engine_id=lambda target, engine_id: None,
        clock=lambda: next(ticks),
    )
    loop.run_until_complete(receiver.start())
    # USM's answer to an engine ID discovery or a message outside the time window is a Report
    # to the sender (RFC 3414 §3.2.7a), not a drop: the receiver counts nothing for it.
    outcomes: list[str] = []
    receive = receiver._usm.receive

    def noted(*args: Any) -> V3Result:
        result = receive(*args)
        outcomes.append(result.outcome)
        return result

    receiver._usm.receive = noted  # type: ignore[method-assign]

    async def feed(data: bytes) -> None:
        receiver._on_datagram(data, _ADDRESS)  # the receiver's contract: nothing escapes it
        await asyncio.sleep(0)
        if receiver._pending:  # a user's first message waits for its keys
            await asyncio.gather(*receiver._pending)

    def check(case: Case) -> None:
        data, intact = case
        stats = receiver.stats
        before, delivered = _counted(stats), sum(stats.received.values())
        outcomes.clear()
        loop.run_until_complete(feed(data))
        assert not stats.errors, dict(stats.errors)
        if outcomes != ["handshake"]:
            assert _counted(stats) == before + 1, "a datagram dropped without a counted reason"
        if intact:
            assert sum(stats.received.values()) == delivered + 1, "an intact trap not delivered"

    try:
        yield check
    finally:
        loop.run_until_complete(receiver.close())
        loop.close()


TARGETS: tuple[Target, ...] = (
    Target("trap v3 scoped pdu", _SCOPED, _open_v3_receiver, sized=_scoped_sized),
    Target("trap v3 ciphertext", _CIPHER, _open_v3_receiver),
    Target("trap v3 usm params", _PARAMS, _open_v3_receiver),
)

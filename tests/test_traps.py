"""The trap receiver against net-snmp's snmptrap and snmpinform, on loopback.

Each 127.0.0.x address plays a different device (snmptrap `--clientaddr`, or a Python socket
bound to it). What is checked is what an operator would notice: the trap's name, target and
interface; a wrong community or key refused and counted; informs acknowledged; v3 engine IDs
learned (and only when the message authenticates); storms and garbage not taking it down.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from collectors.snmp.codec import (
    Message,
    PduType,
    Tag,
    VarBind,
    Version,
    decode_message,
    encode_message,
)
from collectors.traps import TrapEvent, TrapSettings, TrapSource
from collectors.traps.events import v1_trap_oid, value_text
from collectors.traps.limits import LogGate, TokenBuckets
from collectors.traps.receiver import TrapListenError, TrapReceiver
from collectors.traps.usm import UsmReceiver
from netmon.alerting.store import AlertDB, EngineIdTable
from netmon.config.loader import load_data
from netmon.credentials import SnmpCredential
from netmon.exporter import build_registry
from netmon.state import StateStore
from netmon.traps import TrapIntake, TrapReceiverCollector
from tests.conftest import require_program
from tests.fuzz import v3_messages
from tests.helpers import NetmonProcess, metric_value, write_config

COMMUNITY = "trap-community-1"
AUTH_KEY = "auth-passphrase-1"
PRIV_KEY = "priv-passphrase-2"
ENGINE_A = "8000000001aa000001"
ENGINE_B = "8000000001bb000002"
LINK_DOWN = "1.3.6.1.6.3.1.1.5.3"
IF_INDEX_7 = ["1.3.6.1.2.1.2.2.1.1.7", "i", "7"]
LINK_STATUS_7 = ["1.3.6.1.2.1.2.2.1.7.7", "i", "2", "1.3.6.1.2.1.2.2.1.8.7", "i", "2"]

V2C = SnmpCredential.model_validate({"snmp_version": "2c", "community": COMMUNITY})
V3_USER = SnmpCredential.model_validate(
    {"snmp_version": "3", "user": "netmon", "auth_protocol": "SHA", "auth_key": AUTH_KEY,
     "priv_protocol": "AES", "priv_key": PRIV_KEY}
)  # fmt: skip


def _v3_args(engine_id: str | None, auth_key: str = AUTH_KEY, priv_key: str = PRIV_KEY,
             user: str = "netmon") -> list[str]:  # fmt: skip
    args = ["-v", "3", "-u", user, "-l", "authPriv", "-a", "SHA", "-A", auth_key,
            "-x", "AES", "-X", priv_key]  # fmt: skip
    return [*args, "-e", f"0x{engine_id}"] if engine_id else args


@dataclass
class Harness:
    receiver: TrapReceiver
    events: list[TrapEvent] = field(default_factory=list)
    learned: list[tuple[str, bytes]] = field(default_factory=list)

    @property
    def to(self) -> str:
        return f"127.0.0.1:{self.receiver.port}"


MakeReceiver = Callable[..., Awaitable[Harness]]


@pytest.fixture
async def make_receiver() -> AsyncIterator[MakeReceiver]:
    receivers: list[TrapReceiver] = []

    async def make(sources: dict[str, TrapSource], *, clock: Callable[[], float] = time.monotonic,
                   **settings: Any) -> Harness:  # fmt: skip
        harness: Harness

        def on_engine_id(target: str, engine_id: bytes) -> None:
            harness.learned.append((target, engine_id))

        receiver = TrapReceiver(
            TrapSettings.model_validate({"listen": "127.0.0.1:0", **settings}),
            resolve=sources.get,
            on_trap=lambda event: harness.events.append(event),
            on_engine_id=on_engine_id,
            clock=clock,
        )
        harness = Harness(receiver)
        await receiver.start()
        receivers.append(receiver)
        return harness

    yield make
    for receiver in receivers:
        await receiver.close()


@pytest.fixture(scope="module")
def snmp_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    require_program("snmptrap")
    require_program("snmpinform")
    home = tmp_path_factory.mktemp("net-snmp")
    # No MIB files here; and a private persistent/config dir so no snmp.conf of the machine
    # (or state left by an earlier run) changes what the tools send.
    return {**os.environ, "MIBS": "", "SNMP_PERSISTENT_DIR": str(home), "SNMPCONFPATH": str(home)}


async def _run(env: dict[str, str], *args: str, timeout: float = 10.0) -> int:
    """Run a net-snmp tool without blocking the loop the receiver runs on; its exit code."""
    process = await asyncio.create_subprocess_exec(
        *args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    try:
        _, stderr = await asyncio.wait_for(process.communicate(), timeout)
    except TimeoutError:
        process.kill()
        await process.wait()
        raise
    if process.returncode and args[0] == "snmptrap":
        raise AssertionError(f"{' '.join(args[:3])}... failed: {stderr.decode()}")
    return process.returncode or 0


async def _until(condition: Callable[[], object], *, timeout: float = 5.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what or condition}")
        await asyncio.sleep(0.01)


# ---------------------------------------------------------------------------------------------
# v1 and v2c


@pytest.mark.peer
async def test_v2c_link_down_names_the_target_and_interface(
    make_receiver: MakeReceiver, snmp_env: dict[str, str]
) -> None:
    harness = await make_receiver({"127.0.0.1": TrapSource("sw-1", [V2C])})
    sent_at = time.time()
    await _run(snmp_env, "snmptrap", "-v", "2c", "-c", COMMUNITY, harness.to, "",
               LINK_DOWN, *IF_INDEX_7, *LINK_STATUS_7)  # fmt: skip
    await _until(lambda: harness.events, what="the linkDown trap")
    seen_at = time.time()
    (event,) = harness.events
    assert (event.target, event.trap, event.if_index) == ("sw-1", "linkDown", 7)
    assert (event.version, event.trap_oid, event.source) == ("2c", LINK_DOWN, "127.0.0.1")
    assert event.varbinds[0] == ("1.3.6.1.2.1.2.2.1.1.7", "7")
    assert event.uptime_ticks
    # Stamped with the wall clock when it came, however long snmptrap and the wait took.
    assert sent_at <= event.received_at <= seen_at
    assert harness.receiver.stats.received[("sw-1", "linkDown")] == 1


@pytest.mark.peer
@pytest.mark.parametrize(
    ("generic", "specific", "trap", "trap_oid", "if_index"),
    [
        ("0", "0", "coldStart", "1.3.6.1.6.3.1.1.5.1", None),
        ("2", "0", "linkDown", LINK_DOWN, 7),
        ("6", "17", "1.3.6.1.4.1.99999.0.17", "1.3.6.1.4.1.99999.0.17", None),
    ],
    ids=["coldStart", "linkDown", "enterprise-specific"],
)
async def test_v1_trap_takes_the_v2_form_and_the_agent_address_names_the_target(
    make_receiver: MakeReceiver, snmp_env: dict[str, str],
    generic: str, specific: str, trap: str, trap_oid: str, if_index: int | None,
) -> None:  # fmt: skip
    # Sent from 127.0.0.1 (a relay, not in the inventory) on behalf of the OLT at 127.0.0.9.
    harness = await make_receiver({"127.0.0.9": TrapSource("olt-9", [V2C])})
    await _run(snmp_env, "snmptrap", "-v", "1", "-c", COMMUNITY, harness.to,
               "1.3.6.1.4.1.99999", "127.0.0.9", generic, specific, "", *IF_INDEX_7)  # fmt: skip
    await _until(lambda: harness.events, what="the v1 trap")
    (event,) = harness.events
    assert (event.target, event.version, event.source) == ("olt-9", "1", "127.0.0.1")
    assert (event.trap, event.trap_oid, event.if_index) == (trap, trap_oid, if_index)
    # RFC 3584: the agent address and enterprise travel on as varbinds (the community never).
    assert ("1.3.6.1.6.3.18.1.3.0", "127.0.0.9") in event.varbinds
    assert ("1.3.6.1.6.3.1.1.4.3.0", "1.3.6.1.4.1.99999") in event.varbinds
    assert all(COMMUNITY not in value for _, value in event.varbinds)


@pytest.mark.peer
async def test_v1_trap_without_agent_address_is_named_by_its_udp_source(
    make_receiver: MakeReceiver, snmp_env: dict[str, str]
) -> None:
    harness = await make_receiver({"127.0.0.2": TrapSource("cpe-2", [V2C])})
    await _run(snmp_env, "snmptrap", "-v", "1", "-c", COMMUNITY, "--clientaddr=127.0.0.2",
               harness.to, "1.3.6.1.4.1.99999", "0.0.0.0", "3", "0", "",
               "1.3.6.1.2.1.2.2.1.1.4", "i", "4")  # fmt: skip
    await _until(lambda: harness.events, what="the v1 linkUp trap")
    (event,) = harness.events
    assert (event.target, event.trap, event.if_index, event.source) == (
        "cpe-2",
        "linkUp",
        4,
        "127.0.0.2",
    )


@pytest.mark.peer
async def test_wrong_community_is_dropped_and_counted_as_auth_failure(
    make_receiver: MakeReceiver, snmp_env: dict[str, str], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    harness = await make_receiver({"127.0.0.1": TrapSource("sw-1", [V2C])})
    for version in ("1", "2c"):
        args = (
            ["1.3.6.1.4.1.99999", "127.0.0.1", "0", "0", ""] if version == "1" else ["", LINK_DOWN]
        )
        await _run(snmp_env, "snmptrap", "-v", version, "-c", "guessed-community", harness.to,
                   *args)  # fmt: skip
    # Both datagrams are handled now: a v1/v2c trap is counted and delivered (or not) in the
    # one step that reads it, so nothing of theirs is still on its way.
    await _until(lambda: harness.receiver.stats.auth_failures["sw-1"] == 2, what="2 failures")
    assert harness.events == []
    assert "authentication failed" in caplog.text
    assert "guessed-community" not in caplog.text
    assert COMMUNITY not in caplog.text
    assert COMMUNITY not in repr(TrapSource("sw-1", [V2C]))


@pytest.mark.peer
async def test_unknown_source_is_counted_not_read_and_logged_once(
    make_receiver: MakeReceiver, snmp_env: dict[str, str], caplog: pytest.LogCaptureFixture
) -> None:
    harness = await make_receiver({})
    for _ in range(3):
        await _run(snmp_env, "snmptrap", "-v", "2c", "-c", "any", harness.to, "",
                   "1.3.6.1.6.3.1.1.5.1")  # fmt: skip
    # A v3 trap nobody can read: counted as unknown, not delivered, no failure of its own.
    await _run(snmp_env, "snmptrap", *_v3_args(ENGINE_A), harness.to, "", "1.3.6.1.6.3.1.1.5.1")
    await _until(lambda: harness.receiver.stats.unknown_sources["127.0.0.1"] == 4, what="4")
    # Refused on the sender's address, before the notification is read: nothing goes out.
    assert harness.events == []
    assert harness.receiver.stats.received == {}
    assert caplog.text.count("source not in the inventory") == 1


@pytest.mark.peer
async def test_netmon_counts_traps_with_alerting_switched_off(
    snmp_env: dict[str, str], tmp_path: Path
) -> None:
    """The trap port belongs to the service, not to alerting: a NOC that only graphs still
    sees every trap of its devices on /metrics."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    config = write_config(
        tmp_path / "netmon.yaml",
        {
            "alerting": {"enabled": False},
            "trap_receiver": {"listen": f"127.0.0.1:{port}"},
            "credentials": {"traps": {"snmp_version": "2c", "community": COMMUNITY}},
            "trap_credentials": ["traps"],
            "targets": [{"id": "sw-1", "address": "127.0.0.3", "kind": "switch", "probes": {}}],
        },
    )
    netmon = NetmonProcess(config)
    try:
        for _ in range(2):
            await _run(snmp_env, "snmptrap", "-v", "2c", "-c", COMMUNITY,
                       "--clientaddr=127.0.0.3", f"127.0.0.1:{port}", "",
                       LINK_DOWN, *IF_INDEX_7, *LINK_STATUS_7)  # fmt: skip
        await _until(
            lambda: metric_value(
                netmon.metrics(), "netmon_snmp_traps_received_total", target="sw-1",
                trap="linkDown",
            ) == 2,
            timeout=10,
            what="two linkDown traps counted",
        )  # fmt: skip
        assert COMMUNITY not in "".join(netmon.stderr_lines)
    finally:
        netmon.stop()


# ---------------------------------------------------------------------------------------------
# v3


@pytest.mark.peer
async def test_v3_auth_priv_trap_from_a_configured_engine_id(
    make_receiver: MakeReceiver, snmp_env: dict[str, str]
) -> None:
    source = TrapSource("pe-1", [V3_USER], [bytes.fromhex(ENGINE_A)])
    harness = await make_receiver({"127.0.0.1": source})
    await _run(snmp_env, "snmptrap", *_v3_args(ENGINE_A), harness.to, "", LINK_DOWN, *IF_INDEX_7)
    await _until(lambda: harness.events, what="the v3 trap")
    (event,) = harness.events
    assert (event.target, event.version, event.trap, event.if_index) == ("pe-1", "3", "linkDown", 7)
    assert harness.learned == []


@pytest.mark.peer
async def test_v3_engine_id_is_learned_from_an_authenticated_trap(
    make_receiver: MakeReceiver, snmp_env: dict[str, str]
) -> None:
    harness = await make_receiver({"127.0.0.1": TrapSource("pe-1", [V3_USER])})
    for trap in ("1.3.6.1.6.3.1.1.5.1", "1.3.6.1.6.3.1.1.5.2"):
        await _run(snmp_env, "snmptrap", *_v3_args(ENGINE_B), harness.to, "", trap)
    await _until(lambda: len(harness.events) == 2, what="both v3 traps")
    assert [e.trap for e in harness.events] == ["coldStart", "warmStart"]
    assert harness.learned == [("pe-1", bytes.fromhex(ENGINE_B))]  # once, not per trap
    assert harness.receiver.stats.engine_ids_learned == 1


@pytest.mark.peer
async def test_v3_wrong_key_is_refused_and_teaches_nothing(
    make_receiver: MakeReceiver, snmp_env: dict[str, str], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    harness = await make_receiver({"127.0.0.1": TrapSource("pe-1", [V3_USER])})
    await _run(snmp_env, "snmptrap", *_v3_args(ENGINE_A, auth_key="wrong-passphrase"),
               harness.to, "", LINK_DOWN)  # fmt: skip
    await _run(snmp_env, "snmptrap", *_v3_args(ENGINE_A, priv_key="wrong-passphrase"),
               harness.to, "", LINK_DOWN)  # fmt: skip
    await _until(lambda: harness.receiver.stats.auth_failures["pe-1"] == 2, what="2 failures")
    assert harness.events == []
    assert harness.learned == []
    # The refused engine ID was not kept: the real device with that engine ID is learned.
    await _run(snmp_env, "snmptrap", *_v3_args(ENGINE_A), harness.to, "", LINK_DOWN)
    await _until(lambda: harness.events, what="the authentic trap")
    assert harness.learned == [("pe-1", bytes.fromhex(ENGINE_A))]
    for secret in (AUTH_KEY, PRIV_KEY, "wrong-passphrase"):
        assert secret not in caplog.text


@pytest.mark.peer
async def test_two_devices_share_a_user_name_with_their_own_keys(
    make_receiver: MakeReceiver, snmp_env: dict[str, str]
) -> None:
    other_keys = SnmpCredential.model_validate(
        {**V3_USER.model_dump(), "auth_key": "other-auth-key", "priv_key": "other-priv-key"}
    )
    harness = await make_receiver({
        "127.0.0.2": TrapSource("dev-a", [V3_USER], [bytes.fromhex(ENGINE_A)]),
        "127.0.0.3": TrapSource("dev-b", [other_keys]),  # its engine ID will be learned
    })  # fmt: skip
    await _run(snmp_env, "snmptrap", *_v3_args(ENGINE_A), "--clientaddr=127.0.0.2",
               harness.to, "", "1.3.6.1.6.3.1.1.5.1")  # fmt: skip
    await _run(snmp_env, "snmptrap",
               *_v3_args(ENGINE_B, auth_key="other-auth-key", priv_key="other-priv-key"),
               "--clientaddr=127.0.0.3", harness.to, "", "1.3.6.1.6.3.1.1.5.2")  # fmt: skip
    await _until(lambda: len(harness.events) == 2, what="a trap from each device")
    assert sorted((e.target, e.trap) for e in harness.events) == [
        ("dev-a", "coldStart"), ("dev-b", "warmStart"),
    ]  # fmt: skip
    assert harness.learned == [("dev-b", bytes.fromhex(ENGINE_B))]


@pytest.mark.peer
async def test_engine_ids_learned_per_target_are_capped(
    make_receiver: MakeReceiver, snmp_env: dict[str, str]
) -> None:
    harness = await make_receiver(
        {"127.0.0.1": TrapSource("pe-1", [V3_USER])}, max_learned_engine_ids=1
    )
    for engine_id in (ENGINE_A, ENGINE_B):
        await _run(snmp_env, "snmptrap", *_v3_args(engine_id), harness.to, "", LINK_DOWN)
    await _until(lambda: harness.receiver.stats.auth_failures["pe-1"] == 1, what="the refusal")
    assert len(harness.events) == 1
    assert harness.learned == [("pe-1", bytes.fromhex(ENGINE_A))]


async def _capture(env: dict[str, str], *args: str) -> bytes:
    """The datagram `snmptrap args...` sends, caught on a socket of our own."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.settimeout(5.0)
        await _run(env, "snmptrap", *args[:-2], f"127.0.0.1:{sock.getsockname()[1]}", *args[-2:])
        return sock.recv(65535)


@pytest.mark.peer
async def test_fresh_engine_ids_that_authenticate_but_fail_later_get_4_tries_a_minute(
    make_receiver: MakeReceiver, snmp_env: dict[str, str]
) -> None:
    # The right auth key but a wrong privacy key: the digest passes, so USM must register a
    # user to try each one; only a few a minute per target are tried.
    harness = await make_receiver({"127.0.0.1": TrapSource("pe-1", [V3_USER])},
                                  clock=lambda: 1000.0)  # fmt: skip
    stats = harness.receiver.stats
    for n in range(6):
        await _run(snmp_env, "snmptrap", *_v3_args(f"8000000001cc{n:06x}", priv_key="wrong-key"),
                   harness.to, "", LINK_DOWN)  # fmt: skip
    await _until(lambda: stats.auth_failures["pe-1"] + stats.v3_rate_limited["pe-1"] == 6,
                 what="all 6 refused")  # fmt: skip
    assert (stats.auth_failures["pe-1"], stats.v3_rate_limited["pe-1"]) == (4, 2)
    assert harness.learned == []


@pytest.mark.peer
async def test_forged_v3_headers_with_fresh_engine_ids_are_bounded_per_source(
    make_receiver: MakeReceiver,
    snmp_env: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # A genuine trap re-stamped with a fresh engine ID each time: what someone who knows the
    # user name (not the keys) sends from a known source's address. Each one used to cost USM
    # a user registration and its undoing.
    genuine = await _capture(snmp_env, *_v3_args(ENGINE_A), "", LINK_DOWN)
    engine_a = bytes.fromhex(ENGINE_A)
    fresh = [engine_a[:-2] + (0xF000 + n).to_bytes(2) for n in range(50)]
    forged = [genuine.replace(engine_a, engine_id) for engine_id in fresh]
    assert all(engine_a not in datagram for datagram in forged)
    registered: list[bytes] = []
    register = UsmReceiver._register

    def counting(usm: UsmReceiver, engine_id: bytes, credential: SnmpCredential) -> None:
        registered.append(engine_id)
        register(usm, engine_id, credential)

    monkeypatch.setattr(UsmReceiver, "_register", counting)
    caplog.set_level(logging.DEBUG)
    harness = await make_receiver({
        "127.0.0.1": TrapSource("pe-1", [V3_USER]),
        "127.0.0.2": TrapSource("pe-2", [V3_USER]),  # its engine ID will be learned
    }, clock=lambda: 1000.0)  # fmt: skip
    stats = harness.receiver.stats
    await asyncio.to_thread(_send, "127.0.0.1", harness.receiver.port, forged)
    await _until(lambda: stats.auth_failures["pe-1"] + stats.v3_rate_limited["pe-1"] == 50,
                 what="every forged trap refused")  # fmt: skip
    # The digest is checked before anything is registered: a forged one costs one HMAC, and
    # forgers do not use up the tries a genuine device needs (the 4 tries a minute alone let
    # 25 forged sources stall polling for a second: bench/storm.py).
    assert stats.auth_failures["pe-1"] == 50
    assert registered == []
    assert stats.v3_rate_limited["pe-1"] == 0
    # The genuine device at the forged address, with an engine ID not yet known, is learned.
    await _run(snmp_env, "snmptrap", *_v3_args(ENGINE_B), harness.to, "", LINK_DOWN)
    await _until(lambda: harness.events, what="pe-1's genuine trap")
    assert harness.learned == [("pe-1", bytes.fromhex(ENGINE_B))]
    harness.events.clear()
    # Another source's genuine trap with an engine ID not yet known is not held back.
    await _run(snmp_env, "snmptrap", *_v3_args(ENGINE_B), "--clientaddr=127.0.0.2",
               harness.to, "", LINK_DOWN)  # fmt: skip
    await _until(lambda: harness.events, what="the genuine trap")
    assert [(e.target, e.trap) for e in harness.events] == [("pe-2", "linkDown")]
    assert harness.learned[1:] == [("pe-2", bytes.fromhex(ENGINE_B))]
    registry = CollectorRegistry()
    registry.register(TrapReceiverCollector(stats))
    scrape = generate_latest(registry).decode()
    assert 'netmon_snmp_traps_dropped_total{reason="auth",target="pe-1"} 50.0' in scrape
    for secret in (AUTH_KEY, PRIV_KEY):
        assert secret not in caplog.text
        assert secret not in scrape


@pytest.mark.peer
async def test_engine_ids_learned_before_a_restart_count_against_the_cap(
    db: AlertDB, snmp_env: dict[str, str]
) -> None:
    table = EngineIdTable(db)
    before = [bytes.fromhex(ENGINE_A), *(bytes.fromhex(f"80000000010{n}0000") for n in "123")]
    for engine_id in before:  # the cap of 4, learned by the netmon that ran before
        await table.save_engine_id("pe-1", engine_id)
    inventory = load_data({
        "credentials": {"traps-v3": {
            "snmp_version": "3", "user": "netmon", "auth_protocol": "SHA", "auth_key": AUTH_KEY,
            "priv_protocol": "AES", "priv_key": PRIV_KEY}},
        "trap_credentials": ["traps-v3"],
        "targets": [{"id": "pe-1", "address": "127.0.0.1"}],
    })  # fmt: skip
    store = StateStore()
    store.apply_inventory(inventory)
    intake = TrapIntake(TrapSettings(listen="127.0.0.1:0"), inventory, store, table)
    await intake.start()
    try:
        stats, to = intake.receiver.stats, f"127.0.0.1:{intake.receiver.port}"
        await _run(snmp_env, "snmptrap", *_v3_args(ENGINE_A), to, "", LINK_DOWN)
        await _until(lambda: stats.received[("pe-1", "linkDown")] == 1, what="a restored ID")
        await _run(snmp_env, "snmptrap", *_v3_args(ENGINE_B), to, "", LINK_DOWN)
        await _until(lambda: stats.auth_failures["pe-1"] == 1, what="the refusal")
        assert stats.engine_ids_learned == 0  # the restart granted no fifth
    finally:
        await intake.close()
    assert sorted((await table.load_engine_ids())["pe-1"]) == sorted(before)


# ---------------------------------------------------------------------------------------------
# Informs


@pytest.mark.peer
async def test_informs_are_acknowledged_and_delivered(
    make_receiver: MakeReceiver, snmp_env: dict[str, str]
) -> None:
    harness = await make_receiver({"127.0.0.1": TrapSource("pe-1", [V2C, V3_USER])})
    inform = ["snmpinform", "-t", "2", "-r", "1"]
    assert await _run(snmp_env, *inform, "-v", "2c", "-c", COMMUNITY, harness.to, "",
                      LINK_DOWN, *IF_INDEX_7) == 0  # fmt: skip
    # v3: snmpinform discovers netmon's engine ID first, then sends the inform to it.
    assert await _run(snmp_env, *inform, *_v3_args(None), harness.to, "",
                      "1.3.6.1.6.3.1.1.5.4", "1.3.6.1.2.1.2.2.1.1.3", "i", "3") == 0  # fmt: skip
    assert [(e.version, e.trap, e.if_index) for e in harness.events] == [
        ("2c", "linkDown", 7), ("3", "linkUp", 3),
    ]  # fmt: skip
    # Not acknowledged when refused: the sender knows it did not get through.
    assert await _run(snmp_env, "snmpinform", "-t", "0.3", "-r", "0", "-v", "2c", "-c",
                      "guessed-community", harness.to, "", LINK_DOWN) != 0  # fmt: skip
    assert harness.receiver.stats.auth_failures["pe-1"] == 1
    assert len(harness.events) == 2


# ---------------------------------------------------------------------------------------------
# Garbage and storms


def _v2c_trap(community: str, if_index: int = 1) -> bytes:
    return encode_message(
        Message(
            version=Version.V2C,
            community=community.encode(),
            pdu_type=PduType.TRAP_V2,
            request_id=1,
            error_status=0,
            error_index=0,
            varbinds=(
                VarBind((1, 3, 6, 1, 2, 1, 1, 3, 0), Tag.TIMETICKS, 100),
                VarBind((1, 3, 6, 1, 6, 3, 1, 1, 4, 1, 0), Tag.OBJECT_IDENTIFIER,
                        (1, 3, 6, 1, 6, 3, 1, 1, 5, 3)),
                VarBind((1, 3, 6, 1, 2, 1, 2, 2, 1, 1, if_index), Tag.INTEGER, if_index),
            ),
        )
    )  # fmt: skip


def _cut_after_request_id(community: str) -> bytes:
    head = b"\x02\x01\x01\x04" + bytes([len(community)]) + community.encode()
    body = head + b"\xa7\x03\x02\x01\x01"
    return b"\x30" + bytes([len(body)]) + body


def _send(address: str, port: int, datagrams: list[bytes]) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind((address, 0))
        for datagram in datagrams:
            sock.sendto(datagram, ("127.0.0.1", port))


async def test_malformed_datagrams_are_counted_and_the_receiver_goes_on(
    make_receiver: MakeReceiver,
) -> None:
    harness = await make_receiver({"127.0.0.1": TrapSource("sw-1", [V2C])})
    good = _v2c_trap(COMMUNITY)
    get_request = encode_message(
        Message(Version.V2C, COMMUNITY.encode(), PduType.GET, 1, 0, 0,
                (VarBind((1, 3, 6, 1, 2, 1, 1, 3, 0), Tag.NULL, None),))
    )  # fmt: skip
    garbage = [
        b"",
        b"\x00",
        b"hello, world",
        os.urandom(200),
        good[: len(good) // 2],  # truncated BER
        good[:-3] + b"\x02\x09\x01",  # a value that runs past its varbind
        b"\x30\x84\xff\xff\xff\xff\x02\x01\x01",  # a length far past the end
        b"\x30\x06\x02\x01\x03\x30\x01\x00",  # v3 with a broken header
        # A PDU cut after request-id (with the right community: a wrong one is refused
        # before the PDU is read, as an auth failure)
        _cut_after_request_id(COMMUNITY),
        get_request,  # well formed, but not a notification
    ]
    await asyncio.to_thread(_send, "127.0.0.1", harness.receiver.port, garbage)
    await _until(lambda: harness.receiver.stats.malformed == len(garbage), what="all counted")
    await asyncio.to_thread(_send, "127.0.0.1", harness.receiver.port, [good])
    await _until(lambda: harness.events, what="a good trap after the garbage")
    stats = harness.receiver.stats
    assert not stats.errors
    assert stats.malformed == len(garbage)
    assert [e.trap for e in harness.events] == ["linkDown"]


async def test_a_storm_is_rate_limited_and_other_sources_still_get_through(
    make_receiver: MakeReceiver, caplog: pytest.LogCaptureFixture
) -> None:
    sources = {
        "127.0.0.5": TrapSource("storm", [V2C]),
        "127.0.0.6": TrapSource("calm", [V2C]),
    }
    harness = await make_receiver(sources, rate_limit=100, burst=200)
    storm = [_v2c_trap(COMMUNITY, 1 + n % 48) for n in range(5000)]
    started = time.monotonic()
    await asyncio.to_thread(_send, "127.0.0.5", harness.receiver.port, storm)
    stats = harness.receiver.stats
    await _until(lambda: stats.rate_limited["storm"] > 0, what="rate limiting")
    await asyncio.to_thread(_send, "127.0.0.6", harness.receiver.port, [_v2c_trap(COMMUNITY, 9)])
    await _until(lambda: stats.received[("calm", "linkDown")] == 1, what="the calm trap")
    elapsed = time.monotonic() - started
    delivered = stats.received[("storm", "linkDown")]
    assert 200 <= delivered <= 200 + 100 * elapsed + 5
    assert caplog.text.count("over its rate limit") == 1
    assert not stats.errors


# ---------------------------------------------------------------------------------------------
# Hostile senders: refused cheaply and first (issue 14)


def _v2c_notification(community: str, *, pdu_type: PduType, request_id: int) -> bytes:
    return encode_message(
        Message(Version.V2C, community.encode(), pdu_type, request_id, 0, 0, (
            VarBind((1, 3, 6, 1, 2, 1, 1, 3, 0), Tag.TIMETICKS, 100),
            VarBind((1, 3, 6, 1, 6, 3, 1, 1, 4, 1, 0), Tag.OBJECT_IDENTIFIER,
                    (1, 3, 6, 1, 6, 3, 1, 1, 5, 1)),
        ))
    )  # fmt: skip


# A varbind whose OID is one sub-identifier 3000 bytes long: the costly datagram of issue 14.
_HUGE_SUB_ID = b"\x06\x82\x0b\xb9\x2b" + b"\xff" * 2999 + b"\x7f"  # 3001 content bytes


def _v2c_with_raw_varbind(community: str, raw_varbind_contents: bytes,
                          pdu_type: int = 0xA7) -> bytes:  # fmt: skip
    def tlv(tag: int, body: bytes) -> bytes:
        if len(body) < 0x80:
            return bytes([tag, len(body)]) + body
        return bytes([tag, 0x82]) + len(body).to_bytes(2, "big") + body

    good = (
        tlv(0x30, b"\x06\x08\x2b\x06\x01\x02\x01\x01\x03\x00" + b"\x43\x01\x64")
        + tlv(0x30, b"\x06\x0a\x2b\x06\x01\x06\x03\x01\x01\x04\x01\x00"
              + b"\x06\x09\x2b\x06\x01\x06\x03\x01\x01\x05\x01")
        + tlv(0x30, raw_varbind_contents)
    )  # fmt: skip
    pdu = tlv(pdu_type, b"\x02\x01\x07\x02\x01\x00\x02\x01\x00" + tlv(0x30, good))
    return tlv(0x30, b"\x02\x01\x01" + tlv(0x04, community.encode()) + pdu)


async def test_an_oversized_oid_with_the_right_community_is_malformed_not_an_error(
    make_receiver: MakeReceiver,
) -> None:
    harness = await make_receiver({"127.0.0.1": TrapSource("sw-1", [V2C])})
    oversized = _v2c_with_raw_varbind(COMMUNITY, _HUGE_SUB_ID + b"\x05\x00")
    await asyncio.to_thread(_send, "127.0.0.1", harness.receiver.port, [oversized])
    await _until(lambda: harness.receiver.stats.malformed == 1, what="counted as malformed")
    assert not harness.receiver.stats.errors
    assert harness.events == []


async def test_an_authenticated_v3_trap_with_an_engine_id_of_the_wrong_size_is_malformed(
    make_receiver: MakeReceiver,
) -> None:
    # Found by `make fuzz` (trap v3 usm params): signed with the user's key for a 1-octet
    # engine ID, the trap passed the digest check and the user's registration for that ID
    # raised inside pysnmp: a logged traceback and an error, not a counted drop.
    user = v3_messages.USERS[0]
    harness = await make_receiver({"127.0.0.1": TrapSource("pe-1", [user.credential()])})
    head = v3_messages.link_down_varbinds()
    odd_sizes = [
        v3_messages.valid_trap(user, engine_id, head)
        for engine_id in (b"\x00", b"\x80\x00\x00\x09", bytes.fromhex(ENGINE_A) * 4)
    ]
    good = v3_messages.valid_trap(user, bytes.fromhex(ENGINE_A), head)
    await asyncio.to_thread(_send, "127.0.0.1", harness.receiver.port, [*odd_sizes, good])
    await _until(lambda: harness.events, what="the good trap after the odd engine IDs")
    stats = harness.receiver.stats
    assert (stats.malformed, dict(stats.errors)) == (3, {})
    assert [event.trap for event in harness.events] == ["linkDown"]
    assert harness.learned == [("pe-1", bytes.fromhex(ENGINE_A))]


async def test_an_authenticated_v3_trap_over_8_kb_is_malformed_without_being_decoded(
    make_receiver: MakeReceiver,
) -> None:
    # pysnmp decodes a v3 message at ~3 ms a KB on the loop: a key holder's 64 KB trap would
    # stall pinging for 0.2 s. A real trap is under 1.5 KB.
    user = v3_messages.USERS[0]
    harness = await make_receiver({"127.0.0.1": TrapSource("pe-1", [user.credential()])})
    engine = bytes.fromhex(ENGINE_A)
    padding = v3_messages.tlv(0x30, v3_messages.tlv(0x06, bytes.fromhex("2b0601040101"))
                              + v3_messages.tlv(0x04, b"x" * 9000))  # fmt: skip
    huge = v3_messages.valid_trap(user, engine, v3_messages.link_down_varbinds() + padding)
    good = v3_messages.valid_trap(user, engine, v3_messages.link_down_varbinds())
    assert len(huge) > 8192 > len(good)
    await asyncio.to_thread(_send, "127.0.0.1", harness.receiver.port, [huge, good])
    await _until(lambda: harness.events, what="the ordinary trap after the huge one")
    assert (harness.receiver.stats.malformed, dict(harness.receiver.stats.errors)) == (1, {})
    assert [event.trap for event in harness.events] == ["linkDown"]


async def test_unknown_senders_and_wrong_communities_are_refused_before_the_pdu_is_read(
    make_receiver: MakeReceiver,
) -> None:
    # Each datagram's PDU is broken (an oversized OID): were it read, it would count as
    # malformed. Refused on who sent it, it counts as what it is.
    harness = await make_receiver({"127.0.0.1": TrapSource("sw-1", [V2C])})
    broken = _HUGE_SUB_ID + b"\x05\x00"
    port = harness.receiver.port
    await asyncio.to_thread(_send, "127.0.0.2", port, [_v2c_with_raw_varbind(COMMUNITY, broken)])
    await asyncio.to_thread(_send, "127.0.0.1", port, [_v2c_with_raw_varbind("guess", broken)])
    stats = harness.receiver.stats
    await _until(lambda: stats.auth_failures["sw-1"] == 1, what="the wrong community")
    await _until(lambda: stats.unknown_sources["127.0.0.2"] == 1, what="the unknown sender")
    assert stats.malformed == 0
    assert not stats.errors
    assert harness.events == []


async def test_a_known_source_over_its_burst_is_dropped_before_its_pdu_is_read(
    make_receiver: MakeReceiver,
) -> None:
    harness = await make_receiver({"127.0.0.1": TrapSource("sw-1", [V2C])}, burst=1)
    broken = _v2c_with_raw_varbind(COMMUNITY, _HUGE_SUB_ID + b"\x05\x00")
    await asyncio.to_thread(_send, "127.0.0.1", harness.receiver.port, [broken] * 3)
    stats = harness.receiver.stats
    await _until(lambda: stats.malformed + stats.rate_limited["sw-1"] == 3, what="all three")
    # The first is read (and found malformed); the rest are dropped unread.
    assert (stats.malformed, stats.rate_limited["sw-1"]) == (1, 2)


def _recv_nowait(sock: socket.socket) -> bytes | None:
    try:
        return sock.recv(65535)
    except BlockingIOError:
        return None


async def test_informs_are_answered_only_to_known_sources_with_their_community(
    make_receiver: MakeReceiver,
) -> None:
    harness = await make_receiver({"127.0.0.1": TrapSource("sw-1", [V2C])})
    to = ("127.0.0.1", harness.receiver.port)
    inform = PduType.INFORM
    bad_address = b"\x06\x08\x2b\x06\x01\x04\x01\x86\x8d\x1f" + b"\x40\x05\x0a\x00\x00\x01\x00"
    with contextlib.ExitStack() as stack:
        stranger, wrong, malformed, known = (
            stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_DGRAM)) for _ in range(4)
        )
        for sock, address in ((stranger, "127.0.0.2"), (wrong, "127.0.0.1"),
                              (malformed, "127.0.0.1"), (known, "127.0.0.1")):  # fmt: skip
            sock.bind((address, 0))
            sock.setblocking(False)
        # A spoofed inform from anyone would be answered to its victim: a reflector.
        stranger.sendto(_v2c_notification(COMMUNITY, pdu_type=inform, request_id=11), to)
        wrong.sendto(_v2c_notification("guessed", pdu_type=inform, request_id=12), to)
        # An IpAddress of 5 bytes: malformed, not an answer that fails to encode.
        malformed.sendto(_v2c_with_raw_varbind(COMMUNITY, bad_address, pdu_type=0xA6), to)
        known.sendto(_v2c_notification(COMMUNITY, pdu_type=inform, request_id=14), to)
        # The receiver handles datagrams in order: once the last is answered, the others
        # have had whatever answer they get.
        answers: list[bytes] = []

        def answered() -> bool:
            answer = _recv_nowait(known)
            if answer is not None:
                answers.append(answer)
            return bool(answers)

        await _until(answered, what="the known sender's answer")
        assert decode_message(answers[0]).request_id == 14
        assert [_recv_nowait(sock) for sock in (stranger, wrong, malformed)] == [None] * 3
    stats = harness.receiver.stats
    assert (stats.unknown_sources["127.0.0.2"], stats.auth_failures["sw-1"], stats.malformed) == (
        1, 1, 1,
    )  # fmt: skip
    assert not stats.errors
    assert [e.target for e in harness.events] == ["sw-1"]


async def test_trap_port_errors_are_exported_by_reason() -> None:
    def broken_consumer(event: TrapEvent) -> None:
        raise RuntimeError("a bug downstream")

    receiver = TrapReceiver(
        TrapSettings.model_validate({"listen": "127.0.0.1:0"}),
        resolve={"127.0.0.1": TrapSource("sw-1", [V2C])}.get,
        on_trap=broken_consumer,
        on_engine_id=lambda target, engine_id: None,
    )
    registry = CollectorRegistry()
    registry.register(TrapReceiverCollector(receiver.stats))
    async with receiver:
        await asyncio.to_thread(_send, "127.0.0.1", receiver.port, [_v2c_trap(COMMUNITY)] * 2)
        await _until(lambda: receiver.stats.errors["delivery"] == 2, what="two errors")
    scrape = generate_latest(registry).decode()
    assert 'netmon_snmp_trap_errors_total{reason="delivery"} 2.0' in scrape
    assert 'netmon_snmp_trap_errors_total{reason="receiver"} 0.0' in scrape
    # The trap was still counted as received: the failure was the consumer's, not the sender's.
    assert "netmon_snmp_traps_malformed_total 0.0" in scrape
    assert receiver.stats.received[("sw-1", "linkDown")] == 2
    assert COMMUNITY not in scrape


# ---------------------------------------------------------------------------------------------
# Starting


async def test_a_port_in_use_is_a_clear_error() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as taken:
        taken.bind(("127.0.0.1", 0))
        port = taken.getsockname()[1]
        receiver = TrapReceiver(
            TrapSettings(listen=f"127.0.0.1:{port}"),
            resolve=lambda address: None, on_trap=lambda event: None,
            on_engine_id=lambda target, engine_id: None,
        )  # fmt: skip
        with pytest.raises(TrapListenError, match=f"127.0.0.1:{port}.*in use"):
            await receiver.start()
        await receiver.close()


_BIND_162 = """
import asyncio
from collectors.traps import TrapSettings
from collectors.traps.receiver import TrapReceiver
async def main():
    receiver = TrapReceiver(TrapSettings(listen="127.0.0.1:162"), resolve=lambda a: None,
                            on_trap=lambda e: None, on_engine_id=lambda t, e: None)
    try:
        await receiver.start()
    except OSError as exc:
        print(exc)
    else:
        print("BOUND")
    await receiver.close()
asyncio.run(main())
"""


def test_refused_port_162_names_the_capability(tmp_path: Path) -> None:
    command = [sys.executable, "-c", _BIND_162]
    if os.geteuid() == 0:
        # root binds 162 through CAP_NET_BIND_SERVICE; take exactly that capability away.
        command = ["setpriv", "--inh-caps=-net_bind_service", "--bounding-set=-net_bind_service",
                   "--", *command]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, timeout=30,
                            cwd=Path(__file__).parent.parent, check=False)  # fmt: skip
    if "BOUND" in result.stdout:
        pytest.fail(
            "cannot test the refusal: this machine lets unprivileged processes bind port 162 "
            "(net.ipv4.ip_unprivileged_port_start)"
        )
    assert "127.0.0.1:162" in result.stdout, result.stderr
    assert "CAP_NET_BIND_SERVICE" in result.stdout or "in use" in result.stdout


# ---------------------------------------------------------------------------------------------
# Pure parts


@pytest.mark.parametrize(
    ("enterprise", "generic", "specific", "expected"),
    [
        ((1, 3, 6, 1, 4, 1, 9), 0, 0, (1, 3, 6, 1, 6, 3, 1, 1, 5, 1)),
        ((1, 3, 6, 1, 4, 1, 9), 5, 0, (1, 3, 6, 1, 6, 3, 1, 1, 5, 6)),
        ((1, 3, 6, 1, 4, 1, 9), 6, 42, (1, 3, 6, 1, 4, 1, 9, 0, 42)),
    ],
)
def test_v1_trap_oid_follows_rfc_3584(
    enterprise: tuple[int, ...], generic: int, specific: int, expected: tuple[int, ...]
) -> None:
    assert v1_trap_oid(enterprise, generic, specific) == expected


@pytest.mark.parametrize(
    ("varbind", "text"),
    [
        (VarBind((1, 3), Tag.IP_ADDRESS, b"\x0a\x00\x00\x01"), "10.0.0.1"),
        (VarBind((1, 3), Tag.OCTET_STRING, b"Gi0/1\x00"), "Gi0/1"),
        (VarBind((1, 3), Tag.OCTET_STRING, b"\x00\x1b\x21\x0a\xff\x01"), "00:1b:21:0a:ff:01"),
        (VarBind((1, 3), Tag.OCTET_STRING, "Cổng 1".encode()), "Cổng 1"),
        (VarBind((1, 3), Tag.OBJECT_IDENTIFIER, (1, 3, 6, 1)), "1.3.6.1"),
        (VarBind((1, 3), Tag.COUNTER64, 2**40), str(2**40)),
        (VarBind((1, 3), Tag.NULL, None), ""),
    ],
)
def test_values_read_as_text(varbind: VarBind, text: str) -> None:
    assert value_text(varbind) == text


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"listen": "162"}, "expected HOST:PORT"),
        ({"listen": "trapserver:162"}, "HOST must be an IP address"),
        ({"listen": "0.0.0.0:70000"}, "out of range"),
        ({"engine_id": "80zz"}, "must be hexadecimal"),
        ({"engine_id": "8000"}, "5 to 32 octets"),
        ({"rate_limit": 0}, "greater than 0"),
        ({"burst": 0}, "greater than or equal to 1"),
        ({"listne": "0.0.0.0:162"}, "Extra inputs are not permitted"),
    ],
)
def test_bad_settings_say_what_is_wrong(settings: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        TrapSettings.model_validate(settings)


def test_settings_defaults() -> None:
    settings = TrapSettings(listen="[::]:1162", engine_id="0x80004fb805AABBCCDD")
    assert settings.address == ("::", 1162)
    assert settings.engine_id_octets == bytes.fromhex("80004fb805aabbccdd")
    default = TrapSettings()
    assert default.address == ("0.0.0.0", 162)
    assert default.engine_id_octets == TrapSettings().engine_id_octets  # stable
    assert 5 <= len(default.engine_id_octets) <= 32


def test_token_bucket_allows_a_burst_then_the_rate() -> None:
    now = [0.0]
    buckets = TokenBuckets(rate=10, burst=5, clock=lambda: now[0])
    assert [buckets.allow("a") for _ in range(6)] == [True] * 5 + [False]
    assert buckets.allow("b")  # per source
    now[0] += 0.25  # 2.5 tokens
    assert [buckets.allow("a") for _ in range(3)] == [True, True, False]
    now[0] += 100
    assert sum(buckets.allow("a") for _ in range(10)) == 5  # never more than the burst


def test_log_gate_opens_once_per_interval() -> None:
    now = [0.0]
    gate = LogGate(interval=60, clock=lambda: now[0])
    assert [gate.open("x"), gate.open("x"), gate.open("y")] == [True, False, True]
    now[0] += 61
    assert gate.open("x")


def _enterprise_trap(community: str, trap_oid: tuple[int, ...]) -> bytes:
    return encode_message(
        Message(Version.V2C, community.encode(), PduType.TRAP_V2, 1, 0, 0, (
            VarBind((1, 3, 6, 1, 2, 1, 1, 3, 0), Tag.TIMETICKS, 100),
            VarBind((1, 3, 6, 1, 6, 3, 1, 1, 4, 1, 0), Tag.OBJECT_IDENTIFIER, trap_oid),
        ))
    )  # fmt: skip


async def test_trap_counts_take_standard_names_and_every_other_trap_is_other(
    make_receiver: MakeReceiver,
) -> None:
    """A sender picks its trap OIDs: were each a label value, it could make series without
    end. Counted, they are a standard name or "other"; the event keeps the OID."""
    harness = await make_receiver({"127.0.0.1": TrapSource("sw-1", [V2C])})
    vendor = [(1, 3, 6, 1, 4, 1, 99999, 0, n) for n in range(1, 4)]
    datagrams = [_enterprise_trap(COMMUNITY, oid) for oid in vendor] + [_v2c_trap(COMMUNITY)]
    await asyncio.to_thread(_send, "127.0.0.1", harness.receiver.port, datagrams)
    await _until(lambda: len(harness.events) == 4, what="four traps")
    assert harness.receiver.stats.received == {("sw-1", "other"): 3, ("sw-1", "linkDown"): 1}
    assert [e.trap_oid for e in harness.events[:3]] == [".".join(map(str, o)) for o in vendor]

    store = StateStore()
    store.apply_inventory(load_data({"targets": [{"id": "sw-1", "address": "127.0.0.1"}]}))
    for event in harness.events:
        store.record_trap(event)
    scrape = generate_latest(build_registry(store)).decode()
    counted = [line for line in scrape.splitlines() if line.startswith("netmon_snmp_traps_rec")]
    assert sorted(counted) == [
        'netmon_snmp_traps_received_total{target="sw-1",trap="linkDown"} 1.0',
        'netmon_snmp_traps_received_total{target="sw-1",trap="other"} 3.0',
    ]

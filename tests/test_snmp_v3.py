"""SNMPv3 against snmpd: every auth/priv combination polls; a wrong key is "auth", not "timeout"."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from collectors.base import CollectError
from collectors.snmp.collector import SnmpCollector
from collectors.snmp.settings import SnmpSettings
from netmon.credentials import SnmpCredential
from netmon.model import ProbeTarget
from tests.conftest import require_program
from tests.peers import Snmpd

# (user, net-snmp auth, our auth, net-snmp priv, our priv)
USERS = [
    ("md5des", "MD5", "MD5", "DES", "DES"),
    ("shaaes", "SHA", "SHA", "AES", "AES128"),
    ("sha224aes", "SHA-224", "SHA224", "AES", "AES"),
    ("sha256aes192", "SHA-256", "SHA256", "AES-192", "AES192"),
    ("sha384aes256", "SHA-384", "SHA384", "AES-256", "AES256"),
    ("sha512aes256", "SHA-512", "SHA512", "AES-256", "AES256"),
    ("shaonly", "SHA", "SHA", None, None),
    ("md5only", "MD5", "MD5", None, None),
]
AUTH_KEY = "auth-passphrase-1"
PRIV_KEY = "priv-passphrase-2"


def _config() -> str:
    lines = []
    for user, auth, _, priv, _ in USERS:
        if priv:
            lines.append(f'createUser {user} {auth} "{AUTH_KEY}" {priv} "{PRIV_KEY}"')
            lines.append(f"rouser {user} priv")
        else:
            lines.append(f'createUser {user} {auth} "{AUTH_KEY}"')
            lines.append(f"rouser {user} auth")
    lines += ["createUser plainuser", "rouser plainuser noauth"]
    return "\n".join(lines) + "\n"


@pytest.fixture(scope="module")
def snmpd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Snmpd]:
    agent = Snmpd(require_program("snmpd"), tmp_path_factory.mktemp("snmpd-v3"),
                  extra_config=_config())  # fmt: skip
    try:
        yield agent
    finally:
        agent.stop()


async def _poll(snmpd: Snmpd, **credential: Any) -> Any:
    collector = SnmpCollector()
    await collector.start()
    try:
        target = ProbeTarget(
            id="v3", address="127.0.0.1",
            credentials={"v3": SnmpCredential.model_validate({"snmp_version": "3", **credential})},
        )  # fmt: skip
        settings = SnmpSettings(credential="v3", port=snmpd.port, timeout=1.0, retries=0)
        return await collector.collect(target, settings)
    finally:
        await collector.close()


@pytest.mark.peer
@pytest.mark.parametrize(("user", "auth", "priv"), [(u[0], u[2], u[4]) for u in USERS],
                         ids=[u[0] for u in USERS])  # fmt: skip
async def test_every_auth_priv_combination_polls(
    snmpd: Snmpd, user: str, auth: str, priv: str | None
) -> None:
    credential: dict[str, Any] = {"user": user, "auth_protocol": auth, "auth_key": AUTH_KEY}
    if priv:
        credential |= {"priv_protocol": priv, "priv_key": PRIV_KEY}
    sample = await _poll(snmpd, **credential)
    assert sample.ok
    assert sample.uptime_ticks > 0
    assert "lo" in {interface.name for interface in sample.interfaces}


@pytest.mark.peer
async def test_no_auth_no_priv(snmpd: Snmpd) -> None:
    sample = await _poll(snmpd, user="plainuser")
    assert sample.ok


@pytest.mark.peer
@pytest.mark.parametrize(
    "credential",
    [
        {"user": "shaaes", "auth_protocol": "SHA", "auth_key": "not-the-right-key",
         "priv_protocol": "AES", "priv_key": PRIV_KEY},
        {"user": "nobody-here", "auth_protocol": "SHA", "auth_key": AUTH_KEY},
    ],
    ids=["wrong-key", "unknown-user"],
)  # fmt: skip
async def test_wrong_credentials_are_auth_not_timeout(
    snmpd: Snmpd, credential: dict[str, Any]
) -> None:
    with pytest.raises(CollectError) as caught:
        await _poll(snmpd, **credential)
    assert caught.value.reason == "auth"
    assert "not-the-right-key" not in caught.value.detail


@pytest.mark.peer
def test_v3_target_end_to_end_without_leaking_passphrases(
    snmpd: Snmpd, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.helpers import NetmonProcess, metric_value, wait_until, write_config

    monkeypatch.setenv("NETMON_TEST_V3_AUTH", AUTH_KEY)
    priv_file = tmp_path / "priv-key"
    priv_file.write_text(PRIV_KEY + "\n")
    config = write_config(tmp_path / "netmon.yaml", {
        "credentials": {"core-v3": {
            "snmp_version": "3", "user": "sha256aes192",
            "auth_protocol": "SHA256", "auth_key": {"env": "NETMON_TEST_V3_AUTH"},
            "priv_protocol": "AES192", "priv_key": {"file": str(priv_file)},
        }},
        "targets": [{"id": "core", "address": "127.0.0.1", "kind": "router", "probes": {
            "snmp": {"credential": "core-v3", "port": snmpd.port, "interval": "1s"}}}],
    })  # fmt: skip
    netmon = NetmonProcess(config, extra_args=["--log-level", "DEBUG"])
    try:
        wait_until(
            lambda: metric_value(netmon.metrics(), "netmon_interface_in_octets_total",
                                 target="core", ifname="lo") is not None,
            timeout=20, what="v3 interface counters",
        )  # fmt: skip
        metrics = netmon.metrics()
        api = netmon.get("/api/v1/targets")[2] + netmon.get("/api/v1/targets/core")[2]
    finally:
        netmon.stop()
    logs = "".join(netmon.stderr_lines)
    for secret in (AUTH_KEY, PRIV_KEY):
        for where, text in (("logs", logs), ("/metrics", metrics), ("the API", api)):
            assert secret not in text, f"a passphrase leaked into {where}"

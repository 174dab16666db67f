"""A real Mosquitto owned by a test, a subscriber that records what it sees, and the fixtures.

`Mosquitto` runs the broker on a free loopback port with a generated config and no persistence;
`stop()` and `start()` restart it on the same port (it comes back empty, as a real broker without
persistence would). It can require a username and password (`users=`) and serve TLS only
(`tls=True`, with a CA made for the test: `broker.ca_file`).

`MqttRecorder` is `mosquitto_sub` (another client than the one under test) recording every
message it gets, in order, as `MqttMessage(topic, payload, retain)`; `retained(broker, filter)`
is what a subscriber connecting now would be replayed.

From another test module: `pytest_plugins = ["tests.mqtt_peer"]`, then the fixtures `mosquitto`
(one anonymous broker), `mosquitto_factory(users=..., tls=...)` and
`mqtt_recorder(broker, topic_filter)`; everything is stopped after the test.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import ipaddress
import json
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.helpers import wait_until
from tests.peers import free_port, terminate


def _program(name: str) -> str:
    # mosquitto lives in /usr/sbin, which a non-root PATH may lack.
    path = shutil.which(name) or shutil.which(name, path="/usr/sbin:/sbin")
    if path is None:
        pytest.fail(f"{name} is not installed: run `make test`, which installs it", pytrace=False)
    return path


@dataclass(frozen=True)
class CertAuthority:
    """A throwaway CA that signs server certificates for loopback."""

    key: ec.EllipticCurvePrivateKey
    cert: x509.Certificate
    cert_file: Path

    @classmethod
    def create(cls, directory: Path, name: str = "netmon test CA") -> CertAuthority:
        key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        cert = (
            _builder(subject, subject, key.public_key())
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True, content_commitment=False, key_encipherment=False,
                    data_encipherment=False, key_agreement=False, key_cert_sign=True,
                    crl_sign=True, encipher_only=False, decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
            .sign(key, hashes.SHA256())
        )  # fmt: skip
        cert_file = directory / f"{name.replace(' ', '-')}.pem"
        cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        cert_file.chmod(0o644)
        return cls(key, cert, cert_file)

    def issue_server(
        self, directory: Path, hosts: tuple[str, ...] = ("127.0.0.1", "localhost")
    ) -> tuple[Path, Path]:
        """A server certificate for `hosts` (IPs and names): (cert file, key file)."""
        key = ec.generate_private_key(ec.SECP256R1())
        names: list[x509.GeneralName] = []
        for host in hosts:
            try:
                names.append(x509.IPAddress(ipaddress.ip_address(host)))
            except ValueError:
                names.append(x509.DNSName(host))
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hosts[0])])
        cert = (
            _builder(subject, self.cert.subject, key.public_key())
            .add_extension(x509.SubjectAlternativeName(names), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False
            )
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self.key.public_key()), False
            )
            .sign(self.key, hashes.SHA256())
        )
        cert_file, key_file = directory / "server.pem", directory / "server.key"
        cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        key_file.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        # Mosquitto reads them after dropping root for user `mosquitto`; test material only.
        cert_file.chmod(0o644)
        key_file.chmod(0o644)
        return cert_file, key_file


def _builder(subject: x509.Name, issuer: x509.Name, public_key: Any) -> x509.CertificateBuilder:
    now = dt.datetime.now(dt.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
    )


class Mosquitto:
    """mosquitto on 127.0.0.1:`port`, owned by a test; restartable on the same port."""

    host = "127.0.0.1"

    def __init__(self, *, users: Mapping[str, str] | None = None, tls: bool = False) -> None:
        self.port = free_port()
        self.users = dict(users or {})
        # Not the test's tmp_path: pytest makes that 0700, and mosquitto, started as root,
        # reads its password file as user `mosquitto`.
        self.workdir = Path(tempfile.mkdtemp(prefix="netmon-mosquitto-"))
        self.workdir.chmod(0o755)
        self.log_file = self.workdir / "mosquitto.log"
        self.ca_file: Path | None = None
        lines = [
            f"listener {self.port} {self.host}",
            "persistence false",
            "log_dest stderr",
            "log_type all",
            "connection_messages true",
        ]
        if self.users:
            password_file = self.workdir / "passwords"
            passwd = _program("mosquitto_passwd")
            for number, (user, password) in enumerate(self.users.items()):
                create = ["-c"] if number == 0 else []
                subprocess.run(
                    [passwd, *create, "-b", str(password_file), user, password], check=True
                )
            password_file.chmod(0o644)
            lines += ["allow_anonymous false", f"password_file {password_file}"]
        else:
            lines.append("allow_anonymous true")
        if tls:
            authority = CertAuthority.create(self.workdir)
            cert_file, key_file = authority.issue_server(self.workdir)
            self.ca_file = authority.cert_file
            lines += [f"cafile {self.ca_file}", f"certfile {cert_file}", f"keyfile {key_file}"]
        self.config = self.workdir / "mosquitto.conf"
        self.config.write_text("\n".join(lines) + "\n")
        self.config.chmod(0o644)
        self.process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None
        try:
            self.start()
        except BaseException:
            shutil.rmtree(self.workdir, ignore_errors=True)
            raise

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def start(self) -> None:
        assert not self.running, "mosquitto is already running"
        self._log = self.log_file.open("ab")
        self.process = subprocess.Popen(
            [_program("mosquitto"), "-c", str(self.config)],
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        try:
            wait_until(self._listening, timeout=10, what=f"mosquitto on port {self.port}")
        except BaseException:
            self.stop()
            raise

    def _listening(self) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            raise AssertionError(
                f"mosquitto exited with {self.process.returncode}:\n{self.log_text()}"
            )
        try:
            socket.create_connection((self.host, self.port), timeout=0.5).close()
        except OSError:
            return False
        return True

    def stop(self) -> None:
        """Stop the broker; what it retained is gone (no persistence)."""
        if self.process is not None and self.process.poll() is None:
            terminate(self.process)
        if self._log is not None:
            self._log.close()
            self._log = None

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.workdir, ignore_errors=True)

    def log_text(self) -> str:
        return self.log_file.read_text(errors="replace") if self.log_file.exists() else ""

    def client_args(self, user: str | None = None) -> list[str]:
        """Connection arguments for mosquitto_sub / mosquitto_pub; the first user by default."""
        args = ["-h", self.host, "-p", str(self.port)]
        if self.users:
            user = user or next(iter(self.users))
            args += ["-u", user, "-P", self.users[user]]
        if self.ca_file is not None:
            args += ["--cafile", str(self.ca_file)]
        return args

    def publish(self, topic: str, payload: str, *, retain: bool = False) -> None:
        """Publish as another client would (QoS 1: the broker has it when this returns)."""
        command = [_program("mosquitto_pub"), *self.client_args(), "-t", topic, "-m", payload]
        subprocess.run([*command, "-q", "1", *(["-r"] if retain else [])], check=True, timeout=10)


@dataclass(frozen=True)
class MqttMessage:
    topic: str
    payload: str
    retain: bool


class MqttRecorder:
    """`mosquitto_sub` on a topic filter, recording every message in order.

    It is subscribed when the constructor returns, so nothing published afterwards is missed.
    `wait_for` polls from synchronous tests; `until` from async ones (it leaves the event loop
    free for the code under test).
    """

    def __init__(self, broker: Mosquitto, topic: str = "#", *, user: str | None = None) -> None:
        self.topic = topic
        self.messages: list[MqttMessage] = []
        self.output: list[str] = []
        self._subscribed = threading.Event()
        self.process = subprocess.Popen(
            # Line-buffered: a pipe would hold the SUBACK line and messages back.
            ["stdbuf", "-oL", _program("mosquitto_sub"), *broker.client_args(user),
             "-t", topic, "-q", "1", "-F", "%j", "-d"],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )  # fmt: skip
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        try:
            # -d prints the SUBACK before the retained messages the broker replays after it.
            wait_until(
                lambda: self._subscribed.is_set() or self.process.poll() is not None,
                timeout=10,
                what=f"mosquitto_sub to subscribe to {topic}",
            )
            if not self._subscribed.is_set():
                raise AssertionError(f"mosquitto_sub failed:\n{''.join(self.output)}")
        except BaseException:
            self.close()  # nobody else holds it yet: it would retry for ever after the test
            raise

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.output.append(line)
            if line.startswith("{"):
                data = json.loads(line)
                self.messages.append(
                    MqttMessage(data["topic"], data.get("payload", ""), bool(data["retain"]))
                )
            elif "received SUBACK" in line:
                self._subscribed.set()

    def matching(self, predicate: Callable[[MqttMessage], bool]) -> list[MqttMessage]:
        return [message for message in list(self.messages) if predicate(message)]

    def wait_for(
        self, predicate: Callable[[MqttMessage], bool], *, timeout: float = 5.0
    ) -> MqttMessage:
        found = wait_until(lambda: self.matching(predicate), timeout=timeout, what="MQTT message")
        return found[0]

    async def until(
        self, predicate: Callable[[MqttMessage], bool], *, timeout: float = 5.0
    ) -> MqttMessage:
        deadline = time.monotonic() + timeout
        while not (found := self.matching(predicate)):
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"no matching MQTT message on {self.topic} within {timeout}s; got "
                    f"{self.messages!r}"
                )
            await asyncio.sleep(0.02)
        return found[0]

    def quiet(self, seconds: float = 0.3, *, timeout: float = 10.0) -> list[MqttMessage]:
        """Wait until nothing new arrived for `seconds`; return everything so far."""
        deadline = time.monotonic() + timeout
        count, since = len(self.messages), time.monotonic()
        while time.monotonic() - since < seconds:
            if time.monotonic() > deadline:
                raise AssertionError(f"{self.topic} never went quiet")
            time.sleep(0.02)
            if len(self.messages) != count:
                count, since = len(self.messages), time.monotonic()
        return list(self.messages)

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._reader.join(timeout=2)
        if self.process.stdout is not None:
            self.process.stdout.close()

    def __enter__(self) -> MqttRecorder:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def retained(broker: Mosquitto, topic: str = "#", *, user: str | None = None) -> dict[str, str]:
    """topic -> payload of the retained messages a subscriber connecting now is replayed.

    Blocking (about 0.3 s): from async tests call it with `asyncio.to_thread`.
    """
    with MqttRecorder(broker, topic, user=user) as recorder:
        return {m.topic: m.payload for m in recorder.quiet() if m.retain}


@pytest.fixture
def mosquitto_factory() -> Iterator[Callable[..., Mosquitto]]:
    """Start brokers with options (`users={name: password}`, `tls=True`); all stopped after."""
    brokers: list[Mosquitto] = []

    def start(**options: Any) -> Mosquitto:
        broker = Mosquitto(**options)
        brokers.append(broker)
        return broker

    yield start
    for broker in brokers:
        broker.cleanup()


@pytest.fixture
def mosquitto(mosquitto_factory: Callable[..., Mosquitto]) -> Mosquitto:
    """One anonymous broker, no persistence, on a free loopback port."""
    return mosquitto_factory()


@pytest.fixture
def mqtt_recorder() -> Iterator[Callable[..., MqttRecorder]]:
    """`mqtt_recorder(broker, "netmon/#")`: a subscribed recorder, closed after the test."""
    recorders: list[MqttRecorder] = []

    def start(broker: Mosquitto, topic: str = "#", *, user: str | None = None) -> MqttRecorder:
        recorder = MqttRecorder(broker, topic, user=user)
        recorders.append(recorder)
        return recorder

    yield start
    for recorder in recorders:
        recorder.close()

"""The e-mail channel against a real SMTP server (aiosmtpd) started by the test on loopback:
the messages an on-call engineer gets, parsed back, and which answers keep or drop a page."""

from __future__ import annotations

import asyncio
import datetime as dt
import email
import email.policy
import ipaddress
import logging
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass, field, replace
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from pydantic import ValidationError

from netmon.alerting.model import AlertEvent, Severity, Status
from netmon.channels.base import Page, PageKind, SinkRejected, SinkUnavailable
from netmon.channels.email import EmailChannel
from netmon.config.channels import EmailSettings
from tests.peers import free_port

PASSWORD = "smtp-9c1e5a7b3d"  # noqa: S105 - a test value that must never show up anywhere
HANG = 30.0  # seconds: a hang guard, far beyond any timeout here; never a speed figure
T0 = 1_760_000_000.0  # 2025-10-09 15:53:20 in Asia/Ho_Chi_Minh


@dataclass
class Received:
    mail_from: str
    rcpt_tos: list[str]
    authenticated: bool
    tls: bool
    message: EmailMessage


@dataclass
class SmtpPeer:
    """An SMTP server of the test's own: records what it accepts, refuses (550) or defers
    (450) the recipients it is told to."""

    refuse: set[str] = field(default_factory=set)
    defer: set[str] = field(default_factory=set)
    received: list[Received] = field(default_factory=list)
    port: int = 0
    server: asyncio.Server | None = None

    async def handle_RCPT(  # noqa: N802 - aiosmtpd's hook name
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: Any
    ) -> str:
        if address in self.refuse:
            return f"550 5.1.1 <{address}>: mailbox unavailable"
        if address in self.defer:
            return "450 4.2.1 mailbox busy, try later"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(  # noqa: N802
        self, server: SMTP, session: Session, envelope: Envelope
    ) -> str:
        content = envelope.original_content or b""
        message = email.message_from_bytes(content, policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        self.received.append(
            Received(
                mail_from=str(envelope.mail_from),
                rcpt_tos=list(envelope.rcpt_tos),
                authenticated=bool(session.authenticated),
                tls=session.ssl is not None,
                message=message,
            )
        )
        return "250 2.0.0 queued"

    async def start(self, **smtp_options: Any) -> None:
        loop = asyncio.get_running_loop()
        self.server = await loop.create_server(
            lambda: SMTP(self, hostname="smtp.test", **smtp_options), "127.0.0.1", 0
        )
        self.port = self.server.sockets[0].getsockname()[1]

    async def close(self) -> None:
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()


def authenticator(
    server: SMTP, session: Session, envelope: Envelope, mechanism: str, auth_data: Any
) -> AuthResult:
    ok = (
        isinstance(auth_data, LoginPassword)
        and auth_data.login == b"netmon"
        and auth_data.password == PASSWORD.encode()
    )
    return AuthResult(success=ok, handled=False)


@dataclass(frozen=True)
class Tls:
    server: ssl.SSLContext
    ca_file: Path


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> Tls:
    """A self-signed certificate for 127.0.0.1, and a server context that presents it."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "smtp.test")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    directory = tmp_path_factory.mktemp("smtp-tls")
    cert_file, key_file = directory / "cert.pem", directory / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert_file, key_file)
    return Tls(server=context, ca_file=cert_file)


@pytest.fixture
async def smtp() -> AsyncIterator[SmtpPeer]:
    peer = SmtpPeer()
    await peer.start()
    yield peer
    await peer.close()


@pytest.fixture
async def smtp_tls(tls: Tls) -> AsyncIterator[SmtpPeer]:
    peer = SmtpPeer()
    await peer.start(
        tls_context=tls.server,
        require_starttls=True,
        auth_required=True,
        auth_require_tls=True,
        authenticator=authenticator,
    )
    yield peer
    await peer.close()


def down_event(target: str = "ep-tanlap", **changes: Any) -> AlertEvent:
    event = AlertEvent(
        alertname="EndpointDown",
        target=target,
        severity=Severity.CRITICAL,
        status=Status.FIRING,
        starts_at=T0,
        ends_at=None,
        summary=f"{target} mất kết nối (không phản hồi ping)",
        context={"site": "Xã Tân Lập", "district": "Huyện Như Xuân"},
        event_at=T0,
    )
    return replace(event, **changes)


def page(
    recipient: str = "tuan@noc.example.vn",
    *events: AlertEvent,
    page_id: str = "0123456789abcdef",
    **changes: Any,
) -> Page:
    return replace(
        Page(
            page_id=page_id,
            channel="mail",
            recipient=recipient,
            kind=PageKind.FIRING,
            events=events or (down_event(),),
            language="vi",
            created_at=T0 + 120,
            status_url="https://noc.example.vn/status",
        ),
        **changes,
    )


def channel(port: int, **extra: Any) -> EmailChannel:
    settings = {
        "name": "mail",
        "host": "127.0.0.1",
        "port": port,
        "security": "none",
        "from_address": "netmon NOC <netmon@noc.example.vn>",
        "timeout": "5s",
        **extra,
    }
    return EmailChannel(EmailSettings.model_validate(settings), clock=lambda: T0 + 130)


def parts(message: EmailMessage) -> tuple[str, str]:
    assert message.get_content_type() == "multipart/alternative"
    plain = message.get_body(("plain",))
    rich = message.get_body(("html",))
    assert isinstance(plain, EmailMessage)
    assert isinstance(rich, EmailMessage)
    return plain.get_content(), rich.get_content()


async def test_a_group_of_pages_is_one_readable_message_per_recipient(smtp: SmtpPeer) -> None:
    yen_khuong = down_event(
        "ep-yenkhuong",
        severity=Severity.MAJOR,
        summary="Độ trễ cao tới ep-yenkhuong <b>&</b>: RTT p95 320 ms > 300 ms",
        context={"site": "Xã Yên Khương", "district": "Huyện Lang Chánh"},
    )
    pages = [
        page("tuan@noc.example.vn", page_id="a000000000000001"),
        page("tuan@noc.example.vn", yen_khuong, page_id="a000000000000002"),
        page("lan@noc.example.vn", page_id="a000000000000003"),
    ]
    mail = channel(smtp.port)
    assert (mail.name, mail.kind) == ("mail", "email")

    assert await mail.deliver(pages) == 3

    # Two recipients, two messages: Tuấn's two pages arrive as one.
    assert [(r.mail_from, r.rcpt_tos) for r in smtp.received] == [
        ("netmon@noc.example.vn", ["tuan@noc.example.vn"]),
        ("netmon@noc.example.vn", ["lan@noc.example.vn"]),
    ]
    message = smtp.received[0].message
    assert message["From"] == "netmon NOC <netmon@noc.example.vn>"
    assert message["To"] == "tuan@noc.example.vn"
    assert message["Subject"] == "[NGHIÊM TRỌNG] 2 cảnh báo - Xã Tân Lập, Xã Yên Khương"
    assert message["Message-ID"].startswith("<netmon.a000000000000001.")
    assert message["Message-ID"] != smtp.received[1].message["Message-ID"]
    assert message["Date"].datetime.timestamp() == T0 + 130
    assert message["Auto-Submitted"] == "auto-generated"

    text, html = parts(message)
    for body in (text, html):
        assert "Cảnh báo" in body
        assert "ep-tanlap mất kết nối (không phản hồi ping)" in body
        assert "Huyện Lang Chánh" in body
        assert "15:53 09/10/2025" in body  # Asia/Ho_Chi_Minh
        assert "https://noc.example.vn/status" in body
        assert f"netmon alerts ack {pages[0].events[0].fingerprint}" in body
    # The summary is text: the HTML shows it, escaped, and never as markup.
    assert "ep-yenkhuong <b>&</b>: RTT p95 320 ms > 300 ms" in text
    assert "ep-yenkhuong &lt;b&gt;&amp;&lt;/b&gt;: RTT p95 320 ms &gt; 300 ms" in html
    assert "<b>&</b>" not in html
    assert '<a href="https://noc.example.vn/status">' in html

    single = smtp.received[1].message
    subject = "[NGHIÊM TRỌNG] Cảnh báo: Xã Tân Lập - ep-tanlap mất kết nối (không phản hồi ping)"
    assert single["Subject"] == subject


async def test_resolved_and_acknowledged_pages_read_so(smtp: SmtpPeer) -> None:
    resolved = page(
        kind=PageKind.RESOLVED, events=(down_event().resolved(T0 + 1500),), page_id="b1" * 8
    )
    taken = page("lan@noc.example.vn", kind=PageKind.ACKNOWLEDGED, acknowledged_by="Tuấn")
    reminder = page("hoa@noc.example.vn", kind=PageKind.REMINDER, step=1)
    assert await channel(smtp.port).deliver([resolved, taken, reminder]) == 3

    first, second, third = (received.message for received in smtp.received)
    assert first["Subject"].startswith("[NGHIÊM TRỌNG] Đã khôi phục: Xã Tân Lập")
    assert "15:53 09/10/2025 (GMT+7) đến 16:18 09/10/2025 (GMT+7)" in parts(first)[0]
    assert "netmon alerts ack" not in parts(first)[0]  # nothing left to take
    assert second["Subject"].startswith("[NGHIÊM TRỌNG] Đã nhận xử lý bởi Tuấn: Xã Tân Lập")
    assert third["Subject"].startswith("[NGHIÊM TRỌNG] Nhắc lại lần 2: Xã Tân Lập")
    # The same alert threads in the reader's mail client.
    assert first["References"] == second["References"] == third["References"]


async def test_the_channel_language_overrides_the_page(smtp: SmtpPeer) -> None:
    await channel(smtp.port, language="en").deliver([page()])
    message = smtp.received[0].message
    assert message["Subject"].startswith("[CRITICAL] Alert: Xã Tân Lập - ")
    text, _ = parts(message)
    assert "Since: 2025-10-09 15:53 (GMT+7)" in text
    assert "To acknowledge: netmon alerts ack" in text


async def test_auth_over_starttls_with_the_password_nowhere_else(
    smtp_tls: SmtpPeer, tls: Tls, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    mail = channel(
        smtp_tls.port,
        security="starttls",
        username="netmon",
        password=PASSWORD,
        ca_file=str(tls.ca_file),
    )
    assert await mail.deliver([page()]) == 1
    (received,) = smtp_tls.received
    assert received.tls
    assert received.authenticated
    assert parts(received.message)[0].startswith("Cảnh báo")

    assert PASSWORD not in caplog.text
    assert PASSWORD not in repr(mail)
    assert PASSWORD not in repr(mail.settings)
    assert PASSWORD not in str(mail.settings.model_dump())


async def test_a_wrong_password_keeps_the_pages_and_is_not_told(
    smtp_tls: SmtpPeer, tls: Tls, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    wrong = PASSWORD + "-old"
    mail = channel(
        smtp_tls.port,
        security="starttls",
        username="netmon",
        password=wrong,
        ca_file=str(tls.ca_file),
    )
    with pytest.raises(SinkUnavailable, match="login as netmon refused: 535") as unavailable:
        await mail.deliver([page()])
    assert smtp_tls.received == []
    for text in (str(unavailable.value), repr(unavailable.value), caplog.text):
        assert PASSWORD not in text


async def test_a_server_without_starttls_gets_no_password(smtp: SmtpPeer, tls: Tls) -> None:
    # Asked for STARTTLS, the channel does not fall back to plain text (a stripped
    # STARTTLS is how a password is stolen).
    mail = channel(
        smtp.port,
        security="starttls",
        username="netmon",
        password=PASSWORD,
        ca_file=str(tls.ca_file),
    )
    with pytest.raises(SinkUnavailable, match="STARTTLS") as unavailable:
        await mail.deliver([page()])
    assert PASSWORD not in str(unavailable.value)
    assert smtp.received == []


async def test_a_certificate_not_trusted_is_unavailable(smtp_tls: SmtpPeer) -> None:
    mail = channel(smtp_tls.port, security="starttls", username="netmon", password=PASSWORD)
    with pytest.raises(SinkUnavailable, match="CERTIFICATE_VERIFY_FAILED"):
        await mail.deliver([page()])


async def test_nobody_listening_is_unavailable() -> None:
    async with asyncio.timeout(HANG):
        with pytest.raises(SinkUnavailable, match=r"cannot connect to 127\.0\.0\.1"):
            await channel(free_port()).deliver([page()])


async def test_a_refused_recipient_is_rejected_the_others_go(smtp: SmtpPeer) -> None:
    smtp.refuse.add("gone@noc.example.vn")
    mail = channel(smtp.port)
    with pytest.raises(SinkRejected, match=r"gone@noc\.example\.vn refused: 550 5\.1\.1"):
        await mail.deliver([page("gone@noc.example.vn"), page()])
    assert smtp.received == []

    # Refused after a message went out: the count says how far it got; the worker drops the
    # refused page on the next call, which starts with it.
    pages = [page(), page("gone@noc.example.vn"), page("lan@noc.example.vn")]
    assert await mail.deliver(pages) == 1
    assert [r.rcpt_tos for r in smtp.received] == [["tuan@noc.example.vn"]]


async def test_a_deferred_recipient_is_unavailable(smtp: SmtpPeer) -> None:
    smtp.defer.add("tuan@noc.example.vn")
    with pytest.raises(SinkUnavailable, match=r"450 4\.2\.1"):
        await channel(smtp.port).deliver([page()])


async def test_a_recipient_that_is_no_address_is_rejected(smtp: SmtpPeer) -> None:
    with pytest.raises(SinkRejected, match="not an e-mail address"):
        await channel(smtp.port).deliver([page("+84987654321")])


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"security": "none", "host": "smtp.example.vn"}, "needs security starttls or tls"),
        ({"password": PASSWORD, "username": None}, "username and password go together"),
        ({"from_address": "netmon"}, "must be an e-mail address"),
        ({"from_address": "a@b\r\nBcc: x@y"}, "must be one line"),
        ({"name": "on call"}, "use letters, digits"),
    ],
)
def test_settings_that_cannot_work_fail_at_load(config: dict[str, Any], message: str) -> None:
    settings = {
        "host": "127.0.0.1",
        "security": "none",
        "username": "netmon",
        "password": PASSWORD,
        "from_address": "netmon@noc.example.vn",
        **config,
    }
    with pytest.raises(ValidationError, match=message) as invalid:
        EmailSettings.model_validate(settings)
    assert PASSWORD not in str(invalid.value)


def test_the_port_follows_the_security() -> None:
    ports = {
        security: EmailSettings(
            host="smtp.example.vn", security=security, from_address="n@example.vn"
        ).effective_port
        for security in ("starttls", "tls", "none")
    }
    assert ports == {"starttls": 587, "tls": 465, "none": 25}

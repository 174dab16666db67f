"""The demo's SMTP server: it takes every message netmon's e-mail channel sends and keeps it
for `netmon demo mail` (and the demo's tests) to read. On loopback, no authentication, no
delivery anywhere: a newcomer sees the on-call e-mails without a mail server."""

from __future__ import annotations

import asyncio
import email
import email.policy
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # aiosmtpd is the lab extra's: an installed netmon imports the lab without it
    from aiosmtpd.smtp import SMTP, Envelope, Session


@dataclass(frozen=True, slots=True)
class CaughtMail:
    received: float  # unix seconds
    sender: str
    recipients: tuple[str, ...]
    subject: str
    text: str  # the plain-text part

    def to_json(self) -> dict[str, Any]:
        return {
            "received": self.received,
            "from": self.sender,
            "to": list(self.recipients),
            "subject": self.subject,
            "text": self.text,
        }


class MailCatcher:
    def __init__(self) -> None:
        self.mails: list[CaughtMail] = []
        self.port = 0
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
        from aiosmtpd.smtp import SMTP

        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: SMTP(self, hostname="mail.netmon-demo.invalid"), "127.0.0.1", 0
        )
        self.port = int(self._server.sockets[0].getsockname()[1])

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:  # noqa: N802 - aiosmtpd's hook
        raw = envelope.original_content or b""
        message = email.message_from_bytes(raw, policy=email.policy.default)
        body = message.get_body(preferencelist=("plain",))
        text = body.get_content() if body is not None else ""
        self.mails.append(
            CaughtMail(
                received=time.time(),
                sender=str(envelope.mail_from or ""),
                recipients=tuple(str(r) for r in envelope.rcpt_tos),
                subject=str(message.get("Subject", "")),
                text=str(text),
            )
        )
        return "250 OK"

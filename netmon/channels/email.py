"""The e-mail channel: pages as e-mail through an SMTP relay (aiosmtplib).

`deliver(pages)` sends the leading pages for one recipient as one message (an alert group:
the pages handed together for one address), then the next recipient's, over one SMTP
connection per call. A message is multipart/alternative: a plain-text part and an HTML part
saying the same (`netmon.channels.texts`), in the channel's language when it sets one, else
the page's. It carries a Message-ID derived from its pages (a re-send after a lost answer has
the same one, so mail systems that dedupe on it show it once), a Date, a Subject with the top
severity and the site, `Auto-Submitted: auto-generated` (RFC 3834: no vacation replies), and
References naming each alert, so mail clients thread the firing, reminders and resolve of one
alert together.

The far side's answers map onto the channel contract: no connection, a timeout, a TLS or
AUTH failure, a refused sender or any 4xx → SinkUnavailable (the pages wait: a wrong
password or a full mailbox server is fixed by someone, and the pages must not be lost
meanwhile); a 5xx for the recipient or the message itself → SinkRejected (this page will
never be taken). Once a message went out, a later failure in the same call returns the count
sent so far instead of raising, so the worker sees the progress and retries only the rest.

The password goes to the server inside the TLS session and nowhere else: not into a repr,
a log line or a reason (the server's own words are scrubbed of it, in case one echoes it).
"""

from __future__ import annotations

import email.utils
import hashlib
import logging
import ssl
import time
from collections.abc import Callable, Sequence
from email.header import Header
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText

import aiosmtplib

from netmon.channels import texts
from netmon.channels.base import Page, SinkRejected, SinkUnavailable
from netmon.config.alerting import Language
from netmon.config.channels import EmailSettings

log = logging.getLogger(__name__)

_REASON_CHARS = 300


class EmailChannel:
    """Pages as e-mail; see the module doc."""

    kind = "email"

    def __init__(self, settings: EmailSettings, *, clock: Callable[[], float] = time.time) -> None:
        self.settings = settings
        self.name = settings.name
        self._clock = clock

    def __repr__(self) -> str:
        return (
            f"EmailChannel(name={self.name!r}, host={self.settings.host!r}, "
            f"port={self.settings.effective_port})"
        )

    async def start(self) -> None:
        """Nothing to start: a connection is made per delivery."""

    async def close(self) -> None:
        """Nothing to stop."""

    async def deliver(self, pages: Sequence[Page]) -> int:
        if not pages:
            return 0
        groups = alert_groups(pages)
        smtp = await self._connect()
        done = 0
        try:
            for group in groups:
                try:
                    await self._send(smtp, group)
                except (SinkUnavailable, SinkRejected) as exc:
                    if done:
                        log.info(
                            "e-mail channel %s: %d page(s) sent, then: %s", self.name, done, exc
                        )
                        return done
                    raise
                done += len(group)
        finally:
            await _quit(smtp)
        return done

    async def send_message(self, message: MIMEMultipart, recipients: Sequence[str]) -> None:
        """One message of netmon's own (a monthly report) to `recipients`, through the same
        relay, TLS and login as the pages; the same SinkUnavailable/SinkRejected on failure."""
        bad = [r for r in recipients if not _plain_address(r)]
        if bad:
            raise SinkRejected(f"not e-mail addresses: {', '.join(map(repr, bad))}")
        if "From" not in message:
            message["From"] = email.utils.formataddr(
                email.utils.parseaddr(self.settings.from_address)
            )
        smtp = await self._connect()
        try:
            await smtp.send_message(message, sender=self.settings.sender, recipients=recipients)
        except Exception as exc:
            failure = self._failure(exc)
            if failure is None:
                raise
            raise failure from None
        finally:
            await _quit(smtp)

    def message(self, group: Sequence[Page]) -> MIMEMultipart:
        """The message for one alert group (pages for one recipient)."""
        # Built with the compat32 MIME classes, not EmailMessage: the default policy's folding
        # drops the space between two RFC 2047 encoded words of a long subject ("Xã Tân Lập"
        # arrives as "Xã TânLập"); Header keeps every space inside the encoded words.
        language: Language = self.settings.language or group[0].language
        domain = self.settings.sender.rpartition("@")[2] or "netmon.invalid"
        ids = [page.page_id for page in group]
        message = MIMEMultipart("alternative")
        # compat32 takes a Header (typeshed types this message's header values as str).
        message["Subject"] = _header(texts.subject(group, language))  # type: ignore[assignment]
        message["From"] = email.utils.formataddr(email.utils.parseaddr(self.settings.from_address))
        message["To"] = group[0].recipient
        message["Date"] = email.utils.format_datetime(texts.local(self._clock()))
        digest = hashlib.sha256(",".join(ids).encode()).hexdigest()[:16]
        message["Message-ID"] = f"<netmon.{ids[0]}.{digest}@{domain}>"
        threads = dict.fromkeys(
            f"<netmon.alert.{event.fingerprint}.{int(event.starts_at)}@{domain}>"
            for page in group
            for event in page.events
        )
        if threads:
            message["References"] = " ".join(threads)
        message["Auto-Submitted"] = "auto-generated"
        message["X-Netmon-Pages"] = ", ".join(ids)
        # Plain text first: clients show the last alternative they can render (RFC 2046).
        message.attach(MIMEText(texts.text_body(group, language), "plain", "utf-8"))
        message.attach(MIMEText(texts.html_body(group, language), "html", "utf-8"))
        return message

    async def _connect(self) -> aiosmtplib.SMTP:
        settings = self.settings
        tls_context: ssl.SSLContext | None = None
        if settings.security != "none":
            cafile = str(settings.ca_file) if settings.ca_file is not None else None
            tls_context = ssl.create_default_context(cafile=cafile)
        smtp = aiosmtplib.SMTP(
            hostname=settings.host,
            port=settings.effective_port,
            use_tls=settings.security == "tls",
            # True: STARTTLS is required, a server that does not offer it is an error (an
            # attacker stripping it must not get the password). False: never.
            start_tls=settings.security == "starttls",
            tls_context=tls_context,
            timeout=settings.timeout,
        )
        try:
            await smtp.connect()
            if settings.username is not None and settings.password is not None:
                await smtp.login(settings.username, settings.password.reveal())
        except Exception as exc:
            await _quit(smtp)
            failure = self._failure(exc)
            if failure is None:
                raise
            # A refused login or greeting is the relay's problem, never this page's.
            raise SinkUnavailable(str(failure)) from None
        return smtp

    async def _send(self, smtp: aiosmtplib.SMTP, group: Sequence[Page]) -> None:
        recipient = group[0].recipient
        if not _plain_address(recipient):
            raise SinkRejected(f"{recipient!r} is not an e-mail address")
        message = self.message(group)
        try:
            await smtp.send_message(message, sender=self.settings.sender, recipients=[recipient])
        except Exception as exc:
            failure = self._failure(exc)
            if failure is None:
                raise
            raise failure from None
        log.debug("e-mail channel %s: %d page(s) to %s", self.name, len(group), recipient)

    def _failure(self, exc: BaseException) -> SinkUnavailable | SinkRejected | None:
        """The contract's exception for an SMTP or network failure; None for anything else
        (a bug: let it through)."""
        where = f"{self.settings.host}:{self.settings.effective_port}"
        if isinstance(exc, aiosmtplib.SMTPRecipientsRefused):
            refusals = exc.recipients
            if refusals and all(refusal.code >= 500 for refusal in refusals):
                refusal = refusals[0]
                return SinkRejected(
                    f"{refusal.recipient} refused: {self._said(refusal.code, refusal.message)}"
                )
            said = self._said(refusals[0].code, refusals[0].message) if refusals else "refused"
            return SinkUnavailable(f"recipient deferred: {said}")
        if isinstance(exc, aiosmtplib.SMTPDataError):
            said = self._said(exc.code, exc.message)
            if exc.code >= 500:
                return SinkRejected(f"message refused: {said}")
            return SinkUnavailable(f"message deferred: {said}")
        if isinstance(exc, aiosmtplib.SMTPSenderRefused):
            return SinkUnavailable(
                f"sender {exc.sender} refused: {self._said(exc.code, exc.message)}"
            )
        if isinstance(exc, aiosmtplib.SMTPAuthenticationError):
            return SinkUnavailable(
                f"{where}: login as {self.settings.username} refused: "
                f"{self._said(exc.code, exc.message)}"
            )
        if isinstance(exc, aiosmtplib.SMTPTimeoutError):
            return SinkUnavailable(f"{where}: no answer within {self.settings.timeout:g}s")
        if isinstance(exc, aiosmtplib.SMTPConnectError):
            cause = exc.__cause__
            detail = cause.strerror if isinstance(cause, OSError) and cause.strerror else ""
            return SinkUnavailable(f"cannot connect to {where}: {detail or self._scrub(str(exc))}")
        if isinstance(exc, aiosmtplib.SMTPResponseException):
            return SinkUnavailable(f"{where}: {self._said(exc.code, exc.message)}")
        if isinstance(exc, aiosmtplib.SMTPException):
            # Disconnected, STARTTLS not offered, no AUTH mechanism in common...
            return SinkUnavailable(f"{where}: {type(exc).__name__}: {self._scrub(str(exc))}")
        if isinstance(exc, ssl.SSLError):
            return SinkUnavailable(f"{where}: TLS: {exc.reason or type(exc).__name__}")
        if isinstance(exc, OSError | TimeoutError):
            return SinkUnavailable(f"{where}: {type(exc).__name__}: {exc.strerror or exc}")
        return None

    def _said(self, code: int, message: str) -> str:
        return self._scrub(f"{code} {message}")

    def _scrub(self, text: str) -> str:
        text = " ".join(text.split())
        if self.settings.password is not None and self.settings.password.reveal():
            text = text.replace(self.settings.password.reveal(), "<secret>")
        return text[:_REASON_CHARS]


def alert_groups(pages: Sequence[Page]) -> list[list[Page]]:
    """Consecutive pages for the same recipient, together."""
    groups: list[list[Page]] = []
    for page in pages:
        if groups and groups[-1][0].recipient == page.recipient:
            groups[-1].append(page)
        else:
            groups.append([page])
    return groups


def _header(text: str) -> str | Header:
    return text if text.isascii() else Header(text, "utf-8")


def _plain_address(text: str) -> bool:
    name, address = email.utils.parseaddr(text)
    return (
        not name
        and address == text
        and "@" in address
        and not address.startswith("@")
        and not address.endswith("@")
        and not any(char.isspace() or char in "<>,;" for char in address)
    )


async def _quit(smtp: aiosmtplib.SMTP) -> None:
    if not smtp.is_connected:
        return
    try:
        await smtp.quit()
    except (aiosmtplib.SMTPException, OSError):
        smtp.close()


__all__ = ["EmailChannel", "alert_groups"]

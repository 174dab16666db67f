"""The HTTP gateway channel: pages as SMS (brand-name providers) or Zalo ZNS messages, through
a provider's HTTP API described in the config, so a provider can be wired without code.

Each page is one request (SMS has no grouping: one text per page, each short enough for one
or two SMS, see `netmon.channels.texts`), unless the settings opt in with `group: true`: then
consecutive pages of one kind for the same recipient are one request whose {text} names the
first alert and counts the others. The request is the settings' JSON `body` template with its
placeholders filled ({phone}, {text}, {site}, ...; `netmon.config.channels.GATEWAY_FIELDS`),
and the `headers`, whose values may carry {secret} or {secrets.NAME}: secrets are filled in
when the request is made and never logged.

Outcome: no answer, no connection, HTTP 429, 5xx, and the 4xx that say something about the
channel rather than the page (a wrong key or URL: 401, 403, 404...) → SinkUnavailable, with
the answer's Retry-After honoured (the pages wait: a key that expired must not cost the pages
of the night); any other 4xx, or a 2xx whose `success` condition is false → SinkRejected with
the provider's words, shortened, every secret scrubbed from them (providers echo requests).
A 2xx that is not JSON while a condition is set, or whose value is in `success.retry`, is
SinkUnavailable.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

import aiohttp

from netmon.alerting.sinks.webhook import RETRYABLE, _describe, retry_after_seconds
from netmon.channels import texts
from netmon.channels.base import Page, SinkRejected, SinkUnavailable
from netmon.config.alerting import Language
from netmon.config.channels import PLACEHOLDER, GatewaySettings, json_path, same_value

log = logging.getLogger(__name__)

_ANSWER_BYTES = 64 * 1024
_REASON_CHARS = 300


class GatewayChannel:
    """Pages through a provider's HTTP API; see the module doc."""

    kind = "gateway"

    def __init__(self, settings: GatewaySettings) -> None:
        self.settings = settings
        self.name = settings.name
        self._session: aiohttp.ClientSession | None = None

    def __repr__(self) -> str:
        return f"GatewayChannel(name={self.name!r})"

    async def start(self) -> None:
        if self._session is None:
            self._session = aiohttp.ClientSession()

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def __aenter__(self) -> GatewayChannel:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def deliver(self, pages: Sequence[Page]) -> int:
        if self._session is None:
            raise RuntimeError("GatewayChannel.deliver() before start()")
        done = 0
        while done < len(pages):
            batch = self._batch(pages[done:])
            try:
                await self._post(self._session, self.request_body(batch), self.headers())
            except (SinkUnavailable, SinkRejected) as exc:
                if done:
                    log.info("gateway %s: %d page(s) sent, then: %s", self.name, done, exc)
                    return done
                raise
            log.debug("gateway %s: %d page(s) to %s", self.name, len(batch), batch[0].recipient)
            done += len(batch)
        return done

    def _batch(self, pages: Sequence[Page]) -> Sequence[Page]:
        if not self.settings.group:
            return pages[:1]
        first = pages[0]
        end = 1
        while (
            end < len(pages)
            and pages[end].recipient == first.recipient
            and pages[end].kind is first.kind
        ):
            end += 1
        return pages[:end]

    def values(self, pages: Sequence[Page]) -> dict[str, str]:
        """The placeholders' values for one request (secrets not included)."""
        page = pages[0]
        if len(pages) > 1:
            page = replace(page, events=tuple(event for p in pages for event in p.events))
        language: Language = self.settings.language or page.language
        event = page.events[0]
        digits = "".join(char for char in page.recipient if char.isdigit())
        return {
            "phone": digits,
            "phone_e164": "+" + digits,
            "phone_national": "0" + digits[2:] if digits.startswith("84") else digits,
            "text": texts.sms(page, language, strip=self.settings.strip_diacritics),
            "summary": event.summary,
            "site": event.context.get("site", ""),
            "district": event.context.get("district", ""),
            "target": event.target,
            "alertname": event.alertname,
            "severity": event.severity.value,
            "kind": page.kind.value,
            "since": texts.hhmm(event.starts_at),
            "time": texts.hhmm(page.created_at),
            "status_url": page.status_url,
            "page_id": page.page_id,
        }

    def request_body(self, pages: Sequence[Page]) -> Any:
        """The JSON body for one request, secrets filled in."""
        return _fill(self.settings.body, self._with_secrets(self.values(pages)))

    def headers(self) -> dict[str, str]:
        values = self._with_secrets({})
        return {name: _fill_text(text, values) for name, text in self.settings.headers.items()}

    def _with_secrets(self, values: Mapping[str, str]) -> dict[str, str]:
        filled = dict(values)
        if self.settings.secret is not None:
            filled["secret"] = self.settings.secret.reveal()
        for name, secret in self.settings.secrets.items():
            filled[f"secrets.{name}"] = secret.reveal()
        return filled

    async def _post(
        self, session: aiohttp.ClientSession, body: Any, headers: Mapping[str, str]
    ) -> None:
        settings = self.settings
        try:
            async with session.request(
                settings.method,
                settings.url,
                json=body,
                headers=dict(headers),
                # A redirect means a wrong URL; following it could carry the key elsewhere.
                allow_redirects=False,
                timeout=aiohttp.ClientTimeout(total=settings.timeout),
            ) as response:
                status = response.status
                raw = await response.content.read(_ANSWER_BYTES)
                retry_after = retry_after_seconds(response.headers.get("Retry-After"))
        except TimeoutError:
            raise SinkUnavailable(f"no answer within {settings.timeout:g}s") from None
        except aiohttp.ClientError as exc:
            raise SinkUnavailable(self._scrub(_describe(exc))) from None
        answer = raw.decode("utf-8", "replace")
        if not 200 <= status < 300:
            reason = self._scrub(f"HTTP {status}: {answer}" if answer.strip() else f"HTTP {status}")
            if 400 <= status < 500 and status not in RETRYABLE:
                raise SinkRejected(reason)
            raise SinkUnavailable(reason, retry_after=retry_after)
        self._check_success(status, answer, retry_after)

    def _check_success(self, status: int, answer: str, retry_after: float | None) -> None:
        success = self.settings.success
        if success is None:
            return
        try:
            document = json.loads(answer)
        except ValueError:
            # A web page instead of the API (a wrong URL behind a portal): keep the pages.
            raise SinkUnavailable(
                self._scrub(f"HTTP {status}, not JSON: {answer}"), retry_after=retry_after
            ) from None
        found, actual = json_path(document, success.path)
        if found and same_value(actual, success.equals):
            return
        said = ""
        if success.message_path is not None:
            has_message, message = json_path(document, success.message_path)
            said = str(message) if has_message else ""
        shown = json.dumps(actual, ensure_ascii=False) if found else "missing"
        reason = self._scrub(f"{success.path}={shown}: {said or answer}")
        if found and any(same_value(actual, value) for value in success.retry):
            raise SinkUnavailable(reason, retry_after=retry_after)
        raise SinkRejected(reason)

    def _scrub(self, text: str) -> str:
        text = " ".join(text.split())
        for secret in self.settings.secret_values():
            text = text.replace(secret, "<secret>")
        return text[:_REASON_CHARS]


def _fill(template: Any, values: Mapping[str, str]) -> Any:
    if isinstance(template, str):
        return _fill_text(template, values)
    if isinstance(template, dict):
        return {key: _fill(value, values) for key, value in template.items()}
    if isinstance(template, list):
        return [_fill(value, values) for value in template]
    return template  # numbers, booleans, null: as they are


def _fill_text(text: str, values: Mapping[str, str]) -> str:
    def one(match: re.Match[str]) -> str:
        token = match.group(0)
        if token in ("{{", "}}"):
            return token[0]
        # The settings checked every name at load; an unknown one here is a bug.
        return values[match.group(1)]

    return PLACEHOLDER.sub(one, text)


__all__ = ["GatewayChannel"]

"""Webhook sink: POSTs every alert transition as JSON to one HTTP endpoint.

Also holds what the HTTP sinks share: one POST that turns the far side's answer into the sink
contract (return, SinkUnavailable, SinkRejected); their settings and URL checks are config, in
`netmon.config.sinks`. It knows nothing of routing or grouping; whoever receives the webhook
decides what to do with it.
"""

from __future__ import annotations

import email.utils
import time
from collections.abc import Mapping
from typing import Any

import aiohttp

from netmon.alerting.model import AlertEvent
from netmon.alerting.sinks.base import SinkRejected, SinkUnavailable
from netmon.config.sinks import WebhookSettings, bearer_headers

PAYLOAD_VERSION = 1
_REASON_BYTES = 300
# 4xx answers about the sink, not the request: a wrong token (401, 403), a wrong URL (404, 405,
# 421), a proxy (407), a timeout (408), a rate limit (429). Fixed by someone or by waiting, so
# the events are kept; dropping them would lose every alert of a misconfigured hour.
RETRYABLE = frozenset({401, 403, 404, 405, 407, 408, 421, 425, 429})
MAX_RETRY_AFTER = 600.0


async def post_json(
    session: aiohttp.ClientSession,
    url: str,
    body: Any,
    *,
    timeout: float,
    headers: Mapping[str, str] | None = None,
) -> None:
    """POST `body` as JSON and map the outcome onto the sink contract.

    2xx returns. No answer, a refused connection, 5xx, and the 4xx that say something about
    the sink rather than this request (a wrong token or URL, a rate limit: `RETRYABLE`) raise
    SinkUnavailable (keep the events, try again later, not before the answer's Retry-After);
    any other 4xx raises SinkRejected (this request will never be accepted). Reasons are short
    and never contain the request's headers.
    """
    try:
        async with session.post(
            url,
            json=body,
            headers=dict(headers or {}),
            # A redirect means a wrong URL; following it could also carry the token elsewhere.
            allow_redirects=False,
            timeout=aiohttp.ClientTimeout(total=timeout),
        ) as response:
            if 200 <= response.status < 300:
                return
            status = response.status
            reason = await _reason(response)
            retry_after = retry_after_seconds(response.headers.get("Retry-After"))
    except TimeoutError:
        raise SinkUnavailable(f"no answer within {timeout:g}s") from None
    except aiohttp.ClientError as exc:
        raise SinkUnavailable(_describe(exc)) from None
    if status in RETRYABLE or status >= 500:
        raise SinkUnavailable(reason, retry_after=retry_after)
    if 400 <= status < 500:
        raise SinkRejected(reason)
    # 1xx/3xx: the URL points at the wrong thing. Keep the events until someone fixes it.
    raise SinkUnavailable(reason, retry_after=retry_after)


def retry_after_seconds(value: str | None) -> float | None:
    """Seconds from a Retry-After header (a number of seconds or an HTTP date), capped at
    MAX_RETRY_AFTER; None when absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    if value.isascii() and value.isdigit():
        seconds = float(value)
    else:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            return None
        seconds = when.timestamp() - time.time()
    return min(max(seconds, 0.0), MAX_RETRY_AFTER)


def _describe(exc: aiohttp.ClientError) -> str:
    # Some aiohttp errors print the whole URL, and webhook URLs often carry a key in their
    # path: only the parts known to be safe are kept.
    if isinstance(exc, aiohttp.ClientConnectorError):
        cause = exc.os_error.strerror or str(exc.os_error) or type(exc.os_error).__name__
        return f"cannot connect to {exc.host}:{exc.port}: {cause}"
    if isinstance(exc, aiohttp.ServerDisconnectedError | aiohttp.ClientOSError):
        return f"{type(exc).__name__}: {exc}"
    return type(exc).__name__


async def _reason(response: aiohttp.ClientResponse) -> str:
    try:
        raw = await response.content.read(_REASON_BYTES)
    except (aiohttp.ClientError, TimeoutError):
        raw = b""
    text = " ".join(raw.decode("utf-8", "replace").split())
    return f"HTTP {response.status}: {text}" if text else f"HTTP {response.status}"


class WebhookSink:
    """POSTs `{"version": 1, "instance": ..., "alert": <alert JSON>}` for every transition,
    with `"shard": K` after the instance when the inventory is sharded."""

    name = "webhook"

    def __init__(
        self, settings: WebhookSettings, *, instance: str, shard: int | None = None
    ) -> None:
        self.settings = settings
        self.instance = instance
        self.shard = shard
        self.queue = f"webhook:{settings.name}"
        self._session: aiohttp.ClientSession | None = None

    def __repr__(self) -> str:
        return f"WebhookSink(queue={self.queue!r})"

    async def start(self) -> None:
        self._session = aiohttp.ClientSession()

    async def send(self, event: AlertEvent) -> None:
        if self._session is None:
            raise RuntimeError("WebhookSink.send() before start()")
        headers = {name: value.reveal() for name, value in self.settings.headers.items()}
        headers |= bearer_headers(self.settings.bearer_token)
        body: dict[str, object] = {"version": PAYLOAD_VERSION, "instance": self.instance}
        if self.shard is not None:
            body["shard"] = self.shard
        body["alert"] = event.to_json()
        await post_json(
            self._session, self.settings.url, body, timeout=self.settings.timeout, headers=headers
        )

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def __aenter__(self) -> WebhookSink:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()


__all__ = ["WebhookSink", "post_json"]

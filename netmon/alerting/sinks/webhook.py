"""Webhook sink: POSTs every alert transition as JSON to one HTTP endpoint.

Also holds what the HTTP sinks share: the URL check, and one POST that turns the far side's
answer into the sink contract (return, SinkUnavailable, SinkRejected). It knows nothing of
routing or grouping; whoever receives the webhook decides what to do with it.
"""

from __future__ import annotations

import re
import urllib.parse
from collections.abc import Mapping
from typing import Annotated, Any

import aiohttp
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from netmon.alerting.model import AlertEvent
from netmon.alerting.sinks.base import SinkRejected, SinkUnavailable
from netmon.credentials import Secret, SecretValue
from netmon.model import Duration

PAYLOAD_VERSION = 1

_SINK_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
# RFC 9110 token characters: anything else cannot be sent as a header name.
_HEADER_NAME = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
# Set by the sink itself; a configured value would contradict the body or the connection.
_RESERVED_HEADERS = frozenset({"content-type", "content-length", "host", "transfer-encoding"})
_REASON_BYTES = 300


def _check_url(value: str, *, allow_query: bool) -> str:
    parsed = urllib.parse.urlsplit(value)
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        raise ValueError("must be an http:// or https:// URL with a host")
    if parsed.username is not None or parsed.password is not None:
        # A password in the URL would be printed wherever the URL is (logs, queue names).
        raise ValueError("must not contain credentials: use bearer_token or basic_auth")
    if parsed.fragment:
        raise ValueError("must not have a fragment")
    if parsed.query and not allow_query:
        raise ValueError("must not have a query: it is a base URL that API paths are added to")
    try:
        parsed.port  # noqa: B018 - raises on a port out of range
    except ValueError:
        raise ValueError("has an invalid port") from None
    # One spelling per URL: the queue name is derived from it and must stay stable.
    return value.rstrip("/")


def _check_base_url(value: str) -> str:
    return _check_url(value, allow_query=False)


def _check_endpoint_url(value: str) -> str:
    return _check_url(value, allow_query=True)


BaseUrl = Annotated[str, AfterValidator(_check_base_url)]
"""An http(s) base URL that API paths are appended to: no credentials, query or trailing slash."""

EndpointUrl = Annotated[str, AfterValidator(_check_endpoint_url)]
"""An http(s) URL that is posted to as it is; a query is allowed."""


def bearer_headers(token: Secret | None) -> dict[str, str]:
    """The Authorization header for a token; built per request, so it is never stored in
    anything that may be printed."""
    return {"Authorization": f"Bearer {token.reveal()}"} if token is not None else {}


async def post_json(
    session: aiohttp.ClientSession,
    url: str,
    body: Any,
    *,
    timeout: float,
    headers: Mapping[str, str] | None = None,
) -> None:
    """POST `body` as JSON and map the outcome onto the sink contract.

    2xx returns. No answer, a refused connection, 408, 429 and 5xx raise SinkUnavailable (try
    again later); any other 4xx raises SinkRejected (this request will never be accepted).
    Reasons are short and never contain the request's headers.
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
    except TimeoutError:
        raise SinkUnavailable(f"no answer within {timeout:g}s") from None
    except aiohttp.ClientError as exc:
        raise SinkUnavailable(_describe(exc)) from None
    if status in (408, 429) or status >= 500:
        raise SinkUnavailable(reason)
    if 400 <= status < 500:
        raise SinkRejected(reason)
    # 1xx/3xx: the URL points at the wrong thing. Keep the events until someone fixes it.
    raise SinkUnavailable(reason)


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


class WebhookSettings(BaseModel):
    """One webhook receiver of every alert transition."""

    model_config = ConfigDict(extra="forbid", frozen=True, arbitrary_types_allowed=True)

    name: str = Field(default="webhook", description="names this webhook's outbox queue")
    # Chat-style webhook URLs carry their key in the path: kept out of reprs, never logged.
    url: EndpointUrl = Field(repr=False)
    timeout: Duration = Field(default=5.0, gt=0)
    bearer_token: SecretValue | None = None
    # Values are secrets because that is what extra headers usually carry (API keys).
    headers: dict[str, SecretValue] = Field(default_factory=dict)

    @field_validator("name")
    @classmethod
    def _id_like(cls, value: str) -> str:
        if not _SINK_NAME.match(value):
            raise ValueError(
                "use letters, digits, '.', '_' and '-', starting with a letter or digit, "
                "at most 64 characters"
            )
        return value

    @field_validator("headers")
    @classmethod
    def _usable_headers(cls, value: dict[str, Secret], info: ValidationInfo) -> dict[str, Secret]:
        for header in value:
            if not _HEADER_NAME.match(header):
                raise ValueError(f"{header!r} is not a valid header name")
            if header.lower() in _RESERVED_HEADERS:
                raise ValueError(f"{header} is set by netmon")
            if header.lower() == "authorization" and info.data.get("bearer_token") is not None:
                raise ValueError("Authorization is already set by bearer_token")
        return value


class WebhookSink:
    """POSTs `{"version": 1, "instance": ..., "alert": <alert JSON>}` for every transition."""

    name = "webhook"

    def __init__(self, settings: WebhookSettings, *, instance: str) -> None:
        self.settings = settings
        self.instance = instance
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
        body = {"version": PAYLOAD_VERSION, "instance": self.instance, "alert": event.to_json()}
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


__all__ = [
    "BaseUrl",
    "EndpointUrl",
    "WebhookSettings",
    "WebhookSink",
    "bearer_headers",
    "post_json",
]

"""The sinks' sections of the config: `alerting.mqtt`, `alerting.webhooks`, `alerting.alertmanager`.

Plain pydantic models with their checks (URLs without credentials, header names, TLS files
that exist, topic levels); the sinks in `netmon.alerting.sinks` take them as they are. It must
not import a transport (aiohttp, aiomqtt) nor build TLS contexts: the config validates without
them, and a sink builds its own connection when it starts.
"""

from __future__ import annotations

import base64
import re
import urllib.parse
from pathlib import Path
from typing import Annotated

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    FilePath,
    ValidationInfo,
    field_validator,
)

from netmon.credentials import Secret, SecretValue
from netmon.model import Duration

_SINK_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
# RFC 9110 token characters: anything else cannot be sent as a header name.
_HEADER_NAME = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
# Set by the sink itself; a configured value would contradict the body or the connection.
_RESERVED_HEADERS = frozenset({"content-type", "content-length", "host", "transfer-encoding"})


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


class MqttSettings(BaseModel):
    """The `mqtt` sink section of the config."""

    model_config = ConfigDict(extra="forbid", frozen=True, arbitrary_types_allowed=True)

    host: str = Field(default="127.0.0.1", min_length=1)
    port: int = Field(default=1883, ge=1, le=65535, description="8883 for TLS is not implied")
    prefix: str = "netmon"
    per_instance: bool = Field(
        default=False,
        description="every topic under {prefix}/{instance}/: for the replicas of an HA pair, "
        "which publish the same targets",
    )
    client_id: str | None = Field(default=None, min_length=1, description="netmon-{instance}")
    username: str | None = Field(default=None, min_length=1)
    password: SecretValue | None = None
    tls: bool = False
    ca_file: FilePath | None = Field(default=None, description="default: the system CAs")
    cert_file: FilePath | None = None
    key_file: FilePath | None = None
    tls_insecure: bool = Field(default=False, description="skip the hostname check only")
    keepalive: Duration = 30.0
    reconnect_min: Duration = Field(default=0.5, gt=0)
    # Low: queued alerts go out when the broker is back, and a broker that comes back after
    # an hour must not wait half a minute for the next try. A reconnect every 5 s is nothing
    # to a broker.
    reconnect_max: Duration = Field(default=5.0, gt=0)
    connect_timeout: Duration = Field(
        default=5.0, gt=0, description="also bounds every acknowledgement the sink waits for"
    )

    @field_validator("prefix")
    @classmethod
    def _check_prefix(cls, value: str) -> str:
        levels = value.split("/")
        if not all(topic_level_ok(level) for level in levels):
            raise ValueError(
                "must be topic levels like netmon or noc/netmon: no +, # or empty level"
            )
        return value

    @field_validator("password")
    @classmethod
    def _needs_username(cls, value: object, info: ValidationInfo) -> object:
        if value is not None and info.data.get("username", "") is None:
            raise ValueError("needs a username")
        return value

    @field_validator("ca_file", "cert_file", "key_file", "tls_insecure")
    @classmethod
    def _needs_tls(cls, value: object, info: ValidationInfo) -> object:
        if value and info.data.get("tls") is False:
            raise ValueError("needs tls: true")
        return value

    @field_validator("key_file")
    @classmethod
    def _needs_cert(cls, value: object, info: ValidationInfo) -> object:
        if value is not None and info.data.get("cert_file", "") is None:
            raise ValueError("needs cert_file")
        return value

    @field_validator("keepalive")
    @classmethod
    def _whole_seconds(cls, value: float) -> float:
        if not 1 <= value <= 65535 or value != int(value):
            raise ValueError("must be whole seconds from 1 to 65535")
        return value

    @field_validator("reconnect_max")
    @classmethod
    def _not_below_min(cls, value: float, info: ValidationInfo) -> float:
        if value < info.data.get("reconnect_min", 0):
            raise ValueError("must not be less than reconnect_min")
        return value


def topic_level_ok(level: str) -> bool:
    return bool(level) and not any(char in level for char in "+#/\0")


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


class BasicAuth(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, arbitrary_types_allowed=True)

    username: str = Field(min_length=1)
    password: SecretValue

    def header(self) -> dict[str, str]:
        raw = f"{self.username}:{self.password.reveal()}".encode()
        return {"Authorization": "Basic " + base64.b64encode(raw).decode("ascii")}


class AlertmanagerSettings(BaseModel):
    """Where netmon's alerts go in Alertmanager, and how to reach it."""

    model_config = ConfigDict(extra="forbid", frozen=True, arbitrary_types_allowed=True)

    urls: list[BaseUrl] = Field(min_length=1, description="every member of an HA cluster")
    resend_interval: Duration = Field(default=60.0, gt=0)
    silence_on_ack: bool = Field(
        default=False,
        description="an acknowledged alert gets a matching Alertmanager silence, expired when "
        "it resolves or the acknowledgement ends (Alertmanager's own routes stop paging it)",
    )
    timeout: Duration = Field(default=5.0, gt=0)
    bearer_token: SecretValue | None = None
    basic_auth: BasicAuth | None = None
    ca_file: Path | None = None
    tls_insecure: bool = False

    @field_validator("urls")
    @classmethod
    def _distinct(cls, urls: list[str]) -> list[str]:
        seen: set[str] = set()
        for url in urls:
            if url in seen:
                raise ValueError(f"{url} is listed twice")
            seen.add(url)
        return urls

    @field_validator("basic_auth")
    @classmethod
    def _one_auth(cls, value: BasicAuth | None, info: ValidationInfo) -> BasicAuth | None:
        if value is not None and info.data.get("bearer_token") is not None:
            raise ValueError("use either bearer_token or basic_auth, not both")
        return value

    @field_validator("ca_file")
    @classmethod
    def _readable(cls, value: Path | None) -> Path | None:
        if value is not None and not value.is_file():
            raise ValueError(f"{value} is not a readable file")
        return value

    @field_validator("tls_insecure")
    @classmethod
    def _not_both(cls, value: bool, info: ValidationInfo) -> bool:
        if value and info.data.get("ca_file") is not None:
            raise ValueError("tls_insecure skips verification, so ca_file would be ignored")
        return value

    def auth_headers(self) -> dict[str, str]:
        if self.basic_auth is not None:
            return self.basic_auth.header()
        return bearer_headers(self.bearer_token)

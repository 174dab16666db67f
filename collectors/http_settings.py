"""The `http` probe's settings: which URL, which answers pass, which headers (secrets) to send.

Apart from the collector so that the config can validate them without importing aiohttp and
cryptography, which only a running probe needs: `netmon validate` must stay quick. It must
not import the collector or any HTTP client.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Annotated, ClassVar
from urllib.parse import urlsplit

from pydantic import (
    BeforeValidator,
    ConfigDict,
    Field,
    FilePath,
    PlainSerializer,
    TypeAdapter,
    field_validator,
    model_validator,
)

from collectors.base import CollectorSettings
from netmon.credentials import Secret, SecretValue
from netmon.model import Duration, ProbeRole

_SECRET = TypeAdapter(SecretValue, config=ConfigDict(arbitrary_types_allowed=True))
_HEADER_NAME = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
_RANGE = re.compile(r"^\s*(\d{3})\s*(?:-\s*(\d{3})\s*)?$")
_CLASS = re.compile(r"^\s*([1-5])xx\s*$", re.IGNORECASE)


def _header_value(value: object) -> Secret:
    secret = _SECRET.validate_python(value)
    if any(char in secret.reveal() for char in "\r\n\0"):
        raise ValueError("a header value must not contain line breaks")  # never echo the value
    return secret


# SecretValue's loading (inline, {env: VAR}, {file: PATH}) and printing, but kept as the Secret
# itself in a Python dump, so that settings rebuilt from a dump keep the header (with SecretValue
# it would be the literal text "<secret>"); the config no longer does that, it merges raw
# overrides. Still <secret> in JSON.
HeaderValue = Annotated[
    Secret,
    BeforeValidator(_header_value),
    PlainSerializer(lambda secret: "<secret>", return_type=str, when_used="json"),
]


def _status_range(value: object) -> object:
    """200, "301", "200-399", "2xx" or [200, 399] -> (low, high)."""
    if isinstance(value, bool):
        raise ValueError("expected a status code or a range such as 200-399")
    if isinstance(value, int):
        return (value, value)
    if isinstance(value, str):
        if status_class := _CLASS.match(value):
            low = int(status_class.group(1)) * 100
            return (low, low + 99)
        match = _RANGE.match(value)
        if match is None:
            raise ValueError(f"not a status code or range: {value!r} (examples: 200, 200-399, 2xx)")
        return (int(match.group(1)), int(match.group(2) or match.group(1)))
    return value


def _status_list(value: object) -> object:
    return [value] if isinstance(value, int | str) else value


def _checked_range(value: tuple[int, int]) -> tuple[int, int]:
    low, high = value
    if not 100 <= low <= high <= 599:
        raise ValueError(f"{low}-{high} is not a range of HTTP status codes (100-599, low first)")
    return value


StatusRange = Annotated[tuple[int, int], BeforeValidator(_status_range)]


class HttpSettings(CollectorSettings):
    model_config = ConfigDict(arbitrary_types_allowed=True)  # merged with the base's
    role: ClassVar[ProbeRole] = ProbeRole.SERVICE
    readiness_label: ClassVar[str] = "management page"
    stops_meeting: ClassVar[bool] = False  # a meeting can go on without the web page

    interval: Duration = Field(default=60.0, gt=0)
    timeout: Duration = Field(default=5.0, gt=0, description="for the whole request")
    url: str | None = Field(
        default=None,
        description="a full http(s) URL, or a path joined to http://{address}; "
        "{address} is replaced by the target's address; default http://{address}/",
    )
    expect_status: Annotated[tuple[StatusRange, ...], BeforeValidator(_status_list)] = Field(
        default=((200, 399),), description="status codes or ranges that pass"
    )
    expect_text: str | None = Field(
        default=None, min_length=1, description="must occur in the first MiB of the body"
    )
    verify_tls: bool = True
    ca_file: FilePath | None = Field(
        default=None, description="PEM CA certificates to trust instead of the system's"
    )
    follow_redirects: bool = Field(
        default=False, description="false: a redirect (to a login page, say) is an answer"
    )
    headers: dict[str, HeaderValue] = Field(default_factory=dict)

    @field_validator("expect_status")
    @classmethod
    def _ranges(cls, value: tuple[tuple[int, int], ...]) -> tuple[tuple[int, int], ...]:
        if not value:
            raise ValueError("at least one status code or range")
        return tuple(_checked_range(item) for item in value)

    @field_validator("url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        value = value.strip()
        if value.startswith("/"):
            return value
        parts = urlsplit(value.replace("{address}", "example"))
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(
                "expected an http:// or https:// URL with a host, or a path such as /login"
            )
        if parts.username is not None or parts.password is not None:
            raise ValueError(
                "no credentials in the URL (they would show in logs); "
                "use headers: {Authorization: ...}, which is a secret"
            )
        try:
            _ = parts.port
        except ValueError:
            raise ValueError("the port in the URL is not a number from 1 to 65535") from None
        return value

    @field_validator("headers")
    @classmethod
    def _header_names(cls, value: dict[str, Secret]) -> dict[str, Secret]:
        for name in value:
            if not _HEADER_NAME.match(name):
                raise ValueError(f"not a valid header name: {name!r}")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> HttpSettings:
        if self.timeout >= self.interval:
            raise ValueError(
                f"timeout {self.timeout:g}s must be shorter than the interval {self.interval:g}s"
            )
        if self.ca_file is not None and not self.verify_tls:
            raise ValueError("ca_file is only used with verify_tls: true")
        return self

    def url_for(self, address: str) -> str:
        """The URL to fetch for a target at `address`."""
        host = address
        try:
            if ipaddress.ip_address(address).version == 6:
                host = f"[{address}]"
        except ValueError:
            pass
        if self.url is None:
            return f"http://{host}/"
        if self.url.startswith("/"):
            return f"http://{host}{self.url}"
        return self.url.replace("{address}", host)

    def accepts(self, status: int) -> bool:
        return any(low <= status <= high for low, high in self.expect_status)

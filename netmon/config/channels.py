"""The on-call channels' settings (issue 18): one pydantic model per kind of channel.

Like `netmon.config.sinks`: plain models with their checks, no transport imported (no
aiosmtplib, no aiohttp): the config validates without them, and a channel builds its own
connection. Secrets are `Secret`s; nothing secret shows in a repr, a log line or an error.
Each kind is its own class with a `kind` literal, so a list of channels can be one
discriminated union and kinds can be added without touching each other.
"""

from __future__ import annotations

import ipaddress
import re
from email.utils import parseaddr
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    FilePath,
    field_validator,
    model_validator,
)

from netmon.config.alerting import Language
from netmon.config.sinks import _HEADER_NAME, _RESERVED_HEADERS, _SINK_NAME, BaseUrl, EndpointUrl
from netmon.credentials import Secret, SecretValue
from netmon.model import Duration


def _channel_name(value: str) -> str:
    if not _SINK_NAME.match(value):
        raise ValueError(
            "use letters, digits, '.', '_' and '-', starting with a letter or digit, "
            "at most 64 characters"
        )
    return value


# --- e-mail ---------------------------------------------------------------------------------

EmailSecurity = Literal["starttls", "tls", "none"]
DEFAULT_SMTP_PORTS: dict[str, int] = {"starttls": 587, "tls": 465, "none": 25}
_LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain"})


def _is_loopback(host: str) -> bool:
    if host.lower() in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class EmailSettings(BaseModel):
    """An SMTP relay that pages go out through, as e-mail (`netmon.channels.email`)."""

    model_config = ConfigDict(extra="forbid", frozen=True, arbitrary_types_allowed=True)

    kind: Literal["email"] = "email"
    name: str = Field(default="email", description="names the channel's page queue")
    host: str = Field(min_length=1)
    port: int | None = Field(
        default=None, ge=1, le=65535, description="default: 587 starttls, 465 tls, 25 none"
    )
    security: EmailSecurity = Field(
        default="starttls",
        description="starttls: plain connection upgraded by STARTTLS (required, not "
        "opportunistic); tls: TLS from the first byte (SMTPS); none: no encryption",
    )
    username: str | None = Field(default=None, min_length=1)
    password: SecretValue | None = None
    from_address: str = Field(description='"netmon NOC <noc@example.vn>" or a bare address')
    timeout: Duration = Field(default=15.0, gt=0, description="each SMTP step")
    language: Language | None = Field(
        default=None, description="the language of every page on this channel (default: the page's)"
    )
    ca_file: FilePath | None = Field(default=None, description="default: the system CAs")

    @field_validator("name")
    @classmethod
    def _id_like(cls, value: str) -> str:
        return _channel_name(value)

    @field_validator("host")
    @classmethod
    def _one_host(cls, value: str) -> str:
        if any(char.isspace() for char in value) or "/" in value:
            raise ValueError("must be a host name or an address, without a scheme or port")
        return value

    @field_validator("from_address")
    @classmethod
    def _an_address(cls, value: str) -> str:
        if "\r" in value or "\n" in value:
            raise ValueError("must be one line")
        _, address = parseaddr(value)
        if "@" not in address or address.startswith("@") or address.endswith("@"):
            raise ValueError("must be an e-mail address, like noc@example.vn")
        return value

    @model_validator(mode="after")
    def _credentials(self) -> EmailSettings:
        if (self.username is None) != (self.password is None):
            raise ValueError("username and password go together")
        if self.password is not None and self.security == "none" and not _is_loopback(self.host):
            # The password would cross the network in the clear.
            raise ValueError("a password needs security starttls or tls (or a loopback host)")
        if self.ca_file is not None and self.security == "none":
            raise ValueError("ca_file needs security starttls or tls")
        return self

    @property
    def sender(self) -> str:
        """The envelope sender: the bare address of `from_address`."""
        return parseaddr(self.from_address)[1]

    @property
    def effective_port(self) -> int:
        return self.port if self.port is not None else DEFAULT_SMTP_PORTS[self.security]


# --- HTTP gateway (SMS brand-name, Zalo ZNS) -----------------------------------------------

GATEWAY_FIELDS: dict[str, str] = {
    "phone": "the recipient's number in E.164 without '+': 84987654321",
    "phone_e164": "the recipient's number in E.164: +84987654321",
    "phone_national": "a Vietnamese number as dialled at home: 0987654321",
    "text": "the SMS text of the page (netmon.channels.texts.sms)",
    "summary": "the first alert's summary",
    "site": "the first alert's site",
    "district": "the first alert's district",
    "target": "the first alert's target id",
    "alertname": "the first alert's name",
    "severity": "the first alert's severity",
    "kind": "firing, reminder, resolved or acknowledged",
    "since": "when the first alert started, HH:MM in Asia/Ho_Chi_Minh",
    "time": "when the page was made, HH:MM in Asia/Ho_Chi_Minh",
    "status_url": "the status page's address, or empty",
    "page_id": "the page's id (16 hex characters): an idempotency key",
}
"""Placeholders a gateway's body and header values may use, besides {secret} and
{secrets.NAME}."""

# {name}, {secrets.name}; "{{" and "}}" are literal braces; any other brace is an error.
PLACEHOLDER = re.compile(r"\{\{|\}\}|\{([A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z0-9_]+)?)\}|[{}]")

JsonScalar = str | bool | int | float | None


def placeholders(text: str) -> list[str]:
    """The placeholder names in a template string; ValueError on a stray brace."""
    names: list[str] = []
    for match in PLACEHOLDER.finditer(text):
        token = match.group(0)
        if token in ("{{", "}}"):
            continue
        if match.group(1) is None:
            raise ValueError(f"{text!r}: a lone {token!r}; write {token * 2} for a literal one")
        names.append(match.group(1))
    return names


def template_strings(template: Any) -> list[str]:
    """Every string value of a JSON template (dict keys are literal, not templated)."""
    if isinstance(template, str):
        return [template]
    if isinstance(template, dict):
        return [text for value in template.values() for text in template_strings(value)]
    if isinstance(template, list):
        return [text for value in template for text in template_strings(value)]
    return []


def json_path(document: Any, path: str) -> tuple[bool, Any]:
    """(found, value) at a dotted path: "CodeResult", "data.msg_id", "results.0.status"."""
    value = document
    for step in path.split("."):
        if isinstance(value, dict) and step in value:
            value = value[step]
        elif isinstance(value, list) and step.isdigit() and int(step) < len(value):
            value = value[int(step)]
        else:
            return False, None
    return True, value


def same_value(actual: Any, expected: JsonScalar) -> bool:
    """Equal, or equal as text ("100" and 100: providers are not consistent about it); a
    boolean only equals a boolean."""
    if isinstance(actual, bool) or isinstance(expected, bool):
        return actual is expected
    if actual == expected:
        return True
    return (
        isinstance(actual, str | int | float)
        and expected is not None
        and str(actual) == str(expected)
    )


class GatewaySuccess(BaseModel):
    """When a 2xx answer means the provider took the message: its JSON has `path` equal to
    `equals`. `retry` lists values of the same path that mean "not now" (a provider's rate
    limit or an expired token), kept and retried instead of dropped."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    path: str = Field(min_length=1, description='a dotted path: "CodeResult", "data.status"')
    equals: JsonScalar
    retry: list[JsonScalar] = Field(default_factory=list)
    message_path: str | None = Field(
        default=None,
        min_length=1,
        description='where the provider says why ("ErrorMessage", "message"), for the reason',
    )


class GatewaySettings(BaseModel):
    """An HTTP API that sends SMS or Zalo ZNS messages: one templated request per page
    (`netmon.channels.gateway`)."""

    model_config = ConfigDict(extra="forbid", frozen=True, arbitrary_types_allowed=True)

    kind: Literal["gateway"] = "gateway"
    name: str = Field(default="gateway", description="names the channel's page queue")
    # Some providers take their key in the URL: kept out of reprs, never logged.
    url: EndpointUrl = Field(repr=False)
    method: Literal["POST", "PUT", "PATCH"] = "POST"
    headers: dict[str, str] = Field(
        default_factory=dict, description="values may use {secret}, {secrets.NAME}"
    )
    secret: SecretValue | None = None
    secrets: dict[str, SecretValue] = Field(
        default_factory=dict, description="more secrets, as {secrets.NAME}"
    )
    body: dict[str, Any] | list[Any] = Field(description="a JSON template; sent as JSON")
    success: GatewaySuccess | None = Field(
        default=None, description="beyond HTTP 2xx; default: any 2xx is success"
    )
    timeout: Duration = Field(default=10.0, gt=0)
    language: Language | None = Field(
        default=None, description="the language of every page on this channel (default: the page's)"
    )
    strip_diacritics: bool = Field(
        default=False, description="send {text} without Vietnamese marks: GSM-7, 160 per SMS"
    )
    group: bool = Field(
        default=False,
        description="one request for consecutive pages of one kind to the same recipient "
        "({text} names the first alert and counts the others); default one request per page",
    )

    @field_validator("name")
    @classmethod
    def _id_like(cls, value: str) -> str:
        return _channel_name(value)

    @field_validator("headers")
    @classmethod
    def _usable_headers(cls, value: dict[str, str]) -> dict[str, str]:
        for header, text in value.items():
            if not _HEADER_NAME.match(header):
                raise ValueError(f"{header!r} is not a valid header name")
            if header.lower() in _RESERVED_HEADERS:
                raise ValueError(f"{header} is set by netmon")
            if "\r" in text or "\n" in text:
                raise ValueError(f"{header}: a header value must be one line")
        return value

    @field_validator("secrets")
    @classmethod
    def _secret_names(cls, value: dict[str, Secret]) -> dict[str, Secret]:
        for name in value:
            if not re.fullmatch(r"[A-Za-z0-9_]+", name):
                raise ValueError(f"{name!r}: use letters, digits and '_'")
        return value

    @model_validator(mode="after")
    def _known_placeholders(self) -> GatewaySettings:
        texts = template_strings(self.body) + list(self.headers.values())
        for text in texts:
            for name in placeholders(text):
                if name == "secret":
                    if self.secret is None:
                        raise ValueError("{secret} is used but no secret is set")
                elif name.startswith("secrets."):
                    if name.removeprefix("secrets.") not in self.secrets:
                        raise ValueError(f"{{{name}}} is used but secrets has no such name")
                elif name not in GATEWAY_FIELDS:
                    known = ", ".join(f"{{{field}}}" for field in GATEWAY_FIELDS)
                    raise ValueError(
                        f"unknown placeholder {{{name}}}: use {known}, {{secret}} or "
                        "{secrets.NAME}"
                    )
        return self

    def secret_values(self) -> list[str]:
        """Every secret's value, to scrub from what a provider answers."""
        values = [self.secret.reveal()] if self.secret is not None else []
        values += [secret.reveal() for secret in self.secrets.values()]
        return [value for value in values if value]


# --- Telegram --------------------------------------------------------------------------------

# What @BotFather hands out: the bot's numeric id, a colon, 35 URL-safe characters. Checked so a
# pasted token with a space or a slash cannot change the path of the URL it is put in.
_BOT_TOKEN = re.compile(r"^[0-9]{1,20}:[A-Za-z0-9_-]{20,100}$")
_USER_ID = re.compile(r"^[0-9]{1,20}$")
# Telegram usernames: 5-32 of letters, digits and '_' (compared without case, as Telegram does).
_USERNAME = re.compile(r"^@[A-Za-z0-9_]{5,32}$")


class TelegramSettings(BaseModel):
    """A Telegram bot that pages people and groups, and hears their button presses
    (`netmon.channels.telegram`)."""

    model_config = ConfigDict(
        extra="forbid", frozen=True, strict=True, arbitrary_types_allowed=True
    )

    kind: Literal["telegram"] = "telegram"
    name: str = Field(default="telegram", description="names the channel's page queue")
    api_url: BaseUrl = Field(
        default="https://api.telegram.org", description="a local Bot API server, or a test's"
    )
    bot_token: SecretValue
    allowed_users: tuple[str, ...] = Field(
        default=(),
        description="Telegram user ids (123456789) or @usernames who may press Acknowledge "
        "and Silence; nobody when empty, and the buttons are not shown then",
    )
    updates: Literal["poll", "off"] = Field(
        default="poll",
        description="poll: hear button presses by long polling getUpdates (no inbound port); "
        "off: send only, no buttons",
    )
    per_chat_interval: Duration = Field(default=1.0, ge=0, description="between two messages")
    per_group_per_minute: int = Field(default=20, ge=1, le=1000)
    timeout: Duration = Field(
        default=10.0, gt=0, description="per request; also the longest wait for rate limits"
    )
    poll_timeout: Duration = Field(
        default=25.0, ge=1, le=50, description="how long one getUpdates may wait for a press"
    )
    language: Language | None = Field(
        default=None, description="the language of every page on this channel (default: the page's)"
    )

    @field_validator("name")
    @classmethod
    def _id_like(cls, value: str) -> str:
        return _channel_name(value)

    @field_validator("bot_token")
    @classmethod
    def _token_shape(cls, value: Secret) -> Secret:
        if not _BOT_TOKEN.match(value.reveal()):
            # Never echo the value, not even a part of it.
            raise ValueError("is not a bot token as @BotFather gives it (123456:ABC-DEF...)")
        return value

    @field_validator("allowed_users", mode="before")
    @classmethod
    def _normalised_users(cls, value: object) -> object:
        if not isinstance(value, list | tuple):
            return value
        users: list[object] = []
        for user in value:
            if isinstance(user, int) and not isinstance(user, bool):
                user = str(user)
            if isinstance(user, str):
                user = user.strip()
                if _USERNAME.match(user):
                    user = user.lower()
                elif not _USER_ID.match(user):
                    raise ValueError(f"{user!r} is neither a numeric user id nor an @username")
            users.append(user)
        return tuple(users)

    def may_act(self, user_id: str, username: str | None) -> bool:
        """Whether a Telegram user (by numeric id, or @username) is on the allow-list."""
        if user_id in self.allowed_users:
            return True
        return bool(username) and f"@{username}".lower() in self.allowed_users

    @property
    def buttons(self) -> bool:
        """Acknowledge/Silence buttons are shown only when someone can press them."""
        return self.updates == "poll" and bool(self.allowed_users)


# --- every kind ------------------------------------------------------------------------------

ChannelSettings = Annotated[
    TelegramSettings | EmailSettings | GatewaySettings, Field(discriminator="kind")
]
"""One entry of `oncall.channels`, told apart by its `kind`."""

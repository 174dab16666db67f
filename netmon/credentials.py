"""Credentials, defined once by name in the config and referenced by targets.

Part of the vocabulary the core and the collectors share; plain data, no I/O but reading a
`{file: PATH}` secret at config load.

Every secret (community, v3 passphrases) is a `Secret`: it prints as <secret> in reprs, logs,
errors and JSON, and only `reveal()` gives the value, at the moment it goes on the wire. In the
config a secret is written inline, or as `{env: VARIABLE}` or `{file: PATH}` so it need not sit
in the YAML at all.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    PlainSerializer,
    Tag,
    model_validator,
)


class Secret:
    """A value that never shows itself."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "<secret>"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


def _checked(value: str, where: str) -> Secret:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        # Never echo the value: say where it came from.
        raise ValueError(f"the secret {where} is not valid UTF-8") from None
    return Secret(value)


def _load_secret(value: object) -> Secret:
    if isinstance(value, Secret):
        return value
    if isinstance(value, str):
        return _checked(value, "written inline")
    if isinstance(value, dict) and len(value) == 1:
        ((source, name),) = value.items()
        if source == "env" and isinstance(name, str):
            if name not in os.environ:
                raise ValueError(f"environment variable {name} is not set")
            return _checked(os.environ[name], f"in environment variable {name}")
        if source == "file" and isinstance(name, str):
            try:
                return Secret(Path(name).read_text(encoding="utf-8").rstrip("\n"))
            except OSError as exc:
                raise ValueError(f"cannot read secret file {name}: {exc.strerror}") from None
            except UnicodeDecodeError:
                raise ValueError(f"the secret in file {name} is not valid UTF-8") from None
    raise ValueError("expected a string, {env: VARIABLE} or {file: PATH}")


SecretValue = Annotated[
    Secret,
    BeforeValidator(_load_secret),
    PlainSerializer(lambda secret: "<secret>", return_type=str),
]

AuthProtocol = Literal["MD5", "SHA", "SHA224", "SHA256", "SHA384", "SHA512"]
PrivProtocol = Literal["DES", "AES", "AES128", "AES192", "AES256"]


class SnmpCredential(BaseModel):
    """How to talk SNMP to a device: v1/v2c community, or a v3 USM user."""

    model_config = ConfigDict(extra="forbid", frozen=True, arbitrary_types_allowed=True)

    snmp_version: Literal["1", "2c", "3"] = "2c"
    community: SecretValue | None = None
    user: str | None = None
    auth_protocol: AuthProtocol | None = None
    auth_key: SecretValue | None = None
    priv_protocol: PrivProtocol | None = None
    priv_key: SecretValue | None = None
    context: str = ""

    @model_validator(mode="before")
    @classmethod
    def _version_as_text(cls, data: Any) -> Any:
        if isinstance(data, dict) and isinstance(data.get("snmp_version"), int):
            return {**data, "snmp_version": str(data["snmp_version"])}
        return data

    @model_validator(mode="after")
    def _complete(self) -> SnmpCredential:
        if self.snmp_version in ("1", "2c"):
            if self.community is None:
                raise ValueError(f"SNMP v{self.snmp_version} needs a community")
            if self.user or self.auth_key or self.priv_key:
                raise ValueError("user, auth_key and priv_key are for SNMP v3 only")
            return self
        if not self.user:
            raise ValueError("SNMP v3 needs a user")
        if (self.auth_protocol is None) != (self.auth_key is None):
            raise ValueError("auth_protocol and auth_key go together")
        if (self.priv_protocol is None) != (self.priv_key is None):
            raise ValueError("priv_protocol and priv_key go together")
        if self.priv_key is not None and self.auth_key is None:
            raise ValueError("privacy (priv_key) needs authentication (auth_key) too")
        for key in (self.auth_key, self.priv_key):
            if key is not None and len(key.reveal()) < 8:
                raise ValueError("v3 passphrases must be at least 8 characters (RFC 3414)")
        return self


class ApiCredential(BaseModel):
    """A user and password for an endpoint's or a registrar's management API (Cisco xAPI,
    Poly REST, a registrar's JSON-RPC behind basic auth)."""

    model_config = ConfigDict(extra="forbid", frozen=True, arbitrary_types_allowed=True)

    user: str = Field(min_length=1)
    password: SecretValue


def credential_kind(data: Any) -> str:
    # An SNMP credential has a community or a v3 user with keys; an API one has a password.
    if isinstance(data, ApiCredential) or (isinstance(data, dict) and "password" in data):
        return "api"
    return "snmp"


Credential = Annotated[
    Annotated[SnmpCredential, Tag("snmp")] | Annotated[ApiCredential, Tag("api")],
    Discriminator(credential_kind),
]
"""Any named credential of the config: SNMP (community or v3 user) or API (user, password)."""

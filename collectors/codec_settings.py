"""Settings of the probes that read an endpoint's own status (`xapi` for Cisco, `poly` for
Poly) and of the registrar probe (`kamailio`).

Apart from the collectors so that the config can validate them without importing aiohttp:
`netmon validate` must stay quick. It must not import a collector or an HTTP client.
"""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field, FilePath, field_validator, model_validator

from collectors.base import CollectorSettings
from netmon.model import Duration, ProbeRole

# An answer larger than this is refused unread: a codec's whole status is ~100-300 KB, a
# registrar's table of 10,000 contacts a few MB. A 50 MB answer must not be read into memory.
DEFAULT_MAX_BODY = 4 << 20

# Cisco xAPI status paths read, one getxml each (cheaper than the whole `/Status`, measured:
# see collectors/xapi.py): what netmon judges a room by. Microphones are under two paths, as
# firmware differs (a count, or per analog input).
XAPI_PATHS = (
    "SIP/Registration",
    "H323/Gatekeeper",
    "Call",
    "Standby",
    "Peripherals/ConnectedDevice",
    "Cameras/Camera",
    "Video/Output/Connector",
    "Audio/Microphones",
    "Audio/Input/Connectors/Microphone",
    "Diagnostics",
    "SystemUnit",
)


class ApiSettings(CollectorSettings):
    """What every management-API probe shares: where, as whom, how long, how much."""

    role: ClassVar[ProbeRole] = ProbeRole.STATUS
    credential_kind: ClassVar[str] = "api"
    readiness_label: ClassVar[str] = "endpoint status"

    interval: Duration = Field(default=30.0, gt=0)
    timeout: Duration = Field(default=5.0, gt=0, description="for one whole poll")
    call_interval: Duration = Field(
        default=10.0,
        gt=0,
        description="while the endpoint is in a call, its media statistics alone are read this "
        "often (shorter than `interval`; not shorter: only with the status)",
    )
    scheme: Literal["http", "https"] = "https"
    address: str | None = Field(
        default=None,
        description="the API's host when it is not the target's address (a management network)",
    )
    port: int | None = Field(default=None, ge=1, le=65535, description="default: the scheme's")
    credential: str | None = Field(default=None, description="a name from `credentials`")
    verify_tls: bool = Field(
        default=True,
        description="false for codecs with their factory self-signed certificate (or give ca_file)",
    )
    ca_file: FilePath | None = Field(
        default=None, description="PEM CA certificates to trust instead of the system's"
    )
    max_body: int = Field(default=DEFAULT_MAX_BODY, ge=1024, description="bytes per answer")

    @model_validator(mode="after")
    def _consistent(self) -> ApiSettings:
        if self.timeout >= self.interval:
            raise ValueError(
                f"timeout {self.timeout:g}s must be shorter than the interval {self.interval:g}s"
            )
        if self.polls_media and self.timeout >= self.call_interval:
            raise ValueError(
                f"timeout {self.timeout:g}s must be shorter than the call_interval "
                f"{self.call_interval:g}s"
            )
        if self.ca_file is not None and not self.verify_tls:
            raise ValueError("ca_file is only used with verify_tls: true")
        return self

    @property
    def polls_media(self) -> bool:
        """Whether a call's media are read between status polls: only when `call_interval` is
        shorter than `interval` (otherwise every status poll reads them already)."""
        return self.call_interval < self.interval

    def media_interval(self) -> float | None:
        return self.call_interval if self.polls_media else None

    def usage_problems(self) -> list[tuple[str, str]]:
        if self.credential is None:
            return [
                ("credential", "required: the name of an entry in credentials (user, password)")
            ]
        return []

    def base_url(self, address: str) -> str:
        """scheme://host[:port] of the API of a target at `address`."""
        address = self.address or address
        host = f"[{address}]" if ":" in address else address
        port = f":{self.port}" if self.port is not None else ""
        return f"{self.scheme}://{host}{port}"


class XapiSettings(ApiSettings):
    """Cisco RoomOS / CE codecs: xAPI status over HTTP(S) with basic auth."""

    paths: tuple[str, ...] = Field(
        default=XAPI_PATHS, description="Status paths read, one request each"
    )

    @field_validator("paths")
    @classmethod
    def _paths(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for path in value:
            parts = path.strip("/").split("/")
            if not path.strip("/") or not all(part.isalnum() for part in parts):
                raise ValueError(f"not an xAPI status path: {path!r} (example: SIP/Registration)")
        return tuple(path.strip("/") for path in value)


class PolySettings(ApiSettings):
    """Poly (Polycom) codecs over their REST API: VideoOS (G7500, Studio X) or Group Series."""

    api: Literal["auto", "videoos", "group_series"] = Field(
        default="auto", description="which REST API the codec speaks; auto asks it"
    )


class KamailioSettings(CollectorSettings):
    """A Kamailio registrar read over JSON-RPC (jsonrpcs over HTTP): `ul.dump` for the live
    contacts, and an htable of recent refused REGISTERs for the reasons (see the README)."""

    role: ClassVar[ProbeRole] = ProbeRole.REGISTRAR
    credential_kind: ClassVar[str] = "api"
    readiness_label: ClassVar[str] = "registrar"

    interval: Duration = Field(default=15.0, gt=0)
    timeout: Duration = Field(default=5.0, gt=0, description="for one whole poll")
    url: str = Field(
        default="http://{address}:5071/RPC",
        description="the JSON-RPC endpoint; {address} is replaced by the target's address",
    )
    credential: str | None = Field(
        default=None, description="basic auth in front of the RPC endpoint, if any"
    )
    failures_table: str | None = Field(
        default="regfail",
        description="htable of refused REGISTERs (key: AoR, value: reason); null: none kept",
    )
    max_body: int = Field(default=DEFAULT_MAX_BODY, ge=1024, description="bytes per answer")

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("expected an http:// or https:// URL")
        if "@" in value.split("/", 3)[2]:
            raise ValueError("no credentials in the URL (they would show in logs): credential")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> KamailioSettings:
        if self.timeout >= self.interval:
            raise ValueError(
                f"timeout {self.timeout:g}s must be shorter than the interval {self.interval:g}s"
            )
        return self

    def url_for(self, address: str) -> str:
        host = f"[{address}]" if ":" in address else address
        return self.url.replace("{address}", host)


class BaresipSettings(CollectorSettings):
    """A baresip user agent (a softphone room) read over its control socket (module
    ctrl_tcp): registration and calls on each poll, each call's RTCP statistics as baresip
    reports them (an event per stream every ~5 s on the connection netmon keeps open).

    ctrl_tcp has no authentication and serves one client: bind it to loopback or a management
    network that only netmon reaches, and let no other program hold it."""

    role: ClassVar[ProbeRole] = ProbeRole.STATUS
    readiness_label: ClassVar[str] = "endpoint status"

    interval: Duration = Field(default=10.0, gt=0)
    timeout: Duration = Field(default=3.0, gt=0, description="for one whole poll")
    address: str | None = Field(
        default=None, description="the control socket's host when it is not the target's address"
    )
    port: int = Field(default=4444, ge=1, le=65535, description="ctrl_tcp_listen's port")
    plc: bool = Field(
        default=False,
        description="true when the user agent loads baresip's plc module (G.711 loss concealment)",
    )

    @model_validator(mode="after")
    def _consistent(self) -> BaresipSettings:
        if self.timeout >= self.interval:
            raise ValueError(
                f"timeout {self.timeout:g}s must be shorter than the interval {self.interval:g}s"
            )
        return self

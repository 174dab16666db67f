"""The `trap_receiver` section of the config: where to listen, how much one sender may send.

Apart from the receiver so that the config can validate it without importing pysnmp (the
receiver's v3 path needs it): `netmon validate` must stay quick. It must not import the
receiver, USM or any transport.
"""

from __future__ import annotations

import hashlib
import ipaddress
import socket

from pydantic import BaseModel, ConfigDict, Field, field_validator


def _parse_listen(value: str) -> tuple[str, int]:
    host, sep, port_text = value.rpartition(":")
    if not sep or not port_text.isdigit():
        raise ValueError(f"expected HOST:PORT, got {value!r}")
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    try:
        ipaddress.ip_address(host)
    except ValueError:
        raise ValueError(f"HOST must be an IP address, got {host!r}") from None
    port = int(port_text)
    if port > 65535:
        raise ValueError(f"port {port} is out of range")
    return host, port


def default_engine_id() -> bytes:
    """RFC 3411 format: pysnmp's enterprise number, "octets" format, a digest of the host name.

    Stable across restarts on one host, so inform senders that were told netmon's engine ID
    keep working, and distinct between hosts.
    """
    digest = hashlib.sha256(b"netmon traps " + socket.gethostname().encode()).digest()
    return bytes.fromhex("80004fb805") + digest[:8]


class TrapSettings(BaseModel):
    """Where to listen and how much one sender may send."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    listen: str = Field(default="0.0.0.0:162", description="HOST:PORT; port 0 picks a free one")
    rate_limit: float = Field(default=100.0, gt=0, description="traps per second per source")
    burst: int = Field(default=500, ge=1, description="traps a source may send at once")
    engine_id: str | None = Field(
        default=None,
        description="netmon's own SNMP engine ID in hex, for v3 informs; "
        "default: derived from the host name",
    )
    max_learned_engine_ids: int = Field(
        default=4, ge=0, description="v3 engine IDs learned per target beyond configured ones"
    )

    @field_validator("listen")
    @classmethod
    def _check_listen(cls, value: str) -> str:
        _parse_listen(value)
        return value

    @field_validator("engine_id")
    @classmethod
    def _check_engine_id(cls, value: str | None) -> str | None:
        if value is None:
            return None
        text = value.lower().removeprefix("0x").replace(":", "")
        try:
            raw = bytes.fromhex(text)
        except ValueError:
            raise ValueError("engine_id must be hexadecimal, e.g. 80004fb805abcdef01") from None
        if not 5 <= len(raw) <= 32:
            raise ValueError(f"engine_id must be 5 to 32 octets (RFC 3411), got {len(raw)}")
        return text

    @property
    def address(self) -> tuple[str, int]:
        return _parse_listen(self.listen)

    @property
    def engine_id_octets(self) -> bytes:
        return bytes.fromhex(self.engine_id) if self.engine_id else default_engine_id()

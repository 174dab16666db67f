"""TLS for the HTTP-based probes (http, xapi, poly, the registrar): which context a target's
settings call for, and what a failed connection means, in one place.

The system's CA store is read once per collector, off the loop; a `ca_file` is read when first
needed and again after `CA_FILE_TTL` (a renewed lab CA is picked up within five minutes).
Without verification nothing is trusted anyway, so the unverified context also talks to old
endpoints (TLS 1.0, SHA-1, short keys) that OpenSSL's default security level refuses: the
device answering is the answer.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from pathlib import Path

import aiohttp

from collectors.base import CollectError
from collectors.reasons import socket_failure

CA_FILE_TTL = 300.0


def unverified_context() -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    context.minimum_version = ssl.TLSVersion.MINIMUM_SUPPORTED
    context.set_ciphers("DEFAULT:@SECLEVEL=0")
    return context


class TlsContexts:
    """The contexts one collector hands to aiohttp: the system's, an unverified one, and one
    per `ca_file`, each built once (blocking file reads run in the executor)."""

    def __init__(self) -> None:
        self._verified: ssl.SSLContext | None = None
        self.unverified = unverified_context()
        self._ca_files: dict[Path, tuple[ssl.SSLContext, float]] = {}

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._verified = await loop.run_in_executor(None, ssl.create_default_context)

    def clear(self) -> None:
        self._ca_files.clear()

    async def context(self, *, verify: bool, ca_file: Path | None) -> ssl.SSLContext:
        if not verify:
            return self.unverified
        if ca_file is None:
            assert self._verified is not None, "start() first"
            return self._verified
        now = time.monotonic()
        cached = self._ca_files.get(ca_file)
        if cached is not None and cached[1] > now:
            return cached[0]
        loop = asyncio.get_running_loop()
        try:
            context = await loop.run_in_executor(
                None, lambda: ssl.create_default_context(cafile=str(ca_file))
            )
        except (OSError, ssl.SSLError) as exc:
            raise CollectError("tls", f"cannot load ca_file {ca_file}: {exc}") from None
        self._ca_files[ca_file] = (context, now + CA_FILE_TTL)
        return context


def connect_failure(exc: aiohttp.ClientConnectorError) -> CollectError:
    """Why a connection failed, in the stable reason words (no headers, no secrets)."""
    if isinstance(exc, aiohttp.ClientConnectorCertificateError):
        cause = exc.certificate_error
        message = getattr(cause, "verify_message", None) or str(cause)
        return CollectError("tls", f"certificate not trusted: {message}")
    if isinstance(exc, aiohttp.ClientSSLError):
        cause = exc.os_error
        message = getattr(cause, "reason", None) or type(cause).__name__
        return CollectError("tls", f"TLS handshake failed: {message}")
    if isinstance(exc, aiohttp.ClientConnectorDNSError):
        return CollectError("resolve", f"cannot resolve {exc.host}")
    failure = socket_failure(exc.os_error)
    if failure.reason in ("refused", "timeout"):
        return CollectError(failure.reason, f"{failure.text} (port {exc.port})")
    return CollectError(failure.reason, failure.text)

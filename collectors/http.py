"""HTTP(S) GET of a page: does it answer with the expected status (and text), and until when is
its TLS certificate valid?

One aiohttp session serves every target; each run opens a fresh connection, so the duration
includes connecting and the TLS handshake, and the certificate read is the one served now.
The certificate's notAfter is read from the connection's SSL object, so it is known even when
verification is off (a self-signed certificate on an endpoint's management page).

Header values (an Authorization header, say) are secrets: they print as <secret> and go on the
wire only; they never reach a detail, a log line or a repr.

This module must not import anything from the exporter, alerting or MQTT.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Mapping
from typing import ClassVar

import aiohttp
from cryptography import x509

from collectors.base import CollectError, CollectorSettings
from collectors.http_settings import HttpSettings
from collectors.tls import TlsContexts, connect_failure
from netmon.model import HttpAnswer, ProbeTarget

BODY_LIMIT = 1 << 20  # expect_text looks at the first MiB: a management page is far smaller
USER_AGENT = "netmon-http-probe"


class _CertResponse(aiohttp.ClientResponse):
    """A response that notes its connection's peer certificate before aiohttp lets the
    connection go: with an empty body that happens inside start(), before the caller sees it."""

    peer_certificate: bytes | None = None

    async def start(self, connection: aiohttp.connector.Connection) -> _CertResponse:
        transport = connection.transport
        ssl_object = transport.get_extra_info("ssl_object") if transport is not None else None
        if isinstance(ssl_object, ssl.SSLObject):
            self.peer_certificate = ssl_object.getpeercert(binary_form=True)
        await super().start(connection)
        return self


def not_after(der: bytes) -> float | None:
    """A DER certificate's notAfter as unix seconds; None if it does not parse."""
    try:
        return x509.load_der_x509_certificate(der).not_valid_after_utc.timestamp()
    except ValueError:
        return None


class HttpCollector:
    """GETs each target's page over one shared session."""

    name: ClassVar[str] = "http"
    settings_model: ClassVar[type[CollectorSettings]] = HttpSettings

    def __init__(self) -> None:
        self._session: aiohttp.ClientSession | None = None
        self._tls = TlsContexts()

    async def start(self) -> None:
        await self._tls.start()
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=0, force_close=True),
            response_class=_CertResponse,
            cookie_jar=aiohttp.DummyCookieJar(),  # every run starts as a first visit
            # Every run bounds itself with the probe's own timeout; none of aiohttp's.
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=None, sock_read=None),
            headers={"User-Agent": USER_AGENT},
        )

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
        self._tls.clear()

    async def collect(self, target: ProbeTarget, settings: CollectorSettings) -> HttpAnswer:
        assert isinstance(settings, HttpSettings)
        assert self._session is not None, "start() first"
        url = settings.url_for(target.address)
        headers: Mapping[str, str] = {
            name: value.reveal() for name, value in settings.headers.items()
        }
        loop = asyncio.get_running_loop()
        started = loop.time()
        try:
            async with asyncio.timeout(settings.timeout):
                context = await self._tls.context(
                    verify=settings.verify_tls, ca_file=settings.ca_file
                )
                async with self._session.get(
                    url,
                    headers=headers,
                    allow_redirects=settings.follow_redirects,
                    ssl=context,
                ) as response:
                    body = await _body(response) if settings.expect_text is not None else None
        except TimeoutError:
            raise CollectError("timeout", f"no answer within {settings.timeout:g}s") from None
        except aiohttp.ClientConnectorError as exc:
            raise connect_failure(exc) from None
        except aiohttp.TooManyRedirects:
            raise CollectError("status", "too many redirects") from None
        except aiohttp.ServerDisconnectedError:
            raise CollectError("protocol", "the server closed the connection") from None
        except aiohttp.ClientResponseError as exc:
            # Only the status and the parser's message: the exception also holds our headers.
            raise CollectError("protocol", f"bad HTTP answer: {exc.message}") from None
        except aiohttp.ClientError as exc:
            raise CollectError("protocol", type(exc).__name__) from None
        duration = loop.time() - started
        assert isinstance(response, _CertResponse)
        certificate = response.peer_certificate
        status = response.status
        reason: str | None = None
        detail: str | None = None
        if not settings.accepts(status):
            reason, detail = "status", f"HTTP {status}"
        elif settings.expect_text is not None and settings.expect_text not in (body or ""):
            reason, detail = "text", f"expected text not found in the page (HTTP {status})"
        return HttpAnswer(
            target=target.id,
            collector=self.name,
            ok=reason is None,
            duration=duration,
            reason=reason,
            detail=detail,
            status_code=status,
            cert_not_after=None if certificate is None else not_after(certificate),
            url=str(response.url),
        )


async def _body(response: aiohttp.ClientResponse) -> str:
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.content.iter_chunked(64 * 1024):
        chunks.append(chunk)
        size += len(chunk)
        if size >= BODY_LIMIT:
            break
    data = b"".join(chunks)[:BODY_LIMIT]
    charset = response.charset or "utf-8"
    try:
        return data.decode(charset, errors="replace")
    except LookupError:  # a charset Python does not know
        return data.decode("utf-8", errors="replace")

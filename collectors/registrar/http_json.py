"""JSON over HTTP(S) to a registrar's management API: one kept-alive session, bounded answers.

One aiohttp session serves every registrar of a collector, and its connections are kept alive
between polls (a registrar is polled every few seconds: no handshake each time). A request on
a kept connection the registrar has meanwhile closed is sent again once on a fresh one; only
read-only requests go through here, so sending one twice is harmless.

Answers are bounded: one announced over `max_body` is refused before its body is read, and one
that grows past it while being read is cut off there. Failures are `CollectError`s with the
stable reasons of every collector: refused, unreachable, resolve, tls, auth (HTTP 401/403),
status (any other non-2xx), protocol (not HTTP), parse (not JSON), too_large (over max_body). The
caller bounds the whole poll with its timeout.

The password goes into the Authorization header of the request and nowhere else: no detail,
log line or repr holds it, and no exception text from aiohttp (which may quote the request's
headers) is ever passed on.

This module must not import anything from the exporter, alerting or MQTT.
"""

from __future__ import annotations

import asyncio
import base64
import json
import ssl
from typing import Any

import aiohttp

from collectors.base import CollectError
from collectors.tls import connect_failure
from netmon.credentials import ApiCredential

# A kept connection lives this long unused: longer than any registrar poll interval, shorter
# than Kamailio's tcp_connection_lifetime (120 s), so netmon is the side that closes it.
KEEPALIVE = 90.0
# Parsing a JSON document of this size takes about a millisecond; larger ones are parsed off
# the event loop.
PARSE_ON_LOOP = 256 * 1024
USER_AGENT = "netmon-registrar-probe"
_SHOWN = 200  # characters of an error page shown in a detail


def basic_auth(credential: ApiCredential) -> str:
    """The Authorization header's value for `credential`; goes on the wire only."""
    token = f"{credential.user}:{credential.password.reveal()}".encode()
    return "Basic " + base64.b64encode(token).decode("ascii")


class HttpJson:
    """POSTs (or GETs) JSON to registrars over one session with kept-alive connections."""

    def __init__(self) -> None:
        self._session: aiohttp.ClientSession | None = None
        self._tls: ssl.SSLContext | None = None

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        # Reading the system CA store is file I/O: off the loop.
        self._tls = await loop.run_in_executor(None, ssl.create_default_context)
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=0, keepalive_timeout=KEEPALIVE),
            cookie_jar=aiohttp.DummyCookieJar(),
            # The caller bounds a whole poll with the probe's timeout; none of aiohttp's.
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=None, sock_read=None),
            headers={"User-Agent": USER_AGENT},
        )

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def request(
        self,
        method: str,
        url: str,
        *,
        body: bytes | None = None,
        authorization: str | None = None,
        max_body: int,
    ) -> Any:
        """The decoded JSON answer of one request (a second try only for a stale connection)."""
        try:
            return await self._once(method, url, body, authorization, max_body)
        except _StaleConnectionError:
            try:
                return await self._once(method, url, body, authorization, max_body)
            except _StaleConnectionError:
                raise CollectError("protocol", "the registrar closed the connection") from None

    async def _once(
        self, method: str, url: str, body: bytes | None, authorization: str | None, max_body: int
    ) -> Any:
        assert self._session is not None, "start() first"
        assert self._tls is not None
        headers = {"Accept": "application/json"}
        if body is not None:
            headers["Content-Type"] = "application/json"
        if authorization is not None:
            headers["Authorization"] = authorization
        try:
            async with self._session.request(
                method, url, data=body, headers=headers, ssl=self._tls, allow_redirects=False
            ) as response:
                _check_status(response, authorization is not None)
                raw = await _bounded(response, max_body)
        except aiohttp.ClientConnectorError as exc:
            raise connect_failure(exc) from None
        except (aiohttp.ServerDisconnectedError, aiohttp.ClientOSError):
            raise _StaleConnectionError from None
        except aiohttp.ClientPayloadError:
            raise CollectError("parse", "the answer was cut off before its end") from None
        except aiohttp.ClientResponseError as exc:
            # Only aiohttp's message: the exception also holds our request's headers.
            raise CollectError("protocol", f"bad HTTP answer: {exc.message}") from None
        except aiohttp.InvalidURL:
            raise CollectError("config", "not a valid URL") from None
        except aiohttp.ClientError as exc:
            raise CollectError("protocol", type(exc).__name__) from None
        return await _decode(raw)


class _StaleConnectionError(Exception):
    """The peer closed the connection before answering (a kept one it had timed out)."""


def _check_status(response: aiohttp.ClientResponse, sent_credentials: bool) -> None:
    status = response.status
    if 200 <= status < 300:
        return
    words = f"HTTP {status} {response.reason or ''}".rstrip()
    if status == 401:
        hint = "wrong user or password" if sent_credentials else "set `credential`"
        raise CollectError("auth", f"{words}: the registrar wants credentials ({hint})")
    if status == 403:
        raise CollectError("auth", f"{words}: the registrar does not let netmon read this")
    raise CollectError("status", words)


async def _bounded(response: aiohttp.ClientResponse, max_body: int) -> bytes:
    announced = response.content_length
    if announced is not None and announced > max_body:
        raise CollectError(
            "too_large", f"the answer is {announced} bytes, over max_body ({max_body}): not read"
        )
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.content.iter_chunked(64 * 1024):
        size += len(chunk)
        if size > max_body:
            raise CollectError("too_large", f"the answer is over max_body ({max_body} bytes)")
        chunks.append(chunk)
    return b"".join(chunks)


async def _decode(raw: bytes) -> Any:
    try:
        if len(raw) <= PARSE_ON_LOOP:
            return json.loads(raw)
        return await asyncio.get_running_loop().run_in_executor(None, json.loads, raw)
    except (UnicodeDecodeError, ValueError, RecursionError):
        pass
    start = raw[:_SHOWN].decode("utf-8", errors="replace").strip()
    if start.startswith("<") or start.lower().startswith("<!doctype"):
        raise CollectError("parse", "the answer is HTML, not JSON (is the URL the RPC's?)")
    if not start:
        raise CollectError("parse", "the answer is empty, not JSON")
    raise CollectError("parse", f"the answer is not JSON ({len(raw)} bytes)")

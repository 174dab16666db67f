"""Cisco RoomOS / CE codecs: their own status over xAPI (HTTP or HTTPS) as an EndpointStatus.

A poll reads the status paths of the settings (`XAPI_PATHS`: SIP/Registration, Call, ...), one
`GET {base_url}/getxml?location=/Status/<path>` each, in turn over the codec's one kept-alive
connection, and parses each answer as it arrives (collectors.xapi_parse: defusedxml, no DTD;
refused past `max_body` unread). getxml takes one location per request, so the choice was
between one request for the whole status and one per path. Measured with bench/xapi_poll.py
against 70 codecs of netmon_lab.cisco_sim in another process (a full status of 182 KB, as a
Codec Pro with control panels; 2-core test machine; this process's CPU, best of 3 rounds):
  one request per path, 11 requests,   6 KB a poll: CPU 2.3 ms a poll, 17 ms on loopback
  the whole status, 1 request,       182 KB a poll: CPU 8.3 ms a poll, 25 ms on loopback
(the whole status is mostly parsing: ~6.5 ms for 182 KB, in one go on the event loop). Per
path costs a quarter of the CPU and a thirtieth of the bytes, spares the codec rendering its
whole status (in a call, its media channels too) every 30 s, and blocks the loop for well under
a millisecond at a time; its extra round trips take well within the poll's timeout over a kept
connection. So: one request per path. 70 codecs every 30 s cost ~0.5 % of one core here.
A path the codec does not know (400/404) leaves its parts in `missing`; a part is reported
missing only if a path asked for covers it.

In a call, a status poll also reads `Status/MediaChannels`; between polls, `collect_media` reads
that path alone (netmon.call_poller calls it every `call_interval` while the room is in a call).

Authentication: the codec's session, as RoomOS recommends over basic auth on every request
(each of which is a login on the codec): `POST /xmlapi/session/begin` with basic auth gives a
`SessionId` cookie, kept per codec (not in a cookie jar: lab codecs share an address and
differ by port, which cookies ignore) and sent on every poll. A 401 with a session means it
expired: begin again, once. A codec without sessions (404 to begin, older CE) gets basic auth
on each request. One keep-alive connection per codec is reused from poll to poll.

Failures are CollectErrors with one stable word: "auth" (401/403: wrong user or password, or
a user without access), "parse" (HTML, malformed or truncated XML, a DTD or entities: an XML
bomb is refused before anything expands), "too_large" (over `max_body`, refused without reading
it all), "status" (another HTTP status, a redirect), "tls", "timeout", "refused" and the other
connection words of collectors.reasons, "config" (no API credential). Passwords and session
ids go on the wire only: never into a detail, a log line or a repr.

This module must not import anything from the exporter, alerting or MQTT.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import ssl
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import ClassVar
from xml.etree.ElementTree import Element

import aiohttp

from collectors.base import CollectError, CollectorSettings
from collectors.codec_settings import XapiSettings
from collectors.tls import TlsContexts, connect_failure
from collectors.xapi_parse import StatusError, StatusReader, merge, parse_media, parse_status
from netmon.credentials import ApiCredential, Secret
from netmon.model import CallMedia, EndpointStatus, ProbeTarget

log = logging.getLogger(__name__)

USER_AGENT = "netmon-xapi"
KEEPALIVE = 120.0  # seconds an idle connection is kept: beyond a 30 s poll interval
CHUNK = 64 * 1024
END_TIMEOUT = 2.0  # seconds to end every session when netmon stops
SESSION_COOKIE = "SessionId"
MEDIA = "/Status/MediaChannels"  # a call's media statistics: read only while in a call
# What each `paths` entry of the settings covers among the parts a poll reports missing.
_PART_PATHS = {
    "SIP/Registration": "SIP",
    "H323/Gatekeeper": "H323",
    "Standby/State": "Standby",
    "Cameras/Camera": "Cameras",
    "Peripherals/ConnectedDevice": "Peripherals",
    "Video/Output/Connector": "Video",
    "Audio/Microphones": "Audio",
    "Diagnostics/Message": "Diagnostics",
    "SystemUnit/ProductId": "SystemUnit",
    "SystemUnit/Software/Version": "SystemUnit",
    "SystemUnit/Hardware/Module/SerialNumber": "SystemUnit",
}


@dataclass(eq=False)
class _Codec:
    """What is kept of one codec between polls: its session and how to reach it."""

    key: tuple[str, str, Secret]  # base URL, user, password: what the session was begun with
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    session: Secret | None = None
    sessions: bool | None = None  # None: not known yet; False: it offers none (basic auth)
    base: str = ""
    ssl: ssl.SSLContext | None = None

    @property
    def wants_session(self) -> bool:
        return self.session is None and self.sessions is not False


class XapiCollector:
    """Reads each Cisco codec's status over its xAPI, keeping a session and a connection."""

    name: ClassVar[str] = "xapi"
    settings_model: ClassVar[type[CollectorSettings]] = XapiSettings

    def __init__(self) -> None:
        self._http: aiohttp.ClientSession | None = None
        self._tls = TlsContexts()
        self._codecs: dict[str, _Codec] = {}  # by target id

    async def start(self) -> None:
        await self._tls.start()
        self._http = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=0, keepalive_timeout=KEEPALIVE),
            cookie_jar=aiohttp.DummyCookieJar(),  # sessions are kept per codec, by hand
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=None, sock_read=None),
            headers={"User-Agent": USER_AGENT},
        )

    async def close(self) -> None:
        if self._http is None:
            return
        # End the sessions: a codec keeps only a few, and they would linger until they expire.
        live = [codec for codec in self._codecs.values() if codec.session is not None]
        if live:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(END_TIMEOUT):
                    await asyncio.gather(*(self._end(codec) for codec in live))
        self._codecs.clear()
        await self._http.close()
        self._http = None
        self._tls.clear()

    async def _end(self, codec: _Codec) -> None:
        assert self._http is not None
        assert codec.session is not None
        headers = {"Cookie": f"{SESSION_COOKIE}={codec.session.reveal()}"}
        codec.session = None
        with contextlib.suppress(aiohttp.ClientError, OSError):
            url = f"{codec.base}/xmlapi/session/end"
            async with self._http.post(url, headers=headers, ssl=codec.ssl or False):
                pass

    async def _context(self, settings: XapiSettings) -> ssl.SSLContext | None:
        if settings.scheme == "http":
            return None
        return await self._tls.context(verify=settings.verify_tls, ca_file=settings.ca_file)

    async def collect(self, target: ProbeTarget, settings: CollectorSettings) -> EndpointStatus:
        assert isinstance(settings, XapiSettings)
        assert self._http is not None, "start() first"
        credential = _credential(target, settings)
        codec = self._codec(target.id, settings.base_url(target.address), credential)
        loop = asyncio.get_running_loop()
        started = loop.time()
        with _failures(settings.timeout):
            async with asyncio.timeout(settings.timeout):
                codec.ssl = await self._context(settings)
                root = await self._status(codec, credential, settings)
                media = None
                if root.find("Call") is not None:
                    # In a call: its media statistics too (one more GET, only then).
                    media = await self._get(codec, credential, MEDIA, settings.max_body)
        parts = parse_status(root)
        covered = {path.split("/")[0] for path in settings.paths}
        missing = tuple(
            part for part in parts.missing if _PART_PATHS.get(part, part.split("/")[0]) in covered
        )
        return EndpointStatus(
            target=target.id,
            collector=self.name,
            ok=True,
            duration=loop.time() - started,
            vendor="cisco",
            model=parts.model,
            software=parts.software,
            serial=parts.serial,
            registrations=tuple(parts.registrations),
            calls=tuple(parts.calls),
            standby=parts.standby,
            peripherals=tuple(parts.peripherals),
            diagnostics=tuple(parts.diagnostics),
            missing=missing,
            streams=tuple(parse_media(media)) if media is not None and parts.calls else (),
        )

    async def collect_media(self, target: ProbeTarget, settings: CollectorSettings) -> CallMedia:
        """Only the media statistics of the codec's calls (one getxml of MediaChannels), over
        the same session and connection as its status polls: what netmon.call_poller.CallPoller
        reads every `call_interval` while the room is in a call."""
        assert isinstance(settings, XapiSettings)
        assert self._http is not None, "start() first"
        credential = _credential(target, settings)
        codec = self._codec(target.id, settings.base_url(target.address), credential)
        loop = asyncio.get_running_loop()
        started = loop.time()
        with _failures(settings.timeout):
            async with asyncio.timeout(settings.timeout):
                codec.ssl = await self._context(settings)
                media = await self._get(codec, credential, MEDIA, settings.max_body)
        return CallMedia(
            target=target.id,
            collector=self.name,
            ok=True,
            duration=loop.time() - started,
            streams=tuple(parse_media(media)) if media is not None else (),
        )

    def _codec(self, target: str, base: str, credential: ApiCredential) -> _Codec:
        codec = self._codecs.get(target)
        if codec is None or codec.key != (base, credential.user, credential.password):
            # New, or its address or credential changed: a session of the old one is left
            # to expire on the codec, never used with the new credential.
            codec = _Codec(key=(base, credential.user, credential.password), base=base)
            self._codecs[target] = codec
        return codec

    async def _status(
        self, codec: _Codec, credential: ApiCredential, settings: XapiSettings
    ) -> Element:
        """Every path of the settings, one request each over the codec's one connection."""
        roots = []
        for path in settings.paths:
            root = await self._get(codec, credential, f"/Status/{path}", settings.max_body)
            if root is not None:
                roots.append(root)
        if not roots:
            raise CollectError("status", "the codec has none of the status paths asked for")
        return merge(roots)

    async def _get(
        self, codec: _Codec, credential: ApiCredential, location: str, max_body: int
    ) -> Element | None:
        """One getxml; None when the codec does not know the path (its parts go missing)."""
        assert self._http is not None
        for attempt in range(2):
            headers = await self._authorization(codec, credential)
            with_session = codec.session is not None
            async with self._http.get(
                f"{codec.base}/getxml",
                params={"location": location},
                headers=headers,
                ssl=codec.ssl or False,
                allow_redirects=False,
            ) as response:
                if response.status == 401 and with_session and attempt == 0:
                    # The session expired (or the codec restarted): begin a new one, once.
                    codec.session = None
                    response.close()
                    continue
                if response.status in (400, 404):
                    response.close()
                    return None
                _check(response, "status request", credential)
                return await _read(response, max_body)
        raise CollectError("auth", "the codec refused a session it had just given")

    async def _authorization(self, codec: _Codec, credential: ApiCredential) -> dict[str, str]:
        if codec.wants_session:
            async with codec.lock:  # a readiness check may poll beside the scheduler
                if codec.wants_session:  # unless the other poll has just begun one
                    await self._begin(codec, credential)
        if codec.session is not None:
            return {"Cookie": f"{SESSION_COOKIE}={codec.session.reveal()}"}
        return {"Authorization": _basic(credential)}

    async def _begin(self, codec: _Codec, credential: ApiCredential) -> None:
        assert self._http is not None
        async with self._http.post(
            f"{codec.base}/xmlapi/session/begin",
            headers={"Authorization": _basic(credential)},
            ssl=codec.ssl or False,
            allow_redirects=False,
        ) as response:
            if response.status in (404, 405, 501):
                codec.sessions = False  # older firmware: basic auth on every request
                log.info("codec %s offers no xAPI sessions: basic auth per request", codec.base)
                return
            _check(response, "session begin", credential)
            cookie = response.cookies.get(SESSION_COOKIE)
            if cookie is None or not cookie.value:
                codec.sessions = False
                return
            codec.session = Secret(cookie.value)
            codec.sessions = True


def _credential(target: ProbeTarget, settings: XapiSettings) -> ApiCredential:
    credential = target.credentials.get(settings.credential or "")
    if not isinstance(credential, ApiCredential):  # the config allows no other
        raise CollectError("config", f"no API credential {settings.credential!r}")
    return credential


@contextlib.contextmanager
def _failures(timeout: float) -> Iterator[None]:
    """What goes wrong talking to a codec, as a CollectError with one stable word."""
    try:
        yield
    except TimeoutError:
        raise CollectError("timeout", f"no answer within {timeout:g}s") from None
    except StatusError as exc:
        raise CollectError(exc.reason, exc.detail) from None
    except aiohttp.ClientConnectorError as exc:
        raise connect_failure(exc) from None
    except aiohttp.ServerDisconnectedError:
        raise CollectError("protocol", "the codec closed the connection") from None
    except aiohttp.ClientPayloadError:
        raise CollectError("parse", "the answer ended early (truncated)") from None
    except aiohttp.ClientResponseError as exc:
        # Only the parser's message: the exception also holds our headers.
        raise CollectError("protocol", f"bad HTTP answer: {exc.message}") from None
    except aiohttp.ClientError as exc:
        raise CollectError("protocol", type(exc).__name__) from None


def _basic(credential: ApiCredential) -> str:
    pair = f"{credential.user}:{credential.password.reveal()}".encode()
    return "Basic " + base64.b64encode(pair).decode("ascii")


def _check(response: aiohttp.ClientResponse, what: str, credential: ApiCredential) -> None:
    status = response.status
    if status in (401, 403):
        response.close()
        why = "wrong user or password" if status == 401 else "the user may not read status"
        raise CollectError("auth", f"{what} refused for user {credential.user!r}: {why} ({status})")
    if 300 <= status < 400:
        response.close()
        where = response.headers.get("Location", "")[:100]
        hint = " (set scheme: https)" if where.startswith("https:") else ""
        raise CollectError("status", f"{what}: HTTP {status} redirect to {where!r}{hint}")
    if not 200 <= status < 300:
        response.close()
        raise CollectError("status", f"{what}: HTTP {status}")


async def _read(response: aiohttp.ClientResponse, max_body: int) -> Element:
    length = response.content_length
    if length is not None and length > max_body:
        response.close()  # not a byte more: the connection goes, the body is never read
        raise CollectError("too_large", f"the answer is {length} bytes, over {max_body}")
    if response.content_type == "text/html":
        response.close()
        raise CollectError("parse", "an HTML page instead of xAPI XML (a login page?)")
    reader = StatusReader(max_body)
    try:
        async for chunk in response.content.iter_chunked(CHUNK):
            reader.feed(chunk)
        return reader.close()
    except StatusError:
        response.close()
        raise

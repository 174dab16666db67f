"""Poly (Polycom) codecs' own status over their REST API: VideoOS (G7500, Studio X) and
Group Series 6.x.

One login session per codec, kept across polls: `POST /rest/current/session` with
`{"user", "password"}` gives a `session_id` cookie and an `XSRF-TOKEN` cookie, sent back on every
request (the token also as the `x-xsrf-token` header). A codec that does not know that path
(404) is an older Group Series: `POST /rest/session` with `{"action": "Login", ...}`. When a
request is refused with 401/403 the session has expired (a reboot, the codec's idle timeout):
log in once more and repeat the request; a second refusal is an "auth" failure. `close()` logs
every session out.

`api: auto` learns the API once per codec and remembers it: the legacy login is a Group
Series; otherwise `/rest/system/sipservers` exists on VideoOS only. A poll that finds a path of
its API gone (404) or an answer of the wrong shape forgets it, so the next poll asks again (a
firmware upgrade from Group Series to VideoOS changes the API under the same address).

What the answers mean is collectors/poly_parse.py. One connection pool serves every codec and
keeps its connections open between polls (aiohttp repeats a GET once when a kept connection
turns out closed). The GETs of one poll run one after the other on one connection: measured
on 70 simulated codecs, no dearer in CPU than concurrent GETs over several connections (see
`CONCURRENT`). The settings' timeout bounds the whole poll, login included.

The password goes on the wire only (in the login body); it, the session id and the XSRF token
never reach a detail, a log line or a repr.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, ClassVar

import aiohttp

from collectors.base import CollectError, CollectorSettings
from collectors.codec_settings import PolySettings
from collectors.poly_parse import (
    CONFERENCES,
    GROUP_SERIES,
    MEDIASTATS,
    PATHS,
    SIP_SERVERS,
    VIDEOOS,
    PolyParseError,
    PolyStatus,
    load_json,
    parse,
    parse_mediastats,
)
from collectors.tls import TlsContexts, connect_failure
from netmon.credentials import ApiCredential, Secret
from netmon.model import CallMedia, EndpointStatus, MediaStream, ProbeTarget

LOGIN = "/rest/current/session"
LEGACY_LOGIN = "/rest/session"  # Group Series before the /rest/current resources
USER_AGENT = "netmon-poly-probe"
LOGOUT_TIMEOUT = 2.0  # for all the logouts of close(), together
KEEPALIVE = 120.0  # seconds an idle connection is kept: longer than a poll interval
CHUNK = 64 * 1024
# Each poll's GETs one after the other on one kept connection (False), or all at once over
# several (True). Measured with bench/poly_bench.py (70 codecs, 20 rounds, twice each): the
# same CPU within noise (0.63-0.78 ms per poll either way, HTTP or HTTPS), so one connection
# per codec rather than up to five: a codec's web server holds fewer, and the first poll makes
# one TLS handshake, not five. A poll takes a few round trips either way, far inside its timeout.
CONCURRENT = False
_ABSENT = object()  # a path the codec answered 404 to


@dataclass(slots=True)
class _Codec:
    """One codec's login session and what was learnt about it."""

    identity: tuple[str, str, Secret]  # base URL, user, password: another one, another session
    base: str
    context: ssl.SSLContext | None = None
    session_id: Secret | None = None
    xsrf: Secret | None = None
    login_path: str = LOGIN
    api: str | None = None  # the API learnt (auto) or configured
    generation: int = 0  # bumped by every login, so concurrent refusals log in once
    logins: int = 0
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    def headers(self) -> dict[str, str]:
        if self.session_id is None:
            return {}
        cookie = f"session_id={self.session_id.reveal()}"
        headers = {"Cookie": cookie}
        if self.xsrf is not None:
            token = self.xsrf.reveal()
            headers["Cookie"] = f"{cookie}; XSRF-TOKEN={token}"
            headers["x-xsrf-token"] = token
        return headers

    def note(self, response: aiohttp.ClientResponse) -> None:
        """A codec may hand out a new XSRF token on any answer: keep the latest."""
        morsel = response.cookies.get("XSRF-TOKEN")
        if morsel is not None and morsel.value:
            self.xsrf = Secret(morsel.value)

    def __repr__(self) -> str:
        return f"<poly codec {self.base} api={self.api} logged_in={self.session_id is not None}>"


class PolyCollector:
    """Reads each Poly codec's status over one kept login session."""

    name: ClassVar[str] = "poly"
    settings_model: ClassVar[type[CollectorSettings]] = PolySettings

    def __init__(self) -> None:
        self._session: aiohttp.ClientSession | None = None
        self._tls = TlsContexts()
        self._codecs: dict[str, _Codec] = {}

    async def start(self) -> None:
        await self._tls.start()
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=0, keepalive_timeout=KEEPALIVE),
            cookie_jar=aiohttp.DummyCookieJar(),  # cookies kept per codec, by hand
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=None, sock_read=None),
            headers={"User-Agent": USER_AGENT, "Accept": "application/json"},
        )

    async def close(self) -> None:
        if self._session is None:
            return
        logged_in = [codec for codec in self._codecs.values() if codec.session_id is not None]
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(LOGOUT_TIMEOUT):
                await asyncio.gather(*(self._logout(codec) for codec in logged_in))
        self._codecs.clear()
        await self._session.close()
        self._session = None
        self._tls.clear()

    def logins(self, target: str) -> int:
        """How many times this collector logged in to a target's codec (0 if never)."""
        codec = self._codecs.get(target)
        return 0 if codec is None else codec.logins

    async def collect(self, target: ProbeTarget, settings: CollectorSettings) -> EndpointStatus:
        assert isinstance(settings, PolySettings)
        assert self._session is not None, "start() first"
        credential = _credential(target, settings)
        codec = self._codec(target.id, settings.base_url(target.address), credential)
        loop = asyncio.get_running_loop()
        started = loop.time()
        with _failures(settings.timeout, codec):
            async with asyncio.timeout(settings.timeout):
                codec.context = await self._context(settings)
                status = await self._poll(codec, credential, settings)
                streams: list[MediaStream] = []
                if status.calls:
                    # In a call: its media statistics too (one more GET, only then).
                    streams = await self._media(codec, credential, settings.max_body)
        return EndpointStatus(
            target=target.id,
            collector=self.name,
            ok=True,
            duration=loop.time() - started,
            vendor="poly",
            model=status.model,
            software=status.software,
            serial=status.serial,
            registrations=status.registrations,
            calls=status.calls,
            standby=status.standby,
            peripherals=status.peripherals,
            missing=status.missing,
            streams=tuple(streams),
        )

    async def collect_media(self, target: ProbeTarget, settings: CollectorSettings) -> CallMedia:
        """Only the media statistics of the codec's call (one GET of mediastats), over the same
        login as its status polls: what netmon.call_poller.CallPoller reads every `call_interval`
        while the room is in a call."""
        assert isinstance(settings, PolySettings)
        assert self._session is not None, "start() first"
        credential = _credential(target, settings)
        codec = self._codec(target.id, settings.base_url(target.address), credential)
        loop = asyncio.get_running_loop()
        started = loop.time()
        with _failures(settings.timeout, codec):
            async with asyncio.timeout(settings.timeout):
                codec.context = await self._context(settings)
                await self._logged_in(codec, credential, settings.max_body)
                streams = await self._media(codec, credential, settings.max_body)
        return CallMedia(
            target=target.id,
            collector=self.name,
            ok=True,
            duration=loop.time() - started,
            streams=tuple(streams),
        )

    async def _media(
        self, codec: _Codec, credential: ApiCredential, limit: int
    ) -> list[MediaStream]:
        """The call's streams; a codec without the resource (404) has none to report."""
        answer = await self._get(codec, credential, MEDIASTATS.format(id=0), limit)
        return [] if answer is _ABSENT else parse_mediastats(answer, "0")

    async def _logged_in(self, codec: _Codec, credential: ApiCredential, limit: int) -> None:
        if codec.session_id is None:
            async with codec.lock:
                if codec.session_id is None:
                    await self._login(codec, credential, limit)

    def _codec(self, target: str, base: str, credential: ApiCredential) -> _Codec:
        identity = (base, credential.user, credential.password)
        codec = self._codecs.get(target)
        if codec is None or codec.identity != identity:
            codec = self._codecs[target] = _Codec(identity=identity, base=base)
        return codec

    async def _poll(
        self, codec: _Codec, credential: ApiCredential, settings: PolySettings
    ) -> PolyStatus:
        await self._logged_in(codec, credential, settings.max_body)
        answers: dict[str, Any] = {}
        if settings.api != "auto":
            codec.api = settings.api
        elif codec.api is None:
            if codec.login_path == LEGACY_LOGIN:
                codec.api = GROUP_SERIES
            else:
                answer = await self._get(codec, credential, SIP_SERVERS, settings.max_body)
                codec.api = GROUP_SERIES if answer is _ABSENT else VIDEOOS
                answers[SIP_SERVERS] = answer
        api = codec.api
        paths = [path for path in PATHS[api] if path not in answers]
        if CONCURRENT:
            results = await asyncio.gather(
                *(self._get(codec, credential, path, settings.max_body) for path in paths)
            )
            answers.update(zip(paths, results, strict=True))
        else:
            for path in paths:
                answers[path] = await self._get(codec, credential, path, settings.max_body)
        found = {path: answers[path] for path in PATHS[api] if answers[path] is not _ABSENT}
        gone = set(PATHS[api]) - set(found) - {CONFERENCES}  # conferences is optional
        if settings.api == "auto" and gone:
            codec.api = None  # a path of this API is gone: ask again next time
        return parse(api, found)

    async def _get(self, codec: _Codec, credential: ApiCredential, path: str, limit: int) -> Any:
        """The decoded answer to GET `path`, or _ABSENT on 404; logs in again once when the
        session was refused."""
        assert self._session is not None
        for attempt in (1, 2):
            generation = codec.generation
            async with self._session.get(
                codec.base + path, headers=codec.headers(), ssl=codec.context or True
            ) as response:
                codec.note(response)
                status = response.status
                if status == 200:
                    return load_json(await _body(response, limit, path), path)
                response.close()  # whatever it says, it is not read: do not reuse
                if status == 404:
                    return _ABSENT
                if status not in (401, 403):
                    raise CollectError("status", f"{path} answered HTTP {status}")
                if attempt == 2:
                    raise CollectError(
                        "auth", f"{path} refused (HTTP {status}) right after a new login"
                    )
            async with codec.lock:
                if codec.generation == generation:  # nobody logged in since it was refused
                    await self._login(codec, credential, limit)
        raise AssertionError("unreachable")

    async def _login(self, codec: _Codec, credential: ApiCredential, limit: int) -> None:
        assert self._session is not None
        user = credential.user
        payload = {"user": user, "password": credential.password.reveal()}
        for path, body in ((LOGIN, payload), (LEGACY_LOGIN, {"action": "Login", **payload})):
            async with self._session.post(
                codec.base + path, json=body, ssl=codec.context or True
            ) as response:
                status = response.status
                if status == 404 and path == LOGIN:
                    response.close()
                    continue
                if status in (401, 403):
                    response.close()
                    raise CollectError(
                        "auth", f"login refused for user {user!r}: wrong user or password"
                    )
                if status != 200:
                    response.close()
                    raise CollectError("status", f"login at {path} answered HTTP {status}")
                data = load_json(await _body(response, limit, path), path)
                session = response.cookies.get("session_id")
                xsrf = response.cookies.get("XSRF-TOKEN")
            if isinstance(data, dict) and data.get("success") is False:
                raise CollectError(
                    "auth", f"login refused for user {user!r}: wrong user or password"
                )
            session_id = session.value if session is not None else _session_in(data)
            if not session_id:
                raise CollectError("auth", f"login at {path} gave no session")
            codec.session_id = Secret(session_id)
            codec.xsrf = Secret(xsrf.value) if xsrf is not None and xsrf.value else None
            codec.login_path = path
            codec.generation += 1
            codec.logins += 1
            return
        raise CollectError("status", "neither login path exists: not a Poly REST API")

    async def _logout(self, codec: _Codec) -> None:
        assert self._session is not None
        headers = codec.headers()
        codec.session_id = codec.xsrf = None
        url = codec.base + codec.login_path
        with contextlib.suppress(aiohttp.ClientError, OSError):
            if codec.login_path == LEGACY_LOGIN:
                request = self._session.post(
                    url, json={"action": "Logout"}, headers=headers, ssl=codec.context or True
                )
            else:
                request = self._session.delete(url, headers=headers, ssl=codec.context or True)
            async with request as response:
                response.close()

    async def _context(self, settings: PolySettings) -> ssl.SSLContext | None:
        if settings.scheme == "http":
            return None
        return await self._tls.context(verify=settings.verify_tls, ca_file=settings.ca_file)


def _credential(target: ProbeTarget, settings: PolySettings) -> ApiCredential:
    credential = target.credentials.get(settings.credential or "")
    if not isinstance(credential, ApiCredential):  # the config allows no other
        raise CollectError("config", f"no API credential {settings.credential!r}")
    return credential


@contextlib.contextmanager
def _failures(timeout: float, codec: _Codec) -> Iterator[None]:
    """What goes wrong talking to a codec, as a CollectError with one stable word."""
    try:
        yield
    except TimeoutError:
        raise CollectError("timeout", f"no answer within {timeout:g}s") from None
    except PolyParseError as exc:
        codec.api = None  # the answer's shape may say the API changed: ask again
        raise CollectError("parse", str(exc)) from None
    except aiohttp.ClientConnectorError as exc:
        raise connect_failure(exc) from None
    except aiohttp.ServerDisconnectedError:
        raise CollectError("protocol", "the codec closed the connection") from None
    except aiohttp.ClientPayloadError:
        raise CollectError("parse", "the answer was cut short") from None
    except aiohttp.ClientResponseError as exc:
        raise CollectError("protocol", f"bad HTTP answer: {exc.message}") from None
    except aiohttp.ClientError as exc:
        raise CollectError("protocol", type(exc).__name__) from None


def _session_in(data: Any) -> str:
    """The session id in a login answer's body, when no cookie carried it."""
    if not isinstance(data, dict):
        return ""
    session = data.get("session")
    value = session.get("sessionId") if isinstance(session, dict) else data.get("sessionId")
    return value if isinstance(value, str) else ""


async def _body(response: aiohttp.ClientResponse, limit: int, path: str) -> bytes:
    """The whole body, or "too_large" as soon as it is known to exceed `limit`: announced
    larger, or grown larger while read (the rest is never read)."""
    length = response.content_length
    if length is not None and length > limit:
        response.close()
        raise CollectError("too_large", f"{path} announced {length} bytes, over max_body {limit}")
    data = bytearray()
    async for chunk in response.content.iter_chunked(CHUNK):
        data += chunk
        if len(data) > limit:
            response.close()
            raise CollectError("too_large", f"{path} sent more than max_body {limit} bytes")
    return bytes(data)

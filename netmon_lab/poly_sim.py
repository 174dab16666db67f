"""Simulated Poly codecs' REST API (VideoOS or Group Series, per codec), for the demo lab and
the tests.

One aiohttp application serves every codec: each codec listens on its own loopback address and
port (HTTP, or HTTPS with the certificate given), and a request is answered by the codec whose
listening socket it came in on. Seventy codecs cost seventy listening sockets and one app.

    sim = PolySim()
    await sim.start()
    codec = await sim.add(CodecState(model="Studio X50", software="3.14.0", serial="X1"),
                          api="videoos", user="admin", password="...", port=0,
                          ssl_context=tls_context(cert, key))   # None: plain HTTP
    codec.port, codec.url                           # where it listens
    codec.state.connect("camera", False)            # the next answer says so
    codec.expire_sessions()                         # every session refused from now on
    codec.fault = "html"                            # knobs below
    await sim.close()

Login: VideoOS and a Group Series with `legacy_login=False` answer `POST /rest/current/session`
`{"user", "password"}`; a Group Series with `legacy_login=True` (the default) answers 404 there
and `POST /rest/session` `{"action": "Login", ...}` instead. A login sets the `session_id`
cookie, and on VideoOS an `XSRF-TOKEN` cookie that every later request must send back as the
`x-xsrf-token` header (else 403). An unknown or expired session is refused with 403
(VideoOS) or 401 (Group Series). Logout: `DELETE /rest/current/session` or
`POST /rest/session {"action": "Logout"}`.

Knobs, per codec: `delay` seconds before each GET is answered; `fault` for GETs of
`fault_path` (default every path): "html" (an error page), "truncated" (JSON cut in half),
"huge" (`huge_size` bytes with Content-Length), "huge_chunked" (the same, chunked, no length);
`login_failure_status` (401, or 200 with `{"success": false}`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
import socket
import ssl
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web

from netmon_lab import poly_payloads as payloads
from netmon_lab.codec_state import CodecState

VIDEOOS = payloads.VIDEOOS
GROUP_SERIES = payloads.GROUP_SERIES
HTML = "<!DOCTYPE html><html><head><title>Poly</title></head><body>Session timeout</body></html>"
HUGE = 50 << 20


@dataclass(slots=True)
class PolyCodec:
    """One simulated codec: its state, its knobs, and what it was asked."""

    state: CodecState
    api: str
    user: str
    password: str
    host: str
    port: int
    scheme: str
    legacy_login: bool = True  # Group Series only
    # knobs
    delay: float = 0.0
    fault: str | None = None  # html, truncated, huge, huge_chunked
    fault_path: str | None = None  # None: every GET
    huge_size: int = HUGE
    login_failure_status: int = 401
    # what it saw
    logins: int = 0
    failed_logins: int = 0
    logouts: int = 0
    gets: int = 0
    paths: Counter[str] = field(default_factory=Counter)  # GETs by path
    refused: int = 0  # requests refused for a missing/expired session or XSRF token
    sessions: dict[str, str] = field(default_factory=dict)  # session id → XSRF token

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{host}:{self.port}"

    @property
    def xsrf(self) -> bool:
        return self.api == VIDEOOS

    def expire_sessions(self) -> None:
        """Forget every session, as a codec does after its idle timeout or a reboot."""
        self.sessions.clear()


def tls_context(cert_file: str | Path, key_file: str | Path) -> ssl.SSLContext:
    """A server TLS context from a PEM certificate and key (blocking: read at set-up)."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert_file, key_file)
    return context


Handler = Callable[[web.Request, PolyCodec], Awaitable[web.StreamResponse]]


class PolySim:
    """Every simulated Poly codec of a process, on one aiohttp application."""

    def __init__(self) -> None:
        self._codecs: dict[tuple[str, int], PolyCodec] = {}
        self._sites: list[web.SockSite] = []
        self._runner: web.AppRunner | None = None
        self._closing = asyncio.Event()  # ends slow answers' waits at close()

    @property
    def codecs(self) -> list[PolyCodec]:
        return list(self._codecs.values())

    async def start(self) -> None:
        app = web.Application()
        routes: list[tuple[str, str, Handler]] = [
            ("POST", "/rest/current/session", self._login),
            ("DELETE", "/rest/current/session", self._logout),
            ("POST", "/rest/session", self._legacy_session),
            ("GET", "/rest/system", self._get),
            ("GET", "/rest/system/status", self._get),
            ("GET", "/rest/system/sipservers", self._get),
            ("GET", "/rest/system/h323gatekeepers", self._get),
            ("GET", "/rest/conferences", self._get),
            ("GET", "/rest/conferences/0/mediastats", self._get),
        ]
        for method, path, handler in routes:
            app.router.add_route(method, path, self._dispatch(handler))
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()

    async def close(self) -> None:
        self._closing.set()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        self._codecs.clear()
        self._sites.clear()

    async def add(
        self,
        state: CodecState,
        *,
        api: str = VIDEOOS,
        user: str = "admin",
        password: str,
        host: str = "127.0.0.1",
        port: int = 0,
        ssl_context: ssl.SSLContext | None = None,
        legacy_login: bool = True,
    ) -> PolyCodec:
        """A codec rendering `state`, listening on host:port (0: any free port)."""
        assert self._runner is not None, "start() first"
        if api not in (VIDEOOS, GROUP_SERIES):
            raise ValueError(f"api must be {VIDEOOS} or {GROUP_SERIES}, not {api!r}")
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.setblocking(False)
        bound = sock.getsockname()
        codec = PolyCodec(
            state=state,
            api=api,
            user=user,
            password=password,
            host=bound[0],
            port=bound[1],
            scheme="https" if ssl_context is not None else "http",
            legacy_login=legacy_login,
        )
        site = web.SockSite(self._runner, sock, ssl_context=ssl_context)
        await site.start()
        self._sites.append(site)
        self._codecs[(bound[0], bound[1])] = codec
        return codec

    def _dispatch(self, handler: Handler) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        async def dispatch(request: web.Request) -> web.StreamResponse:
            sockname = request.transport.get_extra_info("sockname") if request.transport else None
            codec = self._codecs.get(tuple(sockname[:2])) if sockname else None
            if codec is None:
                raise web.HTTPNotFound()
            return await handler(request, codec)

        return dispatch

    # --- sessions ---------------------------------------------------------------------------

    async def _credentials(self, request: web.Request) -> dict[str, Any]:
        try:
            body = await request.json()
        except ValueError:
            raise web.HTTPBadRequest(text='{"success": false}') from None
        if not isinstance(body, dict):
            raise web.HTTPBadRequest(text='{"success": false}')
        return body

    def _refuse_login(self, codec: PolyCodec) -> web.Response:
        codec.failed_logins += 1
        return web.json_response({"success": False}, status=codec.login_failure_status)

    def _open_session(self, request: web.Request, codec: PolyCodec, legacy: bool) -> web.Response:
        session_id = "PS" + secrets.token_urlsafe(36)
        token = secrets.token_urlsafe(24) if codec.xsrf else ""
        codec.sessions[session_id] = token
        codec.logins += 1
        peer = request.remote or ""
        session = {
            "sessionId": session_id,
            "isAuthenticated": True,
            "userId": codec.user,
            "role": "ADMIN",
            "clientType": "WEB",
            "location": peer,
            "isNew": True,
            "isStale": False,
        }
        body = {"success": True, "sessionId": session_id} if legacy else {"success": True}
        response = web.json_response({**body, "session": session})
        secure = codec.scheme == "https"
        response.set_cookie("session_id", session_id, path="/", httponly=True, secure=secure)
        if token:
            response.set_cookie("XSRF-TOKEN", token, path="/", secure=secure)
        return response

    async def _login(self, request: web.Request, codec: PolyCodec) -> web.StreamResponse:
        if codec.api == GROUP_SERIES and codec.legacy_login:
            raise web.HTTPNotFound()
        body = await self._credentials(request)
        if body.get("user") != codec.user or body.get("password") != codec.password:
            return self._refuse_login(codec)
        return self._open_session(request, codec, legacy=False)

    async def _logout(self, request: web.Request, codec: PolyCodec) -> web.StreamResponse:
        session_id = request.cookies.get("session_id", "")
        if codec.sessions.pop(session_id, None) is not None:
            codec.logouts += 1
        return web.Response(status=204)

    async def _legacy_session(self, request: web.Request, codec: PolyCodec) -> web.StreamResponse:
        if codec.api != GROUP_SERIES:
            raise web.HTTPNotFound()
        body = await self._credentials(request)
        if body.get("action") == "Logout":
            return await self._logout(request, codec)
        if body.get("action") != "Login":
            raise web.HTTPBadRequest(text='{"success": false}')
        if body.get("user") != codec.user or body.get("password") != codec.password:
            return self._refuse_login(codec)
        return self._open_session(request, codec, legacy=True)

    def _allowed(self, request: web.Request, codec: PolyCodec) -> bool:
        token = codec.sessions.get(request.cookies.get("session_id", ""))
        if token is None:
            return False
        return not token or request.headers.get("x-xsrf-token") == token

    # --- status -----------------------------------------------------------------------------

    async def _get(self, request: web.Request, codec: PolyCodec) -> web.StreamResponse:
        codec.gets += 1
        codec.paths[request.path] += 1
        if not self._allowed(request, codec):
            codec.refused += 1
            status = 403 if codec.api == VIDEOOS else 401
            return web.json_response({"success": False, "reason": "SessionExpired"}, status=status)
        if codec.delay:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._closing.wait(), codec.delay)
        path = request.path
        answer = _render(codec, path)
        if answer is None:
            raise web.HTTPNotFound()
        if codec.fault is not None and codec.fault_path in (None, path):
            return await _faulty(request, codec, answer)
        return web.Response(body=answer, content_type="application/json")


def _render(codec: PolyCodec, path: str) -> bytes | None:
    state, api = codec.state, codec.api
    value: Any
    if path == "/rest/system":
        value = payloads.system(state, api)
    elif path == "/rest/system/status":
        value = payloads.status(state, api)
    elif path == "/rest/conferences":
        value = payloads.conferences(state)
    elif path == "/rest/conferences/0/mediastats":
        value = payloads.mediastats(state)
    elif api != VIDEOOS:
        return None  # the SIP server and gatekeeper lists are VideoOS's
    elif path == "/rest/system/sipservers":
        value = payloads.sip_servers(state)
    else:
        value = payloads.gatekeepers(state)
    return json.dumps(value).encode()


async def _faulty(request: web.Request, codec: PolyCodec, answer: bytes) -> web.StreamResponse:
    if codec.fault == "html":
        return web.Response(text=HTML, content_type="text/html")
    if codec.fault == "truncated":
        return web.Response(body=answer[: len(answer) // 2], content_type="application/json")
    response = web.StreamResponse(headers={"Content-Type": "application/json"})
    if codec.fault == "huge":
        response.content_length = codec.huge_size
    else:
        response.enable_chunked_encoding()
    await response.prepare(request)
    chunk = b"[" + b"0," * (32 * 1024 - 1)
    sent = 0
    with contextlib.suppress(ConnectionError, OSError):
        while sent < codec.huge_size:
            piece = chunk[: codec.huge_size - sent]
            await response.write(piece)
            sent += len(piece)
        await response.write_eof()
    return response

"""Simulated Cisco RoomOS / CE codecs: their xAPI over HTTP(S), rendered from `CodecState`s.

One aiohttp application serves every codec of a `CiscoSim`; each codec has its own listening
socket (its own loopback port, or its own address on a shared port) and the application tells
them apart by the local address a request came in on. So 70 codecs cost one process, one
application and 70 sockets, and a codec can be HTTP or HTTPS on its own.

What a codec answers, as RoomOS does:
- `POST /xmlapi/session/begin` with basic auth: 204 and a `SessionId` cookie; 401 on a wrong
  user or password; 404 when the codec is set not to offer sessions (`sessions=False`, as
  older CE firmware). `POST /xmlapi/session/end` ends one.
- `GET /getxml?location=/Status[/path]` (and `/status.xml`, the whole status) with a live
  session cookie or basic auth: the status XML (netmon_lab.cisco_xml); 401 otherwise.
Sessions expire after `session_ttl` seconds unused, or when a test calls `expire_sessions()`.

Knobs for tests (attributes of `SimCodec`, changed at any time): `state` (the CodecState),
`delay` (seconds before a status answer), `answer` ("xml", "html", "truncated", "bomb", "huge",
"huge_chunked"), `sessions`, `mic_shape`, `absent` (sections the firmware lacks: "H323").
Counters: `logins`, `basic_requests`, `status_requests` (and by location, `locations`),
`connections`, `huge_sent`, `huge_ends`; `live_sessions`.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import hmac
import secrets
import socket
import ssl
import time
import weakref
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Literal

from aiohttp import web

from netmon_lab import cisco_xml
from netmon_lab.codec_state import CodecState

Answer = Literal["xml", "html", "truncated", "bomb", "huge", "huge_chunked"]
HUGE_SIZE = 50 << 20  # the "huge" answers: 50 MB of XML
REALM = 'Basic realm="Cisco Codec"'

LOGIN_PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Cisco Webex Room Kit - Sign in</title></head>
<body><form method="post" action="/web/signin/open"><input name="username">
<input name="password" type="password"><button>Sign in</button></form></body></html>
"""

BOMB = """<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol1 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol2 "&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
 <!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
 <!ENTITY lol6 "&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;">
 <!ENTITY lol7 "&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;">
 <!ENTITY lol8 "&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;">
 <!ENTITY lol9 "&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;">
]>
<Status product="Cisco Codec" version="ce9.15.3.17" apiVersion="4">
  <SystemUnit><ProductId>&lol9;</ProductId></SystemUnit>
</Status>
"""


@dataclass(eq=False)
class SimCodec:
    """One simulated codec: what it says (`state`), who may ask, its knobs and counters."""

    state: CodecState
    host: str
    port: int
    tls: bool
    user: str = "admin"
    password: str = field(default="", repr=False)
    session_ttl: float | None = None
    # knobs
    delay: float = 0.0
    answer: Answer = "xml"
    sessions: bool = True
    mic_shape: Literal["connectors", "count", "peripheral"] = "connectors"
    absent: set[str] = field(default_factory=set)  # top-level sections the firmware lacks
    # counters
    logins: int = 0
    basic_requests: int = 0
    status_requests: int = 0
    locations: Counter[str] = field(default_factory=Counter)  # status requests by location
    connections: int = 0
    huge_sent: int = 0
    huge_ends: int = 0  # huge answers over, sent whole or cut off by the client
    _sessions: dict[str, float] = field(default_factory=dict, repr=False)
    _transports: weakref.WeakSet[asyncio.BaseTransport] = field(
        default_factory=weakref.WeakSet, repr=False
    )

    @property
    def base_url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{'https' if self.tls else 'http'}://{host}:{self.port}"

    def expire_sessions(self) -> None:
        """Forget every session, as a codec does after its idle timeout or a restart."""
        self._sessions.clear()

    @property
    def live_sessions(self) -> int:
        return len(self._sessions)

    # --- auth -----------------------------------------------------------------------------

    def _basic_ok(self, request: web.Request) -> bool | None:
        """True/False for a basic Authorization header that matches or not; None without."""
        header = request.headers.get("Authorization", "")
        if not header.lower().startswith("basic "):
            return None
        try:
            user, _, password = base64.b64decode(header[6:].strip()).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return False
        return hmac.compare_digest(user.encode(), self.user.encode()) and hmac.compare_digest(
            password.encode(), self.password.encode()
        )

    def _session_ok(self, request: web.Request) -> bool:
        session = request.cookies.get("SessionId")
        if session is None or session not in self._sessions:
            return False
        now = time.monotonic()
        if self.session_ttl is not None and now - self._sessions[session] > self.session_ttl:
            del self._sessions[session]
            return False
        self._sessions[session] = now
        return True

    def _begin(self) -> str:
        session = secrets.token_hex(32)
        self._sessions[session] = time.monotonic()
        self.logins += 1
        return session

    def _seen(self, request: web.Request) -> None:
        transport = request.transport
        if transport is not None and transport not in self._transports:
            self._transports.add(transport)
            self.connections += 1


def _unauthorized() -> web.Response:
    return web.Response(
        status=401,
        text="<html><body>401 Unauthorized</body></html>",
        content_type="text/html",
        headers={"WWW-Authenticate": REALM},
    )


class CiscoSim:
    """Many simulated Cisco codecs served by one aiohttp application.

    `await sim.add(state, port=0, tls=False, ...)` starts a codec on its own socket and returns
    its `SimCodec` (its `port` and `base_url` once bound). HTTPS codecs use the certificate
    and key given to the simulator.
    """

    def __init__(
        self,
        *,
        cert_file: Path | None = None,
        key_file: Path | None = None,
        user: str = "admin",
        password: str = "",
        session_ttl: float | None = 600.0,
    ) -> None:
        self._cert_file, self._key_file = cert_file, key_file
        self._user, self._password, self._session_ttl = user, password, session_ttl
        self._codecs: dict[tuple[str, int], SimCodec] = {}
        self._runner: web.AppRunner | None = None
        self._ssl: ssl.SSLContext | None = None
        self._closing = asyncio.Event()

    @property
    def codecs(self) -> list[SimCodec]:
        return list(self._codecs.values())

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/xmlapi/session/begin", self._session_begin)
        app.router.add_post("/xmlapi/session/end", self._session_end)
        app.router.add_get("/getxml", self._getxml)
        app.router.add_get("/status.xml", self._getxml)
        # Keep-alive beyond a 30 s poll interval, as the codec's web server does.
        self._runner = web.AppRunner(app, access_log=None, keepalive_timeout=75.0)
        await self._runner.setup()

    async def close(self) -> None:
        self._closing.set()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        self._codecs.clear()

    async def __aenter__(self) -> CiscoSim:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()

    def _tls_context(self) -> ssl.SSLContext:
        if self._ssl is None:
            if self._cert_file is None or self._key_file is None:
                raise ValueError("an HTTPS codec needs the simulator's cert_file and key_file")
            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            context.load_cert_chain(self._cert_file, self._key_file)
            self._ssl = context
        return self._ssl

    async def add(
        self,
        state: CodecState,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        tls: bool = False,
        user: str | None = None,
        password: str | None = None,
    ) -> SimCodec:
        """Start serving a codec on host:port (0: a free port) over HTTP or HTTPS."""
        assert self._runner is not None, "start() first"
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            sock.close()
            raise
        bound = sock.getsockname()[1]
        codec = SimCodec(
            state=state,
            host=host,
            port=bound,
            tls=tls,
            user=self._user if user is None else user,
            password=self._password if password is None else password,
            session_ttl=self._session_ttl,
        )
        self._codecs[(host, bound)] = codec
        site = web.SockSite(self._runner, sock, ssl_context=self._tls_context() if tls else None)
        await site.start()
        return codec

    def _codec(self, request: web.Request) -> SimCodec:
        sockname = request.transport.get_extra_info("sockname") if request.transport else None
        codec = self._codecs.get((sockname[0], sockname[1])) if sockname else None
        if codec is None:
            raise web.HTTPNotFound()
        codec._seen(request)
        return codec

    # --- handlers -------------------------------------------------------------------------

    async def _session_begin(self, request: web.Request) -> web.StreamResponse:
        codec = self._codec(request)
        if not codec.sessions:
            raise web.HTTPNotFound()
        if codec._basic_ok(request) is not True:
            return _unauthorized()
        response = web.Response(status=204)
        response.set_cookie("SessionId", codec._begin(), path="/", httponly=True, secure=codec.tls)
        return response

    async def _session_end(self, request: web.Request) -> web.StreamResponse:
        codec = self._codec(request)
        session = request.cookies.get("SessionId")
        if session is not None:
            codec._sessions.pop(session, None)
        return web.Response(status=204)

    async def _getxml(self, request: web.Request) -> web.StreamResponse:
        codec = self._codec(request)
        if not codec._session_ok(request):
            if codec._basic_ok(request) is not True:
                return _unauthorized()
            codec.basic_requests += 1
        codec.status_requests += 1
        location = request.query.get("location", "/Status")
        codec.locations[location] += 1
        if location != "/Status" and not location.startswith("/Status/"):
            return web.Response(status=400, text="<Error>bad location</Error>")
        if codec.delay:
            # A slow codec, but not one that holds the simulator's shutdown up.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._closing.wait(), codec.delay)
        if codec.answer == "html":
            return web.Response(text=LOGIN_PAGE, content_type="text/html")
        if codec.answer == "bomb":
            return web.Response(text=BOMB, content_type="text/xml")
        if codec.answer in ("huge", "huge_chunked"):
            return await _huge(request, codec)
        path = location.removeprefix("/Status")
        text = cisco_xml.render(codec.state, path, codec.mic_shape, codec.absent)
        if codec.answer == "truncated":
            text = text[: len(text) // 2]
        return web.Response(text=text, content_type="text/xml")


async def _huge(request: web.Request, codec: SimCodec) -> web.StreamResponse:
    """50 MB of well-formed XML, written chunk by chunk; `huge_sent` counts what went out."""
    response = web.StreamResponse(headers={"Content-Type": "text/xml"})
    head = cisco_xml.XML_HEAD + cisco_xml.root_open(codec.state) + "<UserInterface>"
    tail = "</UserInterface></Status>\n"
    chunk = ("<Widget><WidgetId>w</WidgetId></Widget>" * 1600).encode()
    count = (HUGE_SIZE - len(head) - len(tail)) // len(chunk)
    if codec.answer == "huge":
        response.content_length = len(head) + count * len(chunk) + len(tail)
    else:
        response.enable_chunked_encoding()
    codec.huge_sent = 0
    try:
        await response.prepare(request)
        await response.write(head.encode())
        for _ in range(count):
            await response.write(chunk)
            codec.huge_sent += len(chunk)
        await response.write(tail.encode())
        await response.write_eof()
    except ConnectionError:
        pass  # the client hung up: what it should do with an answer this big
    finally:
        codec.huge_ends += 1
    return response


async def _serve_forever(count: int, password: str) -> None:
    """`python -m netmon_lab.cisco_sim`: `count` HTTP codecs on loopback, their ports on one
    line of stdout, until stdin closes (benchmarks run the simulator in its own process)."""
    import json
    import sys

    async with CiscoSim(password=password) as sim:
        ports = []
        for number in range(count):
            state = CodecState(
                model="Cisco Webex Codec Pro",
                software="ce9.15.3.17 9a8b6d5ad7b 2022-11-22",
                serial=f"FOC{number:08d}",
                sip_uri=f"room-{number:02d}@conf.lab",
            )
            ports.append((await sim.add(state)).port)
        print(json.dumps(ports), flush=True)
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, sys.stdin.read)
        print(
            json.dumps(
                {
                    "logins": sum(codec.logins for codec in sim.codecs),
                    "status_requests": sum(codec.status_requests for codec in sim.codecs),
                    "connections": sum(codec.connections for codec in sim.codecs),
                }
            ),
            flush=True,
        )


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description="simulated Cisco codecs over HTTP")
    parser.add_argument("--codecs", type=int, default=1)
    parser.add_argument("--password", required=True)
    arguments = parser.parse_args()
    asyncio.run(_serve_forever(arguments.codecs, arguments.password))

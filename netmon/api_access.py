"""Who may reach the HTTP API, who may change things through it, and the JSON a change carries.

One middleware (`guard`) stands in front of every route of the service, the demo's fault API
included, so no route can forget it:

- every request must name this netmon in its `Host` header: an IP literal, localhost, the
  machine's hostname, the listen address or a name in `http.allowed_hosts` (else 421). A web
  page that rebinds its own DNS name to this host cannot read the API that way;
- a request that changes something (POST, PUT, PATCH, DELETE) is refused when it carries an
  `Origin` that is not this server's own (403): a page in a browser on the netmon host is not
  on loopback's side;
- with an API token configured it must bear it; without one, changes come from loopback only;
- its body, if it has one (a POST always has), must be `Content-Type: application/json` (415),
  so a browser cannot send it as a "simple" cross-site request without a CORS preflight.

The token and the names live in an `Access` the service updates on reload. This module knows no
route, and nothing of alerting or checks.
"""

from __future__ import annotations

import contextlib
import hmac
import ipaddress
import json
import socket
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from aiohttp.typedefs import Middleware
from yarl import URL

from netmon.credentials import Secret

CHANGING = frozenset({"POST", "PUT", "PATCH", "DELETE"})
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def machine_names() -> frozenset[str]:
    """localhost and this machine's names (may ask the resolver: call it off the loop)."""
    names = {"localhost", socket.gethostname()}
    with contextlib.suppress(OSError):
        names.add(socket.getfqdn())
    names |= {name.split(".")[0] for name in names}
    return frozenset(name.lower().rstrip(".") for name in names if name)


@dataclass
class Access:
    """What the guard checks against; the service replaces its fields on reload."""

    token: Secret | None = None
    hosts: frozenset[str] = field(default_factory=lambda: frozenset({"localhost"}))

    @classmethod
    def build(
        cls, token: Secret | None, listen_host: str, allowed: Iterable[str], machine: Iterable[str]
    ) -> Access:
        names = {*machine, *allowed, listen_host, "localhost"}
        return cls(token=token, hosts=frozenset(n.lower().rstrip(".") for n in names if n))


def _host_name(host: str) -> str:
    """The name part of a Host header: 'name:port', '[v6]:port', 'v4', 'name'."""
    if host.startswith("["):
        return host[1:].partition("]")[0]
    if host.count(":") == 1:
        host = host.partition(":")[0]
    return host.lower().rstrip(".")


def _is_ip(value: str) -> bool:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return True


def from_loopback(request: web.Request) -> bool:
    """Whether the request came from this host (::ffff:127.0.0.1 on a dual-stack listener too)."""
    try:
        address = ipaddress.ip_address(request.remote or "")
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_loopback


def authorized(request: web.Request, token: Secret | None) -> bool:
    """With a token configured it is required; without one, loopback only (docs/architecture.md)."""
    if token is not None:
        header = request.headers.get("Authorization", "")
        scheme, _, given = header.partition(" ")
        expected = token.reveal().encode()
        return (
            bool(expected)  # the config refuses an empty token; never let one match
            and scheme.lower() == "bearer"
            and hmac.compare_digest(given.strip().encode(), expected)
        )
    return from_loopback(request)


def _error(message: str, status: int) -> web.Response:
    return web.json_response({"error": message}, status=status)


def refuse(token: Secret | None) -> web.Response:
    reason = (
        "a bearer token is required (Authorization: Bearer ...)"
        if token is not None
        else "no API token is configured, so changes are accepted from loopback only"
    )
    return _error(reason, 401 if token is not None else 403)


def _same_origin(request: web.Request, origin: str) -> bool:
    try:
        given = URL(origin)
        own = URL(f"{request.scheme}://{request.host}")
    except ValueError:
        return False
    return (given.scheme, given.host, given.port) == (own.scheme, own.host, own.port) and bool(
        given.host
    )


def refusal(request: web.Request, access: Access) -> web.Response | None:
    """The response that turns `request` away, or None when it may go on to its route."""
    host = request.headers.get("Host")
    if host is not None:
        name = _host_name(host)
        if not _is_ip(name) and name not in access.hosts:
            return _error(
                f"Host: {name!r} is not a name this netmon answers to; add it to "
                "http.allowed_hosts if people reach netmon by it",
                421,
            )
    if request.method not in CHANGING:
        return None
    origin = request.headers.get("Origin")
    if origin is not None and not _same_origin(request, origin):
        return _error(
            f"Origin: {origin!r} is another site; changes are taken from netmon's own pages, "
            "or from programs that send no Origin",
            403,
        )
    if not authorized(request, access.token):
        return refuse(access.token)
    if (request.method != "DELETE" or request.body_exists) and (
        request.content_type != "application/json"
    ):
        return _error("Content-Type: the body must be sent as application/json", 415)
    return None


def guard(access: Access) -> Middleware:
    """The middleware in front of every route (see the module's docstring)."""

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        refused = refusal(request, access)
        if refused is not None:
            return refused
        return await handler(request)

    return middleware


async def change_body(request: web.Request) -> dict[str, Any] | web.Response:
    """The JSON object a change carries (the guard has let it through); else a 400."""
    try:
        body = await request.json()
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError):
        # RecursionError: "[[[[..." nested deeper than the decoder goes
        return web.json_response({"error": "the body must be JSON"}, status=400)
    except LookupError:  # Content-Type: application/json; charset=<no such codec>
        return web.json_response({"error": "unknown charset in Content-Type"}, status=400)
    except web.HTTPRequestEntityTooLarge as exc:  # over the app's client_max_size (1 MiB)
        return web.json_response({"error": exc.text}, status=exc.status)
    if not isinstance(body, dict):
        return web.json_response({"error": "the body must be a JSON object"}, status=400)
    return body

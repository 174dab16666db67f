"""Who may change things through the HTTP API, and the JSON object a change carries.

Every route of the service that changes something (POST a silence or a readiness check, DELETE
a silence) asks here first: with an API token configured the request must bear it; without one,
changes come from loopback only (the demo's fault API, which has no token, asks `from_loopback`).
This module knows no route, and nothing of alerting or checks.
"""

from __future__ import annotations

import hmac
import ipaddress
import json
from typing import Any

from aiohttp import web

from netmon.credentials import Secret


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


def refuse(token: Secret | None) -> web.Response:
    reason = (
        "a bearer token is required (Authorization: Bearer ...)"
        if token is not None
        else "no API token is configured, so changes are accepted from loopback only"
    )
    return web.json_response({"error": reason}, status=401 if token is not None else 403)


async def change_body(request: web.Request, token: Secret | None) -> dict[str, Any] | web.Response:
    """The JSON object a change carries once its sender may make it; else the response (401,
    403 or 400) that turns it down."""
    if not authorized(request, token):
        return refuse(token)
    try:
        body = await request.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        return web.json_response({"error": "the body must be JSON"}, status=400)
    if not isinstance(body, dict):
        return web.json_response({"error": "the body must be a JSON object"}, status=400)
    return body

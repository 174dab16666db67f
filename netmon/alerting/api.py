"""HTTP routes of alerting: GET /api/v1/alerts, and silences (POST needs the API token)."""

from __future__ import annotations

import datetime as dt
import hmac
import ipaddress
import json
from typing import Any

from aiohttp import web
from pydantic import ValidationError

from netmon.alerting.runtime import Alerting
from netmon.alerting.settings import Silence
from netmon.credentials import Secret

MAX_SILENCE = 366 * 86_400  # a silence longer than a year is a mistake, not maintenance


def authorized(request: web.Request, token: Secret | None) -> bool:
    """DESIGN.md: with a token configured it is required; without one, loopback only."""
    if token is not None:
        header = request.headers.get("Authorization", "")
        scheme, _, given = header.partition(" ")
        expected = token.reveal().encode()
        return (
            bool(expected)  # the config refuses an empty token; never let one match
            and scheme.lower() == "bearer"
            and hmac.compare_digest(given.strip().encode(), expected)
        )
    try:
        address = ipaddress.ip_address(request.remote or "")
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped.is_loopback  # ::ffff:127.0.0.1 on a dual-stack listener
    return address.is_loopback


def refuse(token: Secret | None) -> web.Response:
    reason = (
        "a bearer token is required (Authorization: Bearer ...)"
        if token is not None
        else "no API token is configured, so changes are accepted from loopback only"
    )
    return web.json_response({"error": reason}, status=401 if token is not None else 403)


def routes(alerting: Alerting, token: Secret | None) -> list[web.RouteDef]:
    engine = alerting.engine

    async def list_alerts(request: web.Request) -> web.Response:
        items = engine.listing()
        wanted = {k: v for k, v in request.query.items() if k in ("target", "severity", "state")}
        items = [a for a in items if all(str(a.get(k)) == v for k, v in wanted.items())]
        return web.json_response({"alerts": items}, dumps=_dumps)

    async def list_silences(request: web.Request) -> web.Response:
        silences = [s.to_json() for s in engine.silences.values()]
        return web.json_response({"silences": silences}, dumps=_dumps)

    async def add_silence(request: web.Request) -> web.Response:
        if not authorized(request, token):
            return refuse(token)
        try:
            body = await request.json()
        except (json.JSONDecodeError, UnicodeDecodeError):
            return web.json_response({"error": "the body must be JSON"}, status=400)
        if not isinstance(body, dict):
            return web.json_response({"error": "the body must be a JSON object"}, status=400)
        if "duration" in body and "ends_at" not in body:
            # A convenience for people: {"matchers": {...}, "duration": 3600}.
            seconds = body.pop("duration")
            if (
                isinstance(seconds, bool)
                or not isinstance(seconds, int | float)
                or not 0 < seconds <= MAX_SILENCE
            ):
                return web.json_response(
                    {"error": f"duration: seconds, more than 0 and at most {MAX_SILENCE}"},
                    status=400,
                )
            ends = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=seconds)
            body["ends_at"] = ends.isoformat()
        try:
            silence = Silence.model_validate(body)
        except ValidationError as exc:
            problems = [
                f"{'.'.join(map(str, e['loc'])) or 'body'}: "
                + e["msg"].removeprefix("Value error, ")
                for e in exc.errors()
            ]
            return web.json_response({"error": "; ".join(problems)}, status=400)
        await engine.add_silence(silence)
        return web.json_response(silence.to_json(), status=201, dumps=_dumps)

    async def delete_silence(request: web.Request) -> web.Response:
        if not authorized(request, token):
            return refuse(token)
        if not await engine.delete_silence(request.match_info["id"]):
            return web.json_response({"error": "no such silence"}, status=404)
        return web.json_response({"deleted": request.match_info["id"]})

    return [
        web.get("/api/v1/alerts", list_alerts),
        web.get("/api/v1/silences", list_silences),
        web.post("/api/v1/silences", add_silence),
        web.delete("/api/v1/silences/{id}", delete_silence),
    ]


def _dumps(data: Any) -> str:
    return json.dumps(data, ensure_ascii=False)

"""HTTP routes of alerting: GET /api/v1/alerts, acknowledgements and silences (changes need the
API token, or loopback without one: `netmon.api_access.guard`)."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from aiohttp import web
from pydantic import ValidationError

from netmon.alerting.runtime import Alerting
from netmon.api_access import change_body
from netmon.config.alerting import Silence

MAX_SILENCE = 366 * 86_400  # a silence longer than a year is a mistake, not maintenance
MAX_BY = 100
MAX_COMMENT = 1000


def routes(alerting: Alerting) -> list[web.RouteDef]:
    """Who may change silences is `netmon.api_access.guard`'s to say, in front of every route."""

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
        body = await change_body(request)
        if isinstance(body, web.Response):
            return body
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
        if silence.ends_at - dt.datetime.now(dt.UTC).timestamp() > MAX_SILENCE:
            # The same bound as duration: a silence to 9999-01-01 mutes a target for good.
            return web.json_response(
                {"error": f"ends_at: at most {MAX_SILENCE} seconds (366 days) from now"},
                status=400,
            )
        await engine.add_silence(silence)
        return web.json_response(silence.to_json(), status=201, dumps=_dumps)

    async def delete_silence(request: web.Request) -> web.Response:
        if not await engine.delete_silence(request.match_info["id"]):
            return web.json_response({"error": "no such silence"}, status=404)
        return web.json_response({"deleted": request.match_info["id"]})

    async def acknowledge(request: web.Request) -> web.Response:
        body = await change_body(request)
        if isinstance(body, web.Response):
            return body
        by, comment = body.get("by"), body.get("comment", "")
        problems = []
        if not isinstance(by, str) or not 0 < len(by.strip()) <= MAX_BY:
            problems.append(f"by: who is on it, 1 to {MAX_BY} characters")
        if not isinstance(comment, str) or len(comment) > MAX_COMMENT:
            problems.append(f"comment: text of at most {MAX_COMMENT} characters")
        unknown = sorted(set(body) - {"by", "comment"})
        if unknown:
            problems.append(f"unknown field(s): {', '.join(unknown)}")
        if problems or not isinstance(by, str) or not isinstance(comment, str):
            return web.json_response({"error": "; ".join(problems)}, status=400)
        event = engine.acknowledge(request.match_info["id"], by.strip(), comment.strip())
        if event is None:
            return _no_such_alert()
        return web.json_response(event.to_json(), dumps=_dumps)

    async def unacknowledge(request: web.Request) -> web.Response:
        event = engine.unacknowledge(request.match_info["id"])
        if event is None:
            return _no_such_alert()
        return web.json_response(event.to_json(), dumps=_dumps)

    return [
        web.get("/api/v1/alerts", list_alerts),
        web.post("/api/v1/alerts/{id}/ack", acknowledge),
        web.delete("/api/v1/alerts/{id}/ack", unacknowledge),
        web.get("/api/v1/silences", list_silences),
        web.post("/api/v1/silences", add_silence),
        web.delete("/api/v1/silences/{id}", delete_silence),
    ]


def _no_such_alert() -> web.Response:
    return web.json_response(
        {"error": "no firing alert has that fingerprint (see GET /api/v1/alerts)"}, status=404
    )


def _dumps(data: Any) -> str:
    return json.dumps(data, ensure_ascii=False)

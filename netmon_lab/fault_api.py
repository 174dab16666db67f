"""The demo's fault API: aiohttp routes the demo hands to the service (`extra_routes`).

    GET    /api/v1/demo/faults        the faults in force, and the kinds this demo cannot inject
    POST   /api/v1/demo/faults        {"kind": ..., "target"/"district"/"device"/"interface": ...,
                                       "value"/"every"/"length": ...} -> 201 and the fault,
                                       with its id (`netmon_lab.fault_kinds.FIELDS`: which kind
                                       takes which fields)
    DELETE /api/v1/demo/faults/{id}   clear one -> 200 and the fault cleared
    DELETE /api/v1/demo/faults        clear all -> 200 and the faults cleared

Errors are `{"error": "...", "field": ...}`: 400 for a bad request (the message starts with the
field), 403 for a change asked from another host, 404 for an unknown id, 503 for a kind this
demo cannot inject (with the reason, e.g. not running as root). The demo has no API token, so,
as the service's API does for every request that changes something without a token
(docs/architecture.md, "HTTP"), changes are taken from loopback peers only. In the demo these
routes sit behind the service's guard too (`netmon.api_access`): JSON bodies only, no foreign
`Origin`, a `Host` that names this machine.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from netmon.api_access import from_loopback
from netmon_lab.faults import (
    FaultInjector,
    FaultInputError,
    FaultNotFoundError,
    FaultUnavailableError,
)

log = logging.getLogger(__name__)

PATH = "/api/v1/demo/faults"
MEETING_PATH = "/api/v1/demo/meeting"  # netmon_lab.meeting_api
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _json(document: Any, status: int = 200) -> web.Response:
    return web.json_response(
        document, status=status, dumps=lambda value: json.dumps(value, ensure_ascii=False)
    )


def _error(status: int, message: str, field: str | None = None) -> web.Response:
    document: dict[str, Any] = {"error": message}
    if field is not None:
        document["field"] = field
    return _json(document, status)


def _loopback_only(handler: Handler) -> Handler:
    async def guarded(request: web.Request) -> web.StreamResponse:
        if not from_loopback(request):
            return _error(
                403,
                f"the demo's fault API takes changes from loopback only (this request came "
                f"from {request.remote}); run `netmon demo fault` on the demo's machine",
            )
        return await handler(request)

    return guarded


def fault_routes(injector: FaultInjector) -> list[web.RouteDef]:
    async def listing(_request: web.Request) -> web.Response:
        return _json(
            {
                "faults": [fault.to_json() for fault in injector.faults()],
                "unavailable": injector.unavailable(),
            }
        )

    async def add(request: web.Request) -> web.Response:
        try:
            body = await request.json()
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            return _error(400, f"body: not JSON ({exc})", "body")
        if not isinstance(body, dict):
            return _error(400, 'body: expected a JSON object such as {"kind": ...}', "body")
        try:
            fault = await injector.add(body)
        except FaultInputError as exc:
            return _error(400, str(exc), exc.field)
        except FaultUnavailableError as exc:
            return _error(503, str(exc))
        except Exception as exc:  # the lab refused: say so instead of a bare 500
            log.exception("demo fault could not be applied")
            return _error(500, f"the lab could not apply the fault: {exc}")
        return _json(fault.to_json(), 201)

    async def clear_one(request: web.Request) -> web.Response:
        fault_id = request.match_info["id"]
        try:
            fault = await injector.clear(fault_id)
        except FaultNotFoundError:
            return _error(404, f"no fault {fault_id!r} in force (GET {PATH} lists them)")
        except Exception as exc:
            log.exception("demo fault could not be cleared")
            return _error(500, f"the lab could not clear the fault: {exc}")
        return _json(fault.to_json())

    async def clear_all(_request: web.Request) -> web.Response:
        try:
            cleared = await injector.clear_all()
        except Exception as exc:
            log.exception("demo faults could not be cleared")
            return _error(500, f"the lab could not clear the faults: {exc}")
        return _json(
            {
                "cleared": [fault.to_json() for fault in cleared],
                "standing": [fault.to_json() for fault in injector.faults() if fault.standing],
            }
        )

    return [
        web.get(PATH, listing),
        web.post(PATH, _loopback_only(add)),
        web.delete(PATH, _loopback_only(clear_all)),
        web.delete(PATH + "/{id}", _loopback_only(clear_one)),
    ]

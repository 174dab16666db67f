"""The HTTP server: /metrics, health and readiness, and the read-only targets API.

Handlers only read the state store; they never start I/O towards targets.
"""

from __future__ import annotations

import asyncio
import html
import json
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from aiohttp import web
from prometheus_client import CollectorRegistry

from netmon import __version__, heap
from netmon.api_access import Access, guard
from netmon.exporter import render
from netmon.exposition import Exposition, accepts_gzip, exposition_for, gzipped
from netmon.slices import Slices
from netmon.state import StateStore
from netmon.status import target_json

STORE_KEY = web.AppKey("store", StateStore)
REGISTRY_KEY = web.AppKey("registry", CollectorRegistry)
ReadyCheck = Callable[[], bool]
READY_KEY: web.AppKey[ReadyCheck] = web.AppKey("ready")
Degraded = Callable[[str], bool]  # target id → a quality alert is pending or firing for it
DEGRADED_KEY: web.AppKey[Degraded] = web.AppKey("degraded")
EXPOSITION_KEY: web.AppKey[Exposition | None] = web.AppKey("exposition")


async def metrics(request: web.Request) -> web.Response:
    accept = request.headers.get("Accept")
    exposition = request.app[EXPOSITION_KEY]
    if exposition is None:
        body, content_type = render(request.app[REGISTRY_KEY], accept)
        chunks = [body]
    else:  # kept per target, written in slices: the probes' loop never waits long
        scrape = await exposition.scrape(accept)
        chunks, content_type = scrape.body, scrape.content_type
    headers = {"Content-Type": content_type, "Vary": "Accept-Encoding"}
    if accepts_gzip(request.headers.get("Accept-Encoding")):
        headers["Content-Encoding"] = "gzip"
        return web.Response(body=await asyncio.to_thread(_gzipped, chunks), headers=headers)
    return web.Response(body=b"".join(chunks), headers=headers)


def _gzipped(chunks: list[bytes]) -> bytes:
    """The body gzipped, then the scrape's freed blocks given back (`netmon.heap`): in the
    worker thread, off the event loop."""
    body = gzipped(chunks)
    heap.trim()
    return body


async def healthy(_request: web.Request) -> web.Response:
    return web.Response(text="netmon is healthy\n")


async def ready(request: web.Request) -> web.Response:
    if request.app[READY_KEY]():
        return web.Response(text="netmon is ready\n")
    return web.Response(status=503, text="netmon is not ready\n")


async def targets(request: web.Request) -> web.Response:
    store = request.app[STORE_KEY]
    degraded = request.app[DEGRADED_KEY]
    store.prune_windows()
    # What json.dumps({"targets": [...]}) writes, one target at a time, with turns of the
    # event loop between slices: at 10,000 targets the whole at once would hold it too long.
    parts: list[str] = []
    slices = Slices()
    for target_id in sorted(store.targets):
        state = store.targets.get(target_id)
        if state is None:  # removed by a reload while the loop had a turn
            continue
        parts.append(_dumps(target_json(state, degraded(target_id))))
        if slices.due():
            await slices.turn()
    text = '{"targets": [' + ", ".join(parts) + "]}"
    return web.Response(text=text, content_type="application/json")


async def target(request: web.Request) -> web.Response:
    store = request.app[STORE_KEY]
    store.prune_windows()
    state = store.targets.get(request.match_info["id"])
    if state is None:
        return web.json_response(
            {"error": f"no target {request.match_info['id']!r}"}, status=404, dumps=_dumps
        )
    return web.json_response(
        target_json(state, request.app[DEGRADED_KEY](state.target.id)), dumps=_dumps
    )


async def index(request: web.Request) -> web.Response:
    store = request.app[STORE_KEY]
    counts: dict[str, int] = {}
    for state in store.targets.values():
        counts[state.reach.value] = counts.get(state.reach.value, 0) + 1
    summary = ", ".join(f"{n} {s}" for s, n in sorted(counts.items())) or "no targets"
    answering, devices = store.devices_answering()
    if devices:
        summary += f"; SNMP devices: {answering} of {devices} answering"
    body = (
        "<!doctype html><meta charset=utf-8><title>netmon</title>"
        f"<h1>netmon {html.escape(__version__)}</h1><p>{html.escape(summary)}</p><ul>"
        '<li><a href="/metrics">/metrics</a></li>'
        '<li><a href="/api/v1/targets">/api/v1/targets</a></li>'
        '<li><a href="/-/healthy">/-/healthy</a> · <a href="/-/ready">/-/ready</a></li></ul>'
    )
    return web.Response(text=body, content_type="text/html")


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)


def build_app(
    *,
    store: StateStore,
    registry: CollectorRegistry,
    is_ready: Callable[[], bool],
    degraded: Degraded = lambda _target: False,
    extra_routes: Sequence[web.AbstractRouteDef] = (),
    index_page: Callable[[web.Request], Awaitable[web.Response]] | None = None,
    access: Access | None = None,
) -> web.Application:
    app = web.Application(middlewares=[guard(access or Access())])
    app[STORE_KEY] = store
    app[REGISTRY_KEY] = registry
    app[EXPOSITION_KEY] = exposition_for(registry)
    app[READY_KEY] = is_ready
    app[DEGRADED_KEY] = degraded
    app.router.add_get("/", index_page or index)
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/-/healthy", healthy)
    app.router.add_get("/-/ready", ready)
    app.router.add_get("/api/v1/targets", targets)
    app.router.add_get("/api/v1/targets/{id}", target)
    app.router.add_routes(extra_routes)
    return app

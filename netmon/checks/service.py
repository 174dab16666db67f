"""Readiness checks inside the running service: started over HTTP, kept, and exported.

`POST /api/v1/checks` starts one (202 and its id), `GET /api/v1/checks/{id}` reads it while it
runs and once it is done, `GET /api/v1/checks` lists the recent ones (`?meeting=`, `?group=`,
`?district=` filter by scope). The last verdict of every endpoint becomes
`netmon_endpoint_ready`.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from collections import OrderedDict
from collections.abc import Iterable, Iterator
from typing import Any

from aiohttp import web
from prometheus_client.core import GaugeMetricFamily, Metric

from collectors.credentials import Secret
from netmon.alerting.api import authorized, refuse
from netmon.checks.model import CheckReport, Verdict
from netmon.checks.runner import CheckRunner, ScopeError, select
from netmon.config import Inventory

log = logging.getLogger(__name__)

KEEP = 50  # reports kept for GET; older ones are dropped first
SCOPE_KEYS = ("targets", "group", "district")


class Checks:
    def __init__(self, inventory: Inventory) -> None:
        self.inventory = inventory
        self._runner = CheckRunner(inventory)
        self.reports: OrderedDict[str, dict[str, Any]] = OrderedDict()
        self.ready: dict[str, bool] = {}
        self.verdicts: dict[str, tuple[str, str]] = {}  # target: (verdict, reasons)
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        await self._runner.start()

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._runner.close()

    def apply_inventory(self, inventory: Inventory) -> None:
        self.inventory = inventory
        self._runner.inventory = inventory
        self.ready = {t: r for t, r in self.ready.items() if t in inventory.targets}
        self.verdicts = {t: v for t, v in self.verdicts.items() if t in inventory.targets}

    def begin(self, scope: dict[str, Any]) -> str:
        """Start a check of `scope` in the background; its id at once."""
        targets = select(
            self.inventory,
            targets=scope.get("targets") or (),
            group=scope.get("group"),
            district=scope.get("district"),
        )
        check_id = uuid.uuid4().hex[:12]
        self.reports[check_id] = {
            "id": check_id,
            "status": "running",
            "scope": scope,
            "started": time.time(),
            "endpoints_total": len(targets),
        }
        while len(self.reports) > KEEP:
            self.reports.popitem(last=False)
        task = asyncio.create_task(self._run(check_id, targets, scope), name=f"check-{check_id}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return check_id

    async def _run(self, check_id: str, targets: list[Any], scope: dict[str, Any]) -> None:
        try:
            report = await self._runner.run(targets, scope=scope)
        except Exception:
            log.exception("readiness check failed", extra={"check": check_id})
            self.reports[check_id] = {**self.reports[check_id], "status": "failed"}
            return
        report.id = check_id
        self._record(report)

    def _record(self, report: CheckReport) -> None:
        for endpoint in report.endpoints:
            self.ready[endpoint.target] = endpoint.verdict is Verdict.GO
            self.verdicts[endpoint.target] = (endpoint.verdict.value, "; ".join(endpoint.reasons))
        if report.id in self.reports:
            self.reports[report.id] = {"status": "done", **report.to_json()}
        log.info("readiness check done", extra={"check": report.id, "summary": report.summary()})

    def recent(self, wanted: dict[str, str]) -> list[dict[str, Any]]:
        found = []
        for report in reversed(self.reports.values()):
            scope = report.get("scope", {})
            if all(str(scope.get(k)) == v for k, v in wanted.items()):
                found.append(report)
        return found

    # --- HTTP --------------------------------------------------------------------------

    def routes(self, token: Secret | None) -> list[web.RouteDef]:
        async def post(request: web.Request) -> web.Response:
            if not authorized(request, token):
                return refuse(token)
            try:
                body = await request.json()
            except (json.JSONDecodeError, UnicodeDecodeError):
                return _error("the body must be JSON")
            if not isinstance(body, dict):
                return _error("the body must be a JSON object")
            unknown = sorted(set(body) - {*SCOPE_KEYS, "meeting"})
            if unknown:
                return _error(f"{unknown[0]}: unknown field (use targets, group or district)")
            if "meeting" in body:
                return _error("meeting: meetings are not configured in this version yet")
            given = {k: body[k] for k in SCOPE_KEYS if body.get(k)}
            if len(given) != 1:
                return _error("give exactly one of targets, group or district")
            targets = given.get("targets")
            if targets is not None and (
                not isinstance(targets, list) or not all(isinstance(t, str) for t in targets)
            ):
                return _error("targets: a list of target ids")
            try:
                check_id = self.begin(given)
            except ScopeError as exc:
                return _error(str(exc))
            location = f"/api/v1/checks/{check_id}"
            return web.json_response(
                {"id": check_id, "status": "running", "url": location},
                status=202,
                headers={"Location": location},
            )

        async def get_one(request: web.Request) -> web.Response:
            report = self.reports.get(request.match_info["id"])
            if report is None:
                return web.json_response({"error": "no such check (or an old one)"}, status=404)
            return web.json_response(report, dumps=_dumps)

        async def get_recent(request: web.Request) -> web.Response:
            wanted = {k: v for k, v in request.query.items() if k in ("group", "district")}
            return web.json_response({"checks": self.recent(wanted)}, dumps=_dumps)

        return [
            web.post("/api/v1/checks", post),
            web.get("/api/v1/checks", get_recent),
            web.get("/api/v1/checks/{id}", get_one),
        ]


def _error(message: str) -> web.Response:
    return web.json_response({"error": message}, status=400)


def _dumps(data: Any) -> str:
    return json.dumps(data, ensure_ascii=False)


class ChecksCollector:
    """netmon_endpoint_ready{target}: 1 when the endpoint's last readiness verdict was GO."""

    def __init__(self, checks: Checks) -> None:
        self._checks = checks

    def describe(self) -> Iterable[Metric]:
        return []

    def collect(self) -> Iterator[Metric]:
        ready = GaugeMetricFamily(
            "netmon_endpoint_ready",
            "1 if the endpoint's last readiness check said GO, 0 if WARN or NO-GO",
            labels=["target"],
        )
        for target, is_ready in sorted(self._checks.ready.items()):
            ready.add_metric([target], float(is_ready))
        yield ready

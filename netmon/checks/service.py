"""Readiness checks inside the running service: started over HTTP, kept, and exported.

`POST /api/v1/checks` starts one (202 and its id), `GET /api/v1/checks/{id}` reads it while it
runs and once it is done, `GET /api/v1/checks` lists the recent ones (`?meeting=`, `?group=`,
`?district=` filter by scope). A finished check goes into the state store, which keeps each
endpoint's last verdict (for /metrics, the API and the status page) and tells its listeners
(alerting publishes the report and raises EndpointNotReady for a meeting about to start).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any

from aiohttp import web

from collectors.base import Collector
from netmon.api_access import change_body
from netmon.checks.runner import CheckRunner, ScopeError, select
from netmon.inventory import Inventory
from netmon.meetings import meeting_thresholds
from netmon.state import StateStore

log = logging.getLogger(__name__)

KEEP = 50  # reports kept for GET; older ones are dropped first
SCOPE_KEYS = ("targets", "group", "district", "meeting")


class Checks:
    def __init__(
        self,
        inventory: Inventory,
        *,
        store: StateStore,
        collectors: Mapping[str, Collector] | None = None,
    ) -> None:
        self.inventory = inventory
        self._store = store
        self._done: set[tuple[str, float, float]] = set()  # (meeting, start, offset) run
        # The service's collectors, shared: one set of ICMP sockets, one codec session each.
        self._runner = CheckRunner(inventory, shared=collectors)
        self.reports: OrderedDict[str, dict[str, Any]] = OrderedDict()
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        await self._runner.start()
        task = asyncio.create_task(self._schedule(), name="check-schedule")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _schedule(self) -> None:
        """Each meeting's checks at its `check_before` offsets. A due time already past when
        netmon starts (or the config is reloaded) runs at once, while the meeting is ahead."""
        while True:
            now = time.time()
            for meeting in self.inventory.config.meetings:
                start = meeting.start.timestamp()
                for offset in meeting.check_before:
                    key = (meeting.name, start, offset)
                    if key in self._done or not start - offset <= now < start:
                        continue
                    self._done.add(key)
                    log.info(
                        "scheduled readiness check",
                        extra={"meeting": meeting.name, "minutes_before": round(offset / 60, 1)},
                    )
                    try:
                        self.begin({"meeting": meeting.name})
                    except ScopeError as exc:
                        log.error("scheduled check not run", extra={"reason": str(exc)})
            await asyncio.sleep(0.5)

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._runner.close()

    def apply_inventory(self, inventory: Inventory) -> None:
        self.inventory = inventory
        self._runner.inventory = inventory

    def begin(self, scope: dict[str, Any]) -> str:
        """Start a check of `scope` in the background; its id at once."""
        targets = select(
            self.inventory,
            targets=scope.get("targets") or (),
            group=scope.get("group"),
            district=scope.get("district"),
            meeting=scope.get("meeting"),
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
        meeting = next(
            (m for m in self.inventory.config.meetings if m.name == scope.get("meeting")), None
        )
        limits = meeting_thresholds(self.inventory.config, meeting) if meeting else None
        try:
            report = await self._runner.run(
                targets, scope=scope, thresholds=limits, meeting=meeting
            )
        except Exception:
            log.exception("readiness check failed", extra={"check": check_id})
            self.reports[check_id] = {**self.reports[check_id], "status": "failed"}
            return
        report.id = check_id
        if report.id in self.reports:
            self.reports[report.id] = {"status": "done", **report.to_json()}
        log.info("readiness check done", extra={"check": report.id, "summary": report.summary()})
        try:
            self._store.record_check(report, meeting)
        except Exception:
            log.exception("publishing a readiness report failed", extra={"check": check_id})

    def recent(self, wanted: dict[str, str]) -> list[dict[str, Any]]:
        found = []
        for report in reversed(self.reports.values()):
            scope = report.get("scope", {})
            if all(str(scope.get(k)) == v for k, v in wanted.items()):
                found.append(report)
        return found

    # --- HTTP --------------------------------------------------------------------------

    def routes(self) -> list[web.RouteDef]:
        async def post(request: web.Request) -> web.Response:
            body = await change_body(request)
            if isinstance(body, web.Response):
                return body
            unknown = sorted(set(body) - set(SCOPE_KEYS))
            if unknown:
                return _error(f"{unknown[0]}: unknown field (use {', '.join(SCOPE_KEYS)})")
            given = {k: body[k] for k in SCOPE_KEYS if body.get(k)}
            if len(given) != 1:
                return _error(f"give exactly one of {', '.join(SCOPE_KEYS)}")
            for key in ("group", "district", "meeting"):
                if key in given and not isinstance(given[key], str):
                    return _error(f"{key}: the {key}'s name, a string")
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
            wanted = {
                k: v for k, v in request.query.items() if k in ("group", "district", "meeting")
            }
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

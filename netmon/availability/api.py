"""`GET /api/v1/reports/availability`: the availability report over the API, as `netmon report`
gives it, behind the service's one guard (`netmon/api_access.py`) like every route.

Query: `month=YYYY-MM` (default: this month so far) or `from=YYYY-MM-DD[&to=YYYY-MM-DD]`;
`district=`, `group=` or `target=`; `format=json|html|csv|pdf` (default json); `lang=vi|en`;
`table=sites|outages` for CSV. The journal is written first, so the report includes the last
second; the accounting runs in a worker thread, off the loop that times the probes.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from collections.abc import Callable
from typing import Any
from zoneinfo import ZoneInfo

from aiohttp import web

from netmon.availability.period import FORMATS, period_of
from netmon.availability.quality import call_quality, meetings_between
from netmon.availability.recorder import JournalRecorder
from netmon.availability.render import render
from netmon.availability.report import build_report, scope_problem
from netmon.inventory import Inventory
from netmon.meeting_quality.db import MeetingDB

CONTENT_TYPES = {
    "json": "application/json",
    "html": "text/html",
    "csv": "text/csv",
    "pdf": "application/pdf",
}


def _error(message: str, status: int = 400) -> web.Response:
    return web.json_response(
        {"error": message}, status=status, dumps=lambda v: json.dumps(v, ensure_ascii=False)
    )


def routes(
    recorder: JournalRecorder,
    inventory: Callable[[], Inventory],
    meeting_record: Callable[[], MeetingDB | None] = lambda: None,
) -> list[web.RouteDef]:
    async def availability(request: web.Request) -> web.StreamResponse:
        query = request.query
        current = inventory()
        config = current.config.availability
        fmt = query.get("format", "json")
        lang = query.get("lang", config.report_lang)
        table = query.get("table", "sites")
        if fmt not in FORMATS or lang not in ("vi", "en") or table not in ("sites", "outages"):
            return _error("format: json|html|csv|pdf; lang: vi|en; table: sites|outages")
        zone = ZoneInfo(config.timezone)
        now = recorder.now()
        month = query.get("month")
        if month is None and "from" not in query and "to" not in query:
            month = dt.datetime.fromtimestamp(now, zone).strftime("%Y-%m")
        try:
            start, end = period_of(month, query.get("from"), query.get("to"), zone, now)
        except ValueError as exc:
            return _error(str(exc))
        scope = {k: query[k] for k in ("district", "group", "target") if query.get(k)}
        problem = scope_problem(current, scope)
        if problem is not None:
            return _error(problem)
        await recorder.flush()
        db = recorder.db
        journal = await db.call(db.read, start, end)
        record = meeting_record()
        meetings = meetings_between(current, start, end)
        quality = await record.call(call_quality, record, meetings) if record and meetings else {}

        def build() -> str | bytes:
            report = build_report(
                journal, current, config, scope=scope, lang=lang, call_quality=quality
            )
            return render(report, fmt, lang=lang, table=table)

        try:
            body = await asyncio.to_thread(build)
        except RuntimeError as exc:  # PDF without its library
            return _error(str(exc), status=501)
        data = body if isinstance(body, bytes) else body.encode()
        headers: dict[str, Any] = {}
        if fmt in ("csv", "pdf"):
            day = dt.datetime.fromtimestamp(start, zone).date().isoformat()  # local, as asked
            name = f"availability-{month or day}.{fmt}"
            headers["Content-Disposition"] = f'attachment; filename="{name}"'
        return web.Response(
            body=data,
            content_type=CONTENT_TYPES[fmt],
            charset="utf-8" if fmt != "pdf" else None,
            headers=headers,
        )

    return [web.get("/api/v1/reports/availability", availability)]

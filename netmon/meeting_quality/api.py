"""`/api/v1/meetings...`: the recorded meetings, a meeting's quality as JSON, its report.

Read-only routes behind the service's one guard (`netmon/api_access.py`), like every route;
reads run on the database's thread.

- `GET /api/v1/meetings`: {"meetings": [meeting...]}, newest first;
- `GET /api/v1/meetings/{id}/quality[?room=ID...]`: {"meeting", "interval", "poor_mos",
  "rooms": [{id, name, district, summary, timeline}]}, worst rooms first;
- `GET /api/v1/meetings/{id}/report?lang=en|vi[&tz=Area/City]`: the HTML report;
- `GET /meetings`: the same list as a small page with links to the reports.
"""

from __future__ import annotations

import html
import json
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from aiohttp import web

from netmon.meeting_quality.model import POOR_MOS, Meeting
from netmon.meeting_quality.recorder import MeetingRecorder
from netmon.meeting_quality.report import DEFAULT_TZ, hint, render_report
from netmon.meeting_quality.summary import RoomSummary, summarize
from netmon.meeting_quality.texts import LANGS, TEXTS, Lang
from netmon.model import iso


def quality_json(
    meeting: Meeting, rooms: list[RoomSummary], *, now: float, interval: float
) -> dict[str, Any]:
    return {
        "meeting": meeting.to_json(now),
        "interval": interval,
        "poor_mos": POOR_MOS,
        "rooms": [room.to_json(hint(room, "en")) for room in rooms],
    }


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)


def _not_found(meeting_id: str) -> web.Response:
    return web.json_response(
        {"error": f"no recorded meeting {meeting_id!r}"}, status=404, dumps=_dumps
    )


def routes(recorder: MeetingRecorder) -> list[web.RouteDef]:
    db = recorder.db

    async def listing(request: web.Request) -> web.Response:
        meetings = await db.call(db.meetings)
        now = recorder.now()
        return web.json_response({"meetings": [m.to_json(now) for m in meetings]}, dumps=_dumps)

    async def load(request: web.Request) -> tuple[Meeting, list[RoomSummary]] | web.Response:
        meeting_id = request.match_info["id"]
        meeting = await db.call(db.meeting, meeting_id)
        if meeting is None:
            return _not_found(meeting_id)
        wanted = request.query.getall("room", [])
        samples = await db.call(db.samples, meeting_id, wanted)
        rooms = summarize(meeting, samples)
        if wanted:
            rooms = [room for room in rooms if room.room.id in wanted]
        return meeting, rooms

    async def quality(request: web.Request) -> web.Response:
        loaded = await load(request)
        if isinstance(loaded, web.Response):
            return loaded
        meeting, rooms = loaded
        body = quality_json(meeting, rooms, now=recorder.now(), interval=recorder.settings.interval)
        return web.json_response(body, dumps=_dumps)

    async def report(request: web.Request) -> web.Response:
        lang = request.query.get("lang", "en")
        if lang not in LANGS:
            return web.json_response({"error": "lang: en or vi"}, status=400)
        tz = request.query.get("tz", DEFAULT_TZ)
        try:
            ZoneInfo(tz)
        except (ZoneInfoNotFoundError, ValueError):
            return web.json_response({"error": "tz: an IANA time zone name"}, status=400)
        loaded = await load(request)
        if isinstance(loaded, web.Response):
            return loaded
        meeting, rooms = loaded
        page = render_report(
            meeting,
            rooms,
            lang=lang,
            now=recorder.now(),
            interval=recorder.settings.interval,
            tz=tz,
        )
        return web.Response(text=page, content_type="text/html")

    async def page(request: web.Request) -> web.Response:
        lang = request.query.get("lang", "en")
        lang = lang if lang in LANGS else "en"
        meetings = await db.call(db.meetings)
        return web.Response(
            text=meetings_page(meetings, lang, recorder.now()),
            content_type="text/html",
        )

    return [
        web.get("/api/v1/meetings", listing),
        web.get("/api/v1/meetings/{id}/quality", quality),
        web.get("/api/v1/meetings/{id}/report", report),
        web.get("/meetings", page),
    ]


def meetings_page(meetings: list[Meeting], lang: Lang, now: float) -> str:
    words, e = TEXTS[lang], html.escape
    items = "".join(
        f'<li><a href="/api/v1/meetings/{e(m.id)}/report?lang={lang}">'
        f"{e(words['adhoc'] if m.kind == 'adhoc' else m.name)}</a> · {e(iso(m.start) or '')}"
        f" · {e(words['rooms'].format(count=len(m.rooms)))}"
        f"{' · ' + e(words['open']) if m.in_progress(now) else ''}</li>"
        for m in meetings
    )
    return (
        '<!DOCTYPE html><html lang="' + lang + '"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{e(words['title'])}</title></head>"
        '<body style="font-family: system-ui, sans-serif; margin: 1rem">'
        f'<h1 style="font-size:1.3rem">{e(words["title"])}</h1><ul>{items}</ul></body></html>'
    )

"""The demo's meeting: some of its rooms in a call to the province's bridge, so call quality
shows (`netmon demo meeting start|stop`, and these routes the demo hands to the service).

    GET    /api/v1/demo/meeting   the rooms in the meeting
    POST   /api/v1/demo/meeting   {"rooms": [...]} (optional: every room that can) -> 201
    DELETE /api/v1/demo/meeting   end it -> 200 and the rooms that were in it

The rooms are the demo's Cisco and Poly codecs, whose media statistics netmon reads, and its
softphone rooms (netmon_lab.softphones), which make real calls when baresip is installed. Each
call receives what the room's path loses (a `loss` fault on the room), as a call over a bad
link would. Changes from loopback only, as the fault API's.
"""

from __future__ import annotations

from aiohttp import web

from netmon_lab.calls import CallLabError
from netmon_lab.fault_api import MEETING_PATH, _error, _json, _loopback_only
from netmon_lab.rooms import DemoRooms


def meeting_routes(rooms: DemoRooms) -> list[web.RouteDef]:
    async def listing(_request: web.Request) -> web.Response:
        return _json({"rooms": sorted(rooms.meeting), "can_join": rooms.meeting_rooms()})

    async def start(request: web.Request) -> web.Response:
        body = await request.json() if request.can_read_body else {}
        wanted = body.get("rooms") if isinstance(body, dict) else None
        if wanted is not None and not (
            isinstance(wanted, list) and all(isinstance(room, str) for room in wanted)
        ):
            return _error(400, "rooms: a list of room ids", "rooms")
        try:
            joined = await rooms.start_meeting(wanted)
        except ValueError as exc:
            return _error(400, str(exc), "rooms")
        except CallLabError as exc:  # a softphone's real call did not come up
            return _error(503, str(exc), "rooms")
        return _json({"rooms": joined}, 201)

    async def stop(_request: web.Request) -> web.Response:
        return _json({"ended": await rooms.stop_meeting()})

    return [
        web.get(MEETING_PATH, listing),
        web.post(MEETING_PATH, _loopback_only(start)),
        web.delete(MEETING_PATH, _loopback_only(stop)),
    ]

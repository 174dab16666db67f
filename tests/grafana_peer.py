"""A stand-in for Grafana's HTTP API, for `netmon dashboards push`: no Grafana server can be
installed on these machines (no Debian or PyPI package ships one).

`FakeGrafana` answers the routes the push uses the way Grafana 11 documents them, and records
every request it is sent:
    GET  /api/folders            [{"id", "uid", "title"}]
    POST /api/folders            {"title"[, "uid"]} -> the folder; 409 if the title is taken
    POST /api/dashboards/db      {"dashboard", "folderUid", "overwrite": true} -> {"id", "uid",
                                 "url", "status": "success", "version", "slug"}; every save
                                 bumps the version; an unknown folder is 400. netmon always
                                 overwrites, and then Grafana checks neither the version nor
                                 the title (no 412 version-mismatch or name-exists).
Every request needs `Authorization: Bearer <token>`, else 401. `reject(uid, status, body)`
makes the next saves of one dashboard get that answer instead, for the refusals Grafana gives
an overwriting save (pkg/services/dashboards/errors.go): 400 "Cannot save provisioned
dashboard", 403 "Access denied to save dashboard"; a text body is sent as an HTML page.
With `login_page`, every request gets an SSO proxy's sign-in page instead (200, text/html).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    authorization: str
    body: Any


@dataclass
class FakeGrafana:
    token: str
    prefix: str = ""  # Grafana served under a sub-path, as behind a reverse proxy
    requests: list[Request] = field(default_factory=list)
    folders: list[dict[str, Any]] = field(default_factory=list)
    dashboards: dict[str, dict[str, Any]] = field(default_factory=dict)  # uid -> saved
    rejections: dict[str, tuple[int, dict[str, Any] | str]] = field(default_factory=dict)
    login_page: bool = False
    url: str = ""
    _runner: web.AppRunner | None = None

    async def start(self) -> None:
        app = web.Application(middlewares=[self._record_and_authorize])
        app.add_routes(
            [
                web.get(f"{self.prefix}/api/folders", self._folders),
                web.post(f"{self.prefix}/api/folders", self._create_folder),
                web.post(f"{self.prefix}/api/dashboards/db", self._save_dashboard),
            ]
        )
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.url = f"http://127.0.0.1:{port}{self.prefix}"

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    def reject(self, uid: str, status: int, body: dict[str, Any] | str) -> None:
        self.rejections[uid] = (status, body)

    def on(self, method: str, path: str) -> list[Request]:
        return [r for r in self.requests if (r.method, r.path) == (method, self.prefix + path)]

    def save(self, dashboard: dict[str, Any], folder_uid: str) -> dict[str, Any]:
        """What a person saving in Grafana's editor does: a new version of the dashboard."""
        uid = dashboard["uid"]
        previous = self.dashboards.get(uid)
        version = previous["version"] + 1 if previous else 1
        number = previous["id"] if previous else len(self.dashboards) + 1
        saved = {**dashboard, "id": number, "version": version}
        self.dashboards[uid] = {"dashboard": saved, "folderUid": folder_uid, "version": version,
                                "id": number}  # fmt: skip
        slug = re.sub(r"[^a-z0-9]+", "-", dashboard["title"].lower()).strip("-")
        return {"id": number, "uid": uid, "url": f"/d/{uid}/{slug}", "status": "success",
                "version": version, "slug": slug}  # fmt: skip

    @web.middleware
    async def _record_and_authorize(self, request: web.Request, handler: Any) -> web.StreamResponse:
        text = await request.text()
        self.requests.append(
            Request(
                request.method,
                request.path,
                request.headers.get("Authorization", ""),
                json.loads(text) if text else None,
            )
        )
        if self.login_page:
            return _html(200, "Sign in")
        if request.headers.get("Authorization") != f"Bearer {self.token}":
            return web.json_response({"message": "invalid API key"}, status=401)
        response: web.StreamResponse = await handler(request)
        return response

    async def _folders(self, _request: web.Request) -> web.Response:
        return web.json_response(
            [{key: f[key] for key in ("id", "uid", "title")} for f in self.folders]
        )

    async def _create_folder(self, request: web.Request) -> web.Response:
        body = await request.json()
        title = body.get("title", "")
        if any(f["title"] == title for f in self.folders):
            return web.json_response(
                {"message": "a folder with the same name already exists"}, status=409
            )
        number = len(self.folders) + 1
        folder = {"id": number, "uid": body.get("uid") or f"folder{number:04d}", "title": title,
                  "url": f"/dashboards/f/folder{number:04d}/", "version": 1}  # fmt: skip
        self.folders.append(folder)
        return web.json_response(folder)

    async def _save_dashboard(self, request: web.Request) -> web.Response:
        body = await request.json()
        dashboard = body.get("dashboard") or {}
        uid = dashboard.get("uid", "")
        if uid in self.rejections:
            status, answer = self.rejections[uid]
            if isinstance(answer, str):
                return _html(status, answer)
            return web.json_response(answer, status=status)
        if not dashboard.get("title"):
            return web.json_response({"message": "Dashboard title cannot be empty"}, status=400)
        folder_uid = body.get("folderUid", "")
        if folder_uid and not any(f["uid"] == folder_uid for f in self.folders):
            return web.json_response(
                {"message": "folder not found", "status": "not-found"}, status=400
            )
        if body.get("overwrite") is not True:
            return web.json_response(
                {"message": "the fake models overwriting saves only"}, status=501
            )
        return web.json_response(self.save(dashboard, folder_uid))


def _html(status: int, title: str) -> web.Response:
    return web.Response(
        status=status,
        text=f"<!DOCTYPE html><html><head><title>{title}</title></head><body></body></html>",
        content_type="text/html",
    )

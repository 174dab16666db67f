"""The HTTP guard in front of every route (netmon/api_access.py), against a running Service:
what a web page in a browser on the netmon host can and cannot do, and token rotation."""

from __future__ import annotations

import datetime as dt
import json
import socket
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from netmon.config.loader import load_file
from netmon.service import Service
from netmon_lab.fault_api import PATH, fault_routes
from tests.helpers import write_config
from tests.test_demo_faults import FakeLab, _injector

OLD_TOKEN = "old-token-0123456789abcdef"  # noqa: S105 (test tokens)
NEW_TOKEN = "new-token-0123456789abcdef"  # noqa: S105
SILENCE = {"matchers": {"target": "ep1"}, "duration": 600, "comment": "maintenance"}
Session = aiohttp.ClientSession
Scenario = Callable[[Service, Session], Awaitable[None]]


def _config(path: Path, **http: Any) -> Path:
    return write_config(
        path,
        {
            "http": {"listen": "127.0.0.1:0", **http},
            "targets": [{"id": "ep1", "address": "192.0.2.10", "probes": [], "district": "D1"}],
        },
    )


async def _run(tmp_path: Path, scenario: Scenario, *, faults: bool = False, **http: Any) -> None:
    path = _config(tmp_path / "config.yaml", **http)
    routes = fault_routes(_injector(FakeLab(), network=False)) if faults else ()
    service = Service(
        inventory=load_file(path),
        config_path=path,
        alert_db=tmp_path / "alerts.db",
        extra_routes=routes,
    )
    failure: list[BaseException] = []

    async def on_ready(running: Service) -> None:
        try:
            async with aiohttp.ClientSession(running.http_url) as session:
                await scenario(running, session)
        except BaseException as exc:  # re-raised once the service has stopped
            failure.append(exc)
        finally:
            running.stop()

    await service.run(on_ready=on_ready)
    if failure:
        raise failure[0]


async def _send(
    session: Session, method: str, path: str, *, body: str | None = None, **headers: str
) -> tuple[int, Any]:
    async with session.request(method, path, data=body, headers=headers) as response:
        return response.status, await response.json(content_type=None)


JSON = {"Content-Type": "application/json"}


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/api/v1/silences", json.dumps(SILENCE)),
        ("/api/v1/checks", json.dumps({"district": "D1"})),
        (PATH, json.dumps({"kind": "endpoint-down", "target": "ep1"})),
    ],
)
@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded"])
async def test_a_change_sent_as_a_simple_cross_site_form_is_refused(
    tmp_path: Path, path: str, body: str, content_type: str
) -> None:
    async def scenario(_service: Service, session: Session) -> None:
        status, answer = await _send(
            session, "POST", path, body=body, **{"Content-Type": content_type}
        )
        assert status == 415, answer
        assert "application/json" in answer["error"]
        status, answer = await _send(session, "GET", "/api/v1/silences")
        assert answer["silences"] == []

    await _run(tmp_path, scenario, faults=True)


async def test_a_change_from_another_sites_page_is_refused_and_netmons_own_is_taken(
    tmp_path: Path,
) -> None:
    async def scenario(service: Service, session: Session) -> None:
        body = json.dumps(SILENCE)
        evil = {**JSON, "Origin": "http://evil.example"}
        status, answer = await _send(session, "POST", "/api/v1/silences", body=body, **evil)
        assert status == 403, answer
        assert "Origin" in answer["error"]
        status, answer = await _send(session, "POST", PATH, body="{}", **evil)
        assert status == 403, answer
        own = {**JSON, "Origin": service.http_url}
        status, created = await _send(session, "POST", "/api/v1/silences", body=body, **own)
        assert status == 201, created
        gone = f"/api/v1/silences/{created['id']}"
        status, answer = await _send(session, "DELETE", gone, Origin="null")
        assert status == 403, answer
        status, answer = await _send(session, "DELETE", gone, Origin=service.http_url)
        assert status == 200, answer

    await _run(tmp_path, scenario, faults=True)


async def test_a_rebound_dns_name_cannot_read_the_api(tmp_path: Path) -> None:
    async def scenario(service: Service, session: Session) -> None:
        port = service.http_url.rsplit(":", 1)[1]
        for path in ("/api/v1/targets", "/metrics", "/"):
            status, answer = await _send(session, "GET", path, Host=f"attacker.example:{port}")
            assert status == 421, (path, answer)
            assert "attacker.example" in answer["error"]
        for host in (f"localhost:{port}", f"127.0.0.1:{port}", f"[::1]:{port}",
                     f"{socket.gethostname()}:{port}", f"netmon.example.org:{port}"):  # fmt: skip
            async with session.get("/api/v1/targets", headers={"Host": host}) as response:
                assert response.status == 200, host

    await _run(tmp_path, scenario, allowed_hosts=["netmon.example.org"])


async def test_a_token_rotated_by_reload_replaces_the_old_one(tmp_path: Path) -> None:
    async def scenario(service: Service, session: Session) -> None:
        body = json.dumps(SILENCE)
        status, _ = await _send(
            session, "POST", "/api/v1/silences", body=body,
            Authorization=f"Bearer {OLD_TOKEN}", **JSON,
        )  # fmt: skip
        assert status == 201
        _config(tmp_path / "config.yaml", token=NEW_TOKEN)
        assert await service.reload()
        for token, expected in ((OLD_TOKEN, 401), (NEW_TOKEN, 201)):
            status, answer = await _send(
                session, "POST", "/api/v1/silences", body=body,
                Authorization=f"Bearer {token}", **JSON,
            )  # fmt: skip
            assert status == expected, (token, answer)

    await _run(tmp_path, scenario, token=OLD_TOKEN)


@pytest.mark.parametrize("ends_at", ["9999-01-01T00:00:00Z", "2200-06-01T00:00:00+07:00"])
async def test_a_silence_ending_past_the_longest_duration_is_refused(
    tmp_path: Path, ends_at: str
) -> None:
    async def scenario(_service: Service, session: Session) -> None:
        body = json.dumps({"matchers": {"target": "ep1"}, "ends_at": ends_at})
        status, answer = await _send(session, "POST", "/api/v1/silences", body=body, **JSON)
        assert status == 400, answer
        assert answer["error"].startswith("ends_at: ")
        soon = dt.datetime.now(dt.UTC) + dt.timedelta(days=30)
        body = json.dumps({"matchers": {"target": "ep1"}, "ends_at": soon.isoformat()})
        status, answer = await _send(session, "POST", "/api/v1/silences", body=body, **JSON)
        assert status == 201, answer
        status, answer = await _send(session, "GET", "/api/v1/silences")
        assert [s["ends_at"] for s in answer["silences"]] == [soon.isoformat()]

    await _run(tmp_path, scenario)


@pytest.mark.parametrize(
    ("scope", "field"),
    [
        ({"district": 5}, "district"),
        ({"group": ["a"]}, "group"),
        ({"meeting": {"a": 1}}, "meeting"),
    ],
)
async def test_a_check_scope_of_the_wrong_type_is_a_clear_error(
    tmp_path: Path, scope: dict[str, Any], field: str
) -> None:
    async def scenario(_service: Service, session: Session) -> None:
        body = json.dumps(scope)
        status, answer = await _send(session, "POST", "/api/v1/checks", body=body, **JSON)
        assert status == 400, answer
        assert answer["error"].startswith(f"{field}: ")

    await _run(tmp_path, scenario)


# Found by the fuzz campaign (tests/test_fuzz.py): 500s, and a 413 in plain text.
@pytest.mark.parametrize(
    ("body", "content_type", "expected"),
    [
        ("{}", "application/json; charset=nonsense", 400),  # LookupError
        ("[" * 200_000 + "]" * 200_000, "application/json", 400),  # RecursionError
        ('{"a":' * 250_000 + "1" + "}" * 250_000, "application/json", 413),  # over 1 MiB
    ],
)
async def test_a_body_that_cannot_be_decoded_is_a_json_refusal(
    tmp_path: Path, body: str, content_type: str, expected: int
) -> None:
    async def scenario(_service: Service, session: Session) -> None:
        for path in ("/api/v1/silences", "/api/v1/checks"):
            headers = {"Content-Type": content_type}
            status, answer = await _send(session, "POST", path, body=body, **headers)
            assert status == expected, answer
            assert answer["error"]

    await _run(tmp_path, scenario)

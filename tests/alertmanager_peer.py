"""A real Alertmanager owned by a test, and the fixtures that start it.

`Alertmanager` runs `prometheus-alertmanager` on a free loopback port with a generated config
(or one a test gives), gossip off, its storage in the test's tmp dir. It can be stopped and
started again on the same port, with or without its storage, and reads what Alertmanager holds
through GET /api/v2/alerts.

From another test module: `pytest.register_assert_rewrite("tests.alertmanager_peer")` before
importing from it, and `pytest_plugins = ["tests.alertmanager_peer"]` for the fixtures (or list
it in conftest.py's `pytest_plugins` once, which makes both lines unnecessary).
`alertmanager` is one instance with a do-nothing receiver; `alertmanager_factory(config=...)`
starts as many as a test needs. All are stopped after the test. `http_recorder` is an HTTP
server that records what it is sent: a webhook receiver, or a stand-in for a broken peer.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import ssl
import subprocess
import time
import urllib.parse
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest
import yaml
from aiohttp import web

from tests.conftest import require_program
from tests.helpers import http_get, wait_until
from tests.peers import free_port, terminate

T = TypeVar("T")

# Every alert to one receiver that notifies nobody; flushed at once so states settle quickly.
DEFAULT_CONFIG: dict[str, Any] = {
    "route": {
        "receiver": "null",
        "group_by": ["..."],
        "group_wait": "0s",
        "group_interval": "1s",
        "repeat_interval": "1h",
    },
    "receivers": [{"name": "null"}],
}


class Alertmanager:
    """prometheus-alertmanager on 127.0.0.1:`port`, owned by a test."""

    def __init__(
        self,
        workdir: Path,
        *,
        config: Mapping[str, Any] | str | Path | None = None,
        binary: str | None = None,
        port: int | None = None,
        cluster_port: int | None = None,
        peers: Sequence[int] = (),
    ) -> None:
        # A cluster member gossips on `cluster_port` with the members on `peers` (loopback).
        self.cluster_port = cluster_port
        self.peers = list(peers)
        self.binary = binary or require_program("prometheus-alertmanager")
        workdir.mkdir(parents=True, exist_ok=True)
        self.workdir = workdir
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.storage = workdir / "storage"
        self.log_file = workdir / "alertmanager.log"
        if isinstance(config, Path):
            self.config_file = config
        else:
            self.config_file = workdir / "alertmanager.yml"
            text = (
                config
                if isinstance(config, str)
                else yaml.safe_dump(dict(config or DEFAULT_CONFIG))
            )
            self.config_file.write_text(text)
        self.process: subprocess.Popen[bytes] | None = None
        self.start()

    def start(self) -> None:
        """Start on the same port as before and wait until it answers /-/healthy."""
        if self.running:
            raise AssertionError("alertmanager is already running")
        with self.log_file.open("a") as log:
            self.process = subprocess.Popen(
                [
                    self.binary, f"--config.file={self.config_file}",
                    f"--storage.path={self.storage}",
                    f"--web.listen-address=127.0.0.1:{self.port}",
                    *self._cluster_options(),
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
            )  # fmt: skip
        wait_until(self._healthy, timeout=15, interval=0.02, what="alertmanager /-/healthy")

    def _cluster_options(self) -> list[str]:
        if self.cluster_port is None:
            # One instance per test: no gossip, no cluster port to collide on.
            return ["--cluster.listen-address="]
        return [
            f"--cluster.listen-address=127.0.0.1:{self.cluster_port}",
            f"--cluster.advertise-address=127.0.0.1:{self.cluster_port}",
            *(f"--cluster.peer=127.0.0.1:{peer}" for peer in self.peers),
            # Loopback gossip settles at once; the defaults are for a WAN.
            "--cluster.gossip-interval=50ms",
            "--cluster.pushpull-interval=1s",
            "--cluster.peer-timeout=3s",
            "--cluster.settle-timeout=2s",
        ]

    def stop(self) -> None:
        if self.process is None:
            return
        terminate(self.process)
        self.process = None

    def restart(self, *, keep_storage: bool = True) -> None:
        """Stop and start again on the same port. Alerts live only in memory, so they are gone
        either way; `keep_storage=False` also forgets silences and the notification log."""
        self.stop()
        if not keep_storage:
            shutil.rmtree(self.storage, ignore_errors=True)
        self.start()

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def _healthy(self) -> bool:
        if self.process is not None and self.process.poll() is not None:
            raise AssertionError(
                f"alertmanager exited with {self.process.returncode}:\n{self.log_text()[-2000:]}"
            )
        try:
            return http_get(self.url + "/-/healthy", timeout=1)[0] == 200
        except OSError:
            return False

    def log_text(self) -> str:
        return self.log_file.read_text(errors="replace") if self.log_file.exists() else ""

    def alerts(
        self,
        *,
        active: bool = True,
        silenced: bool = True,
        inhibited: bool = True,
        unprocessed: bool = True,
        receiver: str | None = None,
        **labels: str,
    ) -> list[dict[str, Any]]:
        """GET /api/v2/alerts: the alerts Alertmanager holds whose labels include `labels`.

        Resolved alerts (endsAt in the past) are never listed: that is how the API says an
        alert is over. `active` etc. are the API's state filters (all states by default).
        """
        return self._get_alerts(
            {"active": active, "silenced": silenced, "inhibited": inhibited,
             "unprocessed": unprocessed},
            receiver,
            labels,
        )  # fmt: skip

    def label_sets(self, **labels: str) -> list[dict[str, str]]:
        """Just the label sets of every alert held whose labels include `labels`."""
        return [alert["labels"] for alert in self._get_alerts({}, None, labels)]

    def _get_alerts(
        self, states: Mapping[str, bool], receiver: str | None, labels: Mapping[str, str]
    ) -> list[dict[str, Any]]:
        query = [(state, str(wanted).lower()) for state, wanted in states.items()]
        query += [("filter", f"{name}={_quoted(value)}") for name, value in labels.items()]
        if receiver is not None:
            query.append(("receiver", receiver))
        status, _, body = http_get(f"{self.url}/api/v2/alerts?{urllib.parse.urlencode(query)}")
        assert status == 200, body
        found: list[dict[str, Any]] = json.loads(body)
        return found


def _quoted(value: str) -> str:
    # Alertmanager's matcher syntax unescapes only backslash, quote and newline.
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{escaped}"'


async def eventually(condition: Callable[[], T], *, timeout: float = 10.0, what: str = "") -> T:
    """Poll `condition` until it is truthy without blocking the loop for long (the sinks and
    the recorder under test run on it)."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what or condition}")
        await asyncio.sleep(0.05)


class HttpRecorder:
    """An HTTP server of the test's own that records every request it gets.

    It stands for whatever is on the far side of an HTTP sink or an Alertmanager receiver. It
    answers 200, or what `answers[path]` says (a status, or a status and a body), with
    `headers[path]` if any; `delay` holds every answer back, to play a peer that does not
    answer in time.
    """

    def __init__(self) -> None:
        self.requests: list[RecordedRequest] = []
        self.answers: dict[str, int | tuple[int, str]] = {}
        self.headers: dict[str, dict[str, str]] = {}
        self.delay = 0.0
        self.url = ""
        self._runner: web.AppRunner | None = None

    async def start(self, *, tls: ssl.SSLContext | None = None) -> None:
        """Listen on a free loopback port; HTTPS with `tls` (a server context)."""
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0, ssl_context=tls)
        await site.start()
        port = self._runner.addresses[0][1]
        self.url = f"{'https' if tls else 'http'}://127.0.0.1:{port}"

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        self.requests.append(
            RecordedRequest(request.method, request.path_qs, dict(request.headers), body)
        )
        if self.delay:
            await asyncio.sleep(self.delay)
        answer = self.answers.get(request.path, 200)
        status, text = answer if isinstance(answer, tuple) else (answer, "")
        return web.Response(status=status, text=text, headers=self.headers.get(request.path))

    def on(self, path: str) -> list[RecordedRequest]:
        return [request for request in self.requests if request.path.split("?")[0] == path]


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@pytest.fixture
async def http_recorder() -> AsyncIterator[HttpRecorder]:
    recorder = HttpRecorder()
    await recorder.start()
    try:
        yield recorder
    finally:
        await recorder.close()


AlertmanagerFactory = Callable[..., Alertmanager]


@pytest.fixture
def alertmanager_factory(tmp_path: Path) -> Iterator[AlertmanagerFactory]:
    """Start Alertmanagers: `factory(config=None | dict | YAML text | Path)`; all are stopped
    after the test."""
    started: list[Alertmanager] = []

    def start(*, config: Mapping[str, Any] | str | Path | None = None) -> Alertmanager:
        peer = Alertmanager(tmp_path / f"alertmanager-{len(started)}", config=config)
        started.append(peer)
        return peer

    try:
        yield start
    finally:
        for peer in started:
            peer.stop()


@pytest.fixture
def alertmanager(alertmanager_factory: AlertmanagerFactory) -> Alertmanager:
    """One Alertmanager with a receiver that notifies nobody."""
    return alertmanager_factory()

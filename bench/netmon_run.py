"""The real service under a campaign: `netmon run` as a child process, and its webhook's far end.

What `make lossy-links` and `make storm` share: a config checked with `netmon validate`
before the run, netmon started with its JSON log in the run's directory and stopped with
SIGTERM (killed if it lingers), and an aiohttp receiver in the bench's own process that stamps
every alert event on arrival.
"""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Self

import aiohttp
import yaml
from aiohttp import web

NETMON = Path(sys.executable).with_name("netmon")


class HarnessError(RuntimeError):
    """The campaign itself could not be run or measured (not a goal missed)."""


def write_config(workdir: Path, config: dict[str, Any]) -> Path:
    """`config` as the run's netmon.yaml, refused here if `netmon validate` refuses it."""
    path = workdir / "netmon.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    result = subprocess.run(
        [str(NETMON), "validate", "--config", str(path)], capture_output=True, text=True
    )
    if result.returncode:
        raise HarnessError(f"netmon rejects the campaign's config:\n{result.stdout}{result.stderr}")
    return path


class AlertReceiver:
    """The webhook sink's far end: every alert event, with its arrival time (unix seconds)."""

    def __init__(self) -> None:
        self.alerts: list[tuple[float, dict[str, Any]]] = []
        self.url = ""
        self._runner: web.AppRunner | None = None

    async def __aenter__(self) -> AlertReceiver:
        app = web.Application()
        app.router.add_post("/alerts", self._receive)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0).start()
        self.url = f"http://127.0.0.1:{self._runner.addresses[0][1]}/alerts"
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _receive(self, request: web.Request) -> web.Response:
        arrival = time.time()
        body = await request.json()
        self.alerts.append((arrival, body["alert"]))
        return web.Response(text="ok")


class NetmonRun:
    """`netmon run` as a child process, its JSON log in the run's directory."""

    def __init__(
        self,
        config: Path,
        workdir: Path,
        port: int,
        *,
        command: Sequence[str] = (),  # in place of the netmon script: bench/storm_memory.py
        env: dict[str, str] | None = None,
    ) -> None:
        self._command = list(command) or [str(NETMON)]
        self._env = env
        self._config = config
        self._workdir = workdir
        self.log = workdir / "netmon.log"
        self.url = f"http://127.0.0.1:{port}"
        self.process: asyncio.subprocess.Process | None = None

    async def __aenter__(self) -> Self:
        with self.log.open("wb") as log:
            self.process = await asyncio.create_subprocess_exec(
                *self._command, "run", "--config", str(self._config), "--log-format", "json",
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, cwd=self._workdir,
                env=self._env,
            )  # fmt: skip
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        process = self.process
        if process is None or process.returncode is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            async with asyncio.timeout(15):
                await process.wait()
        except TimeoutError:
            process.kill()
            await process.wait()

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def check_running(self) -> None:
        if self.process is None or self.process.returncode is not None:
            tail = self.log.read_text(errors="replace")[-3000:] if self.log.exists() else ""
            raise HarnessError(f"netmon exited early; the end of its log:\n{tail}")

    async def get(self, session: aiohttp.ClientSession, path: str) -> tuple[int, str]:
        timeout = aiohttp.ClientTimeout(total=10)
        async with session.get(self.url + path, timeout=timeout) as response:
            return response.status, await response.text()

    async def until_ready(self, session: aiohttp.ClientSession, timeout: float) -> None:
        """Wait until netmon answers /-/ready (10,000 targets take a while to start)."""
        deadline = time.monotonic() + timeout
        while True:
            self.check_running()
            try:
                status, _ = await self.get(session, "/-/ready")
                if status == 200:
                    return
            except (aiohttp.ClientError, TimeoutError):  # a slow start (tracemalloc) times out
                pass
            if time.monotonic() > deadline:
                raise HarnessError(f"netmon not ready in {timeout:g} s (log: {self.log})")
            await asyncio.sleep(0.5)

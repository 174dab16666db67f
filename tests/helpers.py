"""What the tests share: waiting for conditions, and a netmon process owned by a test."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import yaml

T = TypeVar("T")


def wait_until(
    condition: Callable[[], T],
    *,
    timeout: float = 10.0,
    interval: float = 0.05,
    what: str = "",
    showing: Callable[[], object] | None = None,
) -> T:
    """Poll until `condition()` is truthy; return its value or fail after `timeout`, with what
    `showing()` returns then when given (a yes/no condition alone cannot say how near it came)."""
    deadline = time.monotonic() + timeout
    last: T = condition()
    while not last:
        if time.monotonic() > deadline:
            seen = f"; at the end: {showing()}" if showing is not None else ""
            raise AssertionError(
                f"timed out after {timeout}s waiting for {what or condition}{seen}"
            )
        time.sleep(interval)
        last = condition()
    return last


def http_get(url: str, *, accept: str | None = None, timeout: float = 5.0) -> tuple[int, str, str]:
    request = urllib.request.Request(url, headers={"Accept": accept} if accept else {})  # noqa: S310
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
            return response.status, response.headers["Content-Type"], response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers["Content-Type"], exc.read().decode()


def netmon_command() -> list[str]:
    found = shutil.which("netmon", path=str(Path(sys.executable).parent))
    return [found] if found else [sys.executable, "-m", "netmon"]


def write_config(path: Path, data: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return path


async def until(
    condition: Callable[[], object],
    *,
    timeout: float = 10.0,
    interval: float = 0.01,
    what: str = "",
) -> None:
    """`wait_until` for a test on the event loop: the loop keeps running while it waits."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what or condition}")
        await asyncio.sleep(interval)


async def poll(
    fetch: Callable[[], Awaitable[T]],
    done: Callable[[T], object],
    *,
    timeout: float = 10.0,
    interval: float = 0.05,
    what: str = "",
) -> T:
    """Ask `fetch()` again until `done` holds for its answer; the answer, or a failure that
    shows the last one."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        seen = await fetch()
        if done(seen):
            return seen
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}; last: {seen}")
        await asyncio.sleep(interval)


class NetmonProcess:
    """`netmon run` as a child process, with its JSON log events collected as they come."""

    def __init__(self, config: Path, *, extra_args: list[str] | None = None) -> None:
        self.config = config
        self.events: list[dict[str, Any]] = []
        self.stderr_lines: list[str] = []
        self.process = subprocess.Popen(
            [
                *netmon_command(), "run", "--config", str(config),
                "--listen", "127.0.0.1:0", "--log-format", "json", *(extra_args or []),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )  # fmt: skip
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        running = wait_until(
            lambda: self.event("netmon running") or self.process.poll() is not None,
            timeout=15,
            what="netmon to start",
        )
        if running is True:
            raise AssertionError(f"netmon exited early:\n{''.join(self.stderr_lines)}")
        self.url = str(self.event("netmon running")["url"])  # type: ignore[index]

    def _read(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self.stderr_lines.append(line)
            with contextlib.suppress(json.JSONDecodeError):
                self.events.append(json.loads(line))

    def event(self, msg: str) -> dict[str, Any] | None:
        for event in reversed(self.events):
            if event.get("msg") == msg:
                return event
        return None

    def get(self, path: str, *, accept: str | None = None) -> tuple[int, str, str]:
        return http_get(self.url + path, accept=accept)

    def metrics(self) -> str:
        status, _, body = self.get("/metrics")
        assert status == 200
        return body

    def signal(self, sig: signal.Signals) -> None:
        self.process.send_signal(sig)

    def stop(self, timeout: float = 5.0) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._reader.join(timeout=2)
        return self.process.returncode


def metric_value(text: str, name: str, **labels: str) -> float | None:
    """The value of the first sample of `name` whose labels include `labels`."""
    for family in _parse(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return float(sample.value)
    return None


def samples(text: str, name: str) -> list[tuple[dict[str, str], float]]:
    return [
        (dict(sample.labels), float(sample.value))
        for family in _parse(text)
        for sample in family.samples
        if sample.name == name
    ]


def _parse(text: str) -> list[Any]:
    from prometheus_client.parser import text_string_to_metric_families

    return list(text_string_to_metric_families(text))

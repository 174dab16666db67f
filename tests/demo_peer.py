"""`netmon demo` as a child process, for the tests that need the whole demo running."""

from __future__ import annotations

import json
import os
import re
import subprocess
import threading
import urllib.error
import urllib.request
from typing import Any

from netmon_lab.fault_api import PATH
from tests.helpers import netmon_command, samples, wait_until


def call(method: str, url: str, body: object = None) -> tuple[int, Any]:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(  # noqa: S310
        url, data=data, method=method, headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=15) as response:  # noqa: S310
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


class Demo:
    """`netmon demo` as a child process, with its output collected as it comes."""

    def __init__(self, *prefix: str, mqtt: str = "", alertmanager: str = "") -> None:
        self.lines: list[str] = []
        self.process = subprocess.Popen(
            [
                *prefix,
                *netmon_command(),
                "demo",
                "--listen",
                "127.0.0.1:0",
                "--mqtt",
                mqtt,
                "--alertmanager",
                alertmanager,
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        match = wait_until(
            lambda: (
                re.search(r"metrics\s+(http://\S+)/metrics", self.output)
                or self.process.poll() is not None
            ),
            timeout=30,
            what="the demo to print its URLs",
        )
        if match is True:
            raise AssertionError(f"the demo exited early:\n{self.output}")
        self.url = match.group(1)  # type: ignore[union-attr]
        self.touched: set[str] = set()  # endpoints the tests have faulted

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line)

    @property
    def output(self) -> str:
        return "".join(self.lines)

    def call(self, method: str, body: object = None, suffix: str = "") -> tuple[int, Any]:
        return call(method, self.url + PATH + suffix, body)

    def inject(self, body: dict[str, Any]) -> dict[str, Any]:
        status, fault = self.call("POST", body)
        assert status == 201, fault
        self.touched.update(fault["endpoints"])
        return dict(fault)

    def faults(self, *, standing: bool) -> list[dict[str, Any]]:
        """The faults in force: the lab's standing ones, or those injected since it started."""
        status, listing = self.call("GET")
        assert status == 200, listing
        return [f for f in listing["faults"] if f["standing"] is standing]

    def metrics(self) -> str:
        with urllib.request.urlopen(self.url + "/metrics", timeout=10) as response:  # noqa: S310
            return str(response.read().decode())

    def alerts(self) -> list[dict[str, Any]]:
        status, document = call("GET", f"{self.url}/api/v1/alerts")
        assert status == 200
        return list(document["alerts"])

    def target(self, target: str) -> dict[str, Any]:
        status, document = call("GET", f"{self.url}/api/v1/targets/{target}")
        assert status == 200
        return dict(document)

    def up(self) -> dict[str, float]:
        return {
            labels["target"]: value
            for labels, value in samples(self.metrics(), "netmon_target_up")
            if labels["kind"] == "endpoint"
        }

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._reader.join(timeout=2)
        return self.process.returncode

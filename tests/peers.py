"""Real peer programs owned by tests: started on a free loopback port, stopped afterwards."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import yaml

from netmon_lab.snmpsim import free_udp_port, snmp_answers
from tests.helpers import http_get, wait_until


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def terminate(process: subprocess.Popen[Any]) -> None:
    """SIGTERM, and SIGKILL if the peer has not gone within 10 s."""
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


class _ChildPeer:
    """A peer program run as a child process with its output in a log file."""

    process: subprocess.Popen[bytes]
    log: Any

    def stop(self) -> None:
        terminate(self.process)
        self.log.close()


class Prometheus(_ChildPeer):
    """A Prometheus server with a generated scrape config (never Debian's default one)."""

    def __init__(
        self,
        binary: str,
        workdir: Path,
        scrape_targets: dict[str, list[str]],
        *,
        rule_files: list[Path] | None = None,
        scrape_interval: str = "1s",
        evaluation_interval: str = "1s",
        scrape_configs: list[dict[str, Any]] | None = None,
        remote_write: list[str] | None = None,
    ) -> None:
        config: dict[str, Any] = {
            "global": {
                "scrape_interval": scrape_interval,
                "evaluation_interval": evaluation_interval,
            },
            "scrape_configs": [
                {"job_name": job, "static_configs": [{"targets": targets}]}
                for job, targets in scrape_targets.items()
            ]
            + list(scrape_configs or []),
        }
        if rule_files:
            config["rule_files"] = [str(path) for path in rule_files]
        if remote_write:
            # Sent within a second of the scrape, so what the far side holds is current.
            config["remote_write"] = [
                {"url": url, "queue_config": {"batch_send_deadline": "1s"}} for url in remote_write
            ]
        config_file = workdir / "prometheus.yml"
        config_file.write_text(yaml.safe_dump(config))
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = (workdir / "prometheus.log").open("w")
        self.process = subprocess.Popen(
            [
                binary, f"--config.file={config_file}", f"--storage.tsdb.path={workdir / 'tsdb'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
            ],
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )  # fmt: skip
        wait_until(self._ready, timeout=30, what="prometheus /-/ready")

    def _ready(self) -> bool:
        if self.process.poll() is not None:
            raise AssertionError(f"prometheus exited with {self.process.returncode}")
        try:
            return http_get(self.url + "/-/ready", timeout=1)[0] == 200
        except OSError:
            return False

    def api(self, path: str, params: dict[str, str], *, method: str = "POST") -> dict[str, Any]:
        """A call of the HTTP API (POST fits long queries); the JSON answer, errors included."""
        encoded = urllib.parse.urlencode(params)
        request = urllib.request.Request(  # noqa: S310 - our own server on loopback
            self.url + path + (f"?{encoded}" if method == "GET" else ""),
            data=encoded.encode() if method == "POST" else None,
            method=method,
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
                answer: dict[str, Any] = json.loads(response.read())
        except urllib.error.HTTPError as exc:
            answer = json.loads(exc.read())
        return answer

    def query(self, expr: str) -> list[dict[str, Any]]:
        status, _, body = http_get(
            f"{self.url}/api/v1/query?{urllib.parse.urlencode({'query': expr})}"
        )
        assert status == 200, body
        result: list[dict[str, Any]] = json.loads(body)["data"]["result"]
        return result


class VictoriaMetrics(_ChildPeer):
    """A single-node VictoriaMetrics (Debian's victoria-metrics): Prometheus' remote_write in,
    Prometheus' query API out, as the long-term store of deploy/compose.yaml."""

    def __init__(self, binary: str, workdir: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.write_url = self.url + "/api/v1/write"
        self.log = (workdir / "victoria-metrics.log").open("w")
        self.process = subprocess.Popen(
            [
                binary, f"-storageDataPath={workdir / 'victoria-metrics'}",
                f"-httpListenAddr=127.0.0.1:{self.port}",
                # Queries see data a second old, not 30 s (the default, for late writers).
                "-search.latencyOffset=1s", "-search.disableCache",
            ],
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )  # fmt: skip
        wait_until(self._ready, timeout=30, what="victoria-metrics /health")

    def _ready(self) -> bool:
        if self.process.poll() is not None:
            raise AssertionError(f"victoria-metrics exited with {self.process.returncode}")
        try:
            return http_get(self.url + "/health", timeout=1)[0] == 200
        except OSError:
            return False

    api = Prometheus.api
    query = Prometheus.query


class _SnmpPeer(_ChildPeer):
    """A child process answering SNMP on 127.0.0.1:port."""

    port: int
    community: str

    def wait_ready(self, *, timeout: float) -> None:
        def ready() -> bool:
            if self.process.poll() is not None:
                raise AssertionError(f"{self.process.args!r} exited with {self.process.returncode}")
            return snmp_answers(self.port, self.community)

        wait_until(ready, timeout=timeout, what=f"{type(self).__name__} to answer")


class Snmpd(_SnmpPeer):
    """net-snmp's snmpd on a free loopback UDP port with a generated config.

    The config and snmpd's persistent directory are kept apart: snmpd rewrites the
    snmpd.conf in its persistent directory when it stops.
    """

    def __init__(self, binary: str, workdir: Path, *, community: str = "public",
                 extra_config: str = "") -> None:  # fmt: skip
        self.port = free_udp_port()
        self.community = community
        conf_dir = workdir / "snmpd-conf"
        persist = workdir / "snmpd-persist"
        conf_dir.mkdir(parents=True, exist_ok=True)
        persist.mkdir(parents=True, exist_ok=True)
        config = conf_dir / "snmpd.conf"
        config.write_text(
            f"agentAddress udp:127.0.0.1:{self.port}\n"
            f"rocommunity {community} default\n"
            "dontLogTCPWrappersConnects yes\n" + extra_config
        )
        self.log = (workdir / "snmpd.log").open("w")
        self.process = subprocess.Popen(
            [binary, "-f", "-Le", "-C", "-c", str(config), "-p", str(conf_dir / "snmpd.pid")],
            stdout=self.log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "MIBS": "", "SNMP_PERSISTENT_DIR": str(persist)},
        )
        self.wait_ready(timeout=15)


class SnmpSim(_SnmpPeer):
    """snmpsim serving the .snmprec files of `data_dir` (the community picks the file)."""

    def __init__(self, data_dir: Path, workdir: Path, *, probe_community: str) -> None:
        import shutil
        import sys

        binary = shutil.which("snmpsim-command-responder", path=str(Path(sys.executable).parent))
        if binary is None:
            raise AssertionError("snmpsim is not installed: `make test` installs the lab extra")
        self.port = free_udp_port()
        self.log = (workdir / "snmpsim.log").open("w")
        cache = workdir / "snmpsim-cache"
        cache.mkdir(exist_ok=True)
        self.process = subprocess.Popen(
            [binary, f"--data-dir={data_dir}", f"--cache-dir={cache}",
             f"--agent-udpv4-endpoint=127.0.0.1:{self.port}"],
            stdout=self.log, stderr=subprocess.STDOUT,
            env={**os.environ, "SNMPSIM_ALLOW_ROOT": "true"},
        )  # fmt: skip
        self.community = probe_community
        self.wait_ready(timeout=60)

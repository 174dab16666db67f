"""Peer programs for the benchmarks: each on a free loopback port, owned by the bench.

A `Peer` is one foreground process with its output in a log file of the bench's temporary
directory. `stop()` sends SIGTERM to its pid, waits, and kills it if it lingers, so a run
leaves nothing behind. The starters below write a minimal config for Mosquitto, Prometheus,
Alertmanager, blackbox_exporter and snmptrapd, with what each program needs here (Mosquitto's
config readable by the user it drops to as root, Alertmanager without gossip, snmptrapd with
only our config); nothing of the machine's own configuration is read or changed. No network
I/O of its own beyond readiness checks on loopback.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import yaml


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    """A port free on 127.0.0.1 now (for peers that cannot bind port 0 and report it)."""
    with socket.socket(socket.AF_INET, kind) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def proc_cpu(pid: int) -> float:
    """utime + stime of a running process, in seconds (/proc/PID/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def udp_drops(port: int) -> int:
    """The kernel's drop counter of the socket bound to 127.0.0.1:port."""
    local = f"0100007F:{port:04X}"
    for line in Path("/proc/net/udp").read_text().splitlines()[1:]:
        fields = line.split()
        if fields[1] == local:
            return int(fields[-1])
    return 0


def program(name: str) -> str:
    path = shutil.which(name) or shutil.which(name, path="/usr/sbin:/sbin")
    if path is None:
        raise RuntimeError(f"{name} is not installed: `make bench` installs it (bench-deps)")
    return path


@dataclass
class Peer:
    name: str
    command: list[str]
    log: Path
    env: dict[str, str] = field(default_factory=dict)
    process: subprocess.Popen[bytes] | None = None

    def start(self) -> Peer:
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(
                self.command,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env={**os.environ, **self.env},
            )
        return self

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def check_running(self) -> None:
        if self.process is None or self.process.poll() is not None:
            tail = self.log.read_text(errors="replace")[-2000:] if self.log.exists() else ""
            raise RuntimeError(f"{self.name} exited early:\n{tail}")

    def wait_until(self, ready: object, timeout: float = 20.0) -> None:
        """Poll `ready()` (a callable returning bool) until true; fail if the peer dies."""
        assert callable(ready)
        deadline = time.monotonic() + timeout
        while True:
            self.check_running()
            try:
                if ready():
                    return
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"{self.name} not ready after {timeout:g} s (log: {self.log})")
            time.sleep(0.05)

    def wait_http(self, url: str, timeout: float = 20.0) -> None:
        def ok() -> bool:
            with urllib.request.urlopen(url, timeout=1) as response:  # noqa: S310 (http only)
                return bool(response.status == 200)

        self.wait_until(ok, timeout)

    def wait_tcp(self, port: int, timeout: float = 20.0) -> None:
        def ok() -> bool:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return True

        self.wait_until(ok, timeout)

    def stop(self) -> None:
        process = self.process
        if process is None or process.poll() is not None:
            return
        os.kill(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.kill(process.pid, signal.SIGKILL)
            process.wait(timeout=10)


def mosquitto(workdir: Path) -> tuple[Peer, int]:
    port = free_port()
    conf = workdir / "mosquitto.conf"
    conf.write_text(
        f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n"
        "log_dest stderr\nlog_type error\nlog_type warning\n"
    )
    conf.chmod(0o644)  # as root it drops to user mosquitto
    peer = Peer("mosquitto", [program("mosquitto"), "-c", str(conf)], workdir / "mosquitto.log")
    peer.start().wait_tcp(port)
    return peer, port


def blackbox_exporter(workdir: Path) -> tuple[Peer, int]:
    """Debian's blackbox_exporter with the shipped `icmp` module (no timeout of its own: the
    scrape timeout less half a second)."""
    port = free_port()
    conf = workdir / "blackbox.yml"
    conf.write_text(yaml.safe_dump({"modules": {"icmp": {"prober": "icmp"}}}))
    peer = Peer(
        "blackbox_exporter",
        [program("prometheus-blackbox-exporter"), f"--config.file={conf}",
         f"--web.listen-address=127.0.0.1:{port}"],
        workdir / "blackbox.log",
    )  # fmt: skip
    peer.start().wait_http(f"http://127.0.0.1:{port}/-/healthy")
    return peer, port


def alertmanager(workdir: Path, webhook_url: str) -> tuple[Peer, int]:
    """Alertmanager with its default timings, one group per alert, one webhook receiver."""
    port = free_port()
    conf = workdir / "alertmanager.yml"
    conf.write_text(
        yaml.safe_dump(
            {
                "route": {
                    "receiver": "bench",
                    "group_by": ["..."],
                    "group_wait": "30s",
                    "group_interval": "5m",
                    "repeat_interval": "4h",
                },
                "receivers": [
                    {
                        "name": "bench",
                        "webhook_configs": [{"url": webhook_url, "send_resolved": True}],
                    }
                ],
            }
        )
    )
    storage = workdir / "alertmanager-data"
    storage.mkdir()
    peer = Peer(
        "alertmanager",
        [program("prometheus-alertmanager"), f"--config.file={conf}",
         f"--storage.path={storage}", f"--web.listen-address=127.0.0.1:{port}",
         "--cluster.listen-address="],
        workdir / "alertmanager.log",
    )  # fmt: skip
    peer.start().wait_http(f"http://127.0.0.1:{port}/-/healthy")
    return peer, port


def prometheus(
    workdir: Path, *, blackbox_port: int, alertmanager_port: int, addresses: list[str]
) -> tuple[Peer, int]:
    """Prometheus with its usual 15 s scrape and evaluation, probing `addresses` through the
    blackbox exporter, and an alert `probe_success == 0` with `for: 0s`."""
    port = free_port()
    rules = workdir / "rules.yml"
    rules.write_text(
        yaml.safe_dump(
            {
                "groups": [
                    {
                        "name": "bench",
                        "rules": [
                            {
                                "alert": "EndpointDown",
                                "expr": "probe_success == 0",
                                "for": "0s",
                                "labels": {"severity": "critical"},
                            }
                        ],
                    }
                ]
            }
        )
    )
    conf = workdir / "prometheus.yml"
    conf.write_text(
        yaml.safe_dump(
            {
                "global": {"scrape_interval": "15s", "evaluation_interval": "15s"},
                "rule_files": [str(rules)],
                "alerting": {
                    "alertmanagers": [
                        {"static_configs": [{"targets": [f"127.0.0.1:{alertmanager_port}"]}]}
                    ]
                },
                "scrape_configs": [
                    {
                        "job_name": "blackbox",
                        "metrics_path": "/probe",
                        "params": {"module": ["icmp"]},
                        "static_configs": [{"targets": addresses}],
                        "relabel_configs": [
                            {"source_labels": ["__address__"], "target_label": "__param_target"},
                            {"source_labels": ["__param_target"], "target_label": "instance"},
                            {"target_label": "__address__",
                             "replacement": f"127.0.0.1:{blackbox_port}"},
                        ],
                    }
                ],
            }
        )
    )  # fmt: skip
    storage = workdir / "prometheus-data"
    storage.mkdir()
    peer = Peer(
        "prometheus",
        [program("prometheus"), f"--config.file={conf}", f"--storage.tsdb.path={storage}",
         f"--web.listen-address=127.0.0.1:{port}"],
        workdir / "prometheus.log",
    )  # fmt: skip
    peer.start().wait_http(f"http://127.0.0.1:{port}/-/ready")
    return peer, port


def snmptrapd(workdir: Path, config: str, log: Path) -> tuple[Peer, int]:
    """net-snmp's snmptrapd in the foreground, logging notifications into `log`."""
    port = free_port(socket.SOCK_DGRAM)
    conf = workdir / "snmptrapd.conf"
    conf.write_text(config)
    persist = workdir / "snmptrapd-persist"
    persist.mkdir(exist_ok=True)
    peer = Peer(
        "snmptrapd",
        # -n: no reverse lookups of the sender; -C: only our config (its format2 says how
        # each notification is logged).
        [program("snmptrapd"), "-f", "-n", "-C", "-c", str(conf), "-Lf", str(log),
         f"udp:127.0.0.1:{port}"],
        workdir / "snmptrapd.out",
        env={"MIBS": "", "SNMP_PERSISTENT_DIR": str(persist)},
    )  # fmt: skip
    peer.start().wait_until(lambda: log.exists() and "NET-SNMP" in log.read_text(), 10)
    return peer, port

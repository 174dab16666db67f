"""A network lab of our own: hosts in network namespaces behind veth pairs.

Each host is a namespace with one veth link to the root namespace and a /30 out of 198.18.0.0/15
(the benchmarking range, RFC 2544), picked at random and checked to be free so parallel runs (and
a running demo) do not collide. Its kernel echo replies are off and `netmon_lab.responder` answers
with a set delay and loss. Names carry the creating pid, so leftovers of a crashed run are
recognised and removed. Traffic never leaves this machine: the namespaces have no other link.

The namespace plumbing (stale removal, the guard route, the availability check, free blocks) and
the responder are the demo's too: they live in `netmon_lab`, shared, and are re-exported here.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from netmon_lab.netns import (
    LAB_RANGE,
    TEST_PREFIX,
    LabUnavailableError,
    check_available,
    free_block,
    guard_lab_range,
    ip,
    remove_stale,
)

__all__ = [
    "LAB_RANGE",
    "LabHost",
    "LabUnavailableError",
    "NetLab",
    "check_available",
    "guard_lab_range",
    "ip",
    "remove_stale",
]

PREFIX = TEST_PREFIX


@dataclass
class LabHost:
    namespace: str
    link: str
    address: str
    gateway: str
    responder: subprocess.Popen[str] | None = None
    record: Path | None = None

    def run(self, *command: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["ip", "netns", "exec", self.namespace, *command],
            check=True,
            capture_output=True,
            text=True,
            timeout=10,
        )

    def link_down(self) -> None:
        """Cut the host off: its end of the veth goes down, the root side loses carrier."""
        self.run("ip", "link", "set", "eth0", "down")

    def link_up(self) -> None:
        self.run("ip", "link", "set", "eth0", "up")
        self.run("ip", "route", "replace", "default", "via", self.gateway)

    def recorded(self) -> list[tuple[str, int, int]]:
        """(source, sequence, tos) of every echo request the responder saw."""
        if self.record is None or not self.record.exists():
            return []
        rows = []
        for line in self.record.read_text().splitlines():
            source, sequence, tos = line.split()
            rows.append((source, int(sequence), int(tos)))
        return rows


@dataclass
class NetLab:
    workdir: Path
    hosts: list[LabHost] = field(default_factory=list)
    namespaces: list[str] = field(default_factory=list)

    def add_namespace(self, *sysctls: str) -> str:
        """An empty namespace with only loopback up (kernel echo replies on), for running a
        program in isolation with its own sysctls."""
        namespace = f"{PREFIX}{os.getpid()}h{len(self.namespaces) + 50}ns"
        self.namespaces.append(namespace)
        ip("netns", "add", namespace)
        ip("-n", namespace, "link", "set", "lo", "up")
        for setting in sysctls:
            subprocess.run(
                ["ip", "netns", "exec", namespace, "sysctl", "-qw", setting],
                check=True,
                capture_output=True,
                timeout=10,
            )
        return namespace

    def add_host(
        self,
        *,
        delay: float = 0.0,
        loss: float = 0.0,
        record: bool = False,
        seed: int | None = None,
        jitter: float = 0.0,
        burst_every: float = 0.0,
        burst_min: int = 5,
        burst_max: int = 10,
    ) -> LabHost:
        """A host answering pings after `delay` give or take `jitter`, dropping a `loss` share
        and, with `burst_every`, bursts of `burst_min` to `burst_max` pings in a row (the same
        draws every run with a `seed`; see `netmon_lab.responder`)."""
        index = len(self.hosts)
        namespace = f"{PREFIX}{os.getpid()}h{index}ns"
        link = f"{PREFIX}{os.getpid()}h{index}"
        network = free_block(30)
        gateway, address = str(network.network_address + 1), str(network.network_address + 2)
        host = LabHost(namespace=namespace, link=link, address=address, gateway=gateway)
        self.hosts.append(host)  # registered first, so close() cleans up half-built hosts
        ip("netns", "add", namespace)
        ip("link", "add", link, "type", "veth", "peer", "name", "eth0", "netns", namespace)
        ip("addr", "add", f"{gateway}/30", "dev", link)
        ip("link", "set", link, "up")
        host.run("ip", "link", "set", "lo", "up")
        host.run("ip", "addr", "add", f"{address}/30", "dev", "eth0")
        host.run("ip", "link", "set", "eth0", "up")
        host.run("ip", "route", "add", "default", "via", gateway)
        host.run("sysctl", "-qw", "net.ipv4.icmp_echo_ignore_all=1")
        command = [
            "ip", "netns", "exec", namespace, sys.executable, "-m", "netmon_lab.responder",
            "--delay", str(delay), "--loss", str(loss),
        ]  # fmt: skip
        if jitter:
            command += ["--jitter", str(jitter)]
        if burst_every:
            command += ["--burst-every", str(burst_every), "--burst-min", str(burst_min),
                        "--burst-max", str(burst_max)]  # fmt: skip
        if seed is not None:
            command += ["--seed", str(seed)]
        if record:
            host.record = self.workdir / f"{namespace}.requests"
            command += ["--record", str(host.record)]
        host.responder = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
        assert host.responder.stdout is not None
        deadline = time.monotonic() + 10
        line = host.responder.stdout.readline()
        if line.strip() != "ready" or time.monotonic() > deadline:
            raise LabUnavailableError(f"the ICMP responder in {namespace} did not start")
        return host

    def close(self) -> None:
        for host in self.hosts:
            if host.responder is not None and host.responder.poll() is None:
                host.responder.terminate()
                try:
                    host.responder.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    host.responder.kill()
            ip("link", "del", host.link, check=False)
            ip("netns", "del", host.namespace, check=False)
        self.hosts.clear()
        for namespace in self.namespaces:
            ip("netns", "del", namespace, check=False)
        self.namespaces.clear()

"""`netmon demo`: the 215 lab endpoints come up, and the simulated devices show traffic."""

from __future__ import annotations

import re
import subprocess
import threading
from pathlib import Path

import pytest

from tests.helpers import http_get, netmon_command, samples, wait_until


@pytest.mark.netns
def test_demo_serves_endpoints_and_device_traffic() -> None:
    process = subprocess.Popen(
        [*netmon_command(), "demo", "--listen", "127.0.0.1:0", "--duration", "60"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines: list[str] = []

    def read() -> None:
        assert process.stdout is not None
        lines.extend(process.stdout)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        match = wait_until(
            lambda: re.search(r"metrics\s+(http://\S+)/metrics", "".join(lines)),
            timeout=20,
            what="the demo to print its URLs",
        )
        url = match.group(1)

        def all_up() -> bool:
            body = http_get(url + "/metrics")[2]
            up = samples(body, "netmon_target_up")
            return len(up) == 215 and all(value == 1.0 for _, value in up)

        wait_until(all_up, timeout=15, interval=0.5, what="215 targets up")

        def devices_with_traffic() -> bool:
            body = http_get(url + "/metrics")[2]
            answering = [v for _, v in samples(body, "netmon_snmp_up") if v == 1.0]
            utilisation = samples(body, "netmon_interface_utilization_ratio")
            wan = [v for labels, v in utilisation
                   if labels["target"] == "cpe-ep-so-01" and labels["ifname"] == "WAN"]  # fmt: skip
            return len(answering) == 243 and len(wan) == 2 and all(0 < v < 1 for v in wan)

        # Two polls 15 s apart give the first utilisation.
        wait_until(devices_with_traffic, timeout=45, interval=1, what="interface utilisation")
    finally:
        process.terminate()
        process.wait(timeout=10)
        reader.join(timeout=2)
    assert process.returncode == 0, "".join(lines)


@pytest.mark.peer
def test_an_installed_netmon_carries_the_lab_and_its_215_endpoints(
    netmon_for_nobody: Path,
) -> None:
    """The lab left the service package but not the distribution: a wheel-installed netmon (not
    this checkout) has `netmon demo` with its fault commands and the lab inventory."""
    python = netmon_for_nobody.parent / "python"
    csv = subprocess.run(
        [str(python), "-c", "from netmon_lab.demo import demo_endpoints_csv as c; print(c())"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    assert len(csv.strip().splitlines()) == 216  # a header and 215 endpoints
    assert "ep-ba-thuoc-xa07" in csv
    help_text = subprocess.run(
        [str(netmon_for_nobody), "demo", "fault", "add", "--help"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    assert "endpoint-down" in help_text

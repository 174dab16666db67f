"""`netmon demo` in an installed netmon: the lab and its 215 endpoints come with it.

The running demo (endpoints up, devices with traffic, faults) is tested in test_demo_faults.py,
on one demo that its tests share.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest


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

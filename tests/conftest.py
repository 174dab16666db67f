from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.lab import netlab as lab

# Fixtures of the peers: bad SNMP agents, Alertmanager and HTTP recorders, Mosquitto, SIP.
pytest_plugins = [
    "tests.snmp_agent",
    "tests.alertmanager_peer",
    "tests.mqtt_peer",
    "tests.sip_peers",
]


@pytest.fixture(scope="session")
def _lab_ready() -> None:
    try:
        lab.check_available()
    except lab.LabUnavailableError as exc:
        pytest.fail(str(exc), pytrace=False)
    lab.remove_stale()
    lab.guard_lab_range()


@pytest.fixture
def netlab(_lab_ready: None, tmp_path: Path) -> Iterator[lab.NetLab]:
    """Hosts in network namespaces with delay and loss of our own making; removed afterwards."""
    network_lab = lab.NetLab(workdir=tmp_path)
    try:
        yield network_lab
    finally:
        network_lab.close()


def require_program(name: str) -> str:
    """The path of a peer program; a missing one fails the test loudly (make test installs it)."""
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} is not installed: run `make test`, which installs it", pytrace=False)
    return path

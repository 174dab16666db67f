from __future__ import annotations

import shutil
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from netmon.alerting.store import AlertDB
from tests.lab import netlab as lab

# Fixtures of the peers: bad SNMP agents, Alertmanager and HTTP recorders, Mosquitto, SIP, a
# Kamailio registrar; and netmon installed where an unprivileged user can run it.
pytest_plugins = [
    "tests.snmp_agent",
    "tests.alertmanager_peer",
    "tests.mqtt_peer",
    "tests.sip_peers",
    "tests.registrar_peer",
    "tests.unprivileged",
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


# Markers follow from the fixtures a test uses, so `-m "not netns and not peer"` really leaves
# only the tests that need neither root nor a peer program.
_NETNS_FIXTURES = frozenset({"netlab", "_lab_ready"})
_PEER_FIXTURES = frozenset(
    {"mosquitto", "mosquitto_factory", "alertmanager", "alertmanager_factory", "kamailio",
     "kamailio_factory", "baresip"}
)  # fmt: skip


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        used = set(getattr(item, "fixturenames", ()))
        if used & _NETNS_FIXTURES:
            item.add_marker(pytest.mark.netns)
        if used & _PEER_FIXTURES:
            item.add_marker(pytest.mark.peer)


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[AlertDB]:
    """An open alert database in the test's own directory."""
    database = AlertDB(tmp_path / "alerts.sqlite")
    await database.call(database.open)
    yield database
    database.shutdown()

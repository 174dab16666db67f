from __future__ import annotations

import shutil
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

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
    # The demo's modules first (see DEMO_MODULES); a stable sort keeps every other order.
    items.sort(key=lambda item: _module(item.nodeid) not in DEMO_MODULES)


# `make test` runs the suite on two pytest-xdist workers, a module's tests together on one
# (`--dist loadfile`), so its module-scoped peers start once. The modules that run a whole
# `netmon demo` (215 endpoints, the responder, snmpsim with 243 devices: about half a core) are
# one unit more: one worker runs them one after the other, so two demos never compete for the
# two cores, and first, with `--no-loadscope-reorder`, being together the longest unit. (Not
# xdist_group marks: `--dist loadgroup` ignores them with pytest 9.2, pytest-xdist issue 1386.)
DEMO_MODULES = frozenset(
    {"tests/test_demo_faults.py", "tests/test_status_page.py", "tests/test_dashboards.py"}
)


def _module(nodeid: str) -> str:
    return nodeid.split("::", 1)[0]


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    if config.getoption("dist") != "loadfile":
        return None
    missing = sorted(m for m in DEMO_MODULES if not (config.rootpath / m).is_file())
    if missing:
        raise pytest.UsageError(f"tests/conftest.py: DEMO_MODULES names no such module: {missing}")
    from xdist.scheduler import LoadFileScheduling

    class DemoTogether(LoadFileScheduling):
        def _split_scope(self, nodeid: str) -> str:
            module = _module(nodeid)
            return "the demo's modules" if module in DEMO_MODULES else module

    return DemoTogether(config, log)


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[AlertDB]:
    """An open alert database in the test's own directory."""
    database = AlertDB(tmp_path / "alerts.sqlite")
    await database.call(database.open)
    yield database
    database.shutdown()

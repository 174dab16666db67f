"""The demo's plain SIP rooms: a real Kamailio and one real baresip, read by netmon's probe.

`SipRooms` starts both on ephemeral loopback ports; the `kamailio` collector (what the demo's
netmon runs) must see every room's live contact, lose exactly the one a fault takes off the
registrar, and see it come back; nothing is left running after.
"""

from __future__ import annotations

import csv
import os
from collections.abc import AsyncIterator, Callable
from importlib import resources
from pathlib import Path

import pytest

import netmon_lab.sip_rooms
from collectors.codec_settings import KamailioSettings
from collectors.registrar.kamailio import KamailioCollector
from netmon.config.loader import load_data
from netmon.model import ProbeTarget, RegistrarContacts
from netmon_lab.fault_kinds import FaultKind
from netmon_lab.room_faults import RoomFaults
from netmon_lab.sip_rooms import (
    REGISTRAR_ID,
    SipRooms,
    SipRoomsError,
    plain_sip_rooms,
    sip_user,
)
from tests.helpers import poll
from tests.sip_peers import program

ROOT = Path(__file__).resolve().parent.parent
ROOMS = [
    {"id": "ep-so-04", "sip_uri": "sip:ep-so-04@vc.thanhhoa.example"},
    {"id": "ep-so-10", "sip_uri": "sip:ep-so-10@vc.thanhhoa.example"},
    {"id": "ep-so-16", "sip_uri": "sip:ep-so-16@vc.thanhhoa.example"},
    {"id": "ep-hall", "sip_uri": "sip:hall-42@vc.thanhhoa.example"},  # AoR is not the id
    {"id": "ep-nouri", "sip_uri": ""},  # no SIP URI: the id is the user
]
AORS = {"ep-so-04", "ep-so-10", "ep-so-16", "hall-42", "ep-nouri"}


@pytest.fixture
async def sip_rooms() -> AsyncIterator[SipRooms]:
    program("kamailio"), program("baresip")  # missing ones fail loudly: make test installs them
    async with SipRooms(ROOMS) as rooms:
        assert rooms.reason is None, rooms.reason
        yield rooms
    gone = [p.pid for p in rooms.processes if _group_alive(p.pid)]
    assert gone == [], f"processes (or their workers) left running: {gone}"


@pytest.fixture
async def collector() -> AsyncIterator[KamailioCollector]:
    collector = KamailioCollector()
    await collector.start()
    try:
        yield collector
    finally:
        await collector.close()


def _group_alive(pid: int) -> bool:
    """Any process left in the group the program led (kamailio's workers share it)."""
    try:
        os.killpg(pid, 0)
    except ProcessLookupError:
        return False
    return True


async def netmon_sees(
    collector: KamailioCollector,
    rooms: SipRooms,
    condition: Callable[[set[str]], bool],
    what: str,
    timeout: float = 10.0,
) -> RegistrarContacts:
    """Poll the registrar as the demo's netmon does until `condition(aors)` holds."""
    assert rooms.rpc_url is not None
    settings = KamailioSettings.model_validate({"url": rooms.rpc_url, "timeout": 5})
    target = ProbeTarget(id=REGISTRAR_ID, address="127.0.0.1")
    return await poll(
        lambda: collector.collect(target, settings),
        lambda seen: condition({contact.aor for contact in seen.contacts}),
        timeout=timeout,
        what=what,
    )


async def test_every_room_is_a_live_contact_netmon_reads(
    sip_rooms: SipRooms, collector: KamailioCollector
) -> None:
    # SipRooms returns once all are registered: the first poll sees them all.
    seen = await netmon_sees(collector, sip_rooms, lambda aors: True, "one answer", timeout=0)
    assert {contact.aor for contact in seen.contacts} == AORS
    assert len(seen.contacts) == 5
    assert all(c.user_agent.startswith("baresip") for c in seen.contacts)
    assert seen.failures == ()  # every room registered with its own password at the first try


async def test_unregister_takes_one_room_off_the_registrar_and_back(
    sip_rooms: SipRooms, collector: KamailioCollector
) -> None:
    await sip_rooms.unregister("ep-hall", True)
    # unregister returns once the registrar has dropped the contact: no wait needed.
    seen = await netmon_sees(collector, sip_rooms, lambda aors: True, "one answer", timeout=0)
    assert {contact.aor for contact in seen.contacts} == AORS - {"hall-42"}

    await sip_rooms.unregister("ep-hall", True)  # already off: nothing changes
    await sip_rooms.unregister("ep-hall", False)
    seen = await netmon_sees(collector, sip_rooms, lambda aors: True, "one answer", timeout=0)
    assert {contact.aor for contact in seen.contacts} == AORS


async def test_the_demo_faults_reach_the_registrar(
    sip_rooms: SipRooms, collector: KamailioCollector
) -> None:
    assert sip_rooms.refusal("ep-so-04", FaultKind.UNREGISTER) is None
    assert "no API" in (sip_rooms.refusal("ep-so-04", FaultKind.CAMERA_UNPLUG) or "")
    assert "not a plain SIP room" in (sip_rooms.refusal("ep-so-01", FaultKind.UNREGISTER) or "")

    await sip_rooms.set_rooms({"ep-so-04": RoomFaults(unregistered=True), "ep-so-10": RoomFaults()})
    await netmon_sees(collector, sip_rooms, lambda aors: aors == AORS - {"ep-so-04"}, "one off")
    await sip_rooms.set_rooms({})
    await netmon_sees(collector, sip_rooms, lambda aors: aors == AORS, "all back")


async def test_the_demo_config_gains_the_registrar_and_each_rooms_aor(sip_rooms: SipRooms) -> None:
    data = {
        "targets": [
            {"id": "ep-hall", "address": "127.0.1.9", "kind": "endpoint"},
            {"id": "ep-so-01", "address": "127.0.1.2", "kind": "endpoint"},
        ]
    }
    inventory = load_data(sip_rooms.config(data))
    hall, cisco, registrar = (inventory.targets[i] for i in ("ep-hall", "ep-so-01", REGISTRAR_ID))
    assert (hall.vendor, hall.registrar, hall.aor) == ("sip", REGISTRAR_ID, "hall-42")
    assert (cisco.vendor, cisco.registrar) == ("", None)
    assert registrar.kind == "service"
    settings = registrar.probe("kamailio")
    assert isinstance(settings, KamailioSettings)
    assert settings.url == sip_rooms.rpc_url


@pytest.mark.parametrize(
    ("missing", "found", "reason"),
    [
        ("kamailio_program", None, "kamailio is not installed (Debian package kamailio)"),
        ("baresip_program", None, "baresip is not installed (Debian package baresip-core)"),
        # A kamailio that will not run: tried with fresh ports, then given up with its exit.
        ("kamailio_program", "/bin/false", "kamailio exited with 1"),
    ],
)
async def test_without_a_working_peer_the_demo_runs_without_plain_sip_rooms(
    monkeypatch: pytest.MonkeyPatch, missing: str, found: str | None, reason: str
) -> None:
    monkeypatch.setattr(netmon_lab.sip_rooms, missing, lambda: found)
    data = {"targets": [{"id": "ep-hall", "address": "127.0.1.9"}]}
    async with SipRooms(ROOMS) as rooms:
        assert rooms.reason == reason
        assert rooms.rpc_url is None
        assert rooms.processes == []
        assert rooms.config(data) == data
        assert "not running" in (rooms.refusal("ep-hall", FaultKind.UNREGISTER) or "")
        with pytest.raises(SipRoomsError, match="no plain SIP rooms"):
            await rooms.unregister("ep-hall", True)


def test_the_shipped_inventorys_hdx_rooms_are_the_plain_sip_rooms() -> None:
    with (ROOT / "netmon_lab" / "data" / "endpoints.csv").open(encoding="utf-8") as file:
        rows = list(csv.DictReader(file))
    rooms = plain_sip_rooms(rows)
    assert len(rooms) == 36
    assert all(sip_user(room) == room["id"] for room in rooms)


def test_the_installed_snippet_is_the_deploy_file() -> None:
    shipped = resources.files("netmon_lab").joinpath("data", "netmon-registrar.cfg")
    deploy = ROOT / "deploy" / "kamailio" / "netmon-registrar.cfg"
    assert shipped.read_text(encoding="utf-8") == deploy.read_text(encoding="utf-8")

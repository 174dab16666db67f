"""A plain SIP room's registration, end to end: real baresip user agents register to a real
Kamailio, a real `netmon run` reads the registrar, and a user sees the room registered on
/metrics, then EndpointUnregistered when its user agent dies, and the registrar's own reason
when it is refused.
"""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path
from typing import Any

from tests.helpers import NetmonProcess, metric_value, wait_until, write_config
from tests.registrar_peer import KamailioRegistrar
from tests.sip_peers import Baresip, registering

HANG = 30.0  # a hang guard only: how soon is the poll interval's business


def _alerts(netmon: NetmonProcess) -> dict[str, dict[str, Any]]:
    with urllib.request.urlopen(netmon.url + "/api/v1/alerts", timeout=5) as answer:  # noqa: S310
        listing = json.loads(answer.read())
    return {
        alert["target"]: alert
        for alert in listing["alerts"]
        if alert["alertname"] == "EndpointUnregistered" and alert["state"] == "firing"
    }


def _registered(netmon: NetmonProcess, room: str) -> float | None:
    with urllib.request.urlopen(netmon.url + "/metrics", timeout=5) as answer:  # noqa: S310
        text = answer.read().decode()
    return metric_value(text, "netmon_endpoint_registered", target=room, protocol="sip")


def test_a_plain_sip_room_is_registered_until_its_agent_dies_or_is_refused(
    tmp_path: Path, registrar_factory: Any
) -> None:
    registrar: KamailioRegistrar = registrar_factory(users={"hall": "right-pw", "commune": "pw"})
    hall = Baresip(
        tmp_path / "hall",
        user="hall",
        accounts=[registering("hall", registrar.port, "right-pw", expires=3)],
    )
    commune = Baresip(
        tmp_path / "commune",
        user="commune",
        accounts=[registering("commune", registrar.port, "wrong-pw", expires=3)],
    )
    config = write_config(
        tmp_path / "netmon.yaml",
        {
            "targets": [
                {
                    "id": "registrar",
                    "address": "127.0.0.1",
                    "kind": "service",
                    "probes": {
                        "kamailio": {"url": registrar.rpc_url, "interval": "1s", "timeout": "800ms"}
                    },
                },
                *(
                    {
                        "id": room,
                        "address": "127.0.0.1",
                        "vendor": "sip",
                        "registrar": "registrar",
                        "probes": {"icmp": {}},
                    }
                    for room in ("hall", "commune")
                ),
            ]
        },
    )
    netmon = NetmonProcess(config)
    try:
        wait_until(lambda: _registered(netmon, "hall") == 1.0, timeout=HANG, what="registered")
        # Refused: not registered, with the registrar's own reason in the alert.
        wait_until(lambda: "commune" in _alerts(netmon), timeout=HANG, what="commune alert")
        assert _registered(netmon, "commune") == 0.0
        assert _alerts(netmon)["commune"]["summary"] == (
            "commune is not registered (SIP): 401 Unauthorized"
        )
        assert "hall" not in _alerts(netmon)
        # The hall's agent dies without a word: its contact expires, the room is unregistered.
        hall.process.kill()
        wait_until(lambda: "hall" in _alerts(netmon), timeout=HANG, what="hall alert")
        assert _registered(netmon, "hall") == 0.0
        assert _alerts(netmon)["hall"]["summary"] == (
            "hall is not registered (SIP): no live contact at the registrar"
        )
    finally:
        netmon.stop()
        hall.stop()
        commune.stop()

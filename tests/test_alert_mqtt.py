"""netmon as a process with a real Mosquitto: traps and lab faults become MQTT alerts, and a
broker outage or a kill -9 of netmon loses nothing and repeats nothing."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.alertmanager_peer import eventually
from tests.conftest import require_program
from tests.helpers import NetmonProcess, metric_value, write_config
from tests.lab.netlab import NetLab
from tests.mqtt_peer import Mosquitto, MqttMessage, MqttRecorder, retained

COMMUNITY = "lab-trap-community"
AUTH_KEY = "lab-auth-passphrase"
PRIV_KEY = "lab-priv-passphrase"
LINK_DOWN, LINK_UP, COLD_START = "1.3.6.1.6.3.1.1.5.3", "1.3.6.1.6.3.1.1.5.4", "1.3.6.1.6.3.1.1.5.1"
EVENTS = "netmon/events/alerts"


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def config(tmp_path: Path, broker: Mosquitto, targets: list[dict[str, Any]], **extra: Any) -> Path:
    return write_config(
        tmp_path / "netmon.yaml",
        {
            "instance": "mqtt-e2e",
            "alerting": {
                "database": str(tmp_path / "alerts.sqlite"),
                "mqtt": {"host": broker.host, "port": broker.port, "reconnect_max": "1s"},
            },
            "targets": targets,
            **extra,
        },
    )


def alert_events(recorder: MqttRecorder) -> list[tuple[str, str, str]]:
    out = []
    for message in recorder.matching(lambda m: m.topic == EVENTS):
        alert = json.loads(message.payload)
        out.append((alert["alertname"], alert["target"], alert["status"]))
    return out


def is_event(alertname: str, target: str, status: str) -> Any:
    def match(message: MqttMessage) -> bool:
        if message.topic != EVENTS:
            return False
        alert = json.loads(message.payload)
        return (alert["alertname"], alert["target"], alert["status"]) == (
            alertname,
            target,
            status,
        )

    return match


async def wait_up(netmon: NetmonProcess, *targets: str) -> None:
    for target in targets:
        await eventually(
            lambda t=target: metric_value(netmon.metrics(), "netmon_target_up", target=t) == 1,
            timeout=10,
            what=f"{target} up",
        )


# netmon counts its outbox for the gauge once a second (alerting/runtime.py, TICK): a reading
# is up to that old.
OUTBOX_GAUGE_AGE = 1.5


async def all_delivered(netmon: NetmonProcess, recorder: MqttRecorder, *, earlier: int = 0) -> None:
    """Wait until every alert event `netmon` decided has reached `recorder`: its MQTT outbox
    empty and as many events on the topic as it counts as delivered (plus `earlier`, those of a
    netmon before it), and so across a fresh count of the outbox, so that an event on its way
    into the outbox is not missed. Then an event it sent by mistake is among those recorded."""

    def mqtt(name: str, **labels: str) -> float | None:
        return metric_value(netmon.metrics(), name, sink="mqtt", **labels)

    settled_at: list[float] = []

    def settled() -> bool:
        if not (
            mqtt("netmon_alert_outbox_events") == 0
            and mqtt("netmon_alert_notifications_total", result="success")
            == len(alert_events(recorder)) - earlier
        ):
            settled_at.clear()
            return False
        settled_at[:] = settled_at or [time.monotonic()]
        return time.monotonic() - settled_at[0] > OUTBOX_GAUGE_AGE

    await eventually(settled, what="every event netmon decided to arrive")


async def test_statuses_alerts_and_the_service_flag_on_mqtt(
    netlab: NetLab, mosquitto: Mosquitto, tmp_path: Path
) -> None:
    host = netlab.add_host()
    with MqttRecorder(mosquitto, "netmon/#") as recorder:
        netmon = NetmonProcess(
            config(tmp_path, mosquitto, [{"id": "ep-1", "address": host.address}])
        )
        try:
            await recorder.until(lambda m: m.topic == "netmon/service/mqtt-e2e", timeout=10)
            await wait_up(netmon, "ep-1")
            host.link_down()
            firing = await recorder.until(is_event("EndpointDown", "ep-1", "firing"), timeout=8)
            assert json.loads(firing.payload)["severity"] == "critical"
            # The retained alert is published after the event: seen live first, then replayed
            # to a new subscriber.
            alert = "netmon/alerts/ep-1/EndpointDown"
            await recorder.until(lambda m: m.topic == alert and bool(m.payload), timeout=5)
            assert alert in retained(mosquitto, "netmon/alerts/#")
            status = await recorder.until(
                lambda m: m.topic == "netmon/status/ep-1" and '"down"' in m.payload, timeout=5
            )
            assert json.loads(status.payload)["state"] == "down"
            host.link_up()
            await recorder.until(is_event("EndpointDown", "ep-1", "resolved"), timeout=15)
            await recorder.until(lambda m: m.topic == alert and not m.payload, timeout=5)
            assert retained(mosquitto, "netmon/alerts/#") == {}
            assert retained(mosquitto, "netmon/service/#") == {"netmon/service/mqtt-e2e": "online"}
        finally:
            netmon.stop()
        await recorder.until(
            lambda m: m.topic == "netmon/service/mqtt-e2e" and m.payload == "offline", timeout=5
        )


async def test_kill_9_neither_repeats_firing_nor_forgets_a_resolve(
    netlab: NetLab, mosquitto: Mosquitto, tmp_path: Path
) -> None:
    a, b = netlab.add_host(), netlab.add_host()
    path = config(
        tmp_path, mosquitto,
        [{"id": "ep-a", "address": a.address}, {"id": "ep-b", "address": b.address}],
    )  # fmt: skip
    with MqttRecorder(mosquitto, "netmon/#") as recorder:
        netmon = NetmonProcess(path)
        try:
            await wait_up(netmon, "ep-a", "ep-b")
            a.link_down()
            b.link_down()
            await recorder.until(is_event("EndpointDown", "ep-a", "firing"), timeout=8)
            await recorder.until(is_event("EndpointDown", "ep-b", "firing"), timeout=8)
            # Killed once both firings are delivered and out of the outbox: a kill between the
            # broker's PUBACK and the outbox row's delete resends (at least once, by design).
            await all_delivered(netmon, recorder)
            netmon.process.kill()
            netmon.process.wait(timeout=5)
            # The broker tells everyone that netmon died (its last will).
            await recorder.until(
                lambda m: m.topic == "netmon/service/mqtt-e2e" and m.payload == "offline",
                timeout=10,
            )
            a.link_up()  # cleared while netmon was away
        finally:
            netmon.stop()
        earlier = len(alert_events(recorder))
        restarted = NetmonProcess(path)
        try:
            await recorder.until(is_event("EndpointDown", "ep-a", "resolved"), timeout=20)
            await eventually(
                lambda: metric_value(restarted.metrics(), "netmon_target_up", target="ep-b") == 0,
                what="ep-b judged down again",
            )
            await all_delivered(restarted, recorder, earlier=earlier)
            assert metric_value(restarted.metrics(), "netmon_target_up", target="ep-b") == 0
            assert alert_events(recorder) == [
                ("EndpointDown", "ep-a", "firing"),
                ("EndpointDown", "ep-b", "firing"),
                ("EndpointDown", "ep-a", "resolved"),
            ] or alert_events(recorder) == [
                ("EndpointDown", "ep-b", "firing"),
                ("EndpointDown", "ep-a", "firing"),
                ("EndpointDown", "ep-a", "resolved"),
            ]
            assert list(retained(mosquitto, "netmon/alerts/#")) == [
                "netmon/alerts/ep-b/EndpointDown"
            ]
        finally:
            restarted.stop()


async def test_alerts_raised_while_the_broker_is_down_arrive_in_order(
    netlab: NetLab, mosquitto: Mosquitto, tmp_path: Path
) -> None:
    a, b = netlab.add_host(), netlab.add_host()
    path = config(
        tmp_path, mosquitto,
        [{"id": "ep-a", "address": a.address}, {"id": "ep-b", "address": b.address}],
    )  # fmt: skip
    netmon = NetmonProcess(path)
    try:
        await wait_up(netmon, "ep-a", "ep-b")
        mosquitto.stop()

        def listed() -> list[tuple[str, str]]:
            _, _, body = netmon.get("/api/v1/alerts")
            return [(x["target"], x["state"]) for x in json.loads(body)["alerts"]]

        a.link_down()
        await eventually(lambda: ("ep-a", "firing") in listed(), timeout=8, what="ep-a firing")
        b.link_down()
        await eventually(lambda: ("ep-b", "firing") in listed(), timeout=8, what="ep-b firing")
        a.link_up()
        await eventually(lambda: listed() == [("ep-b", "firing")], timeout=15, what="ep-a over")
        await eventually(
            lambda: (
                metric_value(
                    netmon.metrics(), "netmon_alert_outbox_events", sink="mqtt", queue="mqtt"
                )
                == 3
            ),
            timeout=5,
            what="three transitions queued for the broker",
        )
        # The subscriber connects before netmon can (netmon retries about once a second).
        mosquitto.start()
        with MqttRecorder(mosquitto, EVENTS) as recorder:
            await recorder.until(is_event("EndpointDown", "ep-a", "resolved"), timeout=10)
            assert alert_events(recorder) == [
                ("EndpointDown", "ep-a", "firing"),
                ("EndpointDown", "ep-b", "firing"),
                ("EndpointDown", "ep-a", "resolved"),
            ]
        # The broker forgot everything it retained: netmon put the truth back.
        assert list(retained(mosquitto, "netmon/alerts/#")) == ["netmon/alerts/ep-b/EndpointDown"]
    finally:
        netmon.stop()


async def snmptrap(*args: str) -> None:
    process = await asyncio.create_subprocess_exec(
        require_program("snmptrap"), *args, env={**os.environ, "MIBS": ""},
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    _, stderr = await asyncio.wait_for(process.communicate(), 10)
    assert process.returncode == 0, stderr.decode()


def trap_config(tmp_path: Path, broker: Mosquitto, port: int) -> Path:
    return config(
        tmp_path,
        broker,
        [
            {"id": "sw-v2c", "address": "127.0.0.5", "kind": "switch", "probes": {}},
            {"id": "olt-v3", "address": "127.0.0.6", "kind": "olt", "probes": {}},
        ],
        trap_receiver={"listen": f"127.0.0.1:{port}"},
        credentials={
            "traps-v2c": {"snmp_version": "2c", "community": COMMUNITY},
            "traps-v3": {
                "snmp_version": "3",
                "user": "netmon",
                "auth_protocol": "SHA",
                "auth_key": AUTH_KEY,
                "priv_protocol": "AES",
                "priv_key": PRIV_KEY,
            },
        },
        trap_credentials=["traps-v2c", "traps-v3"],
    )


async def test_snmptrap_v2c_linkdown_and_a_v3_trap_become_alerts_on_mqtt(
    mosquitto: Mosquitto, tmp_path: Path
) -> None:
    port = free_udp_port()
    with MqttRecorder(mosquitto, "netmon/#") as recorder:
        netmon = NetmonProcess(trap_config(tmp_path, mosquitto, port))
        try:
            await snmptrap(
                "-v", "2c", "-c", COMMUNITY, "--clientaddr=127.0.0.5", f"127.0.0.1:{port}", "",
                LINK_DOWN, "1.3.6.1.2.1.2.2.1.1.7", "i", "7",
            )  # fmt: skip
            message = await recorder.until(is_event("InterfaceDown", "sw-v2c", "firing"), timeout=5)
            alert = json.loads(message.payload)
            assert alert["labels"] == {"ifname": "7"}
            assert alert["severity"] == "major"
            # A v3 trap from a device whose engine ID nobody configured: learned, then read.
            await snmptrap(
                "-v", "3", "-e", "0x80001f8880aabbccdd01", "-u", "netmon", "-l", "authPriv",
                "-a", "SHA", "-A", AUTH_KEY, "-x", "AES", "-X", PRIV_KEY,
                "--clientaddr=127.0.0.6", f"127.0.0.1:{port}", "", COLD_START,
            )  # fmt: skip
            await recorder.until(is_event("DeviceRebooted", "olt-v3", "firing"), timeout=5)
            text = netmon.metrics()
            assert (
                metric_value(text, "netmon_snmp_traps_received_total", target="sw-v2c",
                             trap="linkDown") == 1
            )  # fmt: skip
            assert (
                metric_value(text, "netmon_snmp_traps_received_total", target="olt-v3",
                             trap="coldStart") == 1
            )  # fmt: skip
            # linkUp clears it (after the 5 s it must hold)
            await snmptrap(
                "-v", "2c", "-c", COMMUNITY, "--clientaddr=127.0.0.5", f"127.0.0.1:{port}", "",
                LINK_UP, "1.3.6.1.2.1.2.2.1.1.7", "i", "7",
            )  # fmt: skip
            await recorder.until(is_event("InterfaceDown", "sw-v2c", "resolved"), timeout=10)
            assert COMMUNITY not in "".join(netmon.stderr_lines)
        finally:
            netmon.stop()


async def test_a_link_flapping_30_times_is_one_flapping_alert(
    mosquitto: Mosquitto, tmp_path: Path
) -> None:
    """A minute of a link flapping every 2 s is 30 changes inside the flapping window (2 min),
    none held for the 5 s that clears InterfaceDown: sent as fast as netmon takes them, each
    once the one before is counted. (The timing itself is test_alert_engine's, on a fake
    clock.)"""
    port = free_udp_port()
    with MqttRecorder(mosquitto, "netmon/#") as recorder:
        netmon = NetmonProcess(trap_config(tmp_path, mosquitto, port))

        def counted() -> float:
            text = netmon.metrics()
            return sum(
                metric_value(text, "netmon_snmp_traps_received_total", target="sw-v2c", trap=t) or 0
                for t in ("linkDown", "linkUp")
            )

        try:
            for change in range(30):
                await snmptrap(
                    "-v", "2c", "-c", COMMUNITY, "--clientaddr=127.0.0.5", f"127.0.0.1:{port}",
                    "", LINK_UP if change % 2 else LINK_DOWN, "1.3.6.1.2.1.2.2.1.1.3", "i", "3",
                )  # fmt: skip
                await eventually(lambda n=change + 1: counted() == n, what=f"trap {change + 1}")
            await all_delivered(netmon, recorder)
            events = [json.loads(m.payload) for m in recorder.matching(lambda m: m.topic == EVENTS)]
            assert {(e["alertname"], e["target"], e["fingerprint"]) for e in events} == {
                ("InterfaceDown", "sw-v2c", events[0]["fingerprint"])
            }
            assert [e["status"] for e in events] == ["firing", "firing"]  # raised, then flapping
            assert [e["flapping"] for e in events] == [False, True]
            assert "flapping" in events[-1]["summary"]
            topic = f"netmon/alerts/sw-v2c/InterfaceDown~{events[0]['fingerprint']}"
            assert json.loads(retained(mosquitto, "netmon/alerts/#")[topic])["flapping"] is True
        finally:
            netmon.stop()


async def test_a_meeting_about_to_start_is_checked_and_its_report_arrives_on_mqtt(
    netlab: NetLab, mosquitto: Mosquitto, tmp_path: Path
) -> None:
    dead = netlab.add_host()
    dead.link_down()
    start = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=4)
    path = config(
        tmp_path,
        mosquitto,
        [
            {"id": "ep-hall", "address": "127.0.0.1", "group": "province"},
            {"id": "ep-off", "address": dead.address, "group": "province"},
        ],
        meetings=[
            {"name": "Giao ban tỉnh", "start": start.isoformat(), "groups": ["province"],
             "check_before": ["2s"]},
        ],
    )  # fmt: skip
    with MqttRecorder(mosquitto, "netmon/#") as recorder:
        netmon = NetmonProcess(path)
        try:
            report_message = await recorder.until(
                lambda m: m.topic.startswith("netmon/checks/"), timeout=15
            )
            report = json.loads(report_message.payload)
            assert report["scope"] == {"meeting": "Giao ban tỉnh"}
            assert report["counts"] == {"GO": 1, "WARN": 0, "NO-GO": 1}
            assert not report_message.retain
            alert = await recorder.until(
                is_event("EndpointNotReady", "ep-off", "firing"), timeout=5
            )
            payload = json.loads(alert.payload)
            assert payload["severity"] == "critical"
            assert payload["summary"].startswith("ep-off is NO-GO for meeting Giao ban tỉnh")
            # Reports are kept for the API too.
            _, _, body = netmon.get("/api/v1/checks?meeting=Giao%20ban%20t%E1%BB%89nh")
            assert [c["id"] for c in json.loads(body)["checks"]] == [report["id"]]
        finally:
            netmon.stop()


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 4 MiB file system of the test's own (tmpfs; root), to fill up."""
    where = tmp_path / "small-disk"
    where.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=4m,mode=0755", "tmpfs", str(where)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert mounted.returncode == 0, f"this test mounts a tmpfs (root): {mounted.stderr}"
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


async def test_a_full_disk_holds_alerts_back_until_space_returns_and_loses_none(
    netlab: NetLab, mosquitto: Mosquitto, tmp_path: Path, small_disk: Path
) -> None:
    # The alert database on a small file system, filled up while netmon runs: what netmon
    # decides meanwhile is announced only once it is stored, and none of it is lost.
    host = netlab.add_host()
    path = config(tmp_path, mosquitto, [{"id": "ep-a", "address": host.address}])
    database = str(small_disk / "alerts.sqlite")
    path.write_text(path.read_text().replace(str(tmp_path / "alerts.sqlite"), database))
    with MqttRecorder(mosquitto, "netmon/#") as recorder:
        netmon = NetmonProcess(path)
        try:
            await wait_up(netmon, "ep-a")
            # Unbuffered: a write the full disk refuses leaves nothing for close() to retry.
            with (small_disk / "filler").open("wb", buffering=0) as filler:
                try:
                    while True:
                        filler.write(b"\0" * 65536)
                except OSError:
                    pass  # full
            host.link_down()
            await eventually(
                lambda: metric_value(netmon.metrics(), "netmon_alert_transitions_unstored") == 1,
                timeout=10,
                what="EndpointDown decided and waiting for the disk",
            )
            assert alert_events(recorder) == []  # nothing announced that is not stored
            (small_disk / "filler").unlink()
            await recorder.until(is_event("EndpointDown", "ep-a", "firing"), timeout=30)
            text = netmon.metrics()
            assert metric_value(text, "netmon_alert_transitions_unstored") == 0
            failures = metric_value(text, "netmon_alert_store_failures_total")
            assert failures is not None
            assert failures >= 1
        finally:
            netmon.stop()
    assert alert_events(recorder) == [("EndpointDown", "ep-a", "firing")]


async def test_an_acknowledgement_is_an_event_and_stays_on_the_retained_alert(
    netlab: NetLab, mosquitto: Mosquitto, tmp_path: Path
) -> None:
    host = netlab.add_host()
    with MqttRecorder(mosquitto, "netmon/#") as recorder:
        netmon = NetmonProcess(
            config(tmp_path, mosquitto, [{"id": "ep-1", "address": host.address}])
        )
        try:
            await wait_up(netmon, "ep-1")
            host.link_down()
            firing = await recorder.until(is_event("EndpointDown", "ep-1", "firing"), timeout=8)
            fingerprint = json.loads(firing.payload)["fingerprint"]
            request = urllib.request.Request(  # noqa: S310 - netmon on loopback
                f"{netmon.url}/api/v1/alerts/{fingerprint}/ack",
                data=json.dumps({"by": "Lan", "comment": "xe đang tới"}).encode(),
                headers={"Content-Type": "application/json"},
                method="POST",
            )

            def post() -> int:
                with urllib.request.urlopen(request, timeout=5) as answer:  # noqa: S310
                    return int(answer.status)

            assert await asyncio.to_thread(post) == 200

            def acknowledged(message: MqttMessage) -> bool:
                return message.topic == EVENTS and json.loads(message.payload)["acknowledged"]

            event = json.loads((await recorder.until(acknowledged, timeout=8)).payload)
            assert (event["status"], event["acknowledged_by"]) == ("firing", "Lan")
            assert event["event_id"] != json.loads(firing.payload)["event_id"]
            alert = "netmon/alerts/ep-1/EndpointDown"
            await recorder.until(
                lambda m: m.topic == alert and '"acknowledged": true' in m.payload, timeout=5
            )
            kept = json.loads(retained(mosquitto, "netmon/alerts/#")[alert])
            assert (kept["acknowledged_by"], kept["acknowledged_comment"]) == ("Lan", "xe đang tới")
        finally:
            netmon.stop()

"""deploy/alertmanager.yml, the routes we ship for netmon's alerts: amtool accepts it, alerts
reach the receiver the comments promise, pages leave within seconds, and a district that is
cut off pages once instead of once per endpoint."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from netmon.alerting.model import AlertEvent, Severity, Status
from netmon.alerting.sinks.alertmanager import AlertmanagerSink
from netmon.config.sinks import AlertmanagerSettings
from tests.conftest import require_program

# The peer module is also a plugin (its fixtures): have its asserts rewritten before importing it.
pytest.register_assert_rewrite("tests.alertmanager_peer")
from tests.alertmanager_peer import (  # noqa: E402
    AlertmanagerFactory,
    HttpRecorder,
    eventually,
)

pytest_plugins = ["tests.alertmanager_peer"]

pytestmark = pytest.mark.peer

CONFIG = Path(__file__).resolve().parent.parent / "deploy" / "alertmanager.yml"
HANG = 30.0  # seconds: a hang guard, far beyond the routes' group_wait; never a speed figure


def amtool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [require_program("amtool"), *args], capture_output=True, text=True, timeout=30, check=False
    )


def matched_route(**labels: str) -> tuple[str, str]:
    """(receiver, matchers) of the route amtool says an alert with `labels` takes."""
    result = amtool(
        "config", "routes", "test", f"--config.file={CONFIG}", "--tree",
        *(f"{name}={value}" for name, value in labels.items()),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    # The tree's last line is the deepest matching route: "└── {matchers}  receiver: name".
    last = [line for line in result.stdout.splitlines() if "receiver:" in line][-1]
    matchers, _, receiver = last.rpartition("receiver:")
    return receiver.strip(), matchers.strip(" └─├│")


def route_with(matchers: str) -> dict[str, Any]:
    """The route of deploy/alertmanager.yml whose matchers amtool printed as `matchers`."""
    config = yaml.safe_load(CONFIG.read_text())
    for route in config["route"]["routes"]:
        if all(m.replace(" ", "") in matchers for m in route["matchers"]):
            return dict(route)
    raise AssertionError(f"no route with {matchers}")


def seconds(duration: str) -> float:
    units = {"ms": 0.001, "s": 1, "m": 60, "h": 3600}
    for unit in ("ms", "s", "m", "h"):
        if duration.endswith(unit):
            return float(duration.removesuffix(unit)) * units[unit]
    raise AssertionError(f"unexpected duration {duration}")


def test_amtool_accepts_the_config() -> None:
    result = amtool("check-config", str(CONFIG))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout
    assert "3 inhibit rules" in result.stdout


def test_a_critical_endpoint_fault_pages_on_call_within_seconds() -> None:
    receiver, matchers = matched_route(
        alertname="EndpointDown", severity="critical", kind="endpoint", district="Krông Búk"
    )
    assert receiver == "oncall"
    route = route_with(matchers)
    # Seconds, not Alertmanager's minutes (docs/architecture.md, "Alert timing").
    assert seconds(route["group_wait"]) <= 2
    assert seconds(route["group_interval"]) <= 30


def test_a_link_warning_goes_to_the_noc_grouped_by_district() -> None:
    receiver, matchers = matched_route(
        alertname="LinkSaturated", severity="warning", kind="switch", district="Krông Búk"
    )
    assert receiver == "noc"
    assert "LinkSaturated" in matchers  # the link route, not the catch-all
    assert route_with(matchers)["group_by"] == ["district"]


@pytest.mark.parametrize(
    ("labels", "receiver"),
    [
        ({"alertname": "DistrictUnreachable", "severity": "critical", "district": "X"}, "oncall"),
        ({"alertname": "HighPacketLoss", "severity": "critical", "kind": "endpoint"}, "oncall"),
        ({"alertname": "HighPacketLoss", "severity": "major", "kind": "endpoint"}, "noc"),
        ({"alertname": "TargetDown", "severity": "critical", "kind": "router"}, "oncall"),
        ({"alertname": "InterfaceDown", "severity": "warning", "kind": "switch"}, "noc"),
        ({"alertname": "SNMPAuthFailure", "severity": "critical", "kind": "olt"}, "monitoring"),
        ({"alertname": "DeviceRebooted", "severity": "info", "kind": "cpe"}, "noc"),
    ],
)
def test_every_kind_of_alert_has_the_intended_receiver(
    labels: dict[str, str], receiver: str
) -> None:
    result = amtool(
        "config", "routes", "test", f"--config.file={CONFIG}", f"--verify.receivers={receiver}",
        *(f"{name}={value}" for name, value in labels.items()),
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr


def _event(alertname: str, target: str, district: str, kind: str) -> AlertEvent:
    now = time.time()
    return AlertEvent(
        alertname=alertname,
        target=target,
        severity=Severity.CRITICAL,
        status=Status.FIRING,
        starts_at=now,
        ends_at=None,
        summary=f"{alertname} {target}",
        context={"kind": kind, "district": district},
        event_at=now,
    )


async def test_an_unreachable_district_inhibits_its_endpoints_only(
    alertmanager_factory: AlertmanagerFactory, http_recorder: HttpRecorder, tmp_path: Path
) -> None:
    # The shipped file, with each placeholder receiver pointed at a recorder of ours.
    config = yaml.safe_load(CONFIG.read_text())
    for receiver in config["receivers"]:
        for hook in receiver["webhook_configs"]:
            hook["url"] = f"{http_recorder.url}/{receiver['name']}"
    local = tmp_path / "alertmanager.yml"
    local.write_text(yaml.safe_dump(config))
    alertmanager = alertmanager_factory(config=local)

    sink = AlertmanagerSink(
        alertmanager.url,
        AlertmanagerSettings(urls=[alertmanager.url]),
        active=list,
        generator_url="http://netmon.test/",
    )
    async with sink:
        await sink.send(_event("DistrictUnreachable", "sw-agg-kb", "Krông Búk", "switch"))
        await sink.send(_event("EndpointDown", "ep-kb-ubnd", "Krông Búk", "endpoint"))
        await sink.send(_event("EndpointDown", "ep-cm-ubnd", "Cư M'gar", "endpoint"))

        def state(target: str) -> dict[str, Any]:
            [alert] = alertmanager.alerts(target=target)
            return dict(alert["status"])

        inhibited = await eventually(
            lambda: (s := state("ep-kb-ubnd"))["inhibitedBy"] and s,
            timeout=HANG,
            what="EndpointDown in the cut-off district to be inhibited",
        )
        assert inhibited["state"] == "suppressed"
        other = state("ep-cm-ubnd")
        assert other["inhibitedBy"] == []
        assert other["state"] == "active"

        # What the on-call engineer's phone shows: the district page and the other district's
        # endpoint; never the endpoint behind the dead switch. "Within seconds" is the routes'
        # group_wait (test_a_critical_endpoint_fault_pages_on_call_within_seconds) and, as a
        # time, bench/service_bench.py's figure: no stopwatch here, only a hang guard.
        def paged() -> set[tuple[str, str]]:
            return {
                (alert["labels"]["alertname"], alert["labels"]["target"])
                for request in http_recorder.on("/oncall")
                for alert in request.json()["alerts"]
            }

        await eventually(
            lambda: (
                {("DistrictUnreachable", "sw-agg-kb"), ("EndpointDown", "ep-cm-ubnd")} <= paged()
            ),
            timeout=HANG,
            what="both pages",
        )
        # Both EndpointDown groups were flushed at the same moment (same group_wait), so by
        # now the inhibited one would have been sent too.
        assert ("EndpointDown", "ep-kb-ubnd") not in paged()
        assert http_recorder.on("/noc") == []

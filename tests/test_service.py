"""`netmon run` as a process: HTTP routes, clean shutdown, reload on SIGHUP."""

from __future__ import annotations

import json
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from netmon.service import alert_database_path
from tests.conftest import require_program
from tests.helpers import NetmonProcess, metric_value, samples, wait_until, write_config
from tests.lab.netlab import NetLab

FAST_ICMP = {"interval": "200ms", "timeout": "150ms", "down_after": 2, "up_after": 2}


def _config(path: Path, ids: dict[str, str], **extra: object) -> Path:
    data: dict[str, object] = {
        "instance": "test",
        "defaults": {"icmp": FAST_ICMP},
        "targets": [
            {
                "id": tid,
                "address": address,
                "name": f"Điểm cầu {tid}",
                "district": "Yên Định",
                "group": "commune",
                "labels": {"vendor": "Polycom"},
            }
            for tid, address in ids.items()
        ],
        **extra,
    }
    return write_config(path, data)


@pytest.fixture
def netmon(tmp_path: Path) -> Iterator[NetmonProcess]:
    process = NetmonProcess(_config(tmp_path / "netmon.yaml", {"a": "127.0.3.1", "b": "127.0.3.2"}))
    try:
        yield process
    finally:
        process.stop()


def _up(process: NetmonProcess, target: str) -> bool:
    return metric_value(process.metrics(), "netmon_target_up", target=target) == 1.0


def test_metrics_follow_the_contract(netmon: NetmonProcess) -> None:
    wait_until(lambda: _up(netmon, "a") and _up(netmon, "b"), what="targets up")
    text = netmon.metrics()
    up = dict(samples(text, "netmon_target_up")[0][0])
    assert up == {"target": "a", "kind": "endpoint", "site": "", "group": "commune"}
    info = samples(text, "netmon_target_info")[0][0]
    assert info["name"] == "Điểm cầu a"
    assert info["district"] == "Yên Định"
    assert info["vendor"] == "Polycom"
    assert (metric_value(text, "netmon_icmp_packets_received_total", target="a") or 0) > 0
    assert metric_value(text, "netmon_icmp_rtt_seconds_count", target="a")
    assert metric_value(text, "netmon_icmp_rtt_seconds_bucket", target="a", le="0.0005") is not None
    assert metric_value(text, "netmon_icmp_rtt_seconds_bucket", target="a", le="2.0") is not None
    assert metric_value(text, "netmon_icmp_loss_ratio", target="a") == 0.0
    assert metric_value(text, "netmon_probe_success", target="a", probe="icmp") == 1.0
    assert metric_value(text, "netmon_build_info", version="0.1.0") == 1.0
    tasks = metric_value(text, "netmon_asyncio_tasks")  # a soak watches it stay flat
    assert tasks is not None
    assert tasks > 0
    assert metric_value(text, "netmon_collector_duration_seconds_count", collector="icmp")
    assert metric_value(text, "netmon_scheduler_lag_seconds_count", collector="icmp")


def test_internal_errors_are_exported_at_zero_before_any(netmon: NetmonProcess) -> None:
    """The first crash of a collector must be an increase to Prometheus (NetmonInternalErrors),
    so the series is there, at 0, while all is well."""
    wait_until(lambda: _up(netmon, "a"), what="target a up")
    text = netmon.metrics()
    assert (
        metric_value(text, "netmon_collector_errors_total", collector="icmp", reason="internal")
        == 0.0
    )


@pytest.mark.peer
def test_promtool_accepts_a_real_scrape(netmon: NetmonProcess) -> None:
    promtool = require_program("promtool")
    wait_until(lambda: _up(netmon, "a"), what="target up")
    result = subprocess.run(
        [promtool, "check", "metrics"], input=netmon.metrics(), capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == ""
    assert result.stderr.strip() == ""


def test_openmetrics_when_asked(netmon: NetmonProcess) -> None:
    status, content_type, body = netmon.get(
        "/metrics", accept="application/openmetrics-text; version=1.0.0; charset=utf-8"
    )
    assert status == 200
    assert content_type.startswith("application/openmetrics-text")
    assert body.rstrip().endswith("# EOF")
    _, plain_type, _ = netmon.get("/metrics")
    assert plain_type.startswith("text/plain")


def test_api_routes(netmon: NetmonProcess) -> None:
    wait_until(lambda: _up(netmon, "a"), what="target up")
    assert netmon.get("/-/healthy")[0] == 200
    assert netmon.get("/-/ready")[0] == 200
    status, content_type, body = netmon.get("/api/v1/targets")
    assert status == 200
    assert content_type.startswith("application/json")
    targets = {t["id"]: t for t in json.loads(body)["targets"]}
    assert sorted(targets) == ["a", "b"]
    assert targets["a"]["state"] == "up"
    assert targets["a"]["name"] == "Điểm cầu a"
    assert targets["a"]["probes"]["icmp"]["success"] is True
    assert targets["a"]["rtt_ms"] is not None
    status, _, body = netmon.get("/api/v1/targets/b")
    assert status == 200
    assert json.loads(body)["address"] == "127.0.3.2"
    status, _, body = netmon.get("/api/v1/targets/nope")
    assert status == 404
    assert json.loads(body) == {"error": "no target 'nope'"}


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_stops_cleanly(netmon: NetmonProcess, sig: signal.Signals) -> None:
    wait_until(lambda: _up(netmon, "a"), what="target up")
    netmon.signal(sig)
    # README promises a stop within two seconds: bench/service_bench.py measures it. Here the
    # wait only catches a netmon that does not stop at all.
    netmon.process.wait(timeout=30)
    assert netmon.process.returncode == 0
    assert netmon.event("netmon stopped") is not None
    assert "Traceback" not in "".join(netmon.stderr_lines)


def test_sighup_applies_a_new_inventory(netmon: NetmonProcess) -> None:
    def sent_b() -> float:
        return metric_value(netmon.metrics(), "netmon_icmp_packets_sent_total", target="b") or 0

    wait_until(lambda: _up(netmon, "a") and sent_b() >= 5, what="targets up with history")
    sent_before = sent_b()
    _config(netmon.config, {"b": "127.0.3.2", "c": "127.0.3.3"})
    netmon.signal(signal.SIGHUP)
    wait_until(lambda: _up(netmon, "c"), what="added target c up")
    text = netmon.metrics()
    assert not [s for s in samples(text, "netmon_target_up") if s[0]["target"] == "a"]
    assert not [s for s in samples(text, "netmon_target_info") if s[0]["target"] == "a"]
    # b was unchanged: its counters go on rather than starting again.
    assert sent_b() >= sent_before
    wait_until(lambda: sent_b() > sent_before, what="b's counter to go on")
    assert metric_value(text, "netmon_config_reloads_total", result="success") == 1.0
    event = netmon.event("config reloaded")
    assert event is not None
    assert (event["added"], event["removed"], event["changed"]) == (1, 1, 0)


def test_sighup_with_a_broken_config_keeps_the_old_one(netmon: NetmonProcess) -> None:
    wait_until(lambda: _up(netmon, "a"), what="target up")
    netmon.config.write_text("targets:\n  - {id: a, address: 300.0.0.1}\n")
    netmon.signal(signal.SIGHUP)
    event = wait_until(lambda: netmon.event("config reload rejected; the running config stays"))
    assert "targets[0].address: not an IP address or hostname" in event["problems"]
    text = netmon.metrics()
    assert metric_value(text, "netmon_config_reloads_total", result="failure") == 1.0
    sent = metric_value(text, "netmon_icmp_packets_sent_total", target="b") or 0
    wait_until(
        lambda: (
            (metric_value(netmon.metrics(), "netmon_icmp_packets_sent_total", target="b") or 0)
            > sent
        ),
        what="b still probed",
    )
    assert netmon.process.poll() is None


@pytest.mark.netns
@pytest.mark.parametrize(
    ("database", "environ", "expected"),
    [
        ("netmon-alerts.sqlite", {}, "/etc/netmon/netmon-alerts.sqlite"),
        ("db/a.sqlite", {"STATE_DIRECTORY": "/var/lib/netmon"}, "/var/lib/netmon/db/a.sqlite"),
        ("a.sqlite", {"STATE_DIRECTORY": "/var/lib/netmon:/var/lib/x"}, "/var/lib/netmon/a.sqlite"),
        ("/srv/a.sqlite", {"STATE_DIRECTORY": "/var/lib/netmon"}, "/srv/a.sqlite"),
        ("a.sqlite", {"STATE_DIRECTORY": ""}, "/etc/netmon/a.sqlite"),
    ],
)  # fmt: skip
def test_a_relative_alert_database_goes_in_systemds_state_directory(
    database: str, environ: dict[str, str], expected: str
) -> None:
    config = Path("/etc/netmon/config.yaml")
    assert alert_database_path(database, config, environ) == Path(expected)


def test_netmon_keeps_its_default_alert_database_in_the_state_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Under the systemd unit the config's directory is read-only: netmon would exit at
    every start with alerting.database left at its default."""
    etc, state, other = tmp_path / "etc", tmp_path / "state", tmp_path / "other"
    for directory in (etc, state, other):
        directory.mkdir()
    monkeypatch.setenv("STATE_DIRECTORY", f"{state}:{other}")
    process = NetmonProcess(_config(etc / "netmon.yaml", {"a": "127.0.3.1"}))
    try:
        assert (state / "netmon-alerts.sqlite").is_file()
    finally:
        process.stop()
    assert sorted(path.name for path in etc.iterdir()) == ["netmon.yaml"]
    assert not list(other.iterdir())


def test_down_target_is_logged_once_and_exported_as_zero(tmp_path: Path, netlab: NetLab) -> None:
    host = netlab.add_host()
    host.link_down()
    process = NetmonProcess(_config(tmp_path / "c.yaml", {"ok": "127.0.3.9", "dead": host.address}))
    try:
        wait_until(
            lambda: metric_value(process.metrics(), "netmon_target_up", target="dead") == 0.0,
            what="dead target down",
        )

        def sent() -> float:
            value = metric_value(process.metrics(), "netmon_icmp_packets_sent_total", target="dead")
            return value or 0.0

        # Three more rounds of a down target, each of which could log again.
        more = sent() + 3
        wait_until(lambda: sent() >= more, what="three more rounds to the dead target")
        downs = [e for e in process.events if e.get("msg") == "target down"]
        assert [e["target"] for e in downs] == ["dead"]
        failing = [e for e in process.events if e.get("msg") == "probe failing"]
        assert len(failing) == 1
    finally:
        process.stop()

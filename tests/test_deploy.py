"""deploy/: the files that run netmon beside Prometheus, Alertmanager and Grafana. Each is
checked by the program that will read it (promtool, systemd-analyze, netmon validate), and the
compose file's services are checked to point at each other."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from netmon.alerting.rules import default_rules
from netmon.config import Thresholds
from tests.conftest import require_program

pytestmark = pytest.mark.peer

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
PROMETHEUS = DEPLOY / "prometheus"
RULES = PROMETHEUS / "rules"
RULE_FILES = [RULES / "netmon-recording.yml", RULES / "netmon-alerts.yml"]
SEVERITIES = ("info", "warning", "major", "critical")

# The recorded series the dashboards query by name (issue 6): renaming one empties panels.
DASHBOARD_RECORDINGS = {
    "netmon:interface_in_bits:rate5m",
    "netmon:interface_out_bits:rate5m",
    "netmon:interface_utilization:ratio_rate5m",
    "netmon:interface_errors:rate5m",
    "netmon:interface_discards:rate5m",
    "netmon:icmp_loss:ratio_rate5m",
    "netmon:icmp_rtt_seconds:p95_5m",
}


def run(*command: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [require_program(command[0]), *command[1:]],
        capture_output=True, text=True, timeout=120, check=False, cwd=cwd,
    )  # fmt: skip


def load(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


def rules(path: Path) -> list[dict[str, Any]]:
    return [rule for group in load(path)["groups"] for rule in group["rules"]]


ALERTS = rules(RULES / "netmon-alerts.yml")


def test_promtool_accepts_the_rule_files() -> None:
    result = run("promtool", "check", "rules", *map(str, RULE_FILES))
    assert result.returncode == 0, result.stdout + result.stderr
    for path in RULE_FILES:
        assert f"SUCCESS: {len(rules(path))} rules found" in result.stdout.split(path.name)[1]


def test_the_recorded_series_the_dashboards_query_exist() -> None:
    recorded = {rule["record"] for rule in rules(RULES / "netmon-recording.yml")}
    assert recorded >= DASHBOARD_RECORDINGS, DASHBOARD_RECORDINGS - recorded
    assert all(name.startswith("netmon:") for name in recorded)


@pytest.mark.parametrize("config", ["prometheus.yml", "prometheus-shards.yml"])
def test_promtool_accepts_the_scrape_configs_with_their_rules(config: str) -> None:
    result = run("promtool", "check", "config", str(PROMETHEUS / config))
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    # A missing rule or file_sd file is only a warning to promtool; to a user it is no rules,
    # or no shard scraped.
    assert "WARNING" not in output, output
    assert "SUCCESS: 2 rule files found" in output
    scrape = {job["job_name"]: job for job in load(PROMETHEUS / config)["scrape_configs"]}
    # The alert rules (NetmonDown...) and the dashboards select job="netmon".
    assert "netmon" in scrape
    assert scrape["netmon"]["scrape_interval"] == "15s"


def test_shards_are_scraped_as_distinct_instances_with_a_shard_label() -> None:
    job = next(
        job
        for job in load(PROMETHEUS / "prometheus-shards.yml")["scrape_configs"]
        if job["job_name"] == "netmon"
    )
    # Relabelling instance would merge the shards' own series (see the file's comment).
    assert "relabel_configs" not in job
    groups = [
        group
        for sd in job["file_sd_configs"]
        for pattern in sd["files"]
        for path in sorted(PROMETHEUS.glob(pattern))
        for group in load(path)
    ]
    targets = [target for group in groups for target in group["targets"]]
    assert len(targets) >= 2
    assert len(set(targets)) == len(targets)
    assert all(target.endswith(":9842") for target in targets)
    shards = [group["labels"]["shard"] for group in groups]
    assert len(set(shards)) == len(shards) == len(groups)


def test_promtool_rule_unit_tests_pass() -> None:
    tests = sorted((PROMETHEUS / "tests").glob("*.yml"))
    assert tests
    result = run("promtool", "test", "rules", *map(str, tests))
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("SUCCESS") == len(tests), result.stdout


def test_every_alert_rule_is_tested_firing_and_silent() -> None:
    cases: dict[str, set[bool]] = {}
    for path in sorted((PROMETHEUS / "tests").glob("*.yml")):
        for group in load(path)["tests"]:
            for case in group.get("alert_rule_test", []):
                cases.setdefault(case["alertname"], set()).add(bool(case.get("exp_alerts")))
    for alert in ALERTS:
        assert cases.get(alert["alert"]) == {True, False}, f"{alert['alert']}: {cases}"


def test_prometheus_alerts_do_not_repeat_netmons_own() -> None:
    """netmon raises its seconds-scale alerts itself; one of the same name from Prometheus
    would be deduplicated into it by Alertmanager, or page twice a minute apart."""
    own = set(default_rules(Thresholds()))
    assert "EndpointDown" in own
    assert own.isdisjoint(alert["alert"] for alert in ALERTS)


@pytest.mark.parametrize("alert", ALERTS, ids=lambda alert: str(alert["alert"]))
def test_alert_speaks_netmons_severities_and_says_what_to_do(alert: dict[str, Any]) -> None:
    assert alert["labels"]["severity"] in SEVERITIES
    summary, description = alert["annotations"]["summary"], alert["annotations"]["description"]
    assert len(summary) < 120 <= len(description)
    # About a target: it keeps `target`, and gains `district` for Alertmanager's grouping.
    if "netmon_target_info" in alert["expr"]:
        assert "group_left (district, name) netmon_target_info" in alert["expr"]
        assert "$labels.target" in summary


@pytest.mark.parametrize("alert", ALERTS, ids=lambda alert: str(alert["alert"]))
def test_only_critical_prometheus_alerts_page_the_on_call(alert: dict[str, Any]) -> None:
    severity = alert["labels"]["severity"]
    result = run(
        "amtool", "config", "routes", "test",
        f"--config.file={DEPLOY / 'alertmanager.yml'}",
        f"alertname={alert['alert']}", f"severity={severity}", "district=Yên Định",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    receiver = result.stdout.strip()
    # A day-long average or a certificate two weeks from expiry can wait for office hours.
    assert (receiver == "oncall") == (severity == "critical"), receiver
    assert receiver in {"oncall", "noc", "monitoring"}


def test_netmon_down_is_critical_and_waits_two_minutes() -> None:
    alert = next(alert for alert in ALERTS if alert["alert"] == "NetmonDown")
    assert re.fullmatch(r'up\{job="netmon"\} == 0', alert["expr"])
    assert alert["for"] == "2m"
    assert alert["labels"]["severity"] == "critical"

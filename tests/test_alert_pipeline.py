"""netmon as a process, end to end: a fault in the namespace lab becomes an alert that reaches
real sinks, and the API's alerts and silences behave as a person expects."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Any

from tests.alertmanager_peer import Alertmanager, HttpRecorder, eventually
from tests.helpers import NetmonProcess, metric_value, write_config
from tests.lab.netlab import NetLab

TOKEN = "s3cret-token-for-tests"  # noqa: S105 - a test's own token


def lab_config(tmp_path: Path, targets: list[dict[str, Any]], **alerting: Any) -> Path:
    return write_config(
        tmp_path / "netmon.yaml",
        {
            "instance": "pipeline",
            "alerting": {"database": str(tmp_path / "alerts.sqlite"), **alerting},
            "targets": targets,
        },
    )


def request(
    url: str, *, method: str = "GET", body: Any = None, token: str | None = None
) -> tuple[int, Any]:
    data = json.dumps(body).encode() if body is not None else None
    headers = {"Content-Type": "application/json"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    req = urllib.request.Request(url, data=data, method=method, headers=headers)  # noqa: S310
    try:
        with urllib.request.urlopen(req, timeout=5) as response:  # noqa: S310
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


async def test_endpoint_down_reaches_alertmanager_and_resolves(
    netlab: NetLab, alertmanager: Alertmanager, tmp_path: Path
) -> None:
    host = netlab.add_host()
    config = lab_config(
        tmp_path,
        [{"id": "ep-lab", "address": host.address, "name": "Phòng họp A", "district": "D7"}],
        alertmanager={"urls": [alertmanager.url]},
    )
    netmon = NetmonProcess(config)
    try:
        await eventually(
            lambda: metric_value(netmon.metrics(), "netmon_target_up", target="ep-lab") == 1,
            timeout=10,
            what="the lab endpoint up",
        )
        host.link_down()
        alerts = await eventually(
            lambda: alertmanager.alerts(alertname="EndpointDown", target="ep-lab"),
            timeout=10,
            what="EndpointDown in Alertmanager",
        )
        labels = alerts[0]["labels"]
        assert labels["severity"] == "critical"
        assert labels["district"] == "D7"
        assert alerts[0]["annotations"]["summary"].startswith("Phòng họp A is unreachable")
        assert metric_value(netmon.metrics(), "netmon_alerts_active", severity="critical") == 1

        host.link_up()
        await eventually(
            lambda: not alertmanager.alerts(alertname="EndpointDown", target="ep-lab"),
            timeout=15,
            what="EndpointDown resolved in Alertmanager",
        )
        text = netmon.metrics()
        assert metric_value(text, "netmon_alerts_active", severity="critical") == 0
        sent = metric_value(
            text, "netmon_alert_notifications_total", sink="alertmanager", result="success"
        )
        assert sent is not None
        assert sent >= 2  # the firing and the resolve
    finally:
        netmon.stop()


async def test_silences_need_the_token_and_keep_a_fault_quiet(
    netlab: NetLab, http_recorder: HttpRecorder, tmp_path: Path
) -> None:
    host = netlab.add_host()
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN + "\n")
    config = write_config(
        tmp_path / "netmon.yaml",
        {
            "http": {"token": {"file": str(token_file)}},
            "alerting": {
                "database": str(tmp_path / "alerts.sqlite"),
                "webhooks": [{"name": "ops", "url": http_recorder.url + "/hook"}],
            },
            "targets": [{"id": "ep-quiet", "address": host.address, "group": "hall"}],
        },
    )
    netmon = NetmonProcess(config)
    try:
        silence = {"matchers": {"group": "hall"}, "duration": 600, "comment": "maintenance"}
        status, body = request(netmon.url + "/api/v1/silences", method="POST", body=silence)
        assert status == 401, body
        status, body = request(
            netmon.url + "/api/v1/silences", method="POST", body=silence, token=TOKEN[::-1]
        )
        assert status == 401
        status, body = request(
            netmon.url + "/api/v1/silences",
            method="POST",
            body={"matchers": {"colour": "red"}, "duration": 60},
            token=TOKEN,
        )
        assert status == 400
        assert "matchers.colour" in body["error"]
        status, created = request(
            netmon.url + "/api/v1/silences", method="POST", body=silence,
            token=TOKEN,
        )  # fmt: skip
        assert status == 201, created

        await eventually(
            lambda: metric_value(netmon.metrics(), "netmon_target_up", target="ep-quiet") == 1,
            timeout=10,
            what="the endpoint up",
        )
        host.link_down()
        alerts = await eventually(
            lambda: request(netmon.url + "/api/v1/alerts")[1]["alerts"],
            timeout=10,
            what="the alert listed by the API",
        )
        assert alerts[0]["alertname"] == "EndpointDown"
        assert alerts[0]["silenced"] is True
        assert http_recorder.on("/hook") == []  # nobody is paged during maintenance

        status, _ = request(
            f"{netmon.url}/api/v1/silences/{created['id']}", method="DELETE",
            token=TOKEN,
        )  # fmt: skip
        assert status == 200
        posted = await eventually(
            lambda: http_recorder.on("/hook"), timeout=10, what="the page after the silence"
        )
        payload = json.loads(posted[0].body)
        assert payload["alert"]["alertname"] == "EndpointDown"
        assert payload["alert"]["status"] == "firing"
        assert "s3cret" not in "".join(netmon.stderr_lines)
    finally:
        netmon.stop()


def netmon_cli(*args: str, token: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "NETMON_API_TOKEN"}
    if token is not None:
        env["NETMON_API_TOKEN"] = token
    return subprocess.run(
        [str(Path(sys.executable).with_name("netmon")), *args],
        capture_output=True, text=True, env=env, timeout=60, check=False,
    )  # fmt: skip


async def test_an_alert_acknowledged_from_the_command_line_shows_everywhere(
    netlab: NetLab, http_recorder: HttpRecorder, tmp_path: Path
) -> None:
    host = netlab.add_host()
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN + "\n")
    config = write_config(
        tmp_path / "netmon.yaml",
        {
            "http": {"token": {"file": str(token_file)}},
            "alerting": {
                "database": str(tmp_path / "alerts.sqlite"),
                "webhooks": [{"name": "ops", "url": http_recorder.url + "/hook"}],
            },
            "targets": [{"id": "ep-ack", "address": host.address, "name": "Xã Thanh Sơn"}],
        },
    )
    netmon = NetmonProcess(config)
    try:
        await eventually(
            lambda: metric_value(netmon.metrics(), "netmon_target_up", target="ep-ack") == 1,
            timeout=10,
            what="the endpoint up",
        )
        host.link_down()
        await eventually(lambda: http_recorder.on("/hook"), timeout=10, what="the page")
        (alert,) = request(netmon.url + "/api/v1/alerts")[1]["alerts"]
        assert alert["acknowledged"] is False
        prefix = alert["fingerprint"][:6]

        listed = netmon_cli("alerts", "list", "--url", netmon.url)
        assert listed.returncode == 0, listed.stderr
        assert alert["fingerprint"] in listed.stdout
        refused = netmon_cli("alerts", "ack", prefix, "--url", netmon.url)
        assert refused.returncode == 1
        assert "token" in refused.stderr.lower()

        taken = netmon_cli(
            "alerts", "ack", prefix, "--by", "Tuấn", "--comment", "gọi VNPT", "--url", netmon.url,
            token=TOKEN,
        )  # fmt: skip
        assert taken.returncode == 0, taken.stderr
        assert "acknowledged by Tuấn" in taken.stdout
        (alert,) = request(netmon.url + "/api/v1/alerts")[1]["alerts"]
        assert (alert["acknowledged_by"], alert["acknowledged_comment"]) == ("Tuấn", "gọi VNPT")
        assert (
            metric_value(netmon.metrics(), "netmon_alerts_acknowledged", severity="critical") == 1
        )
        restated = await eventually(
            lambda: [
                json.loads(p.body)["alert"]
                for p in http_recorder.on("/hook")
                if json.loads(p.body)["alert"]["acknowledged"]
            ],
            timeout=10,
            what="the acknowledgement at the webhook",
        )
        assert restated[0]["acknowledged_by"] == "Tuấn"
        assert restated[0]["status"] == "firing"

        withdrawn = netmon_cli("alerts", "unack", prefix, "--url", netmon.url, token=TOKEN)
        assert withdrawn.returncode == 0, withdrawn.stderr
        (alert,) = request(netmon.url + "/api/v1/alerts")[1]["alerts"]
        assert alert["acknowledged"] is False
        assert (
            metric_value(netmon.metrics(), "netmon_alerts_acknowledged", severity="critical") == 0
        )
        assert TOKEN not in "".join(netmon.stderr_lines)
    finally:
        netmon.stop()

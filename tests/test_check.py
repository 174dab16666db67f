"""`netmon check` over the namespace lab: verdicts with reasons a person can read."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from tests.helpers import netmon_command, write_config
from tests.lab.netlab import NetLab


def test_a_lossy_and_a_dead_endpoint_are_warn_and_no_go_the_rest_go(
    netlab: NetLab, tmp_path: Path
) -> None:
    healthy = [netlab.add_host() for _ in range(3)]
    # Seeded: these 50 pings lose exactly 2 (4 %), every run.
    lossy = netlab.add_host(loss=0.05, seed=0)
    dead = netlab.add_host()
    dead.link_down()
    targets = [
        {"id": f"ep-ok-{i}", "address": h.address, "district": "Như Xuân", "name": f"Xã {i}"}
        for i, h in enumerate(healthy)
    ]
    targets += [
        {"id": "ep-lossy", "address": lossy.address, "district": "Như Xuân"},
        {"id": "ep-dead", "address": dead.address, "district": "Như Xuân"},
        {"id": "ep-elsewhere", "address": healthy[0].address, "district": "Mường Lát"},
    ]
    config = write_config(tmp_path / "netmon.yaml", {"targets": targets})
    result = subprocess.run(
        [*netmon_command(), "check", "--config", str(config), "--district", "như xuân",
         "--format", "json"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 1, result.stderr  # something is NO-GO
    report = json.loads(result.stdout)
    assert report["schema_version"] == 1
    assert report["counts"] == {"GO": 3, "WARN": 1, "NO-GO": 1}
    assert report["duration_seconds"] < 10
    by_id = {e["target"]: e for e in report["endpoints"]}
    assert set(by_id) == {"ep-ok-0", "ep-ok-1", "ep-ok-2", "ep-lossy", "ep-dead"}
    assert [e["target"] for e in report["endpoints"]][:2] == ["ep-dead", "ep-lossy"]  # worst first
    assert by_id["ep-dead"]["verdict"] == "NO-GO"
    assert by_id["ep-dead"]["reasons"] == ["unreachable: no reply to 50 pings"]
    assert by_id["ep-lossy"]["verdict"] == "WARN"
    assert by_id["ep-lossy"]["reasons"] == ["loss 4.0% > 1.0%"]
    assert by_id["ep-ok-0"]["verdict"] == "GO"
    assert by_id["ep-ok-0"]["measurements"]["packets_received"] == 50

    table = subprocess.run(
        [*netmon_command(), "check", "--config", str(config), "--target", "ep-ok-1"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert table.returncode == 0, table.stderr
    assert "1 GO, 0 WARN, 0 NO-GO (1 endpoints checked in" in table.stdout
    assert "Xã 1" in table.stdout


def test_a_scope_that_names_nothing_is_a_usage_error(tmp_path: Path) -> None:
    config = write_config(
        tmp_path / "netmon.yaml", {"targets": [{"id": "a", "address": "127.0.0.1"}]}
    )
    result = subprocess.run(
        [*netmon_command(), "check", "--config", str(config), "--group", "nope"],
        capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip
    assert result.returncode == 2
    assert "no endpoint in group 'nope'" in result.stderr


def test_the_html_report_stands_alone_and_escapes_names(tmp_path: Path) -> None:
    config = write_config(
        tmp_path / "netmon.yaml",
        {"targets": [{"id": "ep-1", "address": "127.0.0.1", "name": "Phòng <họp> & A"}]},
    )
    output = tmp_path / "report.html"
    result = subprocess.run(
        [*netmon_command(), "check", "--config", str(config), "--format", "html",
         "--output", str(output)],
        capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    page = output.read_text(encoding="utf-8")
    assert "Phòng &lt;họp&gt; &amp; A (ep-1)" in page
    assert "1 GO, 0 WARN, 0 NO-GO" in page
    assert "<script" not in page
    assert "src=" not in page
    assert "href=" not in page  # nothing to fetch: it opens the same offline

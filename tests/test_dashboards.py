"""The Grafana dashboards (dashboards/): the committed JSON is what the code builds, and what a
person relies on holds in every one of them: a datasource picked by variable, units, the
variables each dashboard needs, links that land on a dashboard that exists, and netmon's own
alert levels drawn on the quality graphs.

`netmon dashboards push` is run as a user runs it, against tests/grafana_peer.py: no Grafana
server can be installed here, so the requests grafana-client sends are checked against a
recorder that answers like Grafana's HTTP API.

No dead panel: a real Prometheus with deploy/'s recording and alert rules scrapes a running
`netmon demo` (and a second netmon watching an HTTPS portal, the one thing the demo lacks),
then every expression of every dashboard, with its variables filled as Grafana fills them,
and every rule is run through Prometheus' query API and must return data.
"""

from __future__ import annotations

import asyncio
import http.server
import json
import os
import re
import shutil
import ssl
import subprocess
import tempfile
import threading
import time
import tomllib
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from dashboards import JSON_DIR
from dashboards.common import ENDPOINTS_UID
from netmon.config.rules import default_rules
from netmon.config.thresholds import Thresholds
from netmon.dashboards_command import NOT_GRAFANA
from tests.conftest import require_program
from tests.dashboard_queries import (
    LABEL_VALUES,
    Expression,
    dashboard_expressions,
    fast_rule_files,
    grafana_value,
    judged_forms,
    load_dashboards,
    panels,
    resolve_variables,
    rules,
    substitute,
)
from tests.dashboard_queries import run as run_query
from tests.demo_peer import Demo, call
from tests.grafana_peer import FakeGrafana
from tests.helpers import NetmonProcess, netmon_command, wait_until, write_config
from tests.mqtt_peer import CertAuthority, Mosquitto
from tests.peers import Prometheus
from tests.unprivileged import as_nobody

ROOT = Path(__file__).resolve().parent.parent
RULE_FILES = sorted((ROOT / "deploy" / "prometheus" / "rules").glob("*.yml"))
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
EXPECTED_VARIABLES = {
    "netmon-noc": ["datasource", "district"],
    "netmon-endpoints": ["datasource", "district", "target"],
    "netmon-links": ["datasource", "district", "device", "interface"],
    "netmon-self": ["datasource", "job", "instance"],
    "netmon-meeting": ["datasource", "district"],
}
UNIT_PANELS = {"timeseries", "stat", "bargauge", "gauge", "state-timeline", "table"}


def links_of(value: Any) -> Iterator[dict[str, Any]]:
    """Every link object anywhere in a JSON value (dashboard links, data links, overrides)."""
    if isinstance(value, dict):
        if isinstance(value.get("url"), str) or value.get("type") == "dashboards":
            yield value
        for inner in value.values():
            yield from links_of(inner)
    elif isinstance(value, list):
        for inner in value:
            yield from links_of(inner)


def datasources_of(value: Any) -> Iterator[Any]:
    if isinstance(value, dict):
        for key, inner in value.items():
            if key == "datasource":
                yield inner
            else:
                yield from datasources_of(inner)
    elif isinstance(value, list):
        for inner in value:
            yield from datasources_of(inner)


def snapshot(directory: Path) -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in sorted(directory.glob("*.json"))}


def build(*args: str) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [*netmon_command(), "dashboards", "build", *args],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    return result


def test_the_committed_json_is_what_the_code_builds(tmp_path: Path) -> None:
    build("--output", str(tmp_path))
    built, committed = snapshot(tmp_path), snapshot(JSON_DIR)
    assert sorted(built) == sorted(committed), "dashboards/json has other files than the build"
    stale = [name for name in built if built[name] != committed[name]]
    assert not stale, f"stale: {stale}; run `netmon dashboards build` and commit dashboards/json"


def test_building_into_the_checkout_changes_nothing() -> None:
    before = snapshot(JSON_DIR)
    build()
    after = snapshot(JSON_DIR)
    if after != before:  # put the committed files back, so one failure does not hide in git
        for name in set(after) - set(before):
            (JSON_DIR / name).unlink()
        for name, data in before.items():
            (JSON_DIR / name).write_bytes(data)
    assert after == before


def test_every_dashboard_has_its_uid_tag_and_variables() -> None:
    boards = load_dashboards()
    assert sorted(boards) == sorted(EXPECTED_VARIABLES)
    for uid, board in boards.items():
        variables = board["templating"]["list"]
        assert [v["name"] for v in variables] == EXPECTED_VARIABLES[uid], uid
        assert "netmon" in board["tags"]
        picker = variables[0]
        assert (picker["type"], picker["query"]) == ("datasource", "prometheus"), uid
        for variable in variables[1:]:
            assert variable["type"] == "query", (uid, variable["name"])
            assert variable["datasource"] == DATASOURCE, (uid, variable["name"])
            query = variable["query"]
            if query.startswith("query_result("):
                assert re.fullmatch(r"/.*\(.+\).*/", variable["regex"]), variable
            else:
                assert re.fullmatch(r"label_values\(.+, \w+\)", query), variable


def test_every_query_uses_the_datasource_variable_and_no_uid_is_hard_coded() -> None:
    boards = load_dashboards()
    assert sorted(boards) == sorted(EXPECTED_VARIABLES)
    for uid, board in boards.items():
        queried = [item for item in panels(board) if item["type"] != "row"]
        assert queried, uid
        for item in queried:
            assert item["datasource"] == DATASOURCE, (uid, item["title"])
            assert item["targets"], (uid, item["title"])
            for target in item["targets"]:
                assert target["datasource"] == DATASOURCE, (uid, item["title"])
                assert target["expr"].strip(), (uid, item["title"])
        for datasource in datasources_of(board):
            assert datasource == DATASOURCE, (uid, datasource)


def test_every_panel_has_a_unit_a_title_a_description_and_its_own_id() -> None:
    boards = load_dashboards()
    assert sorted(boards) == sorted(EXPECTED_VARIABLES)
    for uid, board in boards.items():
        ids = [item["id"] for item in panels(board)]
        assert len(ids) == len(set(ids)), uid
        shown = [item for item in panels(board) if item["type"] != "row"]
        assert shown, uid
        for item in shown:
            assert item["type"] in UNIT_PANELS, (uid, item["title"])
            assert item["title"], uid
            assert item["description"], (uid, item["title"])
            assert item["fieldConfig"]["defaults"].get("unit"), (uid, item["title"])


def test_every_variable_a_query_uses_is_defined() -> None:
    boards = load_dashboards()
    assert sorted(boards) == sorted(EXPECTED_VARIABLES)
    for uid, board in boards.items():
        defined = {v["name"] for v in board["templating"]["list"]}
        texts = [v["query"] for v in board["templating"]["list"][1:]]
        texts += [t["expr"] for item in panels(board) for t in item.get("targets", [])]
        assert texts, uid
        for text in texts:
            used = set(re.findall(r"\$\{?(\w+)", text)) - {"__rate_interval", "__range"}
            assert used <= defined, (uid, text, used - defined)


def test_links_land_on_dashboards_that_exist_with_variables_they_have() -> None:
    boards = load_dashboards()
    variables = {uid: {v["name"] for v in b["templating"]["list"]} for uid, b in boards.items()}
    found = 0
    for uid, board in boards.items():
        for item in links_of(board):
            if item["type"] == "dashboards":  # the menu of dashboards with these tags
                tagged = [b for b in boards.values() if set(item["tags"]) <= set(b["tags"])]
                assert len(tagged) == len(boards), (uid, item)
                continue
            match = re.fullmatch(r"/d/([\w-]+)\?(.*)", item["url"])
            assert match, (uid, item["url"])
            target, query = match.groups()
            assert target in boards, (uid, item["url"])
            for name in re.findall(r"var-(\w+)=", query):
                assert name in variables[target], (uid, item["url"], name)
            assert "${datasource:queryparam}" in query, (uid, item["url"])
            assert "${__url_time_range}" in query, (uid, item["url"])
            found += 1
    assert found >= 6


def _thresholds(board: dict[str, Any], title: str) -> list[float | None]:
    item = next(p for p in panels(board) if (p["type"], p["title"]) == ("timeseries", title))
    defaults = item["fieldConfig"]["defaults"]
    assert defaults["custom"]["thresholdsStyle"]["mode"] != "off", title
    return [step["value"] for step in defaults["thresholds"]["steps"]]


def test_quality_graphs_draw_netmons_default_alert_levels() -> None:
    levels = Thresholds()
    board = load_dashboards()["netmon-endpoints"]
    assert _thresholds(board, "RTT") == [None, levels.rtt_warn, levels.rtt_bad]
    assert _thresholds(board, "Jitter") == [None, levels.jitter_warn, levels.jitter_bad]
    loss_levels = default_rules(levels)["HighPacketLoss"]["levels"]
    assert _thresholds(board, "Loss") == [None, *(level["above"] for level in loss_levels)]


def test_the_error_table_is_coloured_where_netmon_alerts_on_interface_errors() -> None:
    level = default_rules(Thresholds())["InterfaceErrors"]["levels"][0]["above"]
    board = load_dashboards()["netmon-noc"]
    item = next(p for p in panels(board) if p["title"].startswith("Links with the most errors"))
    (override,) = [
        o
        for o in item["fieldConfig"]["overrides"]
        if o["matcher"]["options"] == "Errors + discards"
    ]
    (thresholds,) = [p["value"] for p in override["properties"] if p["id"] == "thresholds"]
    assert [step["value"] for step in thresholds["steps"]] == [None, level]


@pytest.mark.parametrize("uid", sorted(EXPECTED_VARIABLES))
def test_the_json_is_stable_text(uid: str) -> None:
    text = (JSON_DIR / f"{uid}.json").read_text(encoding="utf-8")
    assert text.endswith("}\n")
    assert text == json.dumps(json.loads(text), indent=2, sort_keys=True, ensure_ascii=False) + "\n"


TOKEN = "glsa_netmonTestToken_0123456789abcdef"  # noqa: S105 - made up, for the fake


@pytest.fixture
async def grafana() -> AsyncIterator[FakeGrafana]:
    peer = FakeGrafana(token=TOKEN)
    await peer.start()
    try:
        yield peer
    finally:
        await peer.close()


async def push(*args: str, env: dict[str, str] | None = None) -> tuple[int, str]:
    """`netmon dashboards push ...` in a child process; its exit code and all it printed."""
    process = await asyncio.create_subprocess_exec(
        *netmon_command(), "dashboards", "push", *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        env={**os.environ, "COLUMNS": "200", **(env or {})},
    )  # fmt: skip
    output, _ = await asyncio.wait_for(process.communicate(), timeout=60)
    assert process.returncode is not None
    return process.returncode, output.decode()


def token_file(tmp_path: Path, token: str = TOKEN) -> str:
    path = tmp_path / "grafana-token"
    path.write_text(token + "\n", encoding="utf-8")
    path.chmod(0o600)
    return str(path)


def rows(output: str) -> dict[str, list[str]]:
    """uid -> the cells of its row in the report table."""
    found = {}
    for line in output.splitlines():
        cells = [cell.strip() for cell in re.split(r"[│┃|]", line) if cell.strip()]
        for uid in EXPECTED_VARIABLES:
            if uid in cells:
                found[uid] = cells
    return found


async def test_push_creates_the_folder_and_overwrites_every_dashboard(
    grafana: FakeGrafana, tmp_path: Path
) -> None:
    committed = {
        uid: json.loads((JSON_DIR / f"{uid}.json").read_text()) for uid in EXPECTED_VARIABLES
    }

    code, output = await push(
        "--url", grafana.url, "--token-file", token_file(tmp_path), "--folder", "NOC"
    )
    assert code == 0, output
    assert [(r.method, r.path) for r in grafana.requests[:2]] == [
        ("GET", "/api/folders"),
        ("POST", "/api/folders"),
    ]
    assert grafana.requests[1].body == {"title": "NOC"}
    assert {r.authorization for r in grafana.requests} == {f"Bearer {TOKEN}"}
    saves = grafana.on("POST", "/api/dashboards/db")
    folder_uid = grafana.folders[0]["uid"]
    assert sorted(save.body["dashboard"]["uid"] for save in saves) == sorted(committed)
    for save in saves:
        assert save.body["folderUid"] == folder_uid
        assert save.body["overwrite"] is True
        assert save.body["dashboard"] == committed[save.body["dashboard"]["uid"]]
    report = rows(output)
    for uid, board in committed.items():
        assert report[uid] == [board["title"], uid, "1", "success"], output
    assert TOKEN not in output

    # Someone edits a dashboard in Grafana (version 2); the next push, with the token from
    # the environment, finds the folder, overwrites the edit and reports version 3.
    grafana.save({**committed["netmon-noc"], "title": "edited by hand"}, folder_uid)
    grafana.requests.clear()
    code, output = await push(
        "--url", grafana.url, "--token-env", "GRAFANA_TOKEN", "--folder", "NOC",
        env={"GRAFANA_TOKEN": TOKEN},
    )  # fmt: skip
    assert code == 0, output
    assert grafana.on("POST", "/api/folders") == []
    assert len(grafana.folders) == 1
    assert rows(output)["netmon-noc"][2:] == ["3", "success"]
    assert rows(output)["netmon-self"][2:] == ["2", "success"]
    assert (
        grafana.dashboards["netmon-noc"]["dashboard"]["title"] == committed["netmon-noc"]["title"]
    )
    assert TOKEN not in output


async def test_a_refused_dashboard_is_reported_and_the_push_fails(tmp_path: Path) -> None:
    grafana = FakeGrafana(token=TOKEN, prefix="/grafana")  # behind a reverse proxy's sub-path
    await grafana.start()
    try:
        # What Grafana answers an overwriting save: a dashboard it provisions from files, and
        # one whose permissions the token's service account lacks.
        grafana.reject("netmon-links", 400, {"message": "Cannot save provisioned dashboard"})
        grafana.reject("netmon-self", 403, {"message": "Access denied to save dashboard"})
        # A proxy answering one save with a page of its own: not saved, whatever the status.
        grafana.reject("netmon-endpoints", 200, "Service unavailable")
        code, output = await push("--url", grafana.url, "--token-file", token_file(tmp_path))
    finally:
        await grafana.close()
    assert code == 1, output
    assert grafana.folders[0]["title"] == "netmon"
    report = rows(output)
    assert report["netmon-noc"][2:] == ["1", "success"]
    assert "HTTP 400 Cannot save provisioned dashboard" in " ".join(report["netmon-links"]), output
    assert "HTTP 403 Access denied to save dashboard" in " ".join(report["netmon-self"]), output
    assert report["netmon-endpoints"][2:] == [f"failed: {NOT_GRAFANA}"], output
    assert f"3 of {len(EXPECTED_VARIABLES)} failed" in output
    assert TOKEN not in output


async def test_a_page_that_is_not_grafanas_api_is_reported_without_a_traceback(
    tmp_path: Path,
) -> None:
    # An SSO proxy's sign-in page, or --url without Grafana's sub-path where another app is.
    grafana = FakeGrafana(token=TOKEN, login_page=True)
    await grafana.start()
    try:
        code, output = await push("--url", grafana.url, "--token-file", token_file(tmp_path))
    finally:
        await grafana.close()
    assert code == 1, output
    assert f"netmon dashboards push: folder 'netmon' at {grafana.url}: {NOT_GRAFANA}" in output
    assert "Traceback" not in output
    assert grafana.on("POST", "/api/dashboards/db") == []
    assert TOKEN not in output


async def test_push_without_grafana_client_says_how_to_install_it(
    grafana: FakeGrafana, tmp_path: Path
) -> None:
    # grafana-client is an extra: it replaces urllib3 for the whole environment.
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    assert not [d for d in project["dependencies"] if d.startswith("grafana-client")]
    assert [
        d for d in project["optional-dependencies"]["grafana"] if d.startswith("grafana-client")
    ]

    shadow = tmp_path / "without-grafana-client" / "grafana_client"
    shadow.mkdir(parents=True)
    (shadow / "__init__.py").write_text(
        "raise ModuleNotFoundError(\"No module named 'grafana_client'\", name='grafana_client')\n"
    )
    code, output = await push(
        "--url", grafana.url, "--token-file", token_file(tmp_path),
        env={"PYTHONPATH": str(shadow.parent)},
    )  # fmt: skip
    assert code == 2, output
    assert "pip install 'netmon[grafana]'" in output
    assert "Traceback" not in output
    assert grafana.requests == []


def test_build_into_a_read_only_installed_package_asks_for_output(
    request: pytest.FixtureRequest,
) -> None:
    """An installed netmon's dashboards/json is in site-packages, read-only to the user that
    runs it (the container image): a copy of the package stands for it."""
    with tempfile.TemporaryDirectory() as directory:
        installed = Path(directory)
        installed.chmod(0o755)  # readable by the unprivileged user below
        shutil.copytree(ROOT / "dashboards", installed / "dashboards")
        json_dir = installed / "dashboards" / "json"
        for path in json_dir.iterdir():
            path.chmod(0o444)
        json_dir.chmod(0o555)
        before = snapshot(json_dir)
        command = [*netmon_command(), "dashboards", "build"]
        if os.geteuid() == 0:  # root writes anywhere: run as nobody, as a service user would,
            # an installed netmon: nobody may not enter this checkout (root's home, say).
            netmon = request.getfixturevalue("netmon_for_nobody")
            command = as_nobody(str(netmon), "dashboards", "build")
        result = subprocess.run(
            command,
            capture_output=True,
            text=True,
            timeout=120,
            cwd=installed,
            env={**os.environ, "PYTHONPATH": str(installed), "PYTHONDONTWRITEBYTECODE": "1"},
        )
        assert result.returncode == 2, result.stdout + result.stderr
        assert f"{json_dir} is not writable" in result.stderr
        assert "pass --output DIR" in result.stderr
        assert "Traceback" not in result.stderr
        assert snapshot(json_dir) == before


async def test_a_wrong_token_or_no_grafana_fails_without_printing_the_token(
    grafana: FakeGrafana, tmp_path: Path
) -> None:
    wrong = "glsa_wrongTokenForTheTest_fedcba9876543210"
    code, output = await push("--url", grafana.url, "--token-file", token_file(tmp_path, wrong))
    assert code == 1
    assert "HTTP 401" in output
    assert grafana.on("POST", "/api/dashboards/db") == []
    assert wrong not in output

    url = grafana.url
    await grafana.close()
    code, output = await push("--url", url, "--token-env", "T", env={"T": TOKEN})
    assert code == 1
    assert "netmon dashboards push: folder 'netmon'" in output
    assert output.rstrip().endswith(": unreachable: Connection refused"), output
    assert TOKEN not in output

    code, output = await push("--url", url, "--token-env", "UNSET_FOR_THE_TEST")
    assert code == 2
    assert "$UNSET_FOR_THE_TEST: no token there" in output
    code, output = await push("--url", "grafana:3000", "--token-env", "T", env={"T": TOKEN})
    assert code == 2
    assert "not an http(s) URL" in output


# --- two netmons watching the same targets -------------------------------------------------
#
# An HA pair, or shards that all ping the core router: every series of a target comes twice,
# once per netmon. promtool evaluates the dashboards' expressions (read from the JSON, variables
# filled as Grafana fills them) over such series, plus a Prometheus scraping itself and a
# netmon that was never up, and each must give the answer for one copy.

HA = ("netmon-a:9842", "netmon-b:9842")
NEVER_UP = "netmon-c:9842"
INVENTORY = {  # target -> netmon_target_info labels; the core router has no district
    "ep1": {"kind": "endpoint", "district": "D1", "name": "Room 1"},
    "ep2": {"kind": "mcu", "district": "D2", "name": "MCU 2"},
    "rt-core": {"kind": "router", "district": "", "name": "Core"},
    "srv1": {"kind": "server", "district": "D1", "name": "Server 1"},  # SNMP only
}
ROUTER_PORT = {"target": "rt-core", "ifindex": "1", "ifname": "Gi0/1", "ifalias": "uplink"}
SERVER_PORT = {"target": "srv1", "ifindex": "2", "ifname": "eth0", "ifalias": "lan"}
ROUTER_ROW = {"district": "", **ROUTER_PORT}
SERVER_ROW = {"district": "D1", **SERVER_PORT}
ROOM_1 = {"district": "D1", "name": "Room 1", "target": "ep1"}
MCU_2 = {"district": "D2", "name": "MCU 2", "target": "ep2"}

Series = tuple[str, dict[str, str], float]  # metric, labels, value all along


def _ha_series() -> list[Series]:
    series: list[Series] = []

    def both(metric: str, labels: dict[str, str], a: float, b: float | None = None) -> None:
        for instance, value in zip(HA, (a, a if b is None else b), strict=True):
            series.append((metric, {**labels, "instance": instance, "job": "netmon"}, value))

    both("netmon_build_info", {"version": "1.0.0"}, 1)
    both("up", {}, 1)
    both("process_resident_memory_bytes", {}, 1000, 2000)
    series.append(("up", {"instance": NEVER_UP, "job": "netmon"}, 0))
    series.append(("up", {"instance": "localhost:9090", "job": "prometheus"}, 1))
    series.append(
        ("process_resident_memory_bytes", {"instance": "localhost:9090", "job": "prometheus"}, 3)
    )
    for target, labels in INVENTORY.items():
        both("netmon_target_info", {"target": target, **labels, "address": "192.0.2.1"}, 1)
    for target, up in (("ep1", 1), ("ep2", 0), ("rt-core", 1)):
        both("netmon_target_up", {"target": target, "kind": INVENTORY[target]["kind"]}, up)
    for target in ("rt-core", "srv1"):
        both("netmon_snmp_up", {"target": target}, 1)
    both("netmon_endpoint_readiness_verdict", {"target": "ep1"}, 1)  # WARN
    both("netmon_endpoint_readiness_verdict", {"target": "ep2"}, 2)  # NO-GO
    # The two netmons measure from different places: each table shows the worse of the two.
    both("netmon:icmp_loss:ratio_rate5m", {"target": "ep1"}, 0.03125, 0.0625)
    both("netmon:icmp_loss:ratio_rate5m", {"target": "ep2"}, 1)
    both("netmon:icmp_loss:ratio_rate5m", {"target": "rt-core"}, 0.5)
    both("netmon:icmp_rtt_seconds:p95_5m", {"target": "ep1"}, 0.125, 0.25)
    both("netmon:icmp_rtt_seconds:p95_5m", {"target": "rt-core"}, 0.75)
    both("netmon_icmp_jitter_seconds", {"target": "ep1"}, 0.0078125, 0.015625)
    both("netmon_icmp_jitter_seconds", {"target": "rt-core"}, 0.5)
    # ep1 is in a call; the two netmons read its streams at different times (10 s apart):
    # the board shows the worse of the two, once.
    both("netmon_endpoint_in_call", {"target": "ep1"}, 1)
    both("netmon_endpoint_in_call", {"target": "ep2"}, 0)
    both("netmon_icmp_loss_ratio", {"target": "ep1"}, 0.015625, 0.03125)
    both("netmon_icmp_loss_ratio", {"target": "ep2"}, 0.5)
    for channel, direction, mos, loss in (("1", "rx", (3.5, 3.25), (0.0625, 0.125)),
                                          ("2", "tx", (4.25, 4.25), (0, 0))):  # fmt: skip
        stream = {"target": "ep1", "call": "1", "channel": channel, "direction": direction}
        both("netmon_call_audio_mos", {**stream, "codec": "G711Mu"}, *mos)
        both("netmon_call_stream_loss_ratio", {**stream, "media": "audio", "role": "main"}, *loss)
    for port, util_in, util_out, errors, discards in (
        (ROUTER_PORT, (0.5, 0.75), 0.25, (0.25, 0.5), (0.125, 0.25)),
        (SERVER_PORT, (0.125, 0.125), 0.125, (0, 0), (1, 1)),
    ):
        both("netmon:interface_utilization:ratio_rate5m", {**port, "direction": "in"}, *util_in)
        both("netmon:interface_utilization:ratio_rate5m", {**port, "direction": "out"}, util_out)
        both("netmon:interface_errors:rate5m", port, *errors)
        both("netmon:interface_discards:rate5m", port, *discards)
    return series


def _promql_labels(labels: dict[str, str], name: str = "") -> str:
    inner = ", ".join(f'{key}="{value}"' for key, value in sorted(labels.items()) if value)
    return f"{name}{{{inner}}}"


# (dashboard, panel, query) -> each series it must return (its labels) and the value.
HA_ANSWERS: dict[tuple[str, str, str], list[tuple[dict[str, str], float]]] = {
    ("netmon-noc", "Up, by kind", "A"): [
        ({"kind": "endpoint"}, 1), ({"kind": "mcu"}, 0), ({"kind": "router"}, 1),
        ({"kind": "server"}, 1),
    ],
    ("netmon-noc", "Down, by kind", "A"): [
        ({"kind": "endpoint"}, 0), ({"kind": "mcu"}, 1), ({"kind": "router"}, 0),
        ({"kind": "server"}, 0),
    ],
    ("netmon-noc", "Up and down, by district and kind", "A"): [
        ({"district": "D1", "kind": "endpoint"}, 1), ({"district": "D2", "kind": "mcu"}, 0),
        ({"kind": "router"}, 1), ({"district": "D1", "kind": "server"}, 1),
    ],
    ("netmon-noc", "Up and down, by district and kind", "B"): [
        ({"district": "D1", "kind": "endpoint"}, 0), ({"district": "D2", "kind": "mcu"}, 1),
        ({"kind": "router"}, 0), ({"district": "D1", "kind": "server"}, 0),
    ],
    ("netmon-noc", "Busiest links (5 m average)", "A"): [
        ({**ROUTER_ROW, "direction": "in"}, 0.75), ({**ROUTER_ROW, "direction": "out"}, 0.25),
        ({**SERVER_ROW, "direction": "in"}, 0.125), ({**SERVER_ROW, "direction": "out"}, 0.125),
    ],
    # Ranked by errors + discards, as netmon's InterfaceErrors alert adds them up.
    ("netmon-noc", "Links with the most errors and discards (5 m average)", "A"): [
        (ROUTER_ROW, 0.75), (SERVER_ROW, 1),
    ],
    ("netmon-noc", "Links with the most errors and discards (5 m average)", "B"): [
        (ROUTER_ROW, 0.5), (SERVER_ROW, 0),
    ],
    ("netmon-noc", "Links with the most errors and discards (5 m average)", "C"): [
        (ROUTER_ROW, 0.25), (SERVER_ROW, 1),
    ],
    # Rooms only: the core router's loss and RTT are worse, but it has no endpoint page.
    ("netmon-noc", "Highest loss (5 m)", "A"): [(ROOM_1, 0.0625), (MCU_2, 1)],
    ("netmon-noc", "Highest RTT p95 (5 m)", "A"): [(ROOM_1, 0.25)],
    ("netmon-noc", "Highest jitter", "A"): [(ROOM_1, 0.015625)],
    ("netmon-endpoints", "Up", "A"): [({}, 1)],
    ("netmon-endpoints", "Down", "A"): [({}, 1)],
    ("netmon-endpoints", "GO", "A"): [({}, 0)],
    ("netmon-endpoints", "WARN", "A"): [({}, 1)],
    ("netmon-endpoints", "NO-GO", "A"): [({}, 1)],
    ("netmon-endpoints", "State of every endpoint", "A"): [
        ({"target": "ep1"}, 1), ({"target": "ep2"}, 0),
    ],
    ("netmon-endpoints", "Endpoints by district", "A"): [(ROOM_1, 1), (MCU_2, 0)],
    ("netmon-endpoints", "Endpoints by district", "B"): [
        ({"target": "ep1"}, 1), ({"target": "ep2"}, 2),
    ],
    ("netmon-endpoints", "Endpoints by district", "D"): [
        ({"target": "ep1"}, 0.0625), ({"target": "ep2"}, 1),
    ],
    ("netmon-endpoints", "RTT p95, worst endpoint per district", "A"): [({"district": "D1"}, 0.25)],
    ("netmon-endpoints", "Loss, worst endpoint per district", "A"): [
        ({"district": "D1"}, 0.0625), ({"district": "D2"}, 1),
    ],
    ("netmon-endpoints", "Endpoints down, per district", "A"): [
        ({"district": "D1"}, 0), ({"district": "D2"}, 1),
    ],
    ("netmon-meeting", "Rooms in a call", "A"): [({}, 1)],
    ("netmon-meeting", "Rooms that hear badly", "A"): [({}, 1)],
    ("netmon-meeting", "Worst MOS now", "A"): [({}, 3.25)],
    ("netmon-meeting", "Worst call loss now", "A"): [({}, 0.125)],
    ("netmon-meeting", "MOS by room over time", "A"): [({"target": "ep1"}, 3.25)],
    ("netmon-meeting", "Worst streams", "C"): [
        ({"target": "ep1", "call": "1", "channel": "1", "direction": "rx", "codec": "G711Mu"},
         3.25),
        ({"target": "ep1", "call": "1", "channel": "2", "direction": "tx", "codec": "G711Mu"},
         4.25),
    ],
    # The MCU, not in a call, is in none of the path-and-call rows.
    ("netmon-meeting", "Path loss and call loss, per room in a call", "A"): [(ROOM_1, 1)],
    ("netmon-meeting", "Path loss and call loss, per room in a call", "B"): [
        ({"target": "ep1"}, 0.03125),
    ],
    ("netmon-meeting", "Path loss and call loss, per room in a call", "C"): [
        ({"target": "ep1"}, 0.125),
    ],
    # netmon's own processes only, the one never up included; not Prometheus' own.
    ("netmon-self", "Scraped", "A"): [
        ({"__name__": "up", "instance": HA[0], "job": "netmon"}, 1),
        ({"__name__": "up", "instance": HA[1], "job": "netmon"}, 1),
        ({"__name__": "up", "instance": NEVER_UP, "job": "netmon"}, 0),
    ],
    ("netmon-self", "Memory", "A"): [
        ({"__name__": "process_resident_memory_bytes", "instance": HA[0], "job": "netmon"}, 1000),
        ({"__name__": "process_resident_memory_bytes", "instance": HA[1], "job": "netmon"}, 2000),
    ],
}  # fmt: skip
# The links dashboard's device list: every target netmon polls by SNMP, the server included.
DEVICES = [({"target": "rt-core"}, 1.0), ({"target": "srv1"}, 1.0)]


def _label_values(query: str, series: list[Series]) -> list[str]:
    """Grafana's label_values() over the series promtool is given (Prometheus' label API)."""
    match = LABEL_VALUES.fullmatch(query)
    assert match, query
    selector = re.fullmatch(r"(\w*)(?:\{(.*)\})?", match["selector"] or "")
    assert selector, query
    matchers = re.findall(r'(\w+)\s*(=~|!~|!=|=)\s*"((?:[^"\\]|\\.)*)"', selector[2] or "")

    def matches(metric: str, labels: dict[str, str]) -> bool:
        if selector[1] and metric != selector[1]:
            return False
        for name, operator, quoted in matchers:
            value, wanted = labels.get(name, ""), re.sub(r"\\(.)", r"\1", quoted)
            found = re.fullmatch(wanted, value) if "~" in operator else value == wanted
            if bool(found) == operator.startswith("!"):
                return False
        return True

    return sorted(
        {labels[match["label"]] for metric, labels, _ in series
         if matches(metric, labels) and labels.get(match["label"])}
    )  # fmt: skip


def _ha_expressions(series: list[Series]) -> dict[tuple[str, str, str], str]:
    """(dashboard, panel, query) -> its expression, with the label_values() variables filled
    as Grafana fills them on a fresh load; the links dashboard's query_result() device list
    is an expression of its own."""
    found: dict[tuple[str, str, str], str] = {}
    for uid, board in load_dashboards().items():
        values: dict[str, str] = {}
        for variable in board["templating"]["list"][1:]:
            if not LABEL_VALUES.fullmatch(variable["query"]):
                inner = re.fullmatch(r"query_result\((.+)\)", variable["query"])
                assert inner, variable
                found[(uid, f"${variable['name']}", "")] = substitute(inner[1], values)
                break  # the variables after it need its choices
            query = substitute(variable["query"], values)
            values[variable["name"]] = grafana_value(variable, _label_values(query, series))
        else:
            for item in panels(board):
                for target in item.get("targets", []):
                    where = (uid, item["title"], target["refId"])
                    found[where] = substitute(target["expr"], values)
    return found


@pytest.mark.peer
def test_two_netmons_watching_the_same_targets_count_them_once(tmp_path: Path) -> None:
    series = _ha_series()
    expressions = _ha_expressions(series)
    answers = {**HA_ANSWERS, ("netmon-links", "$device", ""): DEVICES}
    missing = sorted(set(answers) - set(expressions))
    assert not missing, f"no such dashboard query: {missing}"
    cases = [
        {
            "expr": expressions[where],
            "eval_time": "5m",
            "exp_samples": [
                {"labels": _promql_labels(labels), "value": value} for labels, value in samples
            ],
        }
        for where, samples in answers.items()
    ]
    test_file = tmp_path / "ha-pair.test.yml"
    test_file.write_text(
        yaml.safe_dump(
            {
                "rule_files": [],
                "evaluation_interval": "1m",
                "tests": [
                    {
                        "interval": "1m",
                        "input_series": [
                            {"series": _promql_labels(labels, metric), "values": f"{value}x10"}
                            for metric, labels, value in series
                        ],
                        "promql_expr_test": cases,
                    }
                ],
            },
            sort_keys=False,
        ),
        encoding="utf-8",
    )
    result = subprocess.run(
        [require_program("promtool"), "test", "rules", str(test_file)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr


# --- no dead panel ------------------------------------------------------------------------


class _Portal(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def https_portal(tmp_path: Path) -> Iterator[str]:
    """A web service over HTTPS (host:port), for netmon_tls_cert_not_after_seconds."""
    cert_file, key_file = CertAuthority.create(tmp_path).issue_server(tmp_path)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert_file, key_file)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Portal)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def _host(url: str) -> str:
    return url.split("://", 1)[1].rstrip("/")


def _check_rules(prometheus: Prometheus, problems: list[str]) -> int:
    """Runs every rule; returns how many queries that took. Recording rules must return data
    as they are; alert rules must parse as they are and return data in their judged forms
    (tests/dashboard_queries.py, judged_forms). Prometheus must also report every rule it
    evaluated itself as healthy."""
    ran = 0
    for where, rule in rules(RULE_FILES):
        if "record" in rule:
            queries = [Expression(where, rule["expr"])]
        else:
            ran += 1
            answer = prometheus.api("/api/v1/query", {"query": rule["expr"]})
            if answer.get("status") != "success":
                problems.append(f"{where}: {answer.get('error')}\n    {rule['expr']}")
            queries = [Expression(where, form) for form in judged_forms(rule["expr"])]
        for expression in queries:
            ran += 1
            wrong = run_query(prometheus, expression)
            if wrong:
                problems.append(f"{where}: {wrong}\n    {' '.join(expression.expr.split())}")
    groups = prometheus.api("/api/v1/rules", {}, method="GET")["data"]["groups"]
    for group in groups:
        for rule in group["rules"]:
            if rule["health"] != "ok":
                problems.append(f"{group['file']} / {rule['name']}: {rule['health']} "
                                f"{rule.get('lastError', '')}")  # fmt: skip
    return ran


def _scalar(prometheus: Prometheus, expr: str) -> float | None:
    result = prometheus.query(expr)
    return float(result[0]["value"][1]) if len(result) == 1 else None


def _check_dashboards(prometheus: Prometheus, problems: list[str]) -> tuple[int, int]:
    """Runs every dashboard expression; returns (expressions, variable queries) run."""
    expressions = variables = 0
    for board in load_dashboards().values():
        values, calls = resolve_variables(prometheus, board, problems)
        variables += calls
        for expression in dashboard_expressions(board, values):
            expressions += 1
            wrong = run_query(prometheus, expression)
            if wrong:
                problems.append(f"{expression.where}: {wrong}\n    {expression.expr}")
    return expressions, variables


@pytest.mark.parametrize(
    ("expr", "forms"),
    [
        ('up{job="netmon"} == 0', ['up{job="netmon"} == bool 0']),
        ('x{a!="b"} > bool 1', ['x{a!="b"} > bool 1']),
        (
            "(a > 0.8) * on (t) group_left (d) info",
            ["(a > bool 0.8) * on (t) group_left (d) info"],
        ),
        ("a < 0.995 and on (t) (b offset 23h)", ["a < bool 0.995 and on (t) (b)"]),
        ("sum(a) > 0 unless on (s) sum(b) > 0", ["sum(a) > bool 0", "sum(b) > bool 0"]),
        ("sum(a{r=~'x|y'}) >= 1 or c <= 2", ["sum(a{r=~'x|y'}) >= bool 1", "c <= bool 2"]),
        (
            "(a unless b offset 15m) or on (i) increase(c[5m]) > 0",
            ["a", "b", "increase(c[5m]) > bool 0"],
        ),
        (
            "sum by (i) ((a unless a offset 15m) or increase(a[15m])) > 0 or e_or_f > 0",
            ["sum by (i) ((a unless a) or increase(a[15m])) > bool 0", "e_or_f > bool 0"],
        ),
        (
            "max_over_time(x[1h]) - time() < 14 * 86400",
            ["max_over_time(x[1h]) - time() < bool 14 * 86400"],
        ),
    ],
)
def test_alert_expressions_are_judged_in_forms_that_return_data(
    expr: str, forms: list[str]
) -> None:
    assert judged_forms(expr) == forms


@pytest.mark.parametrize(
    ("variable", "choices", "value"),
    [
        ({"includeAll": True, "multi": True, "allValue": ".*"}, ["a", "b"], ".*"),
        ({"includeAll": True, "multi": True}, ["a.b", "c(d)"], "(a\\\\.b|c\\\\(d\\\\))"),
        ({"includeAll": False, "multi": True}, ["Gi0/1.100", "x"], "Gi0/1\\\\.100"),
        ({"includeAll": False, "multi": False}, ["ep-a", "ep-b"], "ep-a"),
    ],
)
def test_variables_are_filled_as_grafana_fills_them(
    variable: dict[str, Any], choices: list[str], value: str
) -> None:
    assert grafana_value(variable, choices) == value


@pytest.mark.netns
@pytest.mark.peer
@pytest.mark.usefixtures("_lab_ready")
def test_no_dashboard_panel_and_no_rule_is_dead(
    mosquitto: Mosquitto,
    https_portal: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    started = time.monotonic()
    # With a broker, the demo has an alert sink: notification results and an outbox exist.
    demo = Demo(mqtt=f"127.0.0.1:{mosquitto.port}")
    shard: NetmonProcess | None = None
    prometheus: Prometheus | None = None
    try:
        config = {
            "instance": "portal-shard",
            "defaults": {"http": {"interval": "2s", "timeout": "1s"}},
            "targets": [
                {"id": "portal", "address": "127.0.0.1", "kind": "service", "name": "Portal",
                 "probes": {"http": {"url": f"https://{https_portal}/", "verify_tls": False}}},
            ],
        }  # fmt: skip
        shard = NetmonProcess(write_config(tmp_path / "shard.yaml", config))
        prometheus = Prometheus(
            require_program("prometheus"),
            tmp_path,
            {"netmon": [_host(demo.url), _host(shard.url)]},
            rule_files=fast_rule_files(RULE_FILES, tmp_path / "rules"),
            scrape_interval="2s",
            evaluation_interval="2s",
        )
        endpoints = wait_until(
            lambda: sorted(demo.up()) if len(demo.up()) == 215 else None,
            timeout=30,
            interval=0.5,
            what="the demo's 215 endpoints to have a verdict",
        )
        # A dead endpoint: collector errors, alerts and notifications. Not the first one,
        # which the endpoint dashboard shows by default: its RTT must have samples.
        demo.inject({"kind": "endpoint-down", "target": endpoints[-1]})
        status, check = call("POST", demo.url + "/api/v1/checks", {"targets": endpoints})
        assert status == 202, check
        wait_until(
            lambda: call("GET", demo.url + check["url"])[1]["status"] == "done",
            timeout=30,
            interval=0.5,
            what="the readiness check (netmon_endpoint_ready)",
        )
        # The check itself can see a dead query.
        assert run_query(prometheus, Expression("-", "netmon_no_such_metric")) == "empty"
        # The endpoint dashboard tells WARN from NO-GO. The lab's standing faults (netmon/demo.py,
        # STANDING_FAULTS) make its congested line WARN and its satellite site NO-GO, and the
        # dead endpoint is NO-GO; jitter on a loaded machine may add a WARN, so the tiles must
        # count at least those, and every endpoint checked exactly once.
        standing = {"ep-ba-thuoc-xa06": 1.0, "ep-ba-thuoc-xa07": 2.0, endpoints[-1]: 2.0}
        named = "|".join(standing)

        def verdicts() -> dict[str, float]:
            result = prometheus.query(
                f'max by (target) (netmon_endpoint_readiness_verdict{{target=~"{named}"}})'
            )
            return {item["metric"]["target"]: float(item["value"][1]) for item in result}

        wait_until(
            lambda: verdicts() == standing,
            timeout=20,
            interval=1,
            what=f"readiness verdicts {standing} in Prometheus",
        )
        board = load_dashboards()[ENDPOINTS_UID]
        expressions = {
            e.where.rsplit(" / ", 1)[-1]: e.expr
            for e in dashboard_expressions(board, {"district": ".*", "target": endpoints[0]})
        }
        tiles = {
            verdict: _scalar(prometheus, expressions[verdict]) or 0.0
            for verdict in ("GO", "WARN", "NO-GO")
        }
        assert tiles["WARN"] >= 1, tiles
        assert tiles["NO-GO"] >= 2, tiles
        assert sum(tiles.values()) == len(endpoints), tiles
        # The demo's meeting, once the verdicts above are in (a room in a call is busy for a
        # readiness check): rooms in a call, their streams and MOS, for the meeting board.
        status, meeting = call("POST", demo.url + "/api/v1/demo/meeting", {})
        assert status == 201, meeting
        problems: list[str] = []
        counted: dict[str, int] = {}

        def no_dead_panel() -> bool:
            problems.clear()
            counted["expressions"], counted["variables"] = _check_dashboards(prometheus, problems)
            counted["rule_queries"] = _check_rules(prometheus, problems)
            return not problems

        # Recorded series and alert expressions fill in over a few evaluations (2 s here). The
        # deadline is this wait's own, however long the set-up took on a busy machine: it only
        # catches a panel that never gets data.
        wait_until(
            no_dead_panel,
            timeout=60,
            interval=2,
            what="every dashboard panel and rule query to return data",
            showing=lambda: problems,
        )
        expressions, variables = counted["expressions"], counted["variables"]
        rule_queries = counted["rule_queries"]
    finally:
        for peer in (prometheus, shard, demo):
            if peer is not None:
                peer.stop()
    summary = (
        f"ran {expressions} dashboard expressions, {variables} variable queries and "
        f"{rule_queries} rule queries ({len(list(rules(RULE_FILES)))} rules) in "
        f"{time.monotonic() - started:.0f} s"
    )
    with capsys.disabled():
        print(f"\nno dead panel: {summary}, {len(problems) or 'none'} empty or failing")
    assert not problems, summary + ":\n" + "\n".join(problems)

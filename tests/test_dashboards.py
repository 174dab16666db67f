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
import ssl
import subprocess
import threading
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from dashboards import JSON_DIR
from dashboards.common import ENDPOINTS_UID
from netmon.config import Thresholds
from tests.conftest import require_program
from tests.dashboard_queries import (
    Expression,
    dashboard_expressions,
    fast_rule_files,
    grafana_value,
    judged_forms,
    load_dashboards,
    panels,
    resolve_variables,
    rules,
)
from tests.dashboard_queries import run as run_query
from tests.demo_peer import Demo, call
from tests.grafana_peer import FakeGrafana
from tests.helpers import NetmonProcess, netmon_command, wait_until, write_config
from tests.mqtt_peer import CertAuthority, Mosquitto
from tests.peers import Prometheus

ROOT = Path(__file__).resolve().parent.parent
RULE_FILES = sorted((ROOT / "deploy" / "prometheus" / "rules").glob("*.yml"))
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
EXPECTED_VARIABLES = {
    "netmon-noc": ["datasource", "district"],
    "netmon-endpoints": ["datasource", "district", "target"],
    "netmon-links": ["datasource", "district", "device", "interface"],
    "netmon-self": ["datasource", "job", "instance"],
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
            assert re.fullmatch(r"label_values\(.+, \w+\)", variable["query"]), variable


def test_every_query_uses_the_datasource_variable_and_no_uid_is_hard_coded() -> None:
    for uid, board in load_dashboards().items():
        for item in panels(board):
            if item["type"] == "row":
                continue
            assert item["datasource"] == DATASOURCE, (uid, item["title"])
            assert item["targets"], (uid, item["title"])
            for target in item["targets"]:
                assert target["datasource"] == DATASOURCE, (uid, item["title"])
                assert target["expr"].strip(), (uid, item["title"])
        for datasource in datasources_of(board):
            assert datasource == DATASOURCE, (uid, datasource)


def test_every_panel_has_a_unit_a_title_a_description_and_its_own_id() -> None:
    for uid, board in load_dashboards().items():
        ids = [item["id"] for item in panels(board)]
        assert len(ids) == len(set(ids)), uid
        for item in panels(board):
            if item["type"] == "row":
                continue
            assert item["type"] in UNIT_PANELS, (uid, item["title"])
            assert item["title"], uid
            assert item["description"], (uid, item["title"])
            assert item["fieldConfig"]["defaults"].get("unit"), (uid, item["title"])


def test_every_variable_a_query_uses_is_defined() -> None:
    for uid, board in load_dashboards().items():
        defined = {v["name"] for v in board["templating"]["list"]}
        texts = [v["query"] for v in board["templating"]["list"][1:]]
        texts += [t["expr"] for item in panels(board) for t in item.get("targets", [])]
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
    assert _thresholds(board, "Loss") == [
        None,
        levels.loss_warn,
        levels.loss_bad,
        levels.loss_critical,
    ]


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
        grafana.reject(
            "netmon-links",
            412,
            {"message": "The dashboard has been changed by someone else",
             "status": "version-mismatch"},
        )  # fmt: skip
        grafana.reject("netmon-self", 400, {"message": "Dashboard title cannot be empty"})
        code, output = await push("--url", grafana.url, "--token-file", token_file(tmp_path))
    finally:
        await grafana.close()
    assert code == 1, output
    assert grafana.folders[0]["title"] == "netmon"
    report = rows(output)
    assert report["netmon-noc"][2:] == ["1", "success"]
    assert report["netmon-endpoints"][2:] == ["1", "success"]
    assert "HTTP 412 version-mismatch" in " ".join(report["netmon-links"]), output
    assert "HTTP 400 Dashboard title cannot be empty" in " ".join(report["netmon-self"]), output
    assert "2 of 4 failed" in output
    assert TOKEN not in output


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
    assert TOKEN not in output

    code, output = await push("--url", url, "--token-env", "UNSET_FOR_THE_TEST")
    assert code == 2
    assert "$UNSET_FOR_THE_TEST: no token there" in output
    code, output = await push("--url", "grafana:3000", "--token-env", "T", env={"T": TOKEN})
    assert code == 2
    assert "not an http(s) URL" in output


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
        ("sum(a{r=~'x|y'}) >= 1 or c <= 2", ["sum(a{r=~'x|y'}) >= bool 1 or c <= bool 2"]),
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
        # The endpoint dashboard tells WARN from NO-GO: the lab's congested line is the one WARN;
        # its satellite site and the dead endpoint are NO-GO.
        board = load_dashboards()[ENDPOINTS_UID]
        tiles = {
            e.where.rsplit(" / ", 1)[-1]: e
            for e in dashboard_expressions(board, {"district": ".*", "target": endpoints[0]})
        }
        wait_until(
            lambda: (
                (
                    _scalar(prometheus, tiles["WARN"].expr),
                    _scalar(prometheus, tiles["NO-GO"].expr),
                )
                == (1.0, 2.0)
            ),
            timeout=20,
            interval=1,
            what="1 WARN and 2 NO-GO on the endpoint dashboard",
        )
        while True:
            problems: list[str] = []
            expressions, variables = _check_dashboards(prometheus, problems)
            rule_queries = _check_rules(prometheus, problems)
            if not problems or time.monotonic() - started > 80:
                break
            time.sleep(5)
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

"""An availability report from Prometheus (`netmon report --from-prometheus`) agrees with the one
from netmon's own journal over the same period: a real `netmon run`, a lab endpoint that goes
down and comes back, a real Prometheus scraping netmon every second with the recording rule
`netmon:target_up` evaluated every second."""

from __future__ import annotations

import http.server
import json
import math
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from netmon.availability.db import Change, JournalDB, Run
from netmon.availability.model import Report, SubjectReport
from netmon.availability.prometheus import (
    PrometheusError,
    PrometheusSource,
    query_range,
    read_prometheus,
    slice_from_series,
)
from netmon.availability.report import build_report
from netmon.config.loader import load_file
from tests.conftest import require_program
from tests.helpers import NetmonProcess, netmon_command, wait_until, write_config
from tests.lab.netlab import NetLab
from tests.peers import Prometheus, free_port

RULES = Path(__file__).parent.parent / "deploy" / "prometheus" / "rules" / "netmon-recording.yml"

# Every transition reaches the Prometheus report late by up to three 1 s intervals: the next
# scrape of netmon, the next evaluation of the rule, and the next query_range step (a sample
# holds for the step after it). The journal notes the change at the moment netmon judges it.
# An outage's start and end are both late by 0-3 s, so its length differs by at most ~3 s.
TOLERANCE = 3.0
DOWN_SECONDS = 'sum_over_time((netmon:target_up{target="ep-lab"} == bool 0)[1m:1s])'


def _rules_every_second(workdir: Path) -> Path:
    """The shipped recording rules, netmon:target_up's group evaluated every second."""
    rules = yaml.safe_load(RULES.read_text())
    for group in rules["groups"]:
        if any(rule.get("record") == "netmon:target_up" for rule in group["rules"]):
            group["interval"] = "1s"
    path = workdir / "netmon-recording.yml"
    path.write_text(yaml.safe_dump(rules))
    return path


def _value(prometheus: Prometheus, expr: str, at: float | None = None) -> float | None:
    params = {"query": expr} | ({"time": repr(at)} if at is not None else {})
    answer = prometheus.api("/api/v1/query", params)
    assert answer["status"] == "success", answer
    result = answer["data"]["result"]
    return float(result[0]["value"][1]) if result else None


def _by_subject(report: Report) -> dict[str, SubjectReport]:
    return {s.subject: s for s in [*report.sites, *report.links]}


def _report_cli(config: Path, *extra: str) -> dict[str, Any]:
    done = subprocess.run(
        [*netmon_command(), "report", "--config", str(config), "--from", "today",
         "--format", "json", "--lang", "en", *extra],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    answer: dict[str, Any] = json.loads(done.stdout)
    return answer


@pytest.mark.peer
def test_a_report_from_prometheus_agrees_with_the_journal(netlab: NetLab, tmp_path: Path) -> None:
    binary = require_program("prometheus")
    host = netlab.add_host()
    journal_file = tmp_path / "journal.sqlite"
    config = write_config(
        tmp_path / "netmon.yaml",
        {
            "instance": "report-prom",
            "defaults": {"icmp": {"interval": "500ms", "timeout": "300ms"}},
            "alerting": {"database": str(tmp_path / "alerts.sqlite")},
            "availability": {"database": str(journal_file), "heartbeat": 1},
            "targets": [
                {"id": "sw-d1", "address": "127.0.4.10", "kind": "switch", "district": "D1"},
                {"id": "ep-lab", "address": host.address, "parent": "sw-d1", "district": "D1"},
                {"id": "ep-b", "address": "127.0.4.11", "parent": "sw-d1", "district": "D1"},
                {"id": "ep-c", "address": "127.0.4.12", "parent": "sw-d1", "district": "D1"},
            ],
        },
    )
    ids = {"sw-d1", "ep-lab", "ep-b", "ep-c"}
    listen = ["--listen", f"127.0.0.1:{free_port()}"]  # the same address after the restart
    netmon = NetmonProcess(config, extra_args=listen)
    prometheus = None
    try:
        prometheus = Prometheus(
            binary,
            tmp_path,
            {"netmon": [netmon.url.removeprefix("http://")]},
            rule_files=[_rules_every_second(tmp_path)],
        )
        wait_until(
            lambda: _value(prometheus, "count(netmon:target_up == 1)") == len(ids),
            timeout=30,
            what="every target up in netmon:target_up",
        )
        # The period starts on a whole second where both sources know every target is up.
        t0 = float(math.ceil(time.time()))
        wait_until(lambda: time.time() > t0, what="the period's start")

        host.link_down()
        wait_until(
            lambda: (_value(prometheus, DOWN_SECONDS) or 0) >= 10,
            timeout=40,
            what="ten seconds of ep-lab down in Prometheus",
        )
        host.link_up()
        wait_until(
            lambda: _value(prometheus, 'netmon:target_up{target="ep-lab"}') == 1,
            timeout=30,
            what="ep-lab up again in Prometheus",
        )
        # netmon stops for a while and starts again: unknown time in both sources (the journal
        # from the run's stop to each first verdict of the next; Prometheus from the failed
        # scrape, which ends every series, to the first scrape with a verdict).
        netmon.stop()
        wait_until(
            lambda: _value(prometheus, "count(netmon:target_up)") is None,
            timeout=10,
            what="netmon:target_up gone while netmon is stopped",
        )
        stopped = time.time()
        wait_until(lambda: time.time() > stopped + 4, what="netmon stopped for a while")
        netmon = NetmonProcess(config, extra_args=listen)
        wait_until(
            lambda: _value(prometheus, "count(netmon:target_up == 1)") == len(ids),
            timeout=30,
            what="every target up again after the restart",
        )
        # A few seconds of them up again, then the period ends on a whole second both sources
        # have written past: the journal's heartbeat (every second) and the rule's evaluations.
        back = time.time()
        wait_until(lambda: time.time() > back + 3, what="every target up for a while")
        t1 = float(math.floor(time.time()))
        wait_until(
            lambda: _value(prometheus, "count(netmon:target_up)", at=t1 + 1) == len(ids),
            timeout=10,
            what="Prometheus past the period's end",
        )

        def journal_past_end() -> bool:
            db = JournalDB(journal_file)
            db.open(create=False)
            try:
                runs = db.read(t0, t1).runs
            finally:
                db.shutdown()
            return bool(runs) and runs[-1].ended >= t1

        wait_until(journal_past_end, timeout=10, what="the journal past the period's end")

        inventory = load_file(config)
        settings = inventory.config.availability
        db = JournalDB(journal_file)
        db.open(create=False)
        try:
            from_journal = build_report(db.read(t0, t1), inventory, settings)
        finally:
            db.shutdown()
        source = PrometheusSource(prometheus.url, step=1.0)
        from_prometheus = build_report(
            read_prometheus(source, inventory, settings, t0, t1),
            inventory,
            settings,
            source=source.describe(),
        )
        assert from_journal.policy["source"] == "journal"
        assert from_prometheus.policy["source"] == (
            f"prometheus {prometheus.url} netmon:target_up, step 1 s"
        )

        journal, prom = _by_subject(from_journal), _by_subject(from_prometheus)
        assert set(journal) == set(prom) == ids | {"link:sw-d1"}
        assert len(from_journal.gaps) == len(from_prometheus.gaps) == 1  # netmon not running
        shown = {k: (journal[k].total, prom[k].total) for k in journal}
        for subject in journal:
            j, p = journal[subject].total, prom[subject].total
            assert j.period == p.period == t1 - t0
            assert abs(j.down - p.down) <= TOLERANCE, (subject, shown)
            # Unknown: netmon's restart, its two ends each late by 0-3 s in Prometheus.
            assert j.unknown >= 4, (subject, shown)
            assert abs(j.unknown - p.unknown) <= TOLERANCE, (subject, shown)
            assert abs(j.up - p.up) <= 2 * TOLERANCE, (subject, shown)
            assert journal[subject].outages == prom[subject].outages, (subject, shown)
        assert journal["ep-lab"].outages == 1
        assert journal["ep-lab"].total.down >= 8, shown
        for subject in ids - {"ep-lab"} | {"link:sw-d1"}:
            assert journal[subject].total.down == prom[subject].total.down == 0, shown

        # The command: today so far from each source, both with the one outage of ep-lab.
        cli_journal = _report_cli(config)
        cli_prometheus = _report_cli(config, "--from-prometheus", prometheus.url, "--step", "1")
        assert cli_journal["policy"]["source"] == "journal"
        assert cli_prometheus["policy"]["source"].startswith(f"prometheus {prometheus.url} ")

        def site(answer: dict[str, Any], target: str) -> dict[str, Any]:
            found: dict[str, Any] = next(s for s in answer["targets"] if s["target"] == target)
            return found

        j_site, p_site = site(cli_journal, "ep-lab"), site(cli_prometheus, "ep-lab")
        assert j_site["outage_count"] == p_site["outage_count"] == 1, (j_site, p_site)
        j_down, p_down = j_site["figures"]["down_seconds"], p_site["figures"]["down_seconds"]
        assert abs(j_down - p_down) <= TOLERANCE, (j_site, p_site)
    finally:
        if prometheus is not None:
            prometheus.stop()
        netmon.stop()


def test_an_unreachable_prometheus_is_named_without_its_credentials() -> None:
    url = f"http://reporter:s3cret@127.0.0.1:{free_port()}"
    with pytest.raises(PrometheusError) as caught:
        query_range(PrometheusSource(url, timeout=5), "netmon:target_up", 0.0, 60.0)
    message = str(caught.value)
    assert message.startswith(f"Prometheus at http://127.0.0.1:{url.rsplit(':', 1)[1]}")
    assert "unreachable" in message
    assert "s3cret" not in message
    assert "reporter" not in message


@pytest.mark.peer
def test_an_error_answer_of_prometheus_is_shown(tmp_path: Path) -> None:
    prometheus = Prometheus(require_program("prometheus"), tmp_path, {})
    try:
        with pytest.raises(PrometheusError) as caught:
            query_range(PrometheusSource(prometheus.url), "netmon:target_up{", 0.0, 60.0)
        assert f"Prometheus at {prometheus.url} answered 400: bad_data" in str(caught.value)
    finally:
        prometheus.stop()


def test_series_become_runs_changes_and_links() -> None:
    """Steps of 10 s from 1000: the switch up 0-5 and down 5-8, then nothing (netmon stopped)
    until 10, up 10-12; the endpoint up 2-4, unknown 4-6 while the switch is still watched, up
    6-8, down 10-12."""
    series = {
        "sw": [(0, 5, 1), (5, 8, 0), (10, 12, 1)],
        "ep": [(2, 4, 1), (6, 8, 1), (10, 12, 0)],
    }
    got = slice_from_series(series, 1000.0, 1115.0, 10.0, ["sw"], [])
    assert got.runs == [Run(1000.0, 1080.0, 1080.0), Run(1100.0, 1115.0, 1115.0)]
    assert got.changes == [
        Change("ep", 1020.0, "up"),
        Change("ep", 1040.0, "unknown"),
        Change("ep", 1060.0, "up"),
        Change("ep", 1080.0, "unknown"),
        Change("ep", 1100.0, "down"),
        Change("link:sw", 1000.0, "up"),
        Change("link:sw", 1050.0, "down", "unreachable"),
        Change("link:sw", 1080.0, "unknown"),
        Change("link:sw", 1100.0, "up"),
        Change("sw", 1000.0, "up"),
        Change("sw", 1050.0, "down"),
        Change("sw", 1080.0, "unknown"),
        Change("sw", 1100.0, "up"),
    ]


def test_chunks_join_and_unmerged_series_of_a_target_count_as_up_if_either_is() -> None:
    from netmon.availability.prometheus import _combine

    assert _combine([[(0, 3, 1)], [(3, 5, 1), (5, 6, 0)]]) == [(0, 5, 1), (5, 6, 0)]
    assert _combine([[(0, 4, 0)], [(2, 6, 1)], [(8, 9, 0)]]) == [(0, 2, 0), (2, 6, 1), (8, 9, 0)]


@pytest.mark.parametrize(
    "url",
    [
        "http://reporter:12/s3cret@127.0.0.1:9090",
        "http://reporter:12?s3cret@127.0.0.1:9090",
        "http://reporter:12#s3cret@127.0.0.1:9090",
        "reporter:s3cret@127.0.0.1:9090",  # no scheme
    ],
)
def test_a_url_whose_credentials_cannot_be_told_apart_is_refused_without_them(url: str) -> None:
    with pytest.raises(ValueError, match="percent-encoded") as caught:
        PrometheusSource(url)
    assert "s3cret" not in str(caught.value)
    assert "reporter" not in str(caught.value)


def test_a_redirect_is_not_followed_with_the_credentials() -> None:
    """A Prometheus URL that redirects elsewhere: the answer is the 3xx, and the host it names
    never sees the password (urllib would follow it with the Authorization header)."""
    seen: list[str | None] = []

    class Elsewhere(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            seen.append(self.headers.get("Authorization"))
            self.send_response(200)
            self.end_headers()

        do_POST = do_GET  # noqa: N815

        def log_message(self, *args: Any) -> None:
            pass

    elsewhere = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Elsewhere)
    target = f"http://127.0.0.1:{elsewhere.server_address[1]}/steal"

    class Redirecting(Elsewhere):
        def do_POST(self) -> None:
            self.send_response(302)
            self.send_header("Location", target)
            self.end_headers()

    prometheus = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Redirecting)
    servers = [
        threading.Thread(target=s.serve_forever, daemon=True) for s in (elsewhere, prometheus)
    ]
    for server in servers:
        server.start()
    try:
        url = f"http://reporter:s3cret@127.0.0.1:{prometheus.server_address[1]}"
        with pytest.raises(PrometheusError, match="answered 302") as caught:
            query_range(PrometheusSource(url, timeout=5), "netmon:target_up", 0.0, 60.0)
        assert "s3cret" not in str(caught.value)
        assert seen == []
    finally:
        for server_object in (elsewhere, prometheus):
            server_object.shutdown()
            server_object.server_close()

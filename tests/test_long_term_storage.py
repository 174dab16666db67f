"""Long-term storage: Prometheus' remote_write into VictoriaMetrics, as deploy/compose.yaml
runs them, and the dashboards read from VictoriaMetrics unchanged.

A real `netmon run` (loopback endpoints, one of them dead, alerting on) is scraped by a real
Prometheus that remote-writes to a real VictoriaMetrics. Every expression of every dashboard
(read from the JSON, variables filled as Grafana fills them) is run against both: whatever
answers on Prometheus must answer on VictoriaMetrics, and nothing may fail there (MetricsQL
is a superset of PromQL, with differences this is here to catch).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import require_program
from tests.dashboard_queries import dashboard_expressions, load_dashboards, resolve_variables, run
from tests.helpers import NetmonProcess, wait_until, write_config
from tests.lab.netlab import NetLab
from tests.peers import Prometheus, VictoriaMetrics

pytestmark = pytest.mark.peer

HANG = 60.0  # a hang guard only


def _host(url: str) -> str:
    return url.removeprefix("http://")


def test_the_dashboards_read_the_same_from_victoriametrics_as_from_prometheus(
    netlab: NetLab, tmp_path: Path
) -> None:
    dead = netlab.add_host()
    dead.link_down()
    config = write_config(
        tmp_path / "netmon.yaml",
        {
            "alerting": {"database": str(tmp_path / "alerts.sqlite")},
            "targets": [
                {"id": f"ep-{n}", "address": f"127.0.0.{n}", "district": f"D{n % 3}"}
                for n in range(1, 7)
            ]
            # A host of the test's own whose link is cut: a dead endpoint, with its alert.
            + [{"id": "ep-dead", "address": dead.address, "district": "D0"}],
        },
    )
    netmon = NetmonProcess(config)
    victoria = prometheus = None
    try:
        victoria = VictoriaMetrics(require_program("victoria-metrics"), tmp_path)
        prometheus = Prometheus(
            require_program("prometheus"),
            tmp_path,
            {"netmon": [_host(netmon.url)]},
            scrape_interval="2s",
            remote_write=[victoria.write_url],
        )

        def stored(store: Prometheus | VictoriaMetrics) -> bool:
            firing = store.query("netmon_alerts_active > 0")
            return bool(store.query("netmon_target_up")) and bool(firing)

        for store in (prometheus, victoria):
            wait_until(lambda s=store: stored(s), timeout=HANG, interval=0.5, what="samples")
        # Two scrapes more on both, so every rate() has its two points.
        wait_until(
            lambda: (
                len(prometheus.query("count_over_time(netmon_target_up[1m])")) > 0
                and all(
                    float(series["value"][1]) >= 4
                    for series in victoria.query("count_over_time(netmon_target_up[1m])")
                )
            ),
            timeout=HANG,
            interval=0.5,
            what="four samples in VictoriaMetrics",
        )
        answered = 0
        differences: list[str] = []
        for board in load_dashboards().values():
            problems: list[str] = []
            values, _ = resolve_variables(prometheus, board, problems)
            from_victoria, _ = resolve_variables(victoria, board, [])  # type: ignore[arg-type]
            # Grafana on VictoriaMetrics offers the same choices in every variable.
            assert from_victoria == values, board["title"]
            for expression in dashboard_expressions(board, values):
                on_prometheus = run(prometheus, expression)
                on_victoria = run(victoria, expression)  # type: ignore[arg-type]
                answered += on_prometheus is None
                if (on_victoria or "").startswith("error") or (
                    on_prometheus is None and on_victoria is not None
                ):
                    differences.append(f"{expression.where}: {on_victoria}: {expression.expr}")
        assert differences == []
        assert answered >= 30  # what a small netmon fills: not a test of empty panels
    finally:
        for peer in (prometheus, victoria):
            if peer is not None:
                peer.stop()
        netmon.stop()

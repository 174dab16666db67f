"""A real Prometheus scrapes netmon: up == 1, and every target's verdict is queryable."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import require_program
from tests.helpers import NetmonProcess, wait_until, write_config
from tests.peers import Prometheus


@pytest.mark.peer
def test_prometheus_scrapes_netmon(tmp_path: Path) -> None:
    binary = require_program("prometheus")
    config = write_config(
        tmp_path / "netmon.yaml",
        {
            "defaults": {"icmp": {"interval": "500ms", "timeout": "300ms"}},
            "targets": [
                {"id": f"ep-{i}", "address": f"127.0.4.{i}", "name": f"Xã số {i}"}
                for i in range(1, 21)
            ],
        },
    )
    netmon = NetmonProcess(config)
    prometheus = None
    try:
        target = netmon.url.removeprefix("http://")
        prometheus = Prometheus(binary, tmp_path, {"netmon": [target]})
        wait_until(lambda: prometheus.query('up{job="netmon"} == 1'), timeout=20, what="up == 1")
        result = wait_until(
            lambda: [r for r in prometheus.query("count(netmon_target_up == 1)")
                     if r["value"][1] == "20"],
            timeout=20,
            what="all 20 targets up in Prometheus",
        )  # fmt: skip
        assert result
        names = prometheus.query('netmon_target_info{target="ep-7"}')
        assert names[0]["metric"]["name"] == "Xã số 7"
        # 20 targets x 2 echoes/s: the counters Prometheus stored move at the configured pace.
        wait_until(
            lambda: prometheus.query("sum(rate(netmon_icmp_packets_received_total[5s])) > 35"),
            timeout=20,
            what="a received-packet rate of about 40/s",
        )
    finally:
        if prometheus is not None:
            prometheus.stop()
        netmon.stop()

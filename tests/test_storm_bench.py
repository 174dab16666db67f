"""bench/storm.py's own arithmetic: the lag quantile from two scrapes and the alert tally.

The storm itself runs against the real service (`make storm`); these keep its verdicts honest.
"""

from __future__ import annotations

import math
import random

from bench.storm import MIX, Snapshot, classify, forged_v3, quantile, storm_datagrams
from collectors.traps.wire import decode_v3_header


def _snapshot(buckets: dict[float, float]) -> Snapshot:
    return Snapshot(at=0.0, series=0, rss=0, lag_buckets=buckets,
                    lag_count=buckets[math.inf], skipped=0.0, traps={})  # fmt: skip


def test_quantile_is_taken_from_the_delta_and_interpolated_in_its_bucket() -> None:
    before = _snapshot({0.01: 100.0, 0.1: 100.0, 1.0: 100.0, math.inf: 100.0})
    # 100 new runs: 90 within 10 ms, 10 between 100 ms and 1 s.
    after = _snapshot({0.01: 190.0, 0.1: 190.0, 1.0: 200.0, math.inf: 200.0})
    assert quantile(0.5, before, after) == 0.01 * 50 / 90
    assert math.isclose(quantile(0.99, before, after), 0.1 + 0.9 * 9 / 10)
    assert math.isnan(quantile(0.99, after, after))


def test_only_trap_devices_own_alerts_are_not_false() -> None:
    alerts = [
        {"alertname": "InterfaceDown", "target": "sw-01", "status": "firing",
         "labels": {"ifindex": "3"}},
        {"alertname": "DeviceRebooted", "target": "sw-02", "status": "firing"},
        {"alertname": "EndpointDown", "target": "ep-001", "status": "firing"},
        {"alertname": "InterfaceDown", "target": "ep-002", "status": "firing"},
    ]  # fmt: skip
    tally = classify(alerts)
    assert tally["false_count"] == 2
    assert tally["max_interfaces_per_device"] == 1


def test_the_storm_has_its_mix_and_forged_v3_names_the_user() -> None:
    datagrams = storm_datagrams(random.Random(1), 2000)
    kinds = {kind for _, kind, _ in datagrams}
    assert kinds == set(MIX)
    assert {source for source, _, _ in datagrams} == set(range(50))
    header = decode_v3_header(forged_v3(random.Random(2)))
    assert header.user == b"storm"
    assert header.authenticated

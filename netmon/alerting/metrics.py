"""Alerting's own series on /metrics: what fires, what was delivered, what waits."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from collectors.traps.receiver import TrapStats
from netmon.alerting.runtime import Alerting

RESULTS = ("success", "failure", "rejected", "dropped")


class AlertingCollector:
    def __init__(self, alerting: Alerting) -> None:
        self._alerting = alerting

    def describe(self) -> Iterable[Metric]:
        return []

    def collect(self) -> Iterator[Metric]:
        alerting = self._alerting
        active = GaugeMetricFamily(
            "netmon_alerts_active", "Alerts firing now, by severity", labels=["severity"]
        )
        for severity, count in alerting.engine.active_by_severity().items():
            active.add_metric([severity], count)
        yield active

        results = dict(alerting.stats.results)
        for queue, count in alerting.engine.dropped.items():
            key = (queue.split(":", 1)[0], "dropped")
            results[key] = results.get(key, 0) + count
        notifications = CounterMetricFamily(
            "netmon_alert_notifications",
            "Alert notifications handed to sinks, by result (failure = will be retried)",
            labels=["sink", "result"],
        )
        for name in sorted({s.name for s in alerting.sinks} | {s for s, _ in results}):
            for result in RESULTS:
                notifications.add_metric([name, result], results.get((name, result), 0))
        yield notifications

        queued = GaugeMetricFamily(
            "netmon_alert_outbox_events",
            "Alert notifications waiting in the outbox for a sink",
            labels=["sink", "queue"],
        )
        for sink in alerting.sinks:
            queued.add_metric([sink.name, sink.queue], alerting.pending.get(sink.queue, 0))
        yield queued

        errors = CounterMetricFamily(
            "netmon_alert_evaluation_errors", "Alert rule evaluations that failed (a bug)"
        )
        errors.add_metric([], alerting.engine_errors)
        yield errors

        if alerting.traps is not None:
            yield from _trap_families(alerting.traps.receiver.stats)


def _trap_families(stats: TrapStats) -> Iterator[Metric]:
    received = CounterMetricFamily(
        "netmon_snmp_traps_received",
        "SNMP notifications received from inventory targets",
        labels=["target", "trap"],
    )
    for (target, trap), count in sorted(stats.received.items()):
        received.add_metric([target, trap], count)
    yield received
    unknown = CounterMetricFamily(
        "netmon_snmp_traps_unknown_source",
        "SNMP notifications from addresses the inventory does not know",
        labels=["source"],
    )
    for source, count in sorted(stats.unknown_sources.items()):
        unknown.add_metric([source], count)
    yield unknown
    dropped = CounterMetricFamily(
        "netmon_snmp_traps_dropped",
        "SNMP notifications dropped, by reason (auth: wrong community or v3 key; rate: the "
        "per-source rate limit)",
        labels=["target", "reason"],
    )
    for target, count in sorted(stats.auth_failures.items()):
        dropped.add_metric([target, "auth"], count)
    for target, count in sorted(stats.rate_limited.items()):
        dropped.add_metric([target, "rate"], count)
    dropped.add_metric(["", "rate"], stats.rate_limited_unknown)
    yield dropped
    malformed = CounterMetricFamily(
        "netmon_snmp_traps_malformed", "Datagrams on the trap port that are not SNMP notifications"
    )
    malformed.add_metric([], stats.malformed)
    yield malformed

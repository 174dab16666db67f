"""Alerting's own series on /metrics: what fires, what was delivered, what waits."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from netmon.alerting.runtime import Alerting
from netmon.oncall.delivery import RESULTS as PAGE_RESULTS
from netmon.oncall.records import page_queue
from netmon.oncall.service import OnCall

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
        acknowledged = GaugeMetricFamily(
            "netmon_alerts_acknowledged",
            "Alerts firing now that someone acknowledged (is on), by severity; "
            "netmon_alerts_active - netmon_alerts_acknowledged are the ones nobody has taken",
            labels=["severity"],
        )
        for severity, count in alerting.engine.active_by_severity(acknowledged=True).items():
            acknowledged.add_metric([severity], count)
        yield acknowledged

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

        unstored = GaugeMetricFamily(
            "netmon_alert_transitions_unstored",
            "Alert transitions decided but not yet written to the alert database (retried in "
            "order until they are; above 0 for long: the database refuses writes)",
        )
        unstored.add_metric([], alerting.engine.unstored)
        yield unstored
        store_failures = CounterMetricFamily(
            "netmon_alert_store_failures",
            "Writes of an alert transition to the alert database that failed (and were retried)",
        )
        store_failures.add_metric([], alerting.engine.store_failures)
        yield store_failures
        quarantined = CounterMetricFamily(
            "netmon_alert_rows_quarantined",
            "Rows of the alert database that did not decode (damaged, or written by another "
            "version), set aside in its quarantine table instead of blocking a queue or the start",
        )
        quarantined.add_metric([], alerting.db.quarantined)
        yield quarantined

        oncall = alerting.oncall
        if oncall is not None:
            yield from _oncall_families(oncall)

        errors = CounterMetricFamily(
            "netmon_alert_evaluation_errors", "Alert rule evaluations that failed (a bug)"
        )
        errors.add_metric([], alerting.engine_errors)
        yield errors


def _oncall_families(oncall: OnCall) -> Iterator[Metric]:
    pages = CounterMetricFamily(
        "netmon_pages",
        "Pages handed to people's channels, by result (failure = will be retried; rejected = "
        "the channel refused it for good: dropped)",
        labels=["channel", "result"],
    )
    for channel in oncall.channels:
        for result in PAGE_RESULTS:
            pages.add_metric(
                [channel.name, result], oncall.stats.results.get((channel.name, result), 0)
            )
    yield pages
    queued = GaugeMetricFamily(
        "netmon_pages_queued", "Pages waiting for their channel", labels=["channel"]
    )
    for channel in oncall.channels:
        queued.add_metric([channel.name], oncall.pending.get(page_queue(channel.name), 0))
    yield queued
    escalating = GaugeMetricFamily(
        "netmon_escalations",
        "Alerts an escalation policy took, by whether someone acknowledged them",
        labels=["acknowledged"],
    )
    escalations = list(oncall.escalator.escalations.values())
    for taken in (False, True):
        count = sum(1 for e in escalations if e.acknowledged == taken)
        escalating.add_metric(["true" if taken else "false"], count)
    yield escalating
    events = CounterMetricFamily(
        "netmon_channel_events",
        "What a channel saw besides pages: Telegram's messages sent, alerts summarised as "
        '"+N more", plain-text resends after a parse error, button presses (and those '
        "malformed, not allowed, or whose action failed), failed polls for presses",
        labels=["channel", "event"],
    )
    for channel in oncall.channels:
        counts = getattr(channel, "counts", None)
        if isinstance(counts, Mapping):
            for event, count in sorted(counts.items()):
                events.add_metric([channel.name, str(event)], float(count))
    yield events
    unaddressed = CounterMetricFamily(
        "netmon_pages_unaddressed",
        "Recipients a step could not page: no address for that channel (a person without a "
        "phone number for SMS, a district without a Telegram chat)",
    )
    unaddressed.add_metric([], oncall.escalator.unaddressed)
    yield unaddressed

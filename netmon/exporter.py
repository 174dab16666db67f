"""Prometheus exposition: a custom collector that reads the state store at scrape time.

Nothing here mutates metric objects per sample: every scrape builds fresh families from what
the store holds, so the series of a removed target disappear by themselves. `collect()` runs on
the event loop, so it only reads memory and never does I/O.

Polling runs on netmon's own timers, not on scrapes: samples carry no timestamps, and
`netmon_probe_age_seconds` says how old each result is.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator

from prometheus_client import CollectorRegistry, PlatformCollector, ProcessCollector
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.exposition import choose_encoder
from prometheus_client.samples import Sample

from netmon import __version__
from netmon.state import Histogram, Reach, StateStore

TARGET_UP_LABELS = ["target", "kind", "site", "group"]


def _histogram(name: str, documentation: str, labels: list[str]) -> HistogramMetricFamily:
    return HistogramMetricFamily(name, documentation, labels=labels)


def _add_histogram(family: HistogramMetricFamily, labels: list[str], hist: Histogram) -> None:
    family.add_metric(labels, buckets=hist.cumulative(), sum_value=hist.sum)


class StoreCollector:
    """Builds every netmon_* family from a StateStore snapshot."""

    def __init__(self, store: StateStore) -> None:
        self._store = store

    def describe(self) -> Iterable[Metric]:
        return []  # families vary with the inventory; skip the registry's duplicate check

    def collect(self) -> Iterator[Metric]:
        self._store.prune_windows()  # a target whose rounds stopped must not report old loss
        yield from self._self_families()
        yield from self._target_families()

    def _self_families(self) -> Iterator[Metric]:
        stats = self._store.stats
        info = GaugeMetricFamily(
            "netmon_build_info", "netmon version; always 1.", labels=["version"]
        )
        info.add_metric([__version__], 1)
        yield info

        targets = GaugeMetricFamily(
            "netmon_targets", "Targets in the inventory, by kind.", labels=["kind"]
        )
        kinds: dict[str, int] = {}
        for state in self._store.targets.values():
            kinds[state.target.kind] = kinds.get(state.target.kind, 0) + 1
        for kind, count in sorted(kinds.items()):
            targets.add_metric([kind], count)
        yield targets

        duration = _histogram(
            "netmon_collector_duration_seconds",
            "Time one collector run took, from start to result.",
            ["collector"],
        )
        for name, hist in sorted(stats.collector_duration.items()):
            _add_histogram(duration, [name], hist)
        yield duration

        errors = CounterMetricFamily(
            "netmon_collector_errors",
            "Collector runs that failed, by reason (timeout, resolve, refused, internal, ...).",
            labels=["collector", "reason"],
        )
        for (name, reason), count in sorted(stats.collector_errors.items()):
            errors.add_metric([name, reason], count)
        yield errors

        lag = _histogram(
            "netmon_scheduler_lag_seconds",
            "How late a collector run started against its planned slot.",
            ["collector"],
        )
        for name, hist in sorted(stats.scheduler_lag.items()):
            _add_histogram(lag, [name], hist)
        yield lag

        skipped = CounterMetricFamily(
            "netmon_scheduler_skipped_runs",
            "Planned runs skipped because the previous run overran its slot.",
            labels=["collector"],
        )
        for name, count in sorted(stats.skipped_runs.items()):
            skipped.add_metric([name], count)
        yield skipped

        reloads = CounterMetricFamily(
            "netmon_config_reloads", "Config reloads (SIGHUP), by result.", labels=["result"]
        )
        for result, count in sorted(stats.reloads.items()):
            reloads.add_metric([result], count)
        yield reloads

    def _target_families(self) -> Iterator[Metric]:
        now_monotonic = time.monotonic()
        up = GaugeMetricFamily(
            "netmon_target_up",
            "1 if the target answers ICMP, 0 if it is down (after down_after consecutive "
            "losses). Absent until the first verdict.",
            labels=TARGET_UP_LABELS,
        )
        info = GaugeMetricFamily(
            "netmon_target_info",
            "Inventory facts about a target; always 1. Join on `target`.",
            labels=None,
        )
        rtt = _histogram(
            "netmon_icmp_rtt_seconds", "ICMP echo round-trip time (kernel timestamps).", ["target"]
        )
        sent = CounterMetricFamily(
            "netmon_icmp_packets_sent", "ICMP echo requests sent.", labels=["target"]
        )
        received = CounterMetricFamily(
            "netmon_icmp_packets_received", "ICMP echo replies received in time.", labels=["target"]
        )
        loss = GaugeMetricFamily(
            "netmon_icmp_loss_ratio",
            "Share of echoes lost over the sliding window (icmp.window).",
            labels=["target"],
        )
        jitter = GaugeMetricFamily(
            "netmon_icmp_jitter_seconds",
            "Mean absolute difference of consecutive RTTs over the sliding window (RFC 3550).",
            labels=["target"],
        )
        success = GaugeMetricFamily(
            "netmon_probe_success",
            "1 if the last run of the probe succeeded.",
            labels=["target", "probe"],
        )
        probe_duration = GaugeMetricFamily(
            "netmon_probe_duration_seconds",
            "Duration of the last run of the probe.",
            labels=["target", "probe"],
        )
        age = GaugeMetricFamily(
            "netmon_probe_age_seconds",
            "Seconds since the last run of the probe finished (netmon polls on its own timers).",
            labels=["target", "probe"],
        )
        info_rows: list[tuple[list[str], list[str]]] = []
        for target_id, state in sorted(self._store.targets.items()):
            target = state.target
            info_names = ["target", "name", "address", "kind", "site", "district", "group"]
            info_values = [
                target_id,
                target.name,
                target.address,
                target.kind,
                target.site,
                target.district,
                target.group,
            ]
            for key, value in target.labels:
                info_names.append(key)
                info_values.append(value)
            info_rows.append((info_names, info_values))
            icmp = state.icmp
            if icmp is not None:
                if icmp.reach is not Reach.UNKNOWN:
                    up.add_metric(
                        [target_id, target.kind, target.site, target.group],
                        1 if icmp.reach is Reach.UP else 0,
                    )
                _add_histogram(rtt, [target_id], icmp.rtt)
                sent.add_metric([target_id], icmp.sent_total)
                received.add_metric([target_id], icmp.received_total)
                loss_ratio = icmp.window.loss_ratio()
                if loss_ratio is not None:
                    loss.add_metric([target_id], loss_ratio)
                jitter_value = icmp.window.jitter()
                if jitter_value is not None:
                    jitter.add_metric([target_id], jitter_value)
            for probe, result in sorted(state.probes.items()):
                success.add_metric([target_id, probe], 1 if result.success else 0)
                probe_duration.add_metric([target_id, probe], result.duration)
                age.add_metric([target_id, probe], now_monotonic - result.updated_monotonic)
        for names, values in info_rows:
            # Free labels differ per target, so each sample carries its own label names.
            info.samples.append(
                Sample("netmon_target_info", dict(zip(names, values, strict=True)), 1)
            )
        yield from (up, info, rtt, sent, received, loss, jitter, success, probe_duration, age)


def build_registry(store: StateStore) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(StoreCollector(store))
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    return registry


def render(registry: CollectorRegistry, accept: str | None) -> tuple[bytes, str]:
    """Encode a scrape; OpenMetrics when the scraper asks for it."""
    encoder, content_type = choose_encoder(accept or "")
    return encoder(registry), content_type

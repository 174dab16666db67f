"""Prometheus exposition: a custom collector that reads the state store at scrape time.

Nothing here mutates metric objects per sample: every collection builds fresh families from
what the store holds, so the series of a removed target disappear by themselves. The families
are described in exporter_targets, exporter_devices, exporter_rooms and exporter_calls, each
filled one target at a time; this is the from-scratch rendering (tests, any format
prometheus_client knows). `/metrics` serves `netmon.exposition`'s incremental one, which calls
the same functions per changed target.

Polling runs on netmon's own timers, not on scrapes: samples carry no timestamps, and
`netmon_probe_age_seconds` says how old each result is.
"""

from __future__ import annotations

import asyncio
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
from prometheus_client.registry import Collector

from netmon import __version__
from netmon.exporter_calls import call_families
from netmon.exporter_devices import (
    DEVICE_FAMILIES,
    EVENT_FAMILIES,
    emit_device,
    emit_events,
    emit_modules,
)
from netmon.exporter_rooms import room_families
from netmon.exporter_sink import MetricSink
from netmon.exporter_targets import TARGET_FAMILIES, emit_target
from netmon.state import StateStore
from netmon.windows import Histogram


def histogram_family(
    name: str,
    documentation: str,
    labels: list[str],
    series: Iterable[tuple[list[str], Histogram]],
) -> HistogramMetricFamily:
    """One histogram family from the store's Histograms: every family of netmon built alike."""
    family = HistogramMetricFamily(name, documentation, labels=labels)
    for values, hist in series:
        family.add_metric(values, buckets=hist.cumulative(), sum_value=hist.sum)
    return family


class StoreCollector:
    """Builds every netmon_* family from a StateStore snapshot."""

    def __init__(self, store: StateStore) -> None:
        self._store = store

    def describe(self) -> Iterable[Metric]:
        return []  # families vary with the inventory; skip the registry's duplicate check

    def collect(self) -> Iterator[Metric]:
        self._store.prune_windows()  # a target whose rounds stopped must not report old loss
        yield from self_families(self._store)
        yield from store_families(self._store, time.monotonic())


def store_families(store: StateStore, now_monotonic: float) -> Iterator[Metric]:
    """Every per-target family, built from scratch (the reference `netmon.exposition` keeps
    up with incrementally): targets, devices and modules, events in target order; rooms and
    calls in the inventory's order."""
    ordered = sorted(store.exported_targets().items())
    targets = MetricSink(TARGET_FAMILIES)
    for target_id, state in ordered:
        emit_target(targets, target_id, state, now_monotonic)
    yield from targets.metrics.values()
    devices = MetricSink(DEVICE_FAMILIES)
    for target_id, state in ordered:
        emit_device(devices, target_id, state)
    yield from devices.metrics.values()
    modules = MetricSink(())
    for target_id, state in ordered:
        emit_modules(modules, target_id, state)
    yield from modules.others.values()
    events = MetricSink(EVENT_FAMILIES)
    for target_id, state in ordered:
        emit_events(events, target_id, state)
    yield from events.metrics.values()
    yield from room_families(store)
    yield from call_families(store)


def self_families(store: StateStore) -> Iterator[Metric]:
    """netmon's own families: build, inventory size, tasks, collectors, scheduler, reloads."""
    stats = store.stats
    info = GaugeMetricFamily("netmon_build_info", "netmon version; always 1.", labels=["version"])
    info.add_metric([__version__], 1)
    yield info

    targets = GaugeMetricFamily(
        "netmon_targets", "Targets in the inventory, by kind.", labels=["kind"]
    )
    kinds: dict[str, int] = {}
    for state in store.targets.values():
        kinds[state.target.kind] = kinds.get(state.target.kind, 0) + 1
    for kind, count in sorted(kinds.items()):
        targets.add_metric([kind], count)
    yield targets

    try:
        running = len(asyncio.all_tasks())
    except RuntimeError:  # rendered off the event loop: nothing to count from here
        pass
    else:
        tasks = GaugeMetricFamily(
            "netmon_asyncio_tasks",
            "asyncio tasks alive in netmon: flat in a healthy process (a soak shows it).",
        )
        tasks.add_metric([], running)
        yield tasks

    yield histogram_family(
        "netmon_collector_duration_seconds",
        "Time one collector run took, from start to result.",
        ["collector"],
        (([name], hist) for name, hist in sorted(stats.collector_duration.items())),
    )

    errors = CounterMetricFamily(
        "netmon_collector_errors",
        "Collector runs that failed, by reason (timeout, resolve, refused, internal, ...).",
        labels=["collector", "reason"],
    )
    for (name, reason), count in sorted(stats.collector_errors.items()):
        errors.add_metric([name, reason], count)
    yield errors

    yield histogram_family(
        "netmon_scheduler_lag_seconds",
        "How late a collector run started against its planned slot.",
        ["collector"],
        (([name], hist) for name, hist in sorted(stats.scheduler_lag.items())),
    )

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


class NetmonRegistry(CollectorRegistry):
    """The registry of `netmon run`: the store's collector, and the others in the order they
    were registered, so `netmon.exposition` can write the store's families itself."""

    def __init__(self, store: StateStore) -> None:
        super().__init__(auto_describe=False)
        self.store = store
        self.others: list[Collector] = []
        self.register(StoreCollector(store))

    def register(self, collector: Collector) -> None:
        super().register(collector)
        if not isinstance(collector, StoreCollector):
            self.others.append(collector)

    def unregister(self, collector: Collector) -> None:
        super().unregister(collector)
        if collector in self.others:
            self.others.remove(collector)


def build_registry(store: StateStore) -> NetmonRegistry:
    registry = NetmonRegistry(store)
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    return registry


def render(registry: CollectorRegistry, accept: str | None) -> tuple[bytes, str]:
    """Encode a scrape; OpenMetrics when the scraper asks for it."""
    encoder, content_type = choose_encoder(accept or "")
    return encoder(registry), content_type

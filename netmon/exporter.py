"""Prometheus exposition: a custom collector that reads the state store at scrape time.

Nothing here mutates metric objects per sample: every scrape builds fresh families from what
the store holds, so the series of a removed target disappear by themselves. `collect()` runs on
the event loop, so it only reads memory and never does I/O.

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
from prometheus_client.samples import Sample

from netmon import __version__
from netmon.checks.model import Verdict
from netmon.exporter_calls import call_families
from netmon.exporter_rooms import room_families
from netmon.state import Reach, StateStore
from netmon.windows import Histogram

TARGET_UP_LABELS = ["target", "kind", "site", "group"]
# netmon_endpoint_readiness_verdict: higher is worse, so dashboards colour and sort by value.
VERDICT_VALUE = {Verdict.GO: 0.0, Verdict.WARN: 1.0, Verdict.NO_GO: 2.0}


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
        yield from self._self_families()
        yield from self._target_families()
        yield from self._device_families()
        yield from self._event_families()
        yield from room_families(self._store)
        yield from call_families(self._store)

    def _event_families(self) -> Iterator[Metric]:
        """What arrived rather than was polled: traps, and readiness checks' last verdicts."""
        traps = CounterMetricFamily(
            "netmon_snmp_traps_received",
            "SNMP notifications received from inventory targets, by standard trap name "
            "(coldStart, linkDown...); every other trap counts as other",
            labels=["target", "trap"],
        )
        ready = GaugeMetricFamily(
            "netmon_endpoint_ready",
            "1 if the endpoint's last readiness check said GO, 0 if WARN or NO-GO",
            labels=["target"],
        )
        verdict = GaugeMetricFamily(
            "netmon_endpoint_readiness_verdict",
            "The endpoint's last readiness verdict: 0 GO, 1 WARN, 2 NO-GO",
            labels=["target"],
        )
        for target_id, state in sorted(self._store.targets.items()):
            for trap, count in sorted(state.traps_received.items()):
                traps.add_metric([target_id, trap], count)
            if state.readiness is not None:
                ready.add_metric([target_id], float(state.readiness.verdict is Verdict.GO))
                verdict.add_metric([target_id], VERDICT_VALUE[state.readiness.verdict])
        yield from (traps, ready, verdict)

    def _device_families(self) -> Iterator[Metric]:
        interface_labels = ["target", "ifindex", "ifname", "ifalias"]
        snmp_up = GaugeMetricFamily(
            "netmon_snmp_up", "1 if the last SNMP poll of the device answered.", labels=["target"]
        )
        poll_duration = GaugeMetricFamily(
            "netmon_snmp_poll_duration_seconds",
            "How long the last SNMP poll took.",
            labels=["target"],
        )
        uptime = GaugeMetricFamily(
            "netmon_device_uptime_seconds", "sysUpTime of the device.", labels=["target"]
        )
        device_info = GaugeMetricFamily(
            "netmon_device_info",
            "System group facts of the device; always 1.",
            labels=["target", "sys_name", "sys_descr", "sys_object_id"],
        )
        reboots = CounterMetricFamily(
            "netmon_device_reboots",
            "Reboots seen by netmon (sysUpTime went backwards between polls).",
            labels=["target"],
        )
        counters = {
            name: CounterMetricFamily(f"netmon_interface_{name}", doc, labels=interface_labels)
            for name, doc in (
                (
                    "in_octets",
                    "Octets received (ifHCInOctets, or ifInOctets when 64-bit is missing).",
                ),
                (
                    "out_octets",
                    "Octets sent (ifHCOutOctets, or ifOutOctets when 64-bit is missing).",
                ),
                ("in_errors", "Inbound packets with errors (ifInErrors)."),
                ("out_errors", "Outbound packets with errors (ifOutErrors)."),
                ("in_discards", "Inbound packets discarded (ifInDiscards)."),
                ("out_discards", "Outbound packets discarded (ifOutDiscards)."),
            )
        }
        oper = GaugeMetricFamily(
            "netmon_interface_oper_up", "1 if ifOperStatus is up.", labels=interface_labels
        )
        admin = GaugeMetricFamily(
            "netmon_interface_admin_up", "1 if ifAdminStatus is up.", labels=interface_labels
        )
        # The first contract named netmon_interface_speed_bits_per_second, but promtool rejects
        # bits as a unit; bytes it is (x 8 for bit/s in a dashboard).
        speed = GaugeMetricFamily(
            "netmon_interface_speed_bytes_per_second",
            "Interface speed in bytes per second (ifHighSpeed, or ifSpeed, / 8).",
            labels=interface_labels,
        )
        utilization = GaugeMetricFamily(
            "netmon_interface_utilization_ratio",
            "Share of the interface speed used between the last two polls, timed by the "
            "agent's sysUpTime; absent across a reboot or counter discontinuity.",
            labels=[*interface_labels, "direction"],
        )
        for target_id, state in sorted(self._store.targets.items()):
            for device in state.devices.values():
                snmp_up.add_metric([target_id], 1 if device.up else 0)
                poll_duration.add_metric([target_id], device.duration)
                reboots.add_metric([target_id], device.reboots)
                if not device.up:
                    continue
                if device.uptime_ticks is not None:
                    uptime.add_metric([target_id], device.uptime_ticks / 100)
                device_info.add_metric(
                    [target_id, device.sys_name, device.sys_descr, device.sys_object_id], 1
                )
                for index, interface in sorted(device.interfaces.items()):
                    sample = interface.sample
                    labels = [target_id, str(index), sample.name, sample.alias]
                    for name, family in counters.items():
                        if "octets" in name and not interface.octets_comparable:
                            continue
                        value = getattr(sample, name)
                        if value is not None:
                            family.add_metric(labels, value)
                    if sample.oper_up is not None:
                        oper.add_metric(labels, 1 if sample.oper_up else 0)
                    if sample.admin_up is not None:
                        admin.add_metric(labels, 1 if sample.admin_up else 0)
                    if sample.speed_bps is not None:
                        speed.add_metric(labels, sample.speed_bps / 8)
                    if interface.utilization is not None:
                        utilization.add_metric([*labels, "in"], interface.utilization[0])
                        utilization.add_metric([*labels, "out"], interface.utilization[1])
        yield from (snmp_up, poll_duration, uptime, device_info, reboots, *counters.values(),
                    oper, admin, speed, utilization)  # fmt: skip
        yield from self._module_families()

    def _module_families(self) -> Iterator[Metric]:
        """Metrics of data-defined SNMP modules, one family per name across all devices."""
        families: dict[str, Metric] = {}
        for target_id, state in sorted(self._store.targets.items()):
            for device in state.devices.values():
                if not device.up:
                    continue
                for name, kind, help_text, labels, value in device.metrics:
                    full = f"netmon_{name}"
                    family = families.get(full)
                    if family is None:
                        family = families[full] = _module_family(full, kind, help_text)
                    sample_name = full + "_total" if kind == "counter" else full
                    family.samples.append(
                        Sample(sample_name, {"target": target_id, **dict(labels)}, value)
                    )
        yield from families.values()

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

    def _target_families(self) -> Iterator[Metric]:
        now_monotonic = time.monotonic()
        up = GaugeMetricFamily(
            "netmon_target_up",
            "1 if the target answers ICMP, 0 if it is down (a lost echo whose confirmation "
            "echoes were all lost too, icmp.confirm); for a target watched only by TCP/SIP/HTTP "
            "probes (a web service), 1 if its probes succeed. Absent until the first verdict.",
            labels=TARGET_UP_LABELS,
        )
        info = GaugeMetricFamily(
            "netmon_target_info",
            "Inventory facts about a target; always 1. Join on `target`.",
            labels=None,
        )
        rtts: list[tuple[list[str], Histogram]] = []
        sent = CounterMetricFamily(
            "netmon_icmp_packets_sent",
            "ICMP echo requests sent on the probe's interval (confirmation echoes apart).",
            labels=["target"],
        )
        received = CounterMetricFamily(
            "netmon_icmp_packets_received",
            "Replies in time to the echoes of netmon_icmp_packets_sent.",
            labels=["target"],
        )
        confirm_sent = CounterMetricFamily(
            "netmon_icmp_confirm_packets_sent",
            "Echoes sent at once to confirm a lost echo (or a reply from a down target).",
            labels=["target"],
        )
        confirm_received = CounterMetricFamily(
            "netmon_icmp_confirm_packets_received",
            "Replies in time to confirmation echoes.",
            labels=["target"],
        )
        bursts = GaugeMetricFamily(
            "netmon_icmp_loss_bursts",
            "Loss bursts (5 or more echoes lost in a row, then a reply before down) within "
            "the loss window (icmp.loss_window).",
            labels=["target"],
        )
        loss = GaugeMetricFamily(
            "netmon_icmp_loss_ratio",
            "Share of echoes lost over the sliding window (icmp.window).",
            labels=["target"],
        )
        jitter = GaugeMetricFamily(
            "netmon_icmp_jitter_seconds",
            "Mean absolute difference of consecutive RTTs over the sliding window (RFC 3550), "
            "the largest 5 % of differences left out (one late reply is not jitter).",
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
        http_status = GaugeMetricFamily(
            "netmon_http_status_code",
            "HTTP status of the last answer to the http probe; absent when it got none.",
            labels=["target"],
        )
        cert_not_after = GaugeMetricFamily(
            "netmon_tls_cert_not_after_seconds",
            "notAfter of the TLS certificate the http probe was last served, as a unix "
            "timestamp (read even when verification is off); absent over plain HTTP.",
            labels=["target"],
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
            if state.probes_only:
                up.add_metric(
                    [target_id, target.kind, target.site, target.group],
                    1 if state.reach is Reach.UP else 0,
                )
            if icmp is not None:
                if icmp.reach is not Reach.UNKNOWN:
                    up.add_metric(
                        [target_id, target.kind, target.site, target.group],
                        1 if icmp.reach is Reach.UP else 0,
                    )
                rtts.append(([target_id], icmp.rtt))
                sent.add_metric([target_id], icmp.sent_total)
                received.add_metric([target_id], icmp.received_total)
                confirm_sent.add_metric([target_id], icmp.confirm_sent_total)
                confirm_received.add_metric([target_id], icmp.confirm_received_total)
                bursts.add_metric([target_id], len(icmp.bursts))
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
                if result.http_status is not None:
                    http_status.add_metric([target_id], result.http_status)
                if result.tls_not_after is not None:
                    cert_not_after.add_metric([target_id], result.tls_not_after)
        for names, values in info_rows:
            # Free labels differ per target, so each sample carries its own label names.
            info.samples.append(
                Sample("netmon_target_info", dict(zip(names, values, strict=True)), 1)
            )
        rtt = histogram_family(
            "netmon_icmp_rtt_seconds",
            "ICMP echo round-trip time (kernel timestamps).",
            ["target"],
            rtts,
        )
        yield from (up, info, rtt, sent, received, confirm_sent, confirm_received, bursts)
        yield from (loss, jitter, success, probe_duration, age)
        yield from (http_status, cert_not_after)


def _module_family(name: str, kind: str, help_text: str) -> Metric:
    documentation = help_text or "From an SNMP module."
    if kind == "counter":
        return CounterMetricFamily(name, documentation)
    # Info and state sets go out as gauges (1, or 1/0 per state): every scraper reads those.
    return GaugeMetricFamily(name, documentation)


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

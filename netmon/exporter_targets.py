"""The per-target families: reach, inventory facts, ICMP statistics, probes' last runs.

`emit_target` hands one target's samples to a `Sink` (`netmon.exporter_sink`): the reference
collector and the incremental exposition both call it.
"""

from __future__ import annotations

from netmon.exporter_sink import Family, Sink, numbered
from netmon.state import Reach, TargetState

TARGET_UP_LABELS = ["target", "kind", "site", "group"]

UP = Family(
    "netmon_target_up",
    "gauge",
    "1 if the target answers ICMP, 0 if it is down (a lost echo whose confirmation "
    "echoes were all lost too, icmp.confirm); for a target watched only by TCP/SIP/HTTP "
    "probes (a web service), 1 if its probes succeed. Absent until the first verdict.",
    TARGET_UP_LABELS,
)
INFO = Family(
    "netmon_target_info", "gauge", "Inventory facts about a target; always 1. Join on `target`."
)
RTT = Family(
    "netmon_icmp_rtt_seconds",
    "histogram",
    "ICMP echo round-trip time (kernel timestamps).",
    ["target"],
)
SENT = Family(
    "netmon_icmp_packets_sent",
    "counter",
    "ICMP echo requests sent on the probe's interval (confirmation echoes apart).",
    ["target"],
)
RECEIVED = Family(
    "netmon_icmp_packets_received",
    "counter",
    "Replies in time to the echoes of netmon_icmp_packets_sent.",
    ["target"],
)
CONFIRM_SENT = Family(
    "netmon_icmp_confirm_packets_sent",
    "counter",
    "Echoes sent at once to confirm a lost echo (or a reply from a down target).",
    ["target"],
)
CONFIRM_RECEIVED = Family(
    "netmon_icmp_confirm_packets_received",
    "counter",
    "Replies in time to confirmation echoes.",
    ["target"],
)
BURSTS = Family(
    "netmon_icmp_loss_bursts",
    "gauge",
    "Loss bursts (5 or more echoes lost in a row, then a reply before down) within "
    "the loss window (icmp.loss_window).",
    ["target"],
)
LOSS = Family(
    "netmon_icmp_loss_ratio",
    "gauge",
    "Share of echoes lost over the sliding window (icmp.window).",
    ["target"],
)
JITTER = Family(
    "netmon_icmp_jitter_seconds",
    "gauge",
    "Mean absolute difference of consecutive RTTs over the sliding window (RFC 3550), "
    "the largest 5 % of differences left out (one late reply is not jitter).",
    ["target"],
)
SUCCESS = Family(
    "netmon_probe_success",
    "gauge",
    "1 if the last run of the probe succeeded.",
    ["target", "probe"],
)
PROBE_DURATION = Family(
    "netmon_probe_duration_seconds",
    "gauge",
    "Duration of the last run of the probe.",
    ["target", "probe"],
)
AGE = Family(
    "netmon_probe_age_seconds",
    "gauge",
    "Seconds since the last run of the probe finished (netmon polls on its own timers).",
    ["target", "probe"],
)
HTTP_STATUS = Family(
    "netmon_http_status_code",
    "gauge",
    "HTTP status of the last answer to the http probe; absent when it got none.",
    ["target"],
)
CERT_NOT_AFTER = Family(
    "netmon_tls_cert_not_after_seconds",
    "gauge",
    "notAfter of the TLS certificate the http probe was last served, as a unix "
    "timestamp (read even when verification is off); absent over plain HTTP.",
    ["target"],
)
TARGET_FAMILIES = numbered(
    UP, INFO, RTT, SENT, RECEIVED, CONFIRM_SENT, CONFIRM_RECEIVED, BURSTS, LOSS, JITTER,
    SUCCESS, PROBE_DURATION, AGE, HTTP_STATUS, CERT_NOT_AFTER,
)  # fmt: skip


def emit_target(sink: Sink, target_id: str, state: TargetState, now_monotonic: float) -> None:
    target = state.target
    only_target = [target_id]
    up_labels = [target_id, target.kind, target.site, target.group]
    icmp = state.icmp
    if state.probes_only:
        sink.add(UP, up_labels, 1 if state.reach is Reach.UP else 0)
    if icmp is not None:
        if icmp.reach is not Reach.UNKNOWN:
            sink.add(UP, up_labels, 1 if icmp.reach is Reach.UP else 0)
        sink.add_histogram(RTT, only_target, icmp.rtt)
        sink.add(SENT, only_target, icmp.sent_total)
        sink.add(RECEIVED, only_target, icmp.received_total)
        sink.add(CONFIRM_SENT, only_target, icmp.confirm_sent_total)
        sink.add(CONFIRM_RECEIVED, only_target, icmp.confirm_received_total)
        sink.add(BURSTS, only_target, len(icmp.bursts))
        loss_ratio = icmp.window.loss_ratio()
        if loss_ratio is not None:
            sink.add(LOSS, only_target, loss_ratio)
        jitter_value = icmp.window.jitter()
        if jitter_value is not None:
            sink.add(JITTER, only_target, jitter_value)
    for probe, result in sorted(state.probes.items()):
        labels = [target_id, probe]
        sink.add(SUCCESS, labels, 1 if result.success else 0)
        sink.add(PROBE_DURATION, labels, result.duration)
        sink.add_age(AGE, labels, result.updated_monotonic, now_monotonic)
        if result.http_status is not None:
            sink.add(HTTP_STATUS, only_target, result.http_status)
        if result.tls_not_after is not None:
            sink.add(CERT_NOT_AFTER, only_target, result.tls_not_after)
    # Free labels differ per target, so each sample carries its own label names.
    info = {
        "target": target_id,
        "name": target.name,
        "address": target.address,
        "kind": target.kind,
        "site": target.site,
        "district": target.district,
        "group": target.group,
    }
    for key, value in target.labels:
        info[key] = value
    sink.add_sample(INFO, "netmon_target_info", info, 1)

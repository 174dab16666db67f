"""The SNMP device families (system group, interfaces, data-defined modules) and what arrived
rather than was polled (traps, readiness verdicts), one target at a time into a `Sink`."""

from __future__ import annotations

from netmon.checks.model import Verdict
from netmon.exporter_sink import Family, Sink, numbered
from netmon.state import TargetState

# netmon_endpoint_readiness_verdict: higher is worse, so dashboards colour and sort by value.
VERDICT_VALUE = {Verdict.GO: 0.0, Verdict.WARN: 1.0, Verdict.NO_GO: 2.0}
INTERFACE_LABELS = ["target", "ifindex", "ifname", "ifalias"]

SNMP_UP = Family(
    "netmon_snmp_up", "gauge", "1 if the last SNMP poll of the device answered.", ["target"]
)
POLL_DURATION = Family(
    "netmon_snmp_poll_duration_seconds", "gauge", "How long the last SNMP poll took.", ["target"]
)
UPTIME = Family("netmon_device_uptime_seconds", "gauge", "sysUpTime of the device.", ["target"])
DEVICE_INFO = Family(
    "netmon_device_info",
    "gauge",
    "System group facts of the device; always 1.",
    ["target", "sys_name", "sys_descr", "sys_object_id"],
)
REBOOTS = Family(
    "netmon_device_reboots",
    "counter",
    "Reboots seen by netmon (sysUpTime went backwards between polls).",
    ["target"],
)
COUNTERS = {
    name: Family(f"netmon_interface_{name}", "counter", doc, INTERFACE_LABELS)
    for name, doc in (
        ("in_octets", "Octets received (ifHCInOctets, or ifInOctets when 64-bit is missing)."),
        ("out_octets", "Octets sent (ifHCOutOctets, or ifOutOctets when 64-bit is missing)."),
        ("in_errors", "Inbound packets with errors (ifInErrors)."),
        ("out_errors", "Outbound packets with errors (ifOutErrors)."),
        ("in_discards", "Inbound packets discarded (ifInDiscards)."),
        ("out_discards", "Outbound packets discarded (ifOutDiscards)."),
    )
}
OPER = Family("netmon_interface_oper_up", "gauge", "1 if ifOperStatus is up.", INTERFACE_LABELS)
ADMIN = Family("netmon_interface_admin_up", "gauge", "1 if ifAdminStatus is up.", INTERFACE_LABELS)
# The first contract named netmon_interface_speed_bits_per_second, but promtool rejects bits as
# a unit; bytes it is (x 8 for bit/s in a dashboard).
SPEED = Family(
    "netmon_interface_speed_bytes_per_second",
    "gauge",
    "Interface speed in bytes per second (ifHighSpeed, or ifSpeed, / 8).",
    INTERFACE_LABELS,
)
UTILIZATION = Family(
    "netmon_interface_utilization_ratio",
    "gauge",
    "Share of the interface speed used between the last two polls, timed by the "
    "agent's sysUpTime; absent across a reboot or counter discontinuity.",
    [*INTERFACE_LABELS, "direction"],
)
DEVICE_FAMILIES = numbered(
    SNMP_UP, POLL_DURATION, UPTIME, DEVICE_INFO, REBOOTS, *COUNTERS.values(), OPER, ADMIN,
    SPEED, UTILIZATION,
)  # fmt: skip

TRAPS = Family(
    "netmon_snmp_traps_received",
    "counter",
    "SNMP notifications received from inventory targets, by standard trap name "
    "(coldStart, linkDown...); every other trap counts as other",
    ["target", "trap"],
)
READY = Family(
    "netmon_endpoint_ready",
    "gauge",
    "1 if the endpoint's last readiness check said GO, 0 if WARN or NO-GO",
    ["target"],
)
VERDICT = Family(
    "netmon_endpoint_readiness_verdict",
    "gauge",
    "The endpoint's last readiness verdict: 0 GO, 1 WARN, 2 NO-GO",
    ["target"],
)
EVENT_FAMILIES = numbered(TRAPS, READY, VERDICT)


def emit_device(sink: Sink, target_id: str, state: TargetState) -> None:
    for device in state.devices.values():
        sink.add(SNMP_UP, [target_id], 1 if device.up else 0)
        sink.add(POLL_DURATION, [target_id], device.duration)
        sink.add(REBOOTS, [target_id], device.reboots)
        if not device.up:
            continue
        if device.uptime_ticks is not None:
            sink.add(UPTIME, [target_id], device.uptime_ticks / 100)
        sink.add(
            DEVICE_INFO, [target_id, device.sys_name, device.sys_descr, device.sys_object_id], 1
        )
        for index, interface in sorted(device.interfaces.items()):
            sample = interface.sample
            labels = [target_id, str(index), sample.name, sample.alias]
            for name, family in COUNTERS.items():
                if "octets" in name and not interface.octets_comparable:
                    continue
                value = getattr(sample, name)
                if value is not None:
                    sink.add(family, labels, value)
            if sample.oper_up is not None:
                sink.add(OPER, labels, 1 if sample.oper_up else 0)
            if sample.admin_up is not None:
                sink.add(ADMIN, labels, 1 if sample.admin_up else 0)
            if sample.speed_bps is not None:
                sink.add(SPEED, labels, sample.speed_bps / 8)
            if interface.utilization is not None:
                sink.add(UTILIZATION, [*labels, "in"], interface.utilization[0])
                sink.add(UTILIZATION, [*labels, "out"], interface.utilization[1])


def module_family(name: str, kind: str, help_text: str) -> Family:
    """A data-defined SNMP module's family (not numbered: made up as devices bring them)."""
    # Info and state sets go out as gauges (1, or 1/0 per state): every scraper reads those.
    return Family(
        name, "counter" if kind == "counter" else "gauge", help_text or "From an SNMP module."
    )


def emit_modules(sink: Sink, target_id: str, state: TargetState) -> None:
    """Samples of data-defined SNMP modules, one family per name across all devices."""
    families: dict[str, Family] = {}
    for device in state.devices.values():
        if not device.up:
            continue
        for name, kind, help_text, labels, value in device.metrics:
            full = f"netmon_{name}"
            family = families.get(full)
            if family is None:
                family = families[full] = module_family(full, kind, help_text)
            sample_name = full + "_total" if kind == "counter" else full
            sink.add_sample(family, sample_name, {"target": target_id, **dict(labels)}, value)


def emit_events(sink: Sink, target_id: str, state: TargetState) -> None:
    for trap, count in sorted(state.traps_received.items()):
        sink.add(TRAPS, [target_id, trap], count)
    if state.readiness is not None:
        sink.add(READY, [target_id], float(state.readiness.verdict is Verdict.GO))
        sink.add(VERDICT, [target_id], VERDICT_VALUE[state.readiness.verdict])

"""NOC overview: what is down, what is alerting, and the worst links and endpoints right now."""

from __future__ import annotations

from grafana_foundation_sdk.builders import stat, table, timeseries
from grafana_foundation_sdk.models import common as cm
from grafana_foundation_sdk.models import dashboard as dm

from dashboards.common import (
    ANY_IS_BAD,
    COUNT,
    DARK_RED,
    ENDPOINTS_UID,
    GREEN,
    JITTER_STEPS,
    LINKS_UID,
    LOSS_STEPS,
    NOC_UID,
    ORANGE,
    PACKETS_PER_SECOND,
    RATIO,
    RED,
    RTT_STEPS,
    SECONDS,
    UTILISATION_STEPS,
    YELLOW,
    cell,
    coloured,
    district_variable,
    link,
    links,
    new_dashboard,
    panel,
    query,
    steps,
    tabulate,
    with_rows,
)

IN_DISTRICT = 'on (target) group_left (district) netmon_target_info{district=~"$district"}'
WITH_NAME = 'on (target) group_left (district, name) netmon_target_info{district=~"$district"}'
# Reachable or not: the ICMP verdict, or the SNMP agent for devices that are only polled.
REACH = "(max by (target) (netmon_target_up) or max by (target) (netmon_snmp_up))"
# The labels both queries of a joined table keep, so Grafana's merge matches their rows.
INTERFACE = "district, target, ifindex, ifname, ifalias"
BY_KIND = 'on (target) group_left (district, kind) netmon_target_info{district=~"$district"}'
SEVERITY_COLOURS = {"info": GREEN, "warning": YELLOW, "major": ORANGE, "critical": DARK_RED}


def _targets() -> list[stat.Panel | table.Panel]:
    up = panel(
        stat.Panel(),
        "Up, by kind",
        "Targets that answer: endpoints by ICMP, devices polled only by SNMP by their agent.",
        query(f"sum by (kind) ({REACH} * {BY_KIND})", "{{kind}}"),
        width=6,
        height=12,
    ).unit(COUNT)
    up.thresholds(steps(base=GREEN)).color_mode(cm.BigValueColorMode.VALUE)
    down = panel(
        stat.Panel(),
        "Down, by kind",
        "Targets that do not answer. Red from the first one.",
        query(f"sum by (kind) (1 - ({REACH} * {BY_KIND}))", "{{kind}}"),
        width=6,
        height=12,
    ).unit(COUNT)
    down.thresholds(ANY_IS_BAD).color_mode(cm.BigValueColorMode.BACKGROUND)
    down.data_links([link("Conference endpoints", ENDPOINTS_UID)])
    by_district = panel(
        table.Panel(),
        "Up and down, by district and kind",
        "One row per district and kind of target. Click a district for its endpoints.",
        query(f"sum by (district, kind) ({REACH} * {BY_KIND})", instant=True),
        query(f"sum by (district, kind) (1 - ({REACH} * {BY_KIND}))", instant=True),
        width=12,
        height=12,
    ).unit(COUNT)
    tabulate(by_district, {"Value #A": "Up", "Value #B": "Down"}, ["district", "kind"])
    cell(by_district, "Down", *coloured(ANY_IS_BAD))
    cell(
        by_district,
        "district",
        links(link("Endpoints of ${__value.text}", ENDPOINTS_UID, district="${__value.raw}")),
    )
    return [up, down, by_district]


def _alerts() -> list[stat.Panel | timeseries.Panel]:
    active = panel(
        stat.Panel(),
        "Active alerts, by severity",
        "Alerts netmon has firing now (silenced ones included), by severity.",
        query("sum by (severity) (netmon_alerts_active)", "{{severity}}"),
        width=12,
        height=6,
    ).unit(COUNT)
    active.thresholds(ANY_IS_BAD).color_mode(cm.BigValueColorMode.BACKGROUND)
    for severity, colour in SEVERITY_COLOURS.items():
        active.override_by_name(
            severity,
            [dm.DynamicConfigValue(id_val="thresholds", value=steps((1, colour)).build())],
        )
    history = panel(
        timeseries.Panel(),
        "Alerts firing",
        "How many alerts fired, by severity, over the time range.",
        query("sum by (severity) (netmon_alerts_active)", "{{severity}}"),
        width=12,
        height=6,
    ).unit(COUNT)
    return [active, history]


def _worst_links() -> list[table.Panel]:
    to_links = link(
        "Broadband links: ${__data.fields.target} ${__data.fields.ifname}",
        LINKS_UID,
        device="${__data.fields.target}",
        interface="${__data.fields.ifname:percentencode}",
    )
    busiest = panel(
        table.Panel(),
        "Busiest links (5 m average)",
        "The ten interface directions carrying the largest share of their speed. "
        "Orange from 80 % (capacity), red from the level netmon alerts at.",
        query(f"topk(10, netmon:interface_utilization:ratio_rate5m * {IN_DISTRICT})", instant=True),
        width=12,
        height=9,
    ).data_links([to_links])
    busiest.unit(RATIO)
    tabulate(
        busiest,
        {"Value": "Utilisation"},
        ["district", "target", "ifname", "ifalias", "direction"],
    )
    cell(busiest, "Utilisation", *coloured(UTILISATION_STEPS))
    top_errors = f"topk(10, netmon:interface_errors:rate5m * {IN_DISTRICT})"
    errors = panel(
        table.Panel(),
        "Links with the most errors (5 m average)",
        "The ten interfaces with the most errored packets a second (in + out), and their discards.",
        query(f"max by ({INTERFACE}) ({top_errors})", instant=True),
        query(
            f"max by ({INTERFACE}) (netmon:interface_discards:rate5m * {IN_DISTRICT}"
            f" and on (target, ifindex) {top_errors})",
            instant=True,
        ),
        width=12,
        height=9,
    ).data_links([to_links])
    errors.unit(PACKETS_PER_SECOND)
    tabulate(
        errors,
        {"Value #A": "Errors", "Value #B": "Discards"},
        ["district", "target", "ifname", "ifalias"],
    )
    cell(errors, "Errors", *coloured(steps((0.1, ORANGE), (1, RED))))
    return [busiest, errors]


def _worst_endpoints() -> list[table.Panel]:
    to_endpoint = link(
        "Endpoint ${__data.fields.target}", ENDPOINTS_UID, target="${__data.fields.target}"
    )
    tables = []
    for title, description, expr, column, unit_name, thresholds in (
        (
            "Highest loss (5 m)",
            "Endpoints losing the largest share of echoes over 5 minutes.",
            "netmon:icmp_loss:ratio_rate5m",
            "Loss",
            RATIO,
            LOSS_STEPS,
        ),
        (
            "Highest RTT p95 (5 m)",
            "Endpoints with the slowest round trip (95th percentile over 5 minutes).",
            "netmon:icmp_rtt_seconds:p95_5m",
            "RTT p95",
            SECONDS,
            RTT_STEPS,
        ),
        (
            "Highest jitter",
            "Endpoints with the most jitter over netmon's sliding window (RFC 3550).",
            "netmon_icmp_jitter_seconds",
            "Jitter",
            SECONDS,
            JITTER_STEPS,
        ),
    ):
        worst = panel(
            table.Panel(),
            title,
            description + " Click a row for the endpoint.",
            query(f"topk(10, {expr} * {WITH_NAME})", instant=True),
            width=8,
            height=9,
        ).data_links([to_endpoint])
        worst.unit(unit_name)
        tabulate(worst, {"Value": column}, ["district", "name", "target"])
        cell(worst, column, *coloured(thresholds))
        tables.append(worst)
    return tables


def build() -> dm.Dashboard:
    board = new_dashboard(
        NOC_UID,
        "netmon / NOC overview",
        "What is down, what is alerting, and the worst links and endpoints right now.",
    ).with_variable(district_variable())
    return with_rows(
        board,
        (
            ("Targets", _targets()),
            ("Alerts", _alerts()),
            ("Worst links", _worst_links()),
            ("Worst endpoints", _worst_endpoints()),
        ),
    )

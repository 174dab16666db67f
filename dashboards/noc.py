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
    INTERFACE_ERRORS,
    JITTER_STEPS,
    LINKS_UID,
    LOSS_STEPS,
    NOC_UID,
    ORANGE,
    PACKETS_PER_SECOND,
    RATIO,
    ROOMS,
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
    target_info,
    with_rows,
)

DISTRICTS = 'district=~"$district"'
IN_DISTRICT = f"on (target) group_left (district) {target_info('district', DISTRICTS)}"
BY_KIND = f"on (target) group_left (district, kind) {target_info('district, kind', DISTRICTS)}"
# Rooms only: a row links to the endpoint dashboard, whose Endpoint menu lists nothing else.
ROOM_NAME = (
    "on (target) group_left (district, name) "
    f"{target_info('district, name', f'{ROOMS}, {DISTRICTS}')}"
)
# Reachable or not: the ICMP verdict, or the SNMP agent for devices that are only polled. Once
# per target, reachable when any netmon watching it reaches it.
REACH = "(max by (target) (netmon_target_up) or max by (target) (netmon_snmp_up))"
# An interface once, however many netmons poll its device.
INTERFACE = "target, ifindex, ifname, ifalias"
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
    unregistered = panel(
        stat.Panel(),
        "Rooms not registered",
        "Conference rooms that cannot be called over a protocol they have set up: their own "
        "word (codec API) or their registrar's.",
        query(
            f"count(min by (target) (netmon_endpoint_registered) == 0 and on (target) "
            f"{target_info('district', f'{ROOMS}, {DISTRICTS}')}) or vector(0)"
        ),
        width=6,
        height=4,
    ).unit(COUNT)
    unregistered.thresholds(ANY_IS_BAD).color_mode(cm.BigValueColorMode.BACKGROUND)
    unregistered.data_links([link("Conference endpoints", ENDPOINTS_UID)])
    return [up, down, by_district, unregistered]


def _alerts() -> list[stat.Panel | timeseries.Panel]:
    active = panel(
        stat.Panel(),
        "Active alerts, by severity",
        "Alerts netmon has firing now (silenced ones included), by severity.",
        query("sum by (severity) (netmon_alerts_active)", "{{severity}}"),
        width=8,
        height=6,
    ).unit(COUNT)
    active.thresholds(ANY_IS_BAD).color_mode(cm.BigValueColorMode.BACKGROUND)
    untaken = panel(
        stat.Panel(),
        "Not acknowledged",
        "Firing alerts nobody has acknowledged yet (netmon alerts ack, the status page, the "
        "Telegram button): the ones the on-call loop is still escalating.",
        query(
            "sum(netmon_alerts_active) - (sum(netmon_alerts_acknowledged) or vector(0))",
            "not acknowledged",
        ),
        width=4,
        height=6,
    ).unit(COUNT)
    untaken.thresholds(ANY_IS_BAD).color_mode(cm.BigValueColorMode.BACKGROUND)
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
    return [active, untaken, history]


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
        query(
            f"topk(10, max by ({INTERFACE}, direction) (netmon:interface_utilization:ratio_rate5m)"
            f" * {IN_DISTRICT})",
            instant=True,
        ),
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

    def per_interface(metric: str) -> str:
        return f"max by ({INTERFACE}) ({metric})"

    # What netmon's InterfaceErrors alert adds up; the table ranks and colours that sum.
    errors_and_discards = (
        f"{per_interface('netmon:interface_errors:rate5m')}"
        f" + {per_interface('netmon:interface_discards:rate5m')}"
    )
    worst = f"topk(10, ({errors_and_discards}) * {IN_DISTRICT})"
    errors = panel(
        table.Panel(),
        "Links with the most errors and discards (5 m average)",
        "The ten interfaces with the most errored plus discarded packets a second (in + out), "
        "the sum netmon's InterfaceErrors alert watches: orange from the level it fires at.",
        query(worst, instant=True),
        *(
            query(
                f"{per_interface(metric)} * {IN_DISTRICT} and on (target, ifindex) {worst}",
                instant=True,
            )
            for metric in ("netmon:interface_errors:rate5m", "netmon:interface_discards:rate5m")
        ),
        width=12,
        height=9,
    ).data_links([to_links])
    errors.unit(PACKETS_PER_SECOND)
    tabulate(
        errors,
        {"Value #A": "Errors + discards", "Value #B": "Errors", "Value #C": "Discards"},
        ["district", "target", "ifname", "ifalias"],
    )
    cell(errors, "Errors + discards", *coloured(steps((INTERFACE_ERRORS, ORANGE))))
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
            query(f"topk(10, max by (target) ({expr}) * {ROOM_NAME})", instant=True),
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

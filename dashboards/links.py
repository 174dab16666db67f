"""Broadband links: traffic, utilisation, errors and oper status per device and interface."""

from __future__ import annotations

from grafana_foundation_sdk.builders import stat, statetimeline, table, timeseries
from grafana_foundation_sdk.models import common as cm
from grafana_foundation_sdk.models import dashboard as dm

from dashboards.common import (
    ANY_IS_BAD,
    BITS_PER_SECOND,
    COUNT,
    GREEN,
    LINKS_UID,
    PACKETS_PER_SECOND,
    RATIO,
    SECONDS,
    UP_DOWN,
    UTILISATION_STEPS,
    cell,
    coloured,
    district_variable,
    draw_thresholds,
    label_variable,
    legend_table,
    mapped,
    new_dashboard,
    panel,
    query,
    states,
    steps,
    tabulate,
    unit,
    with_rows,
)

DEVICE = 'target=~"$device"'
IFACE = f'{{{DEVICE}, ifname=~"$interface"}}'
INTERFACE = "target, ifindex, ifname, ifalias"  # the labels every query of the table keeps


def _devices() -> list[stat.Panel]:
    snmp = panel(
        stat.Panel(),
        "SNMP agent",
        "Whether each device answered its last SNMP poll.",
        query(f"netmon_snmp_up{{{DEVICE}}}", "{{target}}"),
        width=6,
        height=5,
    )
    snmp.unit(COUNT).mappings(states((1, "answers", GREEN), (0, "silent", "red")))
    snmp.color_mode(cm.BigValueColorMode.BACKGROUND).graph_mode(cm.BigValueGraphMode.NONE)
    uptime = panel(
        stat.Panel(),
        "Uptime",
        "sysUpTime of each device: a small number is a recent reboot.",
        query(f"netmon_device_uptime_seconds{{{DEVICE}}}", "{{target}}"),
        width=6,
        height=5,
    )
    uptime.unit(SECONDS).thresholds(steps((900, GREEN), base="orange"))
    interfaces_up = panel(
        stat.Panel(),
        "Interfaces up",
        "Interfaces whose ifOperStatus is up, per device.",
        query(f"sum by (target) (netmon_interface_oper_up{{{DEVICE}}})", "{{target}}"),
        width=6,
        height=5,
    )
    interfaces_up.unit(COUNT).thresholds(steps(base=GREEN))
    interfaces_down = panel(
        stat.Panel(),
        "Interfaces down",
        "Interfaces that are administratively up but not operationally: a cut link.",
        query(
            f"sum by (target) ((1 - netmon_interface_oper_up{{{DEVICE}}})"
            f" * netmon_interface_admin_up{{{DEVICE}}})",
            "{{target}}",
        ),
        width=6,
        height=5,
    )
    interfaces_down.unit(COUNT).thresholds(ANY_IS_BAD)
    interfaces_down.color_mode(cm.BigValueColorMode.BACKGROUND)
    return [snmp, uptime, interfaces_up, interfaces_down]


def _traffic() -> list[timeseries.Panel | statetimeline.Panel | table.Panel]:
    traffic = panel(
        timeseries.Panel(),
        "Traffic in (+) and out (−)",
        "Bits per second through each interface, averaged over 5 minutes; sent traffic is "
        "drawn below the axis.",
        query(f"netmon:interface_in_bits:rate5m{IFACE}", "{{target}} {{ifname}} in"),
        query(f"netmon:interface_out_bits:rate5m{IFACE}", "{{target}} {{ifname}} out"),
        width=24,
        height=10,
    )
    traffic.unit(BITS_PER_SECOND).override_by_query(
        "B", [dm.DynamicConfigValue(id_val="custom.transform", value="negative-Y")]
    )
    legend_table(traffic, "mean", "max")
    utilisation = panel(
        timeseries.Panel(),
        "Utilisation",
        "Share of each interface's speed in use, per direction, over 5 minutes. The dashed "
        "lines: 80 % (capacity planning) and the level netmon alerts at.",
        query(
            f"netmon:interface_utilization:ratio_rate5m{IFACE}",
            "{{target}} {{ifname}} {{direction}}",
        ),
    )
    draw_thresholds(utilisation.unit(RATIO).min(0), UTILISATION_STEPS)
    errors = panel(
        timeseries.Panel(),
        "Errors and discards",
        "Packets a second with errors and discarded, in and out together, over 5 minutes.",
        query(f"netmon:interface_errors:rate5m{IFACE}", "{{target}} {{ifname}} errors"),
        query(f"netmon:interface_discards:rate5m{IFACE}", "{{target}} {{ifname}} discards"),
    )
    errors.unit(PACKETS_PER_SECOND).min(0)
    oper = panel(
        statetimeline.Panel(),
        "Oper status",
        "When each interface was up or down (ifOperStatus).",
        query(f"netmon_interface_oper_up{IFACE}", "{{target}} {{ifname}}"),
        width=24,
        height=10,
    )
    oper.unit(COUNT).mappings(UP_DOWN).show_value(cm.VisibilityMode.NEVER)
    listing = panel(
        table.Panel(),
        "Interfaces",
        "Speed, status and traffic of each interface now.",
        *(
            query(f"max by ({INTERFACE}) ({expr})", instant=True)
            for expr in (
                f"netmon_interface_speed_bytes_per_second{IFACE} * 8",
                f"netmon_interface_oper_up{IFACE}",
                f"netmon_interface_admin_up{IFACE}",
                f"netmon:interface_in_bits:rate5m{IFACE}",
                f"netmon:interface_out_bits:rate5m{IFACE}",
            )
        ),
        width=24,
        height=12,
    ).unit(COUNT)
    tabulate(
        listing,
        {
            "Value #A": "Speed",
            "Value #B": "Oper",
            "Value #C": "Admin",
            "Value #D": "In (5 m)",
            "Value #E": "Out (5 m)",
        },
        ["target", "ifindex", "ifname", "ifalias"],
    )
    listing.filterable(True)
    for column in ("Speed", "In (5 m)", "Out (5 m)"):
        cell(listing, column, unit(BITS_PER_SECOND))
    for column in ("Oper", "Admin"):
        cell(listing, column, mapped(UP_DOWN), *coloured())
    return [traffic, utilisation, errors, oper, listing]


def build() -> dm.Dashboard:
    board = (
        new_dashboard(
            LINKS_UID,
            "netmon / Broadband links",
            "Traffic, utilisation, errors and status of the interfaces of the network's "
            "devices (core, district switches, CPE routers), per district, device and "
            "interface.",
        )
        .with_variable(district_variable())
        .with_variable(
            label_variable(
                "device",
                "Device",
                # What netmon polls by SNMP, whatever its kind (a server's interfaces too).
                # label_values cannot tell: the district is on netmon_target_info only.
                "query_result(max by (target) (netmon_snmp_up and on (target) "
                'netmon_target_info{district=~"$district"}))',
                description="Devices netmon polls by SNMP in the chosen districts (several "
                "may be picked)",
                include_all=False,
                regex='/target="([^"]+)"/',
            )
        )
        .with_variable(
            label_variable(
                "interface",
                "Interface",
                f"label_values(netmon_interface_oper_up{{{DEVICE}}}, ifname)",
                description="Interfaces of the chosen devices, by ifName",
            )
        )
    )
    return with_rows(board, (("Devices", _devices()), ("Interfaces", _traffic())))

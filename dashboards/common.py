"""What every netmon dashboard shares: the datasource variable, uids and links, the quality
levels (taken from netmon's own defaults, so a line drawn on a graph is the level that alerts),
panel and table scaffolding, and the one JSON encoding that makes builds byte-for-byte stable.
"""

from __future__ import annotations

import json
import urllib.parse
from collections.abc import Iterable, Mapping
from typing import TypeVar

from grafana_foundation_sdk.builders import bargauge, stat, statetimeline, table, timeseries
from grafana_foundation_sdk.builders import common as common_builders
from grafana_foundation_sdk.builders import dashboard as dash
from grafana_foundation_sdk.builders import prometheus as prom
from grafana_foundation_sdk.cog import builder as cogbuilder
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import common as cm
from grafana_foundation_sdk.models import dashboard as dm
from grafana_foundation_sdk.models import prometheus as pm

from netmon.config.rules import default_rules
from netmon.config.thresholds import Thresholds

TAG = "netmon"
# Every query goes to whichever Prometheus the viewer picks: no datasource uid is baked in.
DATASOURCE = dm.DataSourceRef(type_val="prometheus", uid="${datasource}")

NOC_UID = "netmon-noc"
ENDPOINTS_UID = "netmon-endpoints"
LINKS_UID = "netmon-links"
SELF_UID = "netmon-self"
MEETING_UID = "netmon-meeting"

# The levels netmon alerts at with no configuration (netmon/config/thresholds.py, rules.py).
LEVELS = Thresholds()
LINK_SATURATED = float(default_rules(LEVELS)["LinkSaturated"]["levels"][0]["above"])
# Errors plus discards a second, in and out together (netmon/state.py, errors_per_second).
INTERFACE_ERRORS = float(default_rules(LEVELS)["InterfaceErrors"]["levels"][0]["above"])
LINK_CAPACITY = 0.8  # deploy/prometheus/rules/netmon-alerts.yml: LinkCapacity, > 80 % for 1 h

GREEN, YELLOW, ORANGE, RED, DARK_RED = "green", "yellow", "orange", "red", "dark-red"

# Grafana's units (https://grafana.com/docs/grafana/latest/panels-visualizations/).
BITS_PER_SECOND, SECONDS, RATIO, COUNT = "bps", "s", "percentunit", "short"
PACKETS_PER_SECOND, PER_SECOND, BYTES = "pps", "ops", "bytes"

ROOMS = 'kind=~"endpoint|mcu"'  # what meetings are held in (netmon's Target.is_room)

# Hidden in every table: join keys and scrape labels a person does not need to read.
TABLE_NOISE = ("Time", "__name__", "instance", "job")

Panel = TypeVar(
    "Panel", timeseries.Panel, stat.Panel, table.Panel, statetimeline.Panel, bargauge.Panel
)


def target_info(labels: str, selector: str) -> str:
    """netmon_target_info{selector} once per target, keeping `labels`: every netmon watching a
    target exports it (an HA pair, or shards that all ping the core router), and a
    `group_left` join onto two copies fails with "many-to-many matching not allowed"."""
    return f"max by (target, {labels}) (netmon_target_info{{{selector}}})"


def query(expr: str, legend: str = "", *, instant: bool = False) -> prom.Dataquery:
    """A Prometheus query; instant ones come back as a table (one row per series)."""
    target = prom.Dataquery().expr(expr).datasource(DATASOURCE)
    if legend:
        target.legend_format(legend)
    if instant:
        target.instant().format(pm.PromQueryFormat.TABLE)
    return target


def panel(
    builder: Panel,
    title: str,
    description: str,
    *queries: prom.Dataquery,
    width: int = 12,
    height: int = 8,
) -> Panel:
    """Title, help text, size, the `${datasource}` reference, and queries A, B, C..."""
    builder.title(title).description(description).datasource(DATASOURCE)
    builder.span(width).height(height)
    for number, target in enumerate(queries):
        builder.with_target(target.ref_id(chr(ord("A") + number)))
    return builder


def steps(*levels: tuple[float, str], base: str = GREEN) -> dash.ThresholdsConfig:
    """Absolute thresholds: `base` below the first level, then each (level, colour)."""
    first = dm.Threshold(value=None, color=base)  # null is how Grafana writes -Infinity
    return (
        dash.ThresholdsConfig()
        .mode(dm.ThresholdsMode.ABSOLUTE)
        .steps([first, *(dm.Threshold(value=value, color=colour) for value, colour in levels)])
    )


RTT_STEPS = steps((LEVELS.rtt_warn, ORANGE), (LEVELS.rtt_bad, RED))
JITTER_STEPS = steps((LEVELS.jitter_warn, ORANGE), (LEVELS.jitter_bad, RED))
# HighPacketLoss's levels (1 %, 3 %, 10 %), not the readiness check's (`thresholds.loss_*`).
LOSS_STEPS = steps(
    *(
        (float(level["above"]), colour)
        for level, colour in zip(
            default_rules(LEVELS)["HighPacketLoss"]["levels"], (YELLOW, ORANGE, RED), strict=True
        )
    )
)
UTILISATION_STEPS = steps((LINK_CAPACITY, ORANGE), (LINK_SATURATED, RED))
ANY_IS_BAD = steps((1, RED))  # counts of things down, errors, failures


def states(*names: tuple[float, str, str]) -> list[dm.ValueMapping]:
    """Value mappings for a gauge of a few states: each (value, text, colour)."""
    return [
        dm.ValueMap(
            options={
                str(int(value)): dm.ValueMappingResult(text=text, color=colour, index=index)
                for index, (value, text, colour) in enumerate(names)
            }
        )
    ]


UP_DOWN = states((1, "up", GREEN), (0, "down", RED))
# netmon_endpoint_readiness_verdict
VERDICTS = states((0, "GO", GREEN), (1, "WARN", ORANGE), (2, "NO-GO", RED))
REGISTERED = states((1, "registered", GREEN), (0, "not registered", RED))
CONNECTED = states((1, "connected", GREEN), (0, "disconnected", RED))


def draw_thresholds(builder: timeseries.Panel, thresholds: dash.ThresholdsConfig) -> None:
    """Draws the levels as dashed lines over a graph, so a reader sees where alerts start."""
    builder.thresholds(thresholds).thresholds_style(
        common_builders.GraphThresholdsStyleConfig().mode(cm.GraphThresholdsStyleMode.DASHED)
    )


def legend_table(builder: timeseries.Panel, *calcs: str) -> None:
    builder.legend(
        common_builders.VizLegendOptions()
        .show_legend(True)
        .display_mode(cm.LegendDisplayMode.TABLE)
        .placement(cm.LegendPlacement.RIGHT)
        .calcs(list(calcs))
        .sort_by(calcs[-1].capitalize())
        .sort_desc(True)
    )


def tabulate(builder: table.Panel, columns: Mapping[str, str], order: Iterable[str]) -> None:
    """Instant queries joined into one table: rows matched on their labels (Grafana's merge),
    value columns of query A, B... renamed per `columns`, label columns kept in `order`."""
    renamed = dict(columns)
    keep = [*order, *renamed]  # Grafana orders by the names before renaming
    builder.with_transformation(dm.DataTransformerConfig(id_val="merge", options={}))
    builder.with_transformation(
        dm.DataTransformerConfig(
            id_val="organize",
            options={
                "excludeByName": dict.fromkeys(TABLE_NOISE, True),
                "indexByName": {name: index for index, name in enumerate(keep)},
                "renameByName": renamed,
            },
        )
    )


def cell(builder: table.Panel, column: str, *properties: dm.DynamicConfigValue) -> None:
    builder.override_by_name(column, list(properties))


def coloured(thresholds: dash.ThresholdsConfig | None = None) -> list[dm.DynamicConfigValue]:
    """Properties of a column whose cells take the colour of their value."""
    properties = [
        dm.DynamicConfigValue(
            id_val="custom.cellOptions",
            value=cm.TableColoredBackgroundCellOptions(
                mode=cm.TableCellBackgroundDisplayMode.BASIC
            ),
        )
    ]
    if thresholds is not None:
        properties.append(dm.DynamicConfigValue(id_val="thresholds", value=thresholds.build()))
    return properties


def unit(name: str) -> dm.DynamicConfigValue:
    return dm.DynamicConfigValue(id_val="unit", value=name)


def mapped(mappings: list[dm.ValueMapping]) -> dm.DynamicConfigValue:
    return dm.DynamicConfigValue(id_val="mappings", value=mappings)


def dashboard_url(uid: str, **variables: str) -> str:
    """A link to another netmon dashboard that keeps the viewer's datasource and time range.

    Values may hold Grafana's `${__data.fields.x}` macros: they are left for Grafana to fill.
    """
    params = [f"var-{name}={value}" for name, value in variables.items()]
    query_string = "&".join([*params, "${datasource:queryparam}", "${__url_time_range}"])
    return f"/d/{urllib.parse.quote(uid)}?{query_string}"


def link(title: str, uid: str, **variables: str) -> dash.DashboardLink:
    """A data link (on a value, a row or a tile) to `uid`, with variables set from the data."""
    return (
        dash.DashboardLink(title)
        .type(dm.DashboardLinkType.LINK)
        .url(dashboard_url(uid, **variables))
    )


def links(*items: dash.DashboardLink) -> dm.DynamicConfigValue:
    """Data links on one column of a table (an override property)."""
    return dm.DynamicConfigValue(id_val="links", value=[item.build() for item in items])


def new_dashboard(uid: str, title: str, description: str) -> dash.Dashboard:
    """A dashboard with the datasource picker and a menu of the other netmon dashboards."""
    return (
        dash.Dashboard(title)
        .uid(uid)
        .description(description)
        .tags([TAG])
        .editable()
        .time("now-6h", "now")
        .refresh("30s")
        .timezone("browser")
        .tooltip(dm.DashboardCursorSync.CROSSHAIR)
        .with_variable(
            dash.DatasourceVariable("datasource")
            .label("Prometheus")
            .type("prometheus")
            .description("The Prometheus that scrapes netmon")
        )
        .link(
            dash.DashboardLink("netmon")
            .type(dm.DashboardLinkType.DASHBOARDS)
            .tags([TAG])
            .as_dropdown(True)
            .include_vars(True)
            .keep_time(True)
        )
    )


def with_rows(
    board: dash.Dashboard, rows: Iterable[tuple[str, Iterable[cogbuilder.Builder[dm.Panel]]]]
) -> dm.Dashboard:
    """The dashboard with each (title, panels) as a row of panels, laid out left to right."""
    for title, row_panels in rows:
        board.with_row(dash.Row(title))
        for item in row_panels:
            board.with_panel(item)
    return board.build()


def label_variable(
    name: str,
    label: str,
    values_of: str,
    *,
    description: str,
    multi: bool = True,
    include_all: bool = True,
    all_value: str | None = ".*",
    regex: str | None = None,
) -> dash.QueryVariable:
    """A variable whose choices are the values of a label (Grafana's `label_values`), or with
    `regex`, what it captures in each series an expression returns (`query_result`).

    With `all_value` `.*`, "All" also matches an empty label (the core router has no
    district); None makes "All" the list of choices, so it follows the variables before it.
    """
    variable = (
        dash.QueryVariable(name)
        .label(label)
        .description(description)
        .datasource(DATASOURCE)
        .query(values_of)
        .refresh(dm.VariableRefresh.ON_TIME_RANGE_CHANGED)
        .sort(dm.VariableSort.ALPHABETICAL_ASC)
        .multi(multi)
        .include_all(include_all)
    )
    if regex is not None:
        variable.regex(regex)
    if include_all and all_value is not None:
        variable.all_value(all_value)
    if include_all:
        variable.current(dm.VariableOption(selected=True, text="All", value="$__all"))
    return variable


def district_variable() -> dash.QueryVariable:
    return label_variable(
        "district",
        "District",
        "label_values(netmon_target_info, district)",
        description="Districts of the inventory (netmon_target_info)",
    )


def to_json(model: dm.Dashboard) -> str:
    """The dashboard as committed: keys sorted, two-space indent, UTF-8 text, newline at end."""
    _number_panels(model)
    return json.dumps(model, cls=JSONEncoder, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def _number_panels(model: dm.Dashboard) -> None:
    """Panel ids 1, 2, 3... in reading order (Grafana needs them unique for links to a panel)."""
    number = 0
    for item in model.panels or []:
        number += 1
        item.id_val = number
        for inner in getattr(item, "panels", None) or []:
            number += 1
            inner.id_val = number

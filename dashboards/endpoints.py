"""Conference endpoints: all of them at a glance by district, quality per district over time,
and one endpoint (the `target` variable) in detail, with netmon's alert levels drawn."""

from __future__ import annotations

from grafana_foundation_sdk.builders import common as common_builders
from grafana_foundation_sdk.builders import stat, statetimeline, table, timeseries
from grafana_foundation_sdk.models import common as cm
from grafana_foundation_sdk.models import dashboard as dm

from dashboards.common import (
    ANY_IS_BAD,
    CONNECTED,
    COUNT,
    ENDPOINTS_UID,
    GREEN,
    JITTER_STEPS,
    LOSS_STEPS,
    ORANGE,
    RATIO,
    REGISTERED,
    ROOMS,
    RTT_STEPS,
    SECONDS,
    UP_DOWN,
    VERDICTS,
    cell,
    coloured,
    district_variable,
    draw_thresholds,
    label_variable,
    link,
    links,
    mapped,
    new_dashboard,
    panel,
    query,
    states,
    steps,
    tabulate,
    target_info,
    unit,
    with_rows,
)

CHOSEN = f'{ROOMS}, district=~"$district"'
# `and` keeps the left side as it is, however many copies of the right side match.
IN_DISTRICT = f"on (target) netmon_target_info{{{CHOSEN}}}"
PER_DISTRICT = f"on (target) group_left (district) {target_info('district', CHOSEN)}"
# Every netmon watching an endpoint (an HA pair, shards) exports its series: each endpoint is
# counted and drawn once, up when any of them reaches it, at the worst verdict they gave.
UP = "max by (target) (netmon_target_up)"
VERDICT = "max by (target) (netmon_endpoint_readiness_verdict)"
ONE = 'target="$target"'
TO_ENDPOINT = "${__data.fields.target}"


def _summary() -> list[stat.Panel]:
    never_checked = "Endpoints never checked are in none of the readiness counts."
    tiles = []
    for title, description, expr, thresholds, width in (
        ("Up", "Endpoints that answer ICMP.", f"sum({UP} and {IN_DISTRICT})", None, 6),
        (
            "Down",
            "Endpoints that do not answer ICMP.",
            f"sum(1 - {UP} and {IN_DISTRICT})",
            ANY_IS_BAD,
            6,
        ),
        *(
            (
                verdict,
                f"Endpoints whose last readiness check said {verdict}. {never_checked}",
                f"count({VERDICT} == {value} and {IN_DISTRICT}) or vector(0)",
                alarm,
                4,
            )
            for verdict, value, alarm in (
                ("GO", 0, None),
                ("WARN", 1, steps((1, ORANGE))),
                ("NO-GO", 2, ANY_IS_BAD),
            )
        ),
    ):
        tile = panel(stat.Panel(), title, description, query(expr), width=width, height=4)
        tile.unit(COUNT).thresholds(thresholds or steps(base=GREEN))
        tile.color_mode(
            cm.BigValueColorMode.BACKGROUND if thresholds else cm.BigValueColorMode.VALUE
        )
        tiles.append(tile)
    return tiles


def _grid() -> stat.Panel:
    grid = panel(
        stat.Panel(),
        "State of every endpoint",
        "One tile per endpoint, green up, red down. Click a tile for the endpoint.",
        query(f"{UP} and {IN_DISTRICT}", "{{target}}"),
        width=24,
        height=10,
    )
    grid.unit(COUNT).mappings(UP_DOWN).thresholds(steps(base=GREEN))
    grid.color_mode(cm.BigValueColorMode.BACKGROUND).text_mode(cm.BigValueTextMode.NAME)
    grid.graph_mode(cm.BigValueGraphMode.NONE)
    grid.reduce_options(common_builders.ReduceDataOptions().calcs(["lastNotNull"]).values(False))
    grid.data_links(
        [
            link(
                "Endpoint ${__field.labels.target}",
                ENDPOINTS_UID,
                target="${__field.labels.target}",
            )
        ]
    )
    return grid


def _table() -> table.Panel:
    def latest(expr: str) -> str:
        return f"max by (target) ({expr} and {IN_DISTRICT})"

    endpoints = panel(
        table.Panel(),
        "Endpoints by district",
        "Live state, last readiness verdict and quality of every endpoint, sorted by "
        "district. Colours are netmon's alert levels. Click an endpoint for its details.",
        query(
            f"{UP} * on (target) group_left (district, name) "
            f"{target_info('district, name', CHOSEN)}",
            instant=True,
        ),
        query(latest("netmon_endpoint_readiness_verdict"), instant=True),
        query(latest("netmon:icmp_rtt_seconds:p95_5m"), instant=True),
        query(latest("netmon:icmp_loss:ratio_rate5m"), instant=True),
        query(latest("netmon_icmp_jitter_seconds"), instant=True),
        # The room's own status: the worst of its protocols and peripherals, its severe
        # diagnostics. Rooms without a codec API or registrar have empty cells.
        query(f"min by (target) (netmon_endpoint_registered and {IN_DISTRICT})", instant=True),
        query(
            f"min by (target) (netmon_endpoint_peripheral_connected and {IN_DISTRICT})",
            instant=True,
        ),
        query(
            f'sum by (target) (netmon_endpoint_diagnostics{{level=~"error|critical"}} '
            f"and {IN_DISTRICT})",
            instant=True,
        ),
        width=24,
        height=14,
    ).unit(COUNT)
    tabulate(
        endpoints,
        {
            "Value #A": "State",
            "Value #B": "Readiness",
            "Value #C": "RTT p95 (5 m)",
            "Value #D": "Loss (5 m)",
            "Value #E": "Jitter",
            "Value #F": "Registered",
            "Value #G": "Peripherals",
            "Value #H": "Diagnostic errors",
        },
        ["district", "name", "target"],
    )
    endpoints.sort_by([common_builders.TableSortByFieldState().display_name("district")])
    endpoints.filterable(True)
    cell(endpoints, "State", mapped(UP_DOWN), *coloured())
    cell(endpoints, "Readiness", mapped(VERDICTS), *coloured())
    cell(endpoints, "RTT p95 (5 m)", unit(SECONDS), *coloured(RTT_STEPS))
    cell(endpoints, "Loss (5 m)", unit(RATIO), *coloured(LOSS_STEPS))
    cell(endpoints, "Jitter", unit(SECONDS), *coloured(JITTER_STEPS))
    cell(endpoints, "Registered", mapped(REGISTERED), *coloured())
    cell(endpoints, "Peripherals", mapped(CONNECTED), *coloured())
    cell(endpoints, "Diagnostic errors", *coloured(ANY_IS_BAD))
    cell(
        endpoints,
        "target",
        links(link("Endpoint " + TO_ENDPOINT, ENDPOINTS_UID, target=TO_ENDPOINT)),
    )
    return endpoints


def _fleet() -> list[table.Panel | stat.Panel]:
    """Software versions across the fleet, and how many rooms say something is wrong."""
    versions = panel(
        table.Panel(),
        "Software versions",
        "Rooms per vendor, model and software version, from the codecs' own APIs: a version "
        "that only a few rooms run stands out here before an upgrade or after a failed one.",
        query(
            f"count by (vendor, model, software) (max by (target, vendor, model, software) "
            f"(netmon_endpoint_info) and {IN_DISTRICT})",
            instant=True,
        ),
        width=12,
        height=8,
    ).unit(COUNT)
    tabulate(versions, {"Value": "Rooms"}, ["vendor", "model", "software"])
    tiles = []
    for title, description, expr in (
        (
            "Not registered",
            "Rooms that cannot be called over a protocol they have set up (their own word, "
            "or for a plain SIP room its registrar's).",
            f"count(min by (target) (netmon_endpoint_registered) == 0 and {IN_DISTRICT})",
        ),
        (
            "Peripheral disconnected",
            "Rooms reporting a camera, microphone, display or touch panel disconnected.",
            f"count(min by (target) (netmon_endpoint_peripheral_connected) == 0 and {IN_DISTRICT})",
        ),
        (
            "Diagnostic errors",
            "Rooms raising a diagnostic at Error or Critical level.",
            f'count(max by (target) (netmon_endpoint_diagnostics{{level=~"error|critical"}}) '
            f"> 0 and {IN_DISTRICT})",
        ),
        (
            "In a call",
            "Rooms in a call now.",
            f"count(max by (target) (netmon_endpoint_in_call) == 1 and {IN_DISTRICT})",
        ),
    ):
        tile = panel(
            stat.Panel(), title, description, query(f"{expr} or vector(0)"), width=3, height=8
        )
        tile.unit(COUNT).color_mode(cm.BigValueColorMode.BACKGROUND)
        tile.thresholds(steps(base=GREEN) if title == "In a call" else ANY_IS_BAD)
        tiles.append(tile)
    return [versions, *tiles]


def _districts() -> list[timeseries.Panel]:
    graphs = []
    for title, description, expr, unit_name, thresholds in (
        (
            "RTT p95, worst endpoint per district",
            "The slowest endpoint of each district (95th percentile RTT over 5 minutes).",
            f"max by (district) (netmon:icmp_rtt_seconds:p95_5m * {PER_DISTRICT})",
            SECONDS,
            RTT_STEPS,
        ),
        (
            "Loss, worst endpoint per district",
            "The endpoint of each district losing the most echoes over 5 minutes.",
            f"max by (district) (netmon:icmp_loss:ratio_rate5m * {PER_DISTRICT})",
            RATIO,
            LOSS_STEPS,
        ),
        (
            "Jitter, worst endpoint per district",
            "The endpoint of each district with the most jitter (netmon's sliding window).",
            f"max by (district) (netmon_icmp_jitter_seconds * {PER_DISTRICT})",
            SECONDS,
            JITTER_STEPS,
        ),
        (
            "Endpoints down, per district",
            "How many endpoints of each district did not answer.",
            f"sum by (district) (1 - ({UP} * {PER_DISTRICT}))",
            COUNT,
            ANY_IS_BAD,
        ),
    ):
        graph = panel(timeseries.Panel(), title, description, query(expr, "{{district}}"))
        graph.unit(unit_name).min(0)
        draw_thresholds(graph, thresholds)
        graphs.append(graph)
    return graphs


def _one_endpoint() -> list[stat.Panel | timeseries.Panel | statetimeline.Panel]:
    tiles: list[stat.Panel | timeseries.Panel | statetimeline.Panel] = []
    for title, expr, unit_name, thresholds, mappings in (
        ("State", f"netmon_target_up{{{ONE}}}", COUNT, None, UP_DOWN),
        (
            "Last readiness verdict",
            f"netmon_endpoint_readiness_verdict{{{ONE}}}",
            COUNT,
            None,
            VERDICTS,
        ),
        ("RTT p95 (5 m)", f"netmon:icmp_rtt_seconds:p95_5m{{{ONE}}}", SECONDS, RTT_STEPS, None),
        ("Loss (5 m)", f"netmon:icmp_loss:ratio_rate5m{{{ONE}}}", RATIO, LOSS_STEPS, None),
        ("Jitter", f"netmon_icmp_jitter_seconds{{{ONE}}}", SECONDS, JITTER_STEPS, None),
    ):
        tile = panel(stat.Panel(), title, f"{title} of $target.", query(expr), width=4, height=4)
        tile.unit(unit_name).color_mode(cm.BigValueColorMode.BACKGROUND)
        tile.graph_mode(cm.BigValueGraphMode.NONE)
        if thresholds is not None:
            tile.thresholds(thresholds)
        if mappings is not None:
            tile.mappings(mappings)
        tiles.append(tile)
    probes = panel(
        stat.Panel(),
        "Probes",
        "The last run of each of $target's probes.",
        query(f"netmon_probe_success{{{ONE}}}", "{{probe}}"),
        width=4,
        height=4,
    )
    probes.unit(COUNT).mappings(states((1, "ok", GREEN), (0, "failed", "red")))
    probes.color_mode(cm.BigValueColorMode.BACKGROUND).graph_mode(cm.BigValueGraphMode.NONE)
    tiles.append(probes)
    for title, description, expr, legend, mappings in (
        (
            "Registration",
            "Whether $target can be called, per protocol it has set up.",
            f"netmon_endpoint_registered{{{ONE}}}",
            "{{protocol}}",
            REGISTERED,
        ),
        (
            "Peripherals",
            "Each kind of peripheral $target reports: all connected, or one is not.",
            f"netmon_endpoint_peripheral_connected{{{ONE}}}",
            "{{peripheral}}",
            CONNECTED,
        ),
    ):
        room = panel(stat.Panel(), title, description, query(expr, legend), width=6, height=4)
        room.unit(COUNT).mappings(mappings).color_mode(cm.BigValueColorMode.BACKGROUND)
        room.graph_mode(cm.BigValueGraphMode.NONE)
        tiles.append(room)
    diagnostics = panel(
        stat.Panel(),
        "Diagnostics",
        "Messages $target raises about itself, by level.",
        query(f"netmon_endpoint_diagnostics{{{ONE}}}", "{{level}}"),
        width=6,
        height=4,
    )
    diagnostics.unit(COUNT).thresholds(ANY_IS_BAD).color_mode(cm.BigValueColorMode.VALUE)
    diagnostics.graph_mode(cm.BigValueGraphMode.NONE)
    tiles.append(diagnostics)

    rtt = panel(
        timeseries.Panel(),
        "RTT",
        "Round-trip time of $target: 95th percentile over 5 minutes, and the mean. The "
        "dashed lines are netmon's warning and major levels.",
        query(f"netmon:icmp_rtt_seconds:p95_5m{{{ONE}}}", "p95 (5 m)"),
        query(
            f"rate(netmon_icmp_rtt_seconds_sum{{{ONE}}}[$__rate_interval])"
            f" / rate(netmon_icmp_rtt_seconds_count{{{ONE}}}[$__rate_interval])",
            "mean",
        ),
        width=8,
    )
    draw_thresholds(rtt.unit(SECONDS).min(0), RTT_STEPS)
    loss = panel(
        timeseries.Panel(),
        "Loss",
        "Share of echoes lost: over netmon's 60 s window and over 5 minutes. HighPacketLoss "
        "judges 10 minutes of echoes with a 99 % confidence bound (README, Lossy links); the "
        "dashed lines are its warning, major and critical levels.",
        query(f"netmon_icmp_loss_ratio{{{ONE}}}", "netmon window"),
        query(f"netmon:icmp_loss:ratio_rate5m{{{ONE}}}", "5 m"),
        width=8,
    )
    draw_thresholds(loss.unit(RATIO).min(0), LOSS_STEPS)
    jitter = panel(
        timeseries.Panel(),
        "Jitter",
        "Mean difference of consecutive RTTs over netmon's sliding window (RFC 3550). The "
        "dashed lines are netmon's warning and major levels.",
        query(f"netmon_icmp_jitter_seconds{{{ONE}}}", "jitter"),
        width=8,
    )
    draw_thresholds(jitter.unit(SECONDS).min(0), JITTER_STEPS)
    history = panel(
        statetimeline.Panel(),
        "Up, down and probes over time",
        "When $target answered, and the result of each of its probes.",
        query(f"netmon_target_up{{{ONE}}}", "reachable"),
        query(f"netmon_probe_success{{{ONE}}}", "{{probe}} probe"),
        width=24,
        height=5,
    )
    history.unit(COUNT).mappings(UP_DOWN).show_value(cm.VisibilityMode.NEVER)
    return [*tiles, rtt, loss, jitter, history]


def build() -> dm.Dashboard:
    board = (
        new_dashboard(
            ENDPOINTS_UID,
            "netmon / Conference endpoints",
            "Every conference endpoint by district, quality per district, and one endpoint "
            "in detail (pick it in the Endpoint menu or click it anywhere).",
        )
        .with_variable(district_variable())
        .with_variable(
            label_variable(
                "target",
                "Endpoint",
                f"label_values(netmon_target_info{{{CHOSEN}}}, target)",
                description="The endpoint the last row shows",
                multi=False,
                include_all=False,
            )
        )
    )
    return with_rows(
        board,
        (
            ("All endpoints", [*_summary(), _grid(), _table()]),
            ("Room status: registration, peripherals, software", _fleet()),
            ("Quality per district", _districts()),
            ("Endpoint $target", _one_endpoint()),
        ),
    )

"""Meeting in progress: which rooms are in a call, how their calls sound over time, the worst
streams now, and for each room the loss netmon's own pings see on the path next to the loss its
call sees, so a reader tells a WAN fault (both lose) from a room's LAN or codec (only the call).

The call figures are what the rooms report of their media (netmon reads them every 10 s while
a room is in a call, README "Call quality"); the MOS is netmon's E-model estimate of the audio
a room receives (`direction="rx"`), coloured at the levels CallQualityDegraded and
CallQualityBad alert at.
"""

from __future__ import annotations

from grafana_foundation_sdk.builders import common as common_builders
from grafana_foundation_sdk.builders import dashboard as dash
from grafana_foundation_sdk.builders import stat, statetimeline, table, timeseries
from grafana_foundation_sdk.models import common as cm
from grafana_foundation_sdk.models import dashboard as dm

from dashboards.common import (
    BITS_PER_SECOND,
    COUNT,
    ENDPOINTS_UID,
    GREEN,
    JITTER_STEPS,
    LEVELS,
    LOSS_STEPS,
    MEETING_UID,
    ORANGE,
    RATIO,
    RED,
    ROOMS,
    SECONDS,
    cell,
    coloured,
    district_variable,
    draw_thresholds,
    link,
    links,
    new_dashboard,
    panel,
    query,
    steps,
    tabulate,
    target_info,
    unit,
    with_rows,
)
from netmon.config.rules import default_rules

CHOSEN = f'{ROOMS}, district=~"$district"'
IN_DISTRICT = f"on (target) netmon_target_info{{{CHOSEN}}}"
NAMED = f"on (target) group_left (district, name) {target_info('district, name', CHOSEN)}"
# A room once, however many netmons watch it (an HA pair, shards): in a call when any says so.
IN_CALL = "max by (target) (netmon_endpoint_in_call) == 1"
# What the room hears: the worst MOS of the audio it receives, as the call alerts judge it.
WORST_MOS = 'min by (target) (netmon_call_audio_mos{direction="rx"})'
CALL_LOSS = 'max by (target) (netmon_call_stream_loss_ratio{direction="rx"})'
PATH_LOSS = "max by (target) (netmon_icmp_loss_ratio)"
STREAM = "target, call, channel, direction"
TO_ENDPOINT = "${__data.fields.target}"

_RULES = default_rules(LEVELS)
MOS_DEGRADED = float(_RULES["CallQualityDegraded"]["levels"][0]["below"])
MOS_BAD = float(_RULES["CallQualityBad"]["levels"][0]["below"])
MOS_STEPS = steps((MOS_BAD, ORANGE), (MOS_DEGRADED, GREEN), base=RED)
MOS = "none"  # a score from 1 to 5: no unit, but one must be set (Grafana's "none")


def _now() -> list[stat.Panel]:
    tiles = []
    for title, description, expr, thresholds, unit_name in (
        (
            "Rooms in a call",
            "Rooms whose own status says they are in a call now.",
            f"count({IN_CALL} and {IN_DISTRICT}) or vector(0)",
            steps(base=GREEN),
            COUNT,
        ),
        (
            "Rooms that hear badly",
            f"Rooms whose received audio scores under MOS {MOS_DEGRADED:g} "
            "(CallQualityDegraded's level).",
            f"count({WORST_MOS} < {MOS_DEGRADED} and {IN_DISTRICT}) or vector(0)",
            steps((1, RED)),
            COUNT,
        ),
        (
            "Worst MOS now",
            "The lowest estimated MOS of the audio any room receives (ITU-T G.107 E-model). "
            f"Orange under {MOS_DEGRADED:g}, red under {MOS_BAD:g}: where the call alerts fire.",
            f"min({WORST_MOS} and {IN_DISTRICT})",
            MOS_STEPS,
            MOS,
        ),
        (
            "Worst call loss now",
            "The highest share of packets lost on any stream a room receives, over the room's "
            "last statistics interval.",
            f"max({CALL_LOSS} and {IN_DISTRICT})",
            LOSS_STEPS,
            RATIO,
        ),
    ):
        tile = panel(stat.Panel(), title, description, query(expr), width=6, height=4)
        tile.unit(unit_name).thresholds(thresholds).color_mode(cm.BigValueColorMode.BACKGROUND)
        tile.graph_mode(cm.BigValueGraphMode.AREA)
        tiles.append(tile)
    return tiles


def _mos_timeline() -> statetimeline.Panel:
    timeline = panel(
        statetimeline.Panel(),
        "MOS by room over time",
        "The estimated MOS of the audio each room receives (its worst stream), one lane per "
        f"room: green, orange under {MOS_DEGRADED:g}, red under {MOS_BAD:g}. A lane is empty "
        "while its room is not in a call.",
        query(f"{WORST_MOS} and {IN_DISTRICT}", "{{target}}"),
        width=24,
        height=12,
    )
    timeline.unit(MOS).decimals(2).thresholds(MOS_STEPS).min(1).max(5)
    timeline.color_scheme(dash.FieldColor().mode(dm.FieldColorModeId.THRESHOLDS))
    timeline.show_value(cm.VisibilityMode.NEVER).merge_values(False).row_height(0.8)
    return timeline


def _worst_streams() -> table.Panel:
    worst = panel(
        table.Panel(),
        "Worst streams",
        "Every stream of the calls under way, lowest MOS first (video streams, without a "
        "MOS, last): loss over the room's last interval, jitter and rate as the room measures "
        "them. rx is what the room receives. Click a room for its endpoint page.",
        query(
            f"max by ({STREAM}, media, role) (netmon_call_stream_loss_ratio) * {NAMED}",
            instant=True,
        ),
        query(
            f"max by ({STREAM}, media, role) (netmon_call_stream_jitter_seconds) and {IN_DISTRICT}",
            instant=True,
        ),
        query(f"min by ({STREAM}, codec) (netmon_call_audio_mos) and {IN_DISTRICT}", instant=True),
        query(
            f"8 * max by ({STREAM}, media, role) (netmon_call_stream_bytes_per_second) "
            f"and {IN_DISTRICT}",
            instant=True,
        ),
        width=24,
        height=12,
    ).unit(COUNT)
    tabulate(
        worst,
        {"Value #A": "Loss", "Value #B": "Jitter", "Value #C": "MOS", "Value #D": "Rate"},
        ["district", "name", "target", "call", "channel", "direction", "media", "role", "codec"],
    )
    worst.sort_by([common_builders.TableSortByFieldState().display_name("MOS").desc(False)])
    worst.filterable(True)
    cell(worst, "Loss", unit(RATIO), *coloured(LOSS_STEPS))
    cell(worst, "Jitter", unit(SECONDS), *coloured(JITTER_STEPS))
    cell(worst, "MOS", unit(MOS), *coloured(MOS_STEPS))
    cell(worst, "Rate", unit(BITS_PER_SECOND))
    cell(worst, "target", links(link("Endpoint " + TO_ENDPOINT, ENDPOINTS_UID, target=TO_ENDPOINT)))
    return worst


def _path_and_call() -> list[timeseries.Panel | table.Panel]:
    rooms = panel(
        table.Panel(),
        "Path loss and call loss, per room in a call",
        "Side by side for each room in a call: the loss of netmon's own pings to the site "
        "(its sliding window) and the worst loss of the streams the room receives, with its "
        "worst MOS. Both high: the WAN path. Only the call's: the room's LAN or its codec.",
        query(f"max by (target) ({IN_CALL}) * {NAMED}", instant=True),
        query(f"{PATH_LOSS} and on (target) ({IN_CALL}) and {IN_DISTRICT}", instant=True),
        query(f"{CALL_LOSS} and {IN_DISTRICT}", instant=True),
        query(f"{WORST_MOS} and {IN_DISTRICT}", instant=True),
        width=24,
        height=10,
    ).unit(COUNT)
    tabulate(
        rooms,
        {"Value #A": "In a call", "Value #B": "Path loss", "Value #C": "Call loss",
         "Value #D": "Worst MOS"},
        ["district", "name", "target"],
    )  # fmt: skip
    rooms.sort_by([common_builders.TableSortByFieldState().display_name("Worst MOS").desc(False)])
    rooms.filterable(True)
    cell(rooms, "In a call", unit(COUNT))
    cell(rooms, "Path loss", unit(RATIO), *coloured(LOSS_STEPS))
    cell(rooms, "Call loss", unit(RATIO), *coloured(LOSS_STEPS))
    cell(rooms, "Worst MOS", unit(MOS), *coloured(MOS_STEPS))
    cell(rooms, "target", links(link("Endpoint " + TO_ENDPOINT, ENDPOINTS_UID, target=TO_ENDPOINT)))
    graphs: list[timeseries.Panel | table.Panel] = [rooms]
    for title, description, expr in (
        (
            "Path loss (netmon's pings), rooms in a call",
            "The share of netmon's echoes to each room's site lost over its sliding window, "
            "while the room is in a call. The dashed lines are HighPacketLoss's levels.",
            f"{PATH_LOSS} and on (target) ({IN_CALL}) and {IN_DISTRICT}",
        ),
        (
            "Call loss (what the room receives)",
            "The worst loss of the streams each room receives, over the room's last statistics "
            "interval, on the same scale as the path's beside it.",
            f"{CALL_LOSS} and {IN_DISTRICT}",
        ),
    ):
        graph = panel(timeseries.Panel(), title, description, query(expr, "{{target}}"))
        graph.unit(RATIO).min(0)
        draw_thresholds(graph, LOSS_STEPS)
        graphs.append(graph)
    return graphs


def build() -> dm.Dashboard:
    board = new_dashboard(
        MEETING_UID,
        "netmon / Meeting in progress",
        "The rooms in a call now: how their audio scores over time, the worst streams, and the "
        "loss of netmon's own path to each site next to the loss of its call.",
    ).with_variable(district_variable())
    board.refresh("10s")  # the call figures are 10 s old at most
    return with_rows(
        board,
        (
            ("Now", _now()),
            ("MOS by room", [_mos_timeline()]),
            ("Worst streams", [_worst_streams()]),
            ("Path loss and call loss, per room", _path_and_call()),
        ),
    )

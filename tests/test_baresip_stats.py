"""The parser of baresip's call statistics, on answers captured from baresip 1.0 here
(tests/data/baresip/: a call with 5 % loss injected toward the room)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from collectors.baresip_stats import (
    BaresipStatsError,
    StreamStats,
    callstat_call_id,
    callstat_codecs,
    closed_call,
    interval,
    is_rtcp_event,
    parse_listcalls,
    parse_reginfo,
    parse_rtcp_event,
)

DATA = Path(__file__).parent / "data" / "baresip"


def events() -> list[dict[str, Any]]:
    loaded: list[dict[str, Any]] = json.loads((DATA / "call_events.json").read_text())
    return loaded


def rtcp(media: str) -> list[dict[str, Any]]:
    return [e for e in events() if is_rtcp_event(e) and e["param"] == media]


def test_an_rtcp_event_is_a_streams_rx_and_tx() -> None:
    last = rtcp("audio")[-1]
    rx, tx = parse_rtcp_event(last, {"audio": "PCMU"})
    assert rx == StreamStats(
        call_id="a1b892d232349a71", peer="sip:hub@127.0.0.1:35884", direction="rx",
        media="audio", codec="PCMU", packets=704, lost=46, jitter=0.00075, rtt=0.001024,
    )  # fmt: skip
    assert rx.expected == 750
    assert rx.loss_ratio == pytest.approx(46 / 750)
    assert (tx.direction, tx.packets, tx.lost, tx.loss_ratio) == ("tx", 751, 0, 0.0)


def test_the_json_text_parses_as_the_object() -> None:
    last = rtcp("video")[-1]
    assert parse_rtcp_event(json.dumps(last)) == parse_rtcp_event(last)
    assert parse_rtcp_event(last)[0].codec is None  # no callstat: codec unknown


def test_the_first_report_of_a_call_is_all_zero() -> None:
    rx, tx = parse_rtcp_event(rtcp("audio")[0])
    assert (rx.packets, rx.lost, rx.loss_ratio, tx.packets) == (0, 0, 0.0, 0)


def test_interval_loss_is_the_difference_between_two_reports() -> None:
    reports = [parse_rtcp_event(e, {"audio": "PCMU"})[0] for e in rtcp("audio")]
    # 236/14, 467/33, 704/46 cumulative: the last interval got 237 and lost 13.
    last = interval(reports[-2], reports[-1], 5.0)
    assert (last.packets, last.lost, last.expected) == (237, 13, 250)
    assert last.loss_ratio == pytest.approx(13 / 250)
    assert last.packet_rate == pytest.approx(237 / 5)
    assert last.bitrate == pytest.approx(64_000 * (1 - 13 / 250))


def test_a_first_report_or_a_reset_counts_from_zero() -> None:
    reports = [parse_rtcp_event(e)[0] for e in rtcp("audio")]
    assert interval(None, reports[-1], 15.0).lost == 46
    assert interval(reports[-1], reports[1], 5.0).packets == reports[1].packets
    assert interval(reports[-2], reports[-1], 5.0).bitrate is None  # codec unknown


def test_late_packets_never_make_a_negative_loss() -> None:
    before = parse_rtcp_event(rtcp("audio")[-1])[0]
    after = StreamStats(**{**_fields(before), "packets": before.packets + 10, "lost": 40})
    assert interval(before, after, 1.0).lost == 0


def _fields(stats: StreamStats) -> dict[str, Any]:
    return {name: getattr(stats, name) for name in StreamStats.__slots__}


def test_the_call_end_names_its_call() -> None:
    assert [closed_call(e) for e in events() if closed_call(e)] == ["a1b892d232349a71"]


def test_callstat_names_each_medias_codec() -> None:
    assert callstat_codecs((DATA / "callstat.txt").read_text()) == {"audio": "PCMU", "video": "VP8"}
    assert callstat_codecs((DATA / "listcalls.txt").read_text()) == {}


@pytest.mark.parametrize(
    ("event", "why"),
    [
        ({"event": True, "type": "CALL_ESTABLISHED"}, "not a CALL_RTCP event"),
        ({"event": True, "type": "CALL_RTCP", "param": "audio"}, "rtcp_stats: missing"),
        (
            {"event": True, "type": "CALL_RTCP", "param": "audio",
             "rtcp_stats": {"rx": {"sent": 1, "lost": 0, "jit": 0}}},
            "rtcp_stats.tx: missing",
        ),
        (
            {"event": True, "type": "CALL_RTCP", "param": "audio",
             "rtcp_stats": {"rx": {"sent": "1", "lost": 0, "jit": 0}, "tx": {}}},
            "rtcp_stats.rx.sent",
        ),
        ("[1,", "not JSON"),
        ("[1]", "not a JSON object"),
    ],
)  # fmt: skip
def test_what_is_not_a_statistics_event_is_refused(event: Any, why: str) -> None:
    with pytest.raises(BaresipStatsError, match=why):
        parse_rtcp_event(event)


def test_the_menus_listings_say_whether_the_room_is_registered_and_in_a_call() -> None:
    registered = parse_reginfo((DATA / "reginfo.txt").read_text())
    assert [(r.aor, r.state) for r in registered] == [("sip:r1@127.0.0.1:53185", "OK")]
    assert parse_reginfo("\n--- User Agents (0) ---\n\n") == []
    (call,) = parse_listcalls((DATA / "listcalls.txt").read_text())
    assert (call.state, call.peer, call.seconds) == ("ESTABLISHED", "sip:alice@127.0.0.1:49233", 17)
    assert parse_listcalls("\n--- Active calls (0) ---\n\n") == []
    assert callstat_call_id((DATA / "callstat.txt").read_text()) == "27bac4f0beaf3b24"
    assert callstat_call_id("no call") is None

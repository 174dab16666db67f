"""A synthetic month, November 2026 in Asia/Ho_Chi_Minh, journaled in a real journal file and
reported: every figure in the JSON equals the hand computation below, to the second.

The month (2,592,000 s; Sundays 1, 8, 15, 22, 29; office days Mon-Fri, 21 of them, less the
24th, Vietnam Cultural Day: 20 x 7.5 h = 540,000 s of office time):

- netmon crashed on the 10th at 12:00 (its last heartbeat) and ran again from 14:00: 7,200 s
  nobody watched, plus the seconds each target waited for its first verdict after the restart;
- ep-a: an outage across midnight (3rd 23:30 - 4th 00:45), one behind the district switch's cut
  (15th, charged to the link but for the 20 s it outlasted it), one in a maintenance window
  (20th), one across the month's end (30th 23:00 - Dec 1st 01:00, split);
- ep-b: behind the same cut, and down for 30 min of the provincial meeting on the 26th;
- ep-c (another district): down on the holiday morning (24th), up for the whole meeting but
  judged NO-GO by the check before it.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import yaml

from netmon.alerting.model import fingerprint
from netmon.availability.db import Change, CheckVerdict, JournalDB, Window
from netmon.availability.quality import call_quality, meetings_between
from netmon.availability.render import render
from netmon.availability.report import build_report
from netmon.config.loader import load_data
from netmon.meeting_quality.db import MeetingDB
from netmon.meeting_quality.model import Meeting as QualityMeeting
from netmon.meeting_quality.model import Room, RoomSample, scheduled_id

ZONE = ZoneInfo("Asia/Ho_Chi_Minh")
MONTH = 30 * 86400
OFFICE = 20 * 27000


def at(day: int, hour: int, minute: int = 0, second: int = 0, month: int = 11) -> float:
    year = 2026
    return dt.datetime(year, month, day, hour, minute, second, tzinfo=ZONE).timestamp()


def iso(when: float) -> str:
    return dt.datetime.fromtimestamp(when, ZONE).isoformat()


CONFIG: dict[str, Any] = {
    "targets": [
        {"id": "sw-d1", "address": "192.0.2.1", "kind": "switch", "district": "D1"},
        {"id": "ep-a", "address": "192.0.2.2", "district": "D1", "parent": "sw-d1",
         "name": "Xã Tân Lập", "probes": {"icmp": {}, "tcp": {"port": 5060}}},
        {"id": "ep-b", "address": "192.0.2.3", "district": "D1", "parent": "sw-d1",
         "name": "Phường Đồng Xoài"},
        {"id": "ep-c", "address": "192.0.2.4", "district": "D2", "name": "UBND huyện Bù Đăng"},
    ],
    "meetings": [
        {"name": "Họp tỉnh", "start": "2026-11-26T08:00:00+07:00", "duration": "2h",
         "targets": ["ep-b", "ep-c"]},
    ],
    "availability": {
        "degraded": True,
        "maintenance": [
            {"id": "mw-1", "starts_at": "2026-11-20T22:00:00+07:00",
             "ends_at": "2026-11-20T23:00:00+07:00", "matchers": {"district": "D1"},
             "comment": "thay switch"},
        ],
    },
}  # fmt: skip

CRASH, RESTART = at(10, 12), at(10, 14)


def journal(path: Path) -> JournalDB:
    db = JournalDB(path)
    db.open()
    db.start_run(at(31, 20, month=10))
    db.heartbeat(at(31, 20, month=10), CRASH)  # then the crash: no stop noted
    db.start_run(RESTART)
    db.stop_run(RESTART, at(1, 2, month=12))
    window = CONFIG["availability"]["maintenance"][0]
    db.keep_windows([Window("mw-1", at(20, 22), at(20, 23), {"district": "D1"}, "thay switch")])
    assert window["id"] == "mw-1"
    first = at(31, 20, 0, 5, month=10)
    changes = [
        # Run 1: everything up before the month began.
        *(Change(s, first, "up") for s in ("sw-d1", "link:sw-d1", "ep-a", "ep-b", "ep-c")),
        Change("ep-a/tcp", first, "up"),
        # ep-a's SIP port refused for half an hour on the 5th.
        Change("ep-a/tcp", at(5, 10), "down", "refused"),
        Change("ep-a/tcp", at(5, 10, 30), "up"),
        Change("ep-a/tcp", RESTART + 5, "up"),
        Change("ep-a/tcp", at(15, 9, 0, 30), "down", "timeout"),
        Change("ep-a/tcp", at(15, 10, 0, 5), "up"),
        Change("ep-a", at(3, 23, 30), "down", "timeout"),
        Change("ep-a", at(4, 0, 45), "up"),
        # Run 2: first verdicts a few seconds after the restart.
        Change("sw-d1", RESTART + 1, "up"),
        Change("link:sw-d1", RESTART + 1, "up"),
        Change("ep-a", RESTART + 2, "up"),
        Change("ep-b", RESTART + 3, "up"),
        Change("ep-c", RESTART + 4, "up"),
        # The district switch cut for an hour on Sunday the 15th.
        Change("sw-d1", at(15, 9), "down", "timeout"),
        Change("link:sw-d1", at(15, 9), "down", "unreachable"),
        Change("ep-a", at(15, 9, 0, 10), "down", "timeout"),
        Change("ep-b", at(15, 9, 0, 5), "down", "timeout"),
        Change("sw-d1", at(15, 10), "up"),
        Change("link:sw-d1", at(15, 10), "up"),
        Change("ep-b", at(15, 10, 0, 8), "up"),
        Change("ep-a", at(15, 10, 0, 20), "up"),
        # In the maintenance window.
        Change("ep-a", at(20, 22, 10), "down", "timeout"),
        Change("ep-a", at(20, 22, 40), "up"),
        # A lossy hour: up, but HighLoss firing (the quality figure counts it as down).
        Change("ep-c~quality", at(12, 10), "down", "HighLoss"),
        Change("ep-c~quality", at(12, 11), "up"),
        # The holiday morning (office hours on a weekday, but a holiday).
        Change("ep-c", at(24, 8), "down", "send"),
        Change("ep-c", at(24, 9), "up"),
        # The meeting on the 26th, 08:00-10:00.
        Change("ep-b", at(26, 8, 30), "down", "timeout"),
        Change("ep-b", at(26, 9), "up"),
        # Across the month's end.
        Change("ep-a", at(30, 23), "down", "timeout"),
        Change("ep-a", at(1, 1, month=12), "up"),
    ]
    checks = [
        CheckVerdict("Họp tỉnh", at(26, 7, 30), "ep-b", "GO", ()),
        CheckVerdict("Họp tỉnh", at(26, 7, 30), "ep-c", "NO-GO", ("not registered (SIP)",)),
    ]
    db.record(changes, checks)
    return db


def meeting_record(path: Path) -> MeetingDB:
    """The meeting quality record of the 26th: ep-b in the call at 4.2 until its outage, 3.1
    for the two minutes before it dropped; ep-c never in the call (no figure)."""
    db = MeetingDB(path)
    db.open()
    start = at(26, 8)
    meeting_id = scheduled_id("Họp tỉnh", start)
    rooms = (Room("ep-b", "Phường Đồng Xoài", "D1"), Room("ep-c", "UBND huyện Bù Đăng", "D2"))
    samples = [
        (meeting_id, RoomSample("ep-b", t, True, mos_rx=3.1 if t >= at(26, 8, 28) else 4.2))
        for t in range(int(start), int(at(26, 8, 30)), 10)
    ] + [(meeting_id, RoomSample("ep-c", start, False))]
    db.write([QualityMeeting(meeting_id, "Họp tỉnh", "scheduled", start, start + 7200, rooms)],
             samples)  # fmt: skip
    return db


@pytest.fixture
def report_json(tmp_path: Path) -> dict[str, Any]:
    db = journal(tmp_path / "journal.sqlite")
    record = meeting_record(tmp_path / "meetings.sqlite")
    inventory = load_data(CONFIG)
    try:
        slice_ = db.read(at(1, 0), at(1, 0, month=12))
        quality = call_quality(record, meetings_between(inventory, at(1, 0), at(1, 0, month=12)))
    finally:
        db.shutdown()
        record.shutdown()
    report = build_report(
        slice_,
        inventory,
        inventory.config.availability,
        generated=at(1, 3, month=12),
        call_quality=quality,
    )
    data: dict[str, Any] = json.loads(render(report, "json"))
    return data


def by_target(data: dict[str, Any], target: str) -> dict[str, Any]:
    found: dict[str, Any] = next(
        t for t in [*data["targets"], *data["links"]] if t["target"] == target
    )
    return found


def test_the_gap_when_netmon_was_not_running_is_unknown_for_everyone(
    report_json: dict[str, Any],
) -> None:
    assert report_json["netmon_not_running"] == [
        {"start": iso(CRASH), "end": iso(RESTART), "seconds": 7200.0}
    ]
    # Each target is unknown from the crash until its first verdict after the restart.
    assert by_target(report_json, "ep-a")["unknown_seconds"] == 7202
    assert by_target(report_json, "ep-b")["unknown_seconds"] == 7203
    assert by_target(report_json, "ep-c")["unknown_seconds"] == 7204
    assert by_target(report_json, "link:sw-d1")["unknown_seconds"] == 7201


def test_a_site_figure_charges_a_cut_link_to_the_link_and_leaves_out_maintenance(
    report_json: dict[str, Any],
) -> None:
    site = by_target(report_json, "ep-a")
    # Down and counted: 3rd-4th 4,500 s; 15th 20 s after the link came back; 30th 3,600 s.
    down = 4500 + 20 + 3600
    # Excluded: the maintenance window (3,600 s, whatever the state), the link's hour (3,600 s,
    # from the cut, not from ep-a's own verdict 10 s later), and the unknown 7,202 s.
    up = MONTH - 7202 - 3600 - 3600 - down
    assert site["figures"] == {
        "availability": up / (up + down),
        "period_seconds": MONTH,
        "up_seconds": up,
        "down_seconds": down,
        "unknown_seconds": 7202,
        "maintenance_seconds": 3600,
        "parent_seconds": 3600,
    }
    assert site["availability"] == up / (up + down)
    assert site["outage_count"] == 3  # the maintenance one has no counted second
    assert site["mttr_seconds"] == round(down / 3, 3)


def test_every_outage_is_in_the_evidence_with_its_cause_split_at_the_bounds(
    report_json: dict[str, Any],
) -> None:
    endpoint_down = fingerprint("EndpointDown", "ep-a", {})
    link_down = fingerprint("DistrictUnreachable", "sw-d1", {})
    pieces = [
        (p["start"], p["end"], p["cause"], p["alert"], p["excluded"], p["split"])
        for p in by_target(report_json, "ep-a")["outages"]
    ]
    assert pieces == [
        (iso(at(3, 23, 30)), iso(at(4, 0, 45)), "EndpointDown", endpoint_down, False, False),
        (iso(at(15, 9, 0, 10)), iso(at(15, 10)), "DistrictUnreachable", link_down, True, False),
        (iso(at(15, 10)), iso(at(15, 10, 0, 20)), "EndpointDown", endpoint_down, False, False),
        (iso(at(20, 22, 10)), iso(at(20, 22, 40)), "maintenance", None, True, False),
        (iso(at(30, 23)), iso(at(1, 0, month=12)), "EndpointDown", endpoint_down, False, True),
    ]
    reasons = [p["why"] for p in by_target(report_json, "ep-a")["outages"]]
    assert reasons[1] == "charged to the link of sw-d1"
    assert reasons[3] == "maintenance mw-1: thay switch"


def test_the_link_and_the_switch_have_their_own_figures(report_json: dict[str, Any]) -> None:
    link = by_target(report_json, "link:sw-d1")
    up = MONTH - 7201 - 3600 - 3600  # unknown, maintenance (the switch is in D1), the cut
    assert link["figures"]["down_seconds"] == 3600
    assert link["figures"]["maintenance_seconds"] == 3600
    assert link["availability"] == up / (up + 3600)
    assert [(p["cause"], p["reason"]) for p in link["outages"]] == [
        ("DistrictUnreachable", "unreachable")
    ]


def test_office_hours_leave_out_nights_weekends_and_the_holiday(
    report_json: dict[str, Any],
) -> None:
    holidays = report_json["policy"]["office_hours"]["holidays_in_period"]
    assert [h["day"] for h in holidays] == ["2026-11-24"]
    a, b, c = (by_target(report_json, t)["office_hours"] for t in ("ep-a", "ep-b", "ep-c"))
    # ep-a's outages were all at night or on Sunday; the gap took 13:30-14:00:02 of the 10th.
    assert (a["period_seconds"], a["unknown_seconds"], a["down_seconds"]) == (OFFICE, 1802, 0)
    assert a["availability"] == 1.0
    # ep-b's 30 min in the meeting were office time.
    assert (b["unknown_seconds"], b["down_seconds"]) == (1803, 1800)
    assert b["availability"] == (OFFICE - 1803 - 1800) / (OFFICE - 1803)
    # ep-c's holiday hour is not office time; in the whole month it counts.
    assert (c["down_seconds"], c["availability"]) == (0, 1.0)
    assert by_target(report_json, "ep-c")["figures"]["down_seconds"] == 3600


def test_a_service_probe_has_its_own_figure_charged_to_the_link_as_its_site(
    report_json: dict[str, Any],
) -> None:
    (service,) = report_json["services"]
    assert service["target"] == "ep-a/tcp"
    down = 1800 + 5  # the 5th's half hour; 5 s after the link came back on the 15th
    up = MONTH - 7205 - 3600 - 3600 - down  # unknown, maintenance, the link's hour
    assert service["figures"]["down_seconds"] == down
    assert service["figures"]["parent_seconds"] == 3600
    assert service["availability"] == up / (up + down)
    probe_failed = fingerprint("ProbeFailed", "ep-a", {"probe": "tcp"})
    assert [(p["cause"], p["alert"], p["reason"], p["excluded"]) for p in service["outages"]] == [
        ("ProbeFailed", probe_failed, "refused", False),
        ("DistrictUnreachable", fingerprint("DistrictUnreachable", "sw-d1", {}), None, True),
        ("ProbeFailed", probe_failed, "timeout", False),
    ]


def test_the_quality_figure_counts_degraded_time_as_down(report_json: dict[str, Any]) -> None:
    site = by_target(report_json, "ep-c")
    up = MONTH - 7204 - 3600
    assert site["availability"] == up / (up + 3600)
    quality = site["quality"]
    assert (quality["up_seconds"], quality["down_seconds"]) == (up - 3600, 3600 + 3600)
    assert quality["availability"] == (up - 3600) / (up + 3600)
    # A site never degraded has the same quality figure as its availability.
    assert by_target(report_json, "ep-a")["quality"] == by_target(report_json, "ep-a")["figures"]


def test_meeting_availability_and_the_checks_before_it(report_json: dict[str, Any]) -> None:
    (meeting,) = report_json["meetings"]
    assert (meeting["name"], meeting["start"]) == ("Họp tỉnh", iso(at(26, 8)))
    rooms = {r["target"]: r for r in meeting["rooms"]}
    assert rooms["ep-b"]["availability"] == 5400 / 7200
    assert (rooms["ep-b"]["verdict"], rooms["ep-b"]["ready"]) == ("GO", True)
    assert rooms["ep-c"]["availability"] == 1.0
    assert (rooms["ep-c"]["verdict"], rooms["ep-c"]["ready"]) == ("NO-GO", False)
    assert rooms["ep-c"]["reasons"] == ["not registered (SIP)"]
    # Call quality where the meeting quality record has the room in the call.
    quality = rooms["ep-b"]["call_quality"]
    assert (quality["mean_mos"], quality["min_mos"]) == (
        round((168 * 4.2 + 12 * 3.1) / 180, 3),
        3.1,
    )
    assert quality["poor_minutes"] == 2
    assert rooms["ep-c"]["call_quality"] is None
    assert meeting["availability"] == (5400 + 7200) / 14400


def test_district_summary_sums_its_rooms_and_its_links(report_json: dict[str, Any]) -> None:
    d1 = next(d for d in report_json["districts"] if d["district"] == "D1")
    a_down, b_down = 4500 + 20 + 3600, 8 + 1800
    a_up = MONTH - 7202 - 3600 - 3600 - a_down
    b_up = MONTH - 7203 - 3600 - 3600 - b_down
    assert d1["site_availability"] == (a_up + b_up) / (a_up + b_up + a_down + b_down)
    assert d1["link_availability"] == by_target(report_json, "link:sw-d1")["availability"]
    assert d1["meeting_availability"] == 5400 / 7200
    assert d1["outages"] == 3 + 2
    assert d1["mttr_seconds"] == round((a_down + b_down) / 5, 3)


def test_the_policy_is_printed_with_its_version_and_rules(report_json: dict[str, Any]) -> None:
    policy = report_json["policy"]
    assert policy["version"] == "netmon-availability/1"
    assert policy["source"] == "journal"
    assert policy["timezone"] == "Asia/Ho_Chi_Minh"
    assert policy["unknown"] == "excluded"
    assert policy["precedence"] == ["maintenance", "unknown", "parent", "down", "up"]
    assert policy["period"]["from"] == "2026-11-01T00:00:00+07:00"
    assert policy["period"]["to"] == "2026-12-01T00:00:00+07:00"


def test_the_readmes_configuration_example_loads() -> None:
    readme = Path(__file__).resolve().parent.parent / "README.md"
    section = readme.read_text(encoding="utf-8").split("## Availability reports", 1)[1]
    found = re.search(r"### Configuration\n.*?```yaml\n(.*?)```", section, re.S)
    assert found is not None
    data = yaml.safe_load(found.group(1))
    inventory = load_data({
        **data,
        "targets": [{"id": "ep", "address": "192.0.2.2", "district": "Bá Thước"}],
        "oncall": {"channels": [{"kind": "email", "name": "email", "host": "smtp.example.vn",
                                 "from_address": "netmon@stttt.example.vn"}]},
    })  # fmt: skip
    config = inventory.config.availability
    assert (config.degraded, config.mail_channel, config.report_lang) == (True, "email", "vi")
    assert [w.id for w in config.maintenance] == ["thay-switch-ba-thuoc"]
    assert [str(day) for day in config.extra_holidays] == ["2026-12-31"]

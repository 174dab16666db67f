"""`netmon check` over the namespace lab: verdicts with reasons a person can read."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import socket
import subprocess
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import yaml

from netmon.meetings_import import IcsImportError, ics_to_meetings
from tests.alertmanager_peer import eventually
from tests.helpers import NetmonProcess, metric_value, netmon_command, write_config
from tests.lab.netlab import NetLab
from tests.peers import free_port


def test_a_lossy_and_a_dead_endpoint_are_warn_and_no_go_the_rest_go(
    netlab: NetLab, tmp_path: Path
) -> None:
    healthy = [netlab.add_host() for _ in range(3)]
    # Seeded: these 50 pings lose exactly 2 (4 %), every run.
    lossy = netlab.add_host(loss=0.05, seed=0)
    dead = netlab.add_host()
    dead.link_down()
    targets = [
        {"id": f"ep-ok-{i}", "address": h.address, "district": "Như Xuân", "name": f"Xã {i}"}
        for i, h in enumerate(healthy)
    ]
    targets += [
        {"id": "ep-lossy", "address": lossy.address, "district": "Như Xuân"},
        {"id": "ep-dead", "address": dead.address, "district": "Như Xuân"},
        {"id": "ep-elsewhere", "address": healthy[0].address, "district": "Mường Lát"},
    ]
    config = write_config(tmp_path / "netmon.yaml", {"targets": targets})
    result = subprocess.run(
        [*netmon_command(), "check", "--config", str(config), "--district", "như xuân",
         "--format", "json"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 1, result.stderr  # something is NO-GO
    report = json.loads(result.stdout)
    assert report["schema_version"] == 1
    assert report["counts"] == {"GO": 3, "WARN": 1, "NO-GO": 1}
    by_id = {e["target"]: e for e in report["endpoints"]}
    assert set(by_id) == {"ep-ok-0", "ep-ok-1", "ep-ok-2", "ep-lossy", "ep-dead"}
    assert [e["target"] for e in report["endpoints"]][:2] == ["ep-dead", "ep-lossy"]  # worst first
    assert by_id["ep-dead"]["verdict"] == "NO-GO"
    assert by_id["ep-dead"]["reasons"] == ["unreachable: no reply to 50 pings"]
    assert by_id["ep-lossy"]["verdict"] == "WARN"
    assert by_id["ep-lossy"]["reasons"] == ["loss 4.0% > 1.0%"]
    assert by_id["ep-ok-0"]["verdict"] == "GO"
    assert by_id["ep-ok-0"]["measurements"]["packets_received"] == 50

    table = subprocess.run(
        [*netmon_command(), "check", "--config", str(config), "--target", "ep-ok-1"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert table.returncode == 0, table.stderr
    assert "1 GO, 0 WARN, 0 NO-GO (1 endpoints checked in" in table.stdout
    assert "Xã 1" in table.stdout


def test_a_scope_that_names_nothing_is_a_usage_error(tmp_path: Path) -> None:
    config = write_config(
        tmp_path / "netmon.yaml", {"targets": [{"id": "a", "address": "127.0.0.1"}]}
    )
    result = subprocess.run(
        [*netmon_command(), "check", "--config", str(config), "--group", "nope"],
        capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip
    assert result.returncode == 2
    assert "no endpoint in group 'nope'" in result.stderr


def test_the_html_report_stands_alone_and_escapes_names(tmp_path: Path) -> None:
    config = write_config(
        tmp_path / "netmon.yaml",
        {"targets": [{"id": "ep-1", "address": "127.0.0.1", "name": "Phòng <họp> & A"}]},
    )
    output = tmp_path / "report.html"
    result = subprocess.run(
        [*netmon_command(), "check", "--config", str(config), "--format", "html",
         "--output", str(output)],
        capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    page = output.read_text(encoding="utf-8")
    assert "Phòng &lt;họp&gt; &amp; A (ep-1)" in page
    assert "1 GO, 0 WARN, 0 NO-GO" in page
    assert "<script" not in page
    assert "src=" not in page
    assert "href=" not in page  # nothing to fetch: it opens the same offline


async def test_a_check_started_over_http_completes_and_sets_endpoint_ready(
    netlab: NetLab, tmp_path: Path
) -> None:
    good, dead = netlab.add_host(), netlab.add_host()
    dead.link_down()
    config = write_config(
        tmp_path / "netmon.yaml",
        {
            "alerting": {"database": str(tmp_path / "alerts.sqlite")},
            "targets": [
                {"id": "ep-good", "address": good.address, "group": "hall"},
                {"id": "ep-dead", "address": dead.address, "group": "hall"},
            ],
        },
    )
    netmon = NetmonProcess(config)
    try:
        status, body = call(netmon.url + "/api/v1/checks", "POST", {"group": "nope"})
        assert status == 400
        assert "no endpoint in group 'nope'" in body["error"]
        status, body = call(netmon.url + "/api/v1/checks", "POST", {"group": "hall"})
        assert status == 202, body
        url = netmon.url + body["url"]

        def done() -> Any:
            report = call(url)[1]
            return report if report.get("status") == "done" else None

        report = await eventually(done, timeout=15, what="the check to finish")
        assert report["counts"] == {"GO": 1, "WARN": 0, "NO-GO": 1}
        assert report["endpoints"][0]["target"] == "ep-dead"
        text = netmon.metrics()
        assert metric_value(text, "netmon_endpoint_ready", target="ep-good") == 1
        assert metric_value(text, "netmon_endpoint_ready", target="ep-dead") == 0
        verdict = "netmon_endpoint_readiness_verdict"
        assert metric_value(text, verdict, target="ep-good") == 0  # GO
        assert metric_value(text, verdict, target="ep-dead") == 2  # NO-GO
        status, listing = call(netmon.url + "/api/v1/checks?group=hall")
        assert [c["id"] for c in listing["checks"]] == [body["id"]]
        # The target API carries each endpoint's last verdict, with the check it came from.
        readiness = call(netmon.url + "/api/v1/targets/ep-dead")[1]["readiness"]
        assert readiness["verdict"] == "NO-GO"
        assert readiness["check"] == body["id"]
        assert readiness["reasons"] == report["endpoints"][0]["reasons"]
        assert call(netmon.url + "/api/v1/targets/ep-good")[1]["readiness"]["verdict"] == "GO"
        # The check pinged through the service's own ICMP sockets: one set per process, so
        # every echo reply is read once (a runner of its own held a second set and read each
        # reply twice).
        assert _icmp_sockets(netmon.process.pid) == {"ipv4": 1, "ipv6": 1}
    finally:
        netmon.stop()


def _icmp_sockets(pid: int) -> dict[str, int]:
    """How many raw (or ping) ICMP sockets process `pid` holds per family, from /proc."""
    held = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        with contextlib.suppress(OSError):
            link = os.readlink(fd)
            if link.startswith("socket:["):
                held.add(link[len("socket:[") : -1])
    counts = {}
    for family, tables in (("ipv4", ("raw", "icmp")), ("ipv6", ("raw6", "icmp6"))):
        inodes = {
            line.split()[9]
            for table in tables
            for line in Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]
        }
        counts[family] = len(held & inodes)
    return counts


def call(url: str, method: str = "GET", body: object = None) -> tuple[int, Any]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(  # noqa: S310
        url, data=data, method=method, headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=5) as response:  # noqa: S310
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_a_dead_call_signalling_port_is_no_go_and_a_live_one_go(tmp_path: Path) -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        open_port = listener.getsockname()[1]
        closed_port = free_port()
        config = write_config(
            tmp_path / "netmon.yaml",
            {
                "targets": [
                    {"id": "ep-h323-ok", "address": "127.0.0.1",
                     "probes": {"icmp": {}, "tcp": {"port": open_port}}},
                    {"id": "ep-h323-dead", "address": "127.0.0.1",
                     "probes": {"icmp": {}, "tcp": {"port": closed_port}}},
                ]
            },
        )  # fmt: skip
        result = subprocess.run(
            [*netmon_command(), "check", "--config", str(config), "--format", "json"],
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
    assert result.returncode == 1, result.stderr
    by_id = {e["target"]: e for e in json.loads(result.stdout)["endpoints"]}
    assert by_id["ep-h323-dead"]["verdict"] == "NO-GO"
    assert by_id["ep-h323-dead"]["reasons"] == ["TCP connect: refused"]
    assert by_id["ep-h323-ok"]["verdict"] == "GO"
    assert by_id["ep-h323-ok"]["measurements"]["probes"]["tcp"]["ok"] is True


def test_the_status_page_lists_endpoints_by_district_with_a_check_form(tmp_path: Path) -> None:
    config = write_config(
        tmp_path / "netmon.yaml",
        {
            "alerting": {"database": str(tmp_path / "alerts.sqlite")},
            "targets": [
                {"id": "ep-a", "address": "127.0.0.1", "district": "Như Xuân", "name": "Xã <A>"},
                {"id": "ep-b", "address": "127.0.0.2", "district": "Mường Lát", "group": "x"},
                {"id": "rtr", "address": "127.0.0.3", "kind": "router"},
            ],
        },
    )
    netmon = NetmonProcess(config)
    try:
        status, content_type, page = netmon.get("/")
    finally:
        netmon.stop()
    assert status == 200
    assert content_type.startswith("text/html")
    assert 'id="endpoint-count">2<' in page  # rooms only, not the router
    assert '<section class="district" data-district="Như Xuân">' in page
    assert 'data-target="ep-a"' in page
    assert "Xã &lt;A&gt;" in page
    assert '<option value="district:Mường Lát">' in page
    assert '<option value="group:x">' in page
    assert "http://" not in page
    assert "https://" not in page  # nothing from outside: it works without internet


def test_a_meeting_selects_its_endpoints_and_its_stricter_limits_name_the_field(
    tmp_path: Path,
) -> None:
    targets = [
        {"id": "ep-a", "address": "127.0.0.1", "group": "province"},
        {"id": "ep-b", "address": "127.0.0.2", "district": "Như Xuân"},
        {"id": "ep-c", "address": "127.0.0.3"},
    ]
    meeting = {"name": "Họp", "start": "2026-12-01T08:00:00+07:00", "groups": ["province"],
               "districts": ["như xuân"]}  # fmt: skip
    config = write_config(tmp_path / "netmon.yaml", {"targets": targets, "meetings": [meeting]})
    result = subprocess.run(
        [*netmon_command(), "check", "--config", str(config), "--meeting", "Họp",
         "--format", "json"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert sorted(e["target"] for e in report["endpoints"]) == ["ep-a", "ep-b"]
    bad = {**meeting, "thresholds": {"rtt_warn": "fast"}, "targets": ["nope"]}
    config = write_config(tmp_path / "bad.yaml", {"targets": targets, "meetings": [bad]})
    result = subprocess.run(
        [*netmon_command(), "validate", "--config", str(config)],
        capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip
    assert result.returncode == 1
    assert "meetings[0].targets[0]: unknown target 'nope'" in result.stderr
    assert "meetings[0].thresholds.rtt_warn" in result.stderr


ICS = """BEGIN:VCALENDAR
VERSION:2.0
PRODID:-//netmon tests//EN
BEGIN:VEVENT
UID:1
SUMMARY:Giao ban tỉnh tháng 12
DTSTART;TZID=Asia/Ho_Chi_Minh:20261201T080000
DTEND;TZID=Asia/Ho_Chi_Minh:20261201T103000
CATEGORIES:province
X-NETMON-DISTRICTS:Như Xuân
END:VEVENT
BEGIN:VEVENT
UID:2
SUMMARY:Họp huyện
DTSTART:20261202T140000
DURATION:PT1H
X-NETMON-TARGETS:ep-a
END:VEVENT
END:VCALENDAR
"""


def test_meetings_come_from_an_ics_export_and_validate(tmp_path: Path) -> None:
    ics = tmp_path / "lich.ics"
    ics.write_text(ICS, encoding="utf-8")
    result = subprocess.run(
        [*netmon_command(), "meetings", "import", str(ics)],
        capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    meetings = yaml.safe_load(result.stdout)["meetings"]
    assert meetings[0] == {
        "name": "Giao ban tỉnh tháng 12",
        "start": "2026-12-01T08:00:00+07:00",
        "duration": "9000s",
        "groups": ["province"],
        "districts": ["Như Xuân"],
    }
    assert meetings[1]["start"] == "2026-12-02T14:00:00+07:00"  # no TZID: the province's
    assert meetings[1]["targets"] == ["ep-a"]
    config = write_config(
        tmp_path / "netmon.yaml",
        {"targets": [{"id": "ep-a", "address": "127.0.0.1"}], "meetings": meetings},
    )
    validated = subprocess.run(
        [*netmon_command(), "validate", "--config", str(config)],
        capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip
    assert validated.returncode == 0, validated.stderr

    ics.write_text(ICS.replace("X-NETMON-TARGETS:ep-a\n", ""), encoding="utf-8")
    result = subprocess.run(
        [*netmon_command(), "meetings", "import", str(ics)],
        capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip
    assert result.returncode == 1
    assert "event 2 (Họp huyện): names no endpoints" in result.stderr


WEEKLY_ICS = """\
BEGIN:VCALENDAR
VERSION:2.0
PRODID:-//test//EN
BEGIN:VEVENT
UID:giao-ban-tuan@example
SUMMARY:Giao ban tuần
DTSTART;TZID=Asia/Ho_Chi_Minh:20250106T080000
DTEND;TZID=Asia/Ho_Chi_Minh:20250106T100000
RRULE:FREQ=WEEKLY;BYDAY=MO
EXDATE;TZID=Asia/Ho_Chi_Minh:20261214T080000
CATEGORIES:province
END:VEVENT
BEGIN:VEVENT
UID:giao-ban-tuan@example
RECURRENCE-ID;TZID=Asia/Ho_Chi_Minh:20261221T080000
SUMMARY:Giao ban tuần
DTSTART;TZID=Asia/Ho_Chi_Minh:20261222T140000
DTEND;TZID=Asia/Ho_Chi_Minh:20261222T160000
CATEGORIES:province
END:VEVENT
END:VCALENDAR
"""


def test_a_weekly_meeting_set_up_last_year_imports_as_the_meetings_to_come() -> None:
    # Set up in January 2025; imported on Friday 4 December 2026 for three weeks: the Mondays
    # to come, less the one cancelled (EXDATE), with the one moved to Tuesday afternoon.
    now = dt.datetime(2026, 12, 4, 9, 0, tzinfo=dt.UTC)
    meetings = ics_to_meetings(WEEKLY_ICS, now=now, days=21)
    assert [(m["name"], m["start"]) for m in meetings] == [
        ("Giao ban tuần 2026-12-07", "2026-12-07T08:00:00+07:00"),
        ("Giao ban tuần 2026-12-22", "2026-12-22T14:00:00+07:00"),
    ]
    assert {m["duration"] for m in meetings} == {"7200s"}


# Found by the fuzz campaign (tests/test_fuzz.py): each was an exception other than
# IcsImportError, which `netmon meetings import` does not catch.
ICS_HEAD = "BEGIN:VCALENDAR\nBEGIN:VEVENT\nSUMMARY:Weekly\nX-NETMON-DISTRICTS:D1\n"


@pytest.mark.parametrize(
    ("ics", "problem"),
    [
        # icalendar keeps a value it cannot read and raises when it is used
        (ICS_HEAD + "DTSTART:\nEND:VEVENT\nEND:VCALENDAR", "cannot read it"),
        # a property given twice comes back as a list
        (
            ICS_HEAD + "DTSTART:20261202T090000Z\nDTSTART:20261203T090000Z\nEND:VEVENT\n"
            "END:VCALENDAR",
            "cannot read it",
        ),
        (
            ICS_HEAD + "DTSTART:20261202T090000Z\nDURATION:xyz\nEND:VEVENT\nEND:VCALENDAR",
            "cannot read it",
        ),
    ],
)
def test_an_unreadable_event_is_an_import_problem_not_a_crash(ics: str, problem: str) -> None:
    with pytest.raises(IcsImportError, match=problem):
        ics_to_meetings(ics, now=dt.datetime(2026, 12, 1, tzinfo=dt.UTC))


@pytest.mark.parametrize(
    ("start", "expected"),
    [
        ("20261202T090000Z", 100),  # 5 million occurrences in the window: the first 100
        ("19900101T000000Z", "more than 100000 occurrences from DTSTART on"),  # never ends
    ],
)
def test_a_rule_every_second_is_cut_short_not_expanded(start: str, expected: int | str) -> None:
    # Found by the fuzz campaign: RRULE:FREQ=SECONDLY took 24 s per event, and from 1990 on
    # the import never ended.
    ics = ICS_HEAD + f"DTSTART:{start}\nRRULE:FREQ=SECONDLY\nEND:VEVENT\nEND:VCALENDAR"
    now = dt.datetime(2026, 12, 1, tzinfo=dt.UTC)
    if isinstance(expected, int):
        assert len(ics_to_meetings(ics, now=now)) == expected
    else:
        with pytest.raises(IcsImportError, match=expected):
            ics_to_meetings(ics, now=now)

"""The status page at `/`, as meeting staff see it: in a real browser, over the running demo.

Headless Chromium (tests/browser.py) opens the page of `netmon demo`: 215 endpoints by district,
all up but the lab's two slow sites (degraded); a fault makes one endpoint of another district
unreachable, a readiness check of that district
run from the page's form marks it NO-GO and the others GO, and its live state turns down. The
page fetches nothing from outside 127.0.0.1. Screenshots at a laptop's and a phone's width are
left in test-artifacts/ for a person to look at.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from selenium.webdriver.support.ui import Select

from netmon_lab import netns
from tests.browser import ARTIFACTS, Browser, chromium
from tests.demo_peer import Demo
from tests.helpers import NetmonProcess, http_get, metric_value, wait_until, write_config
from tests.lab.netlab import NetLab

ENDPOINTS = 215
SUMMARY = re.compile(
    r"(?P<go>\d+) GO, (?P<warn>\d+) WARN, (?P<nogo>\d+) NO-GO "
    r"\((?P<checked>\d+) endpoints checked in [\d.]+ s\)"
)


@pytest.fixture
def demo(_lab_ready: None) -> Iterator[Demo]:
    running = Demo()
    try:
        wait_until(
            lambda: list(running.up().values()) == [1.0] * ENDPOINTS,
            timeout=20,
            interval=0.5,
            what=f"{ENDPOINTS} endpoints up",
        )
        yield running
    finally:
        code = running.stop()
        namespace = re.search(r"network namespace (\S+)", running.output)
        assert code == 0, running.output
        assert namespace is not None, running.output
        assert namespace.group(1) not in netns.ip("netns", "list").stdout


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Browser]:
    with chromium(workdir=tmp_path) as started:
        yield started


def _districts(demo: Demo) -> dict[str, list[str]]:
    """Endpoint ids by district, as the targets API has them."""
    status, _, body = http_get(demo.url + "/api/v1/targets")
    assert status == 200
    districts: dict[str, list[str]] = {}
    for target in json.loads(body)["targets"]:
        if target["kind"] == "endpoint":
            districts.setdefault(target["district"], []).append(target["id"])
    return districts


def _endpoints(browser: Browser) -> dict[str, dict[str, str | None]]:
    rows = browser.attributes("li.endpoint", "data-target", "data-state", "data-verdict")
    return {str(row["data-target"]): row for row in rows}


@pytest.mark.peer
def test_the_browser_reports_what_a_page_fetches_from_outside_and_leaves_no_process(
    tmp_path: Path,
) -> None:
    page = tmp_path / "page.html"
    page.write_text(
        '<img src="https://cdn.example.org/logo.png"><script src="/local.js"></script>',
        encoding="utf-8",
    )
    with chromium(workdir=tmp_path) as browser:
        browser.open(page.as_uri())
        assert browser.outside_requests() == ["https://cdn.example.org/logo.png"]
        assert len(browser.processes()) > 2  # chromedriver, chromium, its helpers
    assert browser.processes() == []


@pytest.mark.netns
@pytest.mark.peer
def test_staff_see_every_endpoint_up_run_a_district_check_and_see_the_fault(
    demo: Demo, browser: Browser
) -> None:
    districts = _districts(demo)
    faults = demo.faults(standing=True)
    # The lab's slow sites: answering, but degraded once alerted; and a room whose codec says
    # its camera is unplugged: up, with what is wrong on its line.
    standing = {fault["target"] for fault in faults if fault["kind"] == "delay"}
    unplugged = {fault["target"] for fault in faults if fault["kind"] == "camera-unplug"}
    assert (len(standing), len(unplugged)) == (2, 1)
    browser.open(demo.url + "/")

    # Every endpoint, in the section of its district, up, and no verdict before any check.
    assert browser.find("#endpoint-count").text == str(ENDPOINTS)
    endpoints = _endpoints(browser)
    assert len(browser.find_all("li.endpoint")) == ENDPOINTS
    assert {row["data-state"] for t, row in endpoints.items() if t not in standing} == {"up"}
    assert {endpoints[t]["data-state"] for t in standing} <= {"up", "degraded"}
    assert {row["data-verdict"] for row in endpoints.values()} == {""}
    sections = browser.driver.execute_script(
        "return Object.fromEntries([...document.querySelectorAll('section.district')].map("
        "s => [s.dataset.district, [...s.querySelectorAll('li.endpoint')]"
        ".map(li => li.dataset.target).sort()]));"
    )
    assert len(sections) >= 27
    assert sections == {name: sorted(ids) for name, ids in districts.items()}

    # A small district (the check is quick), one of its endpoints unreachable.
    district = min(
        (
            d
            for d, ids in districts.items()
            if len(ids) >= 3 and not (standing | unplugged) & set(ids)
        ),
        key=lambda d: (len(districts[d]), d),
    )
    faulted, *others = sorted(districts[district])
    demo.inject({"kind": "endpoint-down", "target": faulted})

    Select(browser.find("#check-scope")).select_by_value(f"district:{district}")
    browser.find("#check-run").click()
    browser.wait_for(
        lambda driver: "NO-GO" in browser.find("#check-summary").text,
        timeout=20,
        what="the check's summary",
    )
    summary = browser.find("#check-summary").text
    counts = SUMMARY.fullmatch(summary)
    assert counts is not None, summary
    assert counts.group("go", "warn", "nogo", "checked") == (
        str(len(others)), "0", "1", str(len(others) + 1),
    )  # fmt: skip
    endpoints = _endpoints(browser)
    assert endpoints[faulted]["data-verdict"] == "NO-GO"
    assert {endpoints[other]["data-verdict"] for other in others} == {"GO"}
    unchecked = set(endpoints) - set(districts[district])
    assert {endpoints[target]["data-verdict"] for target in unchecked} == {""}
    assert demo.url + "/api/v1/checks" in browser.requests  # started by the page's script

    # The live refresh turns the faulted endpoint down, and so does a reload.
    browser.wait_for(
        lambda driver: _endpoints(browser)[faulted]["data-state"] == "down",
        timeout=15,
        what=f"{faulted} down on the live page",
    )

    # Above the districts, what needs attention, worst first: on a phone the districts are one
    # long column. The slow sites are there once their latency alerts fire (40 replies in the
    # window and 10 s above the level: within about a minute of the demo's start).
    def attention() -> list[tuple[str | None, str | None]]:
        rows = browser.attributes("#attention-list li", "data-target", "data-state")
        return [(row["data-target"], row["data-state"]) for row in rows]

    browser.wait_for(
        lambda driver: len(attention()) == 4, timeout=90, what="four endpoints needing attention"
    )
    assert attention()[0] == (faulted, "down")
    assert sorted(attention()[1:]) == sorted(
        [*((t, "degraded") for t in standing), *((t, "up") for t in unplugged)]
    )
    (room,) = unplugged
    problems = browser.find(f'li.endpoint[data-target="{room}"] .problems').text
    assert problems == "camera disconnected"
    assert browser.find("#attention").is_displayed()
    assert re.fullmatch(
        rf"{ENDPOINTS - 3} up, 2 degraded, 1 down, 0 unknown", browser.find("#live").text
    )

    # What staff see now (summary, what needs attention, verdicts), on a laptop and a phone.
    for name, width, mobile in (("laptop", 1280, False), ("phone", 390, True)):
        with browser.viewport(width, mobile=mobile):
            path = browser.screenshot(ARTIFACTS / f"status-page-{name}.png")
            print(f"status page at {width} px wide: {path}")
            assert browser.overflow() <= 0, f"the page scrolls sideways at {width} px"

    browser.reload()
    endpoints = _endpoints(browser)
    assert endpoints[faulted]["data-state"] == "down"
    others_up = {row["data-state"] for t, row in endpoints.items() if t not in {faulted, *standing}}
    assert others_up == {"up"}
    # The live refresh (at load, then every 5 s) keeps the slow sites degraded, not just up.
    browser.wait_for(
        lambda driver: "degraded" in browser.find("#live").text, timeout=10, what="a refresh"
    )
    assert {_endpoints(browser)[t]["data-state"] for t in standing} == {"degraded"}
    assert endpoints[faulted]["data-verdict"] == "NO-GO"  # the last verdicts stay
    dot = "return getComputedStyle(arguments[0], '::before').backgroundColor;"
    colours = {
        target: browser.driver.execute_script(dot, browser.find(f'li[data-target="{target}"]'))
        for target in (faulted, *others)
    }
    assert len({colours[other] for other in others}) == 1
    assert colours[faulted] != colours[others[0]]  # down is another colour than up

    assert browser.outside_requests() == []
    # The page links no icon, so the browser asks for /favicon.ico, which is not served.
    errors = [e for e in browser.console_errors() if "/favicon.ico " not in e]
    assert errors == []


@pytest.mark.peer
def test_with_an_api_token_the_form_asks_for_it_once_and_then_runs_checks(
    browser: Browser, tmp_path: Path
) -> None:
    token = "meeting-room-token-0123456789"  # noqa: S105 (a test token)
    (tmp_path / "token").write_text(token + "\n", encoding="utf-8")
    config = write_config(
        tmp_path / "netmon.yaml",
        {
            "http": {"token": {"file": str(tmp_path / "token")}},
            "alerting": {"database": str(tmp_path / "alerts.sqlite")},
            "targets": [
                {"id": "ep-hall", "address": "127.0.0.1", "kind": "endpoint",
                 "district": "TP Thanh Hóa", "group": "province"},
            ],
        },
    )  # fmt: skip
    netmon = NetmonProcess(config)
    try:
        browser.open(netmon.url + "/")
        token_field = browser.find("#check-token")
        assert not token_field.is_displayed()  # nothing to ask until netmon wants it
        summary = browser.find("#check-summary")
        Select(browser.find("#check-scope")).select_by_value("group:province")

        browser.find("#check-run").click()
        browser.wait_for(lambda driver: "API token" in summary.text, timeout=10, what="the ask")
        assert token_field.is_displayed()

        token_field.send_keys("not-the-token-at-all")
        browser.find("#check-run").click()
        browser.wait_for(
            lambda driver: summary.text == "that token is not accepted", timeout=10, what="refusal"
        )

        token_field.clear()
        token_field.send_keys(token)
        browser.find("#check-run").click()
        browser.wait_for(lambda driver: SUMMARY.fullmatch(summary.text), timeout=20, what="a check")
        assert _endpoints(browser)["ep-hall"]["data-verdict"] == "GO"
        assert not token_field.is_displayed()

        # The tab remembers it: the next check needs no typing.
        browser.reload()
        Select(browser.find("#check-scope")).select_by_value("group:province")
        browser.find("#check-run").click()
        browser.wait_for(
            lambda driver: SUMMARY.fullmatch(browser.find("#check-summary").text),
            timeout=20,
            what="a second check",
        )
        assert token not in browser.driver.page_source
    finally:
        netmon.stop()


def test_staff_acknowledge_a_firing_alert_from_the_page(
    browser: Browser, netlab: NetLab, tmp_path: Path
) -> None:
    token = "on-call-token-0123456789"  # noqa: S105 (a test token)
    (tmp_path / "token").write_text(token + "\n", encoding="utf-8")
    host = netlab.add_host()
    config = write_config(
        tmp_path / "netmon.yaml",
        {
            "http": {"token": {"file": str(tmp_path / "token")}},
            "alerting": {"database": str(tmp_path / "alerts.sqlite")},
            "targets": [
                {"id": "ep-xa", "address": host.address, "kind": "endpoint",
                 "name": "UBND xã Thanh Sơn", "district": "Bá Thước"},
            ],
        },
    )  # fmt: skip
    netmon = NetmonProcess(config)
    try:
        wait_until(
            lambda: metric_value(netmon.metrics(), "netmon_target_up", target="ep-xa") == 1,
            timeout=10,
            what="the endpoint up",
        )
        host.link_down()
        browser.open(netmon.url + "/")
        button = browser.wait_for(
            lambda driver: driver.find_elements("css selector", "li.alert button.ack-button"),
            timeout=20,
            what="the alert with its Acknowledge button",
        )[0]
        assert "UBND xã Thanh Sơn" in browser.find("li.alert").text
        button.click()
        note = browser.find("#alerts-note")
        browser.wait_for(lambda driver: "your name" in note.text, timeout=5, what="the ask")

        browser.find("#ack-by").send_keys("Tuấn")
        browser.find("li.alert button.ack-button").click()
        browser.wait_for(lambda driver: "API token" in note.text, timeout=10, what="token ask")
        browser.find("#check-token").send_keys(token)
        browser.find("li.alert button.ack-button").click()
        taken = browser.wait_for(
            lambda driver: driver.find_elements("css selector", "li.alert small.ack"),
            timeout=10,
            what="the alert shown as taken",
        )
        assert taken[0].text == "✓ Tuấn"
        _, _, body = http_get(netmon.url + "/api/v1/alerts")
        (alert,) = json.loads(body)["alerts"]
        assert (alert["acknowledged"], alert["acknowledged_by"]) == (True, "Tuấn")
        browser.driver.save_screenshot(str(ARTIFACTS / "status-page-alert-acknowledged.png"))
        assert token not in browser.driver.page_source
    finally:
        netmon.stop()

"""The availability report as people read it: HTML (English and Vietnamese) and PDF, rendered
from the hand-computed November of tests/test_availability_report.py.

The figures on the page are the hand computation's, formatted; the page fetches nothing (read
as text, and opened in headless Chromium, which records every request), fits a phone's width
(only the tables scroll sideways, inside their wrappers); the PDF carries the Vietnamese names
exactly, in an embedded DejaVu Sans. Screenshots at a laptop's and a phone's width are left in
test-artifacts/ for a person to look at.
"""

from __future__ import annotations

import copy
import io
import re
import sys
from pathlib import Path
from typing import Any

import pypdf
import pytest

from netmon.availability.charts import daily_means
from netmon.availability.db import Change, JournalDB
from netmon.availability.html import render_html
from netmon.availability.model import Report
from netmon.availability.pdf import render_pdf
from netmon.availability.quality import call_quality, meetings_between
from netmon.availability.render import render
from netmon.availability.report import build_report
from netmon.availability.texts import TEXTS, duration, percent
from netmon.config.loader import load_data
from tests.browser import ARTIFACTS, chromium
from tests.test_availability_report import CONFIG, MONTH, at, journal, meeting_record

# ep-a by hand (tests/test_availability_report.py): 8,120 s down and counted; 7,202 s unknown,
# 3,600 s in maintenance and 3,600 s behind the cut link, all out of the denominator.
A_DOWN = 4500 + 20 + 3600
A_UP = MONTH - 7202 - 3600 - 3600 - A_DOWN
A_PERCENT = f"{A_UP / (A_UP + A_DOWN) * 100:.3f}"  # 99.685
NAMES = ("Xã Tân Lập", "Phường Đồng Xoài", "UBND huyện Bù Đăng")
HOLIDAY = {"en": "Vietnam Cultural Day", "vi": "Ngày Văn hóa Việt Nam"}


def _report(tmp: Path, lang: str, config: dict[str, Any] = CONFIG) -> Report:
    """The hand-computed month (its journal and its meeting quality record) as a Report."""
    db = journal(tmp / "journal.sqlite")
    record = meeting_record(tmp / "meetings.sqlite")
    inventory = load_data(config)
    start, end = at(1, 0), at(1, 0, month=12)
    try:
        slice_ = db.read(start, end)
        quality = call_quality(record, meetings_between(inventory, start, end))
    finally:
        db.shutdown()
        record.shutdown()
    return build_report(
        slice_,
        inventory,
        inventory.config.availability,
        generated=at(1, 3, month=12),
        lang=lang,
        call_quality=quality,
    )


@pytest.fixture(scope="module")
def reports(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Report]:
    return {lang: _report(tmp_path_factory.mktemp(lang), lang) for lang in ("en", "vi")}


@pytest.fixture(scope="module")
def pages(reports: dict[str, Report]) -> dict[str, str]:
    return {lang: render_html(report, lang) for lang, report in reports.items()}


def _text(page: str) -> str:
    """The page's text as a reader sees it: tags out, entities read, spaces collapsed."""
    import html

    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", page)).split())


def test_durations_and_percentages_are_written_as_people_read_them() -> None:
    assert duration(4520.4, "en") == "1 h 15 min 20 s"
    assert duration(4520, "vi") == "1 giờ 15 phút 20 giây"
    assert duration(90061, "en") == "1 d 1 h 1 min 1 s"
    assert duration(3600, "en") == "1 h"
    assert (duration(0, "en"), duration(None, "en")) == ("0 s", "—")
    assert percent(0.996849, "en") == "99.685 %"
    assert percent(0.996849, "vi") == "99,685 %"
    assert (percent(1.0, "en"), percent(None, "vi")) == ("100.000 %", "—")


@pytest.mark.parametrize("lang", ["en", "vi"])
def test_the_page_shows_the_hand_computed_month(pages: dict[str, str], lang: str) -> None:
    words = TEXTS[lang]
    text = _text(pages[lang])
    assert text.startswith(f"{words['title']} · 2026-11 ")
    assert "2026-11-01 00:00:00 – 2026-12-01 00:00:00 (Asia/Ho_Chi_Minh)" in text
    shown = A_PERCENT.replace(".", ",") if lang == "vi" else A_PERCENT
    # ep-a first among the worst sites, with its availability and its counted downtime.
    worst = text.split(words["worst"], 1)[1]
    assert worst.startswith(
        f" {words['rank']} {words['site']} {words['district']} {words['availability']} "
        f"{words['down']} {words['outages']} 1 Xã Tân Lập ep-a D1 {shown} % "
        f"{duration(A_DOWN, lang)} 3 2 "
    )
    assert duration(A_DOWN, "en") == "2 h 15 min 20 s"
    for name in NAMES:
        assert name in text
    # The evidence: local times, the cause, the alert; the gap; the meeting and its checks.
    assert "Xã Tân Lập ep-a 2026-11-03 23:30:00 2026-11-04 00:45:00" in text
    assert "2026-11-30 23:00:00 2026-12-01 00:00:00 ↦" in text
    assert "2026-11-10 12:00:00 2026-11-10 14:00:00" in text
    assert "Họp tỉnh 2026-11-26 08:00:00 – 10:00:00" in text
    # ep-b in the call: mean MOS 4.13, lowest 3.10, 2 poor minutes; ep-c never in it.
    mos = ("4,13", "3,10") if lang == "vi" else ("4.13", "3.10")
    assert f"GO {words['yes']} — {mos[0]} {mos[1]} 2 " in text
    assert f"NO-GO {words['no']} not registered (SIP) — — — " in text
    # The policy: its version, the holiday by name, the formulas.
    assert text.count("netmon-availability/1") == 2  # the header and the policy block
    assert f"2026-11-24 — {HOLIDAY[lang]}" in text
    assert "07:30–11:30, 13:30–17:00" in text
    # The quality figure (`degraded` in the month's config): ep-c's lossy hour counted down.
    c_up = 30 * 86400 - 7204 - 3600
    quality = percent((c_up - 3600) / (c_up + 3600), lang)
    assert words["quality"] in text
    assert f"UBND huyện Bù Đăng ep-c D2 endpoint {percent(c_up / (c_up + 3600), lang)} " in text
    assert quality in text.split("UBND huyện Bù Đăng ep-c D2 endpoint", 2)[-1][:80]


def test_the_charts_show_each_day_and_each_hour(
    reports: dict[str, Report], pages: dict[str, str]
) -> None:
    sites = reports["en"].sites
    means = daily_means(sites, 30)
    # The 4th: ep-a down 45 min after midnight (96.875 %), the three other sites up all day.
    assert [s.subject for s in sites] == ["ep-a", "ep-b", "sw-d1", "ep-c"]
    assert means[3] == pytest.approx((1 - 2700 / 86400 + 3) / 4)
    page = pages["en"]
    assert len(re.findall(r"<rect [^>]*><title>2026-11-\d\d: ", page)) == 30
    assert "<title>2026-11-04: 99.219 %</title>" in page
    # By hour: ep-a's 45 min after midnight (4th); before it, 30 min (3rd) and 1 h (30th).
    assert "<title>00:00–01:00: 45 min</title>" in page
    assert "<title>23:00–00:00: 1 h 30 min</title>" in page
    assert len(re.findall(r"<title>\d\d:00–\d\d:00: ", page)) == 24
    assert "the mean of the 4 sites' availability" in _text(page)


def test_the_vietnamese_page_is_in_vietnamese(pages: dict[str, str]) -> None:
    text = _text(pages["vi"])
    for label in (
        "Báo cáo khả dụng", "Giờ hành chính", "Huyện", "Đường truyền", "Thời gian ngừng",
        "Nguyên nhân", "Bảo trì", "Không rõ", "Công thức", "Thứ Hai, Thứ Ba",
        "hoạt động / (hoạt động + ngừng)", "bảo trì mw-1: thay switch",
        "tính cho đường truyền của sw-d1",
    ):  # fmt: skip
        assert label in text, label
    assert '<html lang="vi">' in pages["vi"]
    # Every fixed text of the policy has its translation: none is left in English.
    assert TEXTS["vi"]["english"] not in text
    assert "up / (up + down)" not in text
    assert "Availability report" not in text


def test_every_value_is_escaped(tmp_path: Path) -> None:
    config = copy.deepcopy(CONFIG)
    config["targets"][3]["name"] = '<img src=x onerror="alert(1)"> & Co'
    page = render_html(_report(tmp_path, "en", config), "en")
    assert "<img" not in page
    assert "&lt;img src=x onerror=&quot;alert(1)&quot;&gt; &amp; Co" in page


@pytest.mark.parametrize("lang", ["en", "vi"])
def test_the_page_refers_to_nothing_outside_itself(pages: dict[str, str], lang: str) -> None:
    page = pages[lang]
    for reference in ("http:", "https:", "//", "src=", "href=", "url(", "@import", "<script"):
        assert reference not in page, reference
    assert "<style>" in page
    assert page.count("<svg") == 2  # the charts, inline


@pytest.mark.peer
def test_in_a_browser_the_page_fetches_nothing_and_fits_a_phone(
    pages: dict[str, str], tmp_path: Path
) -> None:
    with chromium(workdir=tmp_path) as browser:
        for lang, page in pages.items():
            path = tmp_path / f"report-{lang}.html"
            path.write_text(page, encoding="utf-8")
            browser.open(path.as_uri())
            assert browser.find("h1").text.startswith(TEXTS[lang]["title"])
            assert browser.outside_requests() == []
            assert browser.console_errors() == []
            # Every table scrolls inside its wrapper; nothing else is wider than the screen.
            unwrapped = browser.driver.execute_script(
                "return [...document.querySelectorAll('table')]"
                ".filter(t => !t.parentElement.matches('div.scroll')).length;"
            )
            assert unwrapped == 0
            for name, width, mobile in (("laptop", 1280, False), ("phone", 390, True)):
                with browser.viewport(width, mobile=mobile):
                    shot = browser.screenshot(ARTIFACTS / f"availability-{lang}-{name}.png")
                    print(f"availability report ({lang}) at {width} px wide: {shot}")
                    assert browser.overflow() <= 0, f"the page scrolls sideways at {width} px"
                    wide = browser.driver.execute_script(
                        "return [...document.body.querySelectorAll('*')]"
                        ".filter(e => !e.closest('div.scroll'))"
                        ".filter(e => e.getBoundingClientRect().right > window.innerWidth + 1)"
                        ".map(e => e.tagName + '.' + e.className);"
                    )
                    assert wide == [], f"wider than {width} px outside a table's wrapper"
        assert browser.outside_requests() == []


def _pdf_text(pdf: bytes) -> tuple[str, set[str]]:
    reader = pypdf.PdfReader(io.BytesIO(pdf))
    text = "\n".join(page.extract_text() for page in reader.pages)
    embedded = set()
    for page in reader.pages:
        for font in page["/Resources"]["/Font"].values():
            font = font.get_object()
            for descendant in font.get("/DescendantFonts", [font]):
                descriptor = descendant.get_object().get("/FontDescriptor")
                if descriptor is not None and "/FontFile2" in descriptor.get_object():
                    embedded.add(str(font["/BaseFont"]).split("+", 1)[-1])
    return text, embedded


@pytest.mark.parametrize("lang", ["en", "vi"])
def test_the_pdf_carries_the_vietnamese_names_exactly(
    reports: dict[str, Report], lang: str
) -> None:
    pdf = render(reports[lang], "pdf", lang=lang)
    assert isinstance(pdf, bytes)
    assert pdf.startswith(b"%PDF-")
    text, embedded = _pdf_text(pdf)
    for name in (*NAMES, "Họp tỉnh", HOLIDAY[lang], TEXTS[lang]["title"]):
        assert name in text, name
    assert (A_PERCENT.replace(".", ",") if lang == "vi" else A_PERCENT) + " %" in text
    # The glyphs come from DejaVu Sans, embedded (not a viewer's substitute).
    assert "DejaVu-Sans" in embedded, embedded
    assert all(name.startswith("DejaVu-Sans") for name in embedded), embedded


def test_render_gives_html_as_text_and_pdf_as_bytes(reports: dict[str, Report]) -> None:
    page = render(reports["vi"], "html", lang="vi")
    assert isinstance(page, str)
    assert page == render_html(reports["vi"], "vi")
    with pytest.raises(ValueError, match="language"):
        render(reports["vi"], "html", lang="fr")


def test_without_weasyprint_a_pdf_is_refused_with_what_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "weasyprint", None)  # `import weasyprint` fails
    with pytest.raises(RuntimeError, match=r"pip install 'netmon\[report\]'.*libpango-1\.0-0"):
        render_pdf("<p>x</p>")


def test_targets_of_no_district_have_a_named_row_in_the_summary(tmp_path: Path) -> None:
    inventory = load_data({"targets": [{"id": "core", "address": "192.0.2.9", "kind": "router"}]})
    db = JournalDB(tmp_path / "j.sqlite")
    db.open()
    try:
        db.start_run(1000.0)
        db.stop_run(1000.0, 2000.0)
        db.record([Change("core", 1001.0, "up")])
        journal = db.read(1000.0, 2000.0)
    finally:
        db.shutdown()
    report = build_report(journal, inventory, inventory.config.availability)
    for lang, label in (("en", "(no district)"), ("vi", "(không thuộc huyện)")):
        summary = _text(render_html(report, lang)).split(TEXTS[lang]["worst"])[0]
        assert f" {label} 100" in summary

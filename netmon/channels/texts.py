"""Page texts: what an on-call engineer reads, in English or Vietnamese.

Two styles. **E-mail**: `subject`, `text_body` and `html_body` for one message that carries
every page handed together to one recipient (an alert group); the HTML is a simple readable
layout with every value escaped, the text part says the same for clients without HTML.
**SMS**: `sms` for one page, short: the time it was sent (HH:MM), what kind of page it is,
what failed, the site and district, since when, and the status page link when there is one.

Every time is shown in Asia/Ho_Chi_Minh (UTC+7, no daylight saving). The time of sending
starts every SMS: SMS brand-name and Zalo providers drop a message whose phone and content
repeat within 5 minutes, and a reminder or a second page about the same alert must not be
swallowed as a duplicate (a retry of the same page has the same time: dropping that is right).

SMS length: a text that fits the GSM 03.38 7-bit alphabet costs one SMS up to 160 characters
(153 a part beyond). Vietnamese with diacritics does not fit it, so it is sent as UCS-2: 70
characters in one SMS, 67 a part beyond. `sms` keeps a GSM-7 text within 160 characters and
a UCS-2 one within 134 (two parts, billed as two SMS by most providers) by shortening what
failed; a long site name or link may still make it longer. `strip_diacritics=True` (off by
default: the diacritics carry meaning, "mất" and "mắt" are different words) turns the text
into plain letters ("Mat ket noi"), which fits GSM-7: 160 characters in one SMS.

The alert summaries themselves come from the alerting config's language (AlertEvent.summary);
these texts only frame them, in the page's language.
"""

from __future__ import annotations

import datetime as dt
import html
import math
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from netmon.alerting.model import AlertEvent, Severity
from netmon.channels.base import Page, PageKind
from netmon.config.alerting import Language

try:
    LOCAL_TZ: dt.tzinfo = ZoneInfo("Asia/Ho_Chi_Minh")
except ZoneInfoNotFoundError:  # no tz database on the machine: Vietnam has kept UTC+7 since 1975
    LOCAL_TZ = dt.timezone(dt.timedelta(hours=7), "+07")

SMS_GSM_LIMIT = 160  # one SMS in the GSM 03.38 alphabet
SMS_UCS2_LIMIT = 134  # two UCS-2 parts of 67 characters: Vietnamese with diacritics
_MIN_WHAT = 24  # what failed is never shortened below this many characters
_SUBJECT_SITES = 2  # sites named in a subject about several alerts; the rest are counted


@dataclass(frozen=True, slots=True)
class Words:
    """The wording of one language."""

    firing: str
    reminder: str  # {n}: the reminder's number
    resolved: str
    acknowledged: str  # {by}: who took it
    step: str  # {n}: the escalation step, from 1
    alerts: str  # {n} alerts (several in one subject)
    more: str  # (+{n} more)
    severity: dict[Severity, str]
    site: str
    district: str
    target: str
    since: str
    until: str
    details: str
    status_page: str
    how_to_ack: str  # {command}
    someone: str
    footer: str  # {page_ids}
    date_format: str


WORDS: dict[Language, Words] = {
    "en": Words(
        firing="Alert",
        reminder="Reminder {n}",
        resolved="Resolved",
        acknowledged="Acknowledged by {by}",
        step="escalation step {n}",
        alerts="{n} alerts",
        more="+{n} more",
        severity={
            Severity.CRITICAL: "critical",
            Severity.MAJOR: "major",
            Severity.WARNING: "warning",
            Severity.INFO: "info",
        },
        site="Site",
        district="District",
        target="Target",
        since="since",
        until="until",
        details="Details",
        status_page="Status page",
        how_to_ack="To acknowledge: {command}",
        someone="someone",
        footer="Sent by netmon (page {page_ids}).",
        date_format="%Y-%m-%d %H:%M",
    ),
    "vi": Words(
        firing="Cảnh báo",
        reminder="Nhắc lại lần {n}",
        resolved="Đã khôi phục",
        acknowledged="Đã nhận xử lý bởi {by}",
        step="bước {n}",
        alerts="{n} cảnh báo",
        more="+{n} cảnh báo khác",
        severity={
            Severity.CRITICAL: "nghiêm trọng",
            Severity.MAJOR: "quan trọng",
            Severity.WARNING: "lưu ý",
            Severity.INFO: "thông tin",
        },
        site="Địa điểm",
        district="Địa bàn",
        target="Thiết bị",
        since="từ lúc",
        until="đến",
        details="Chi tiết",
        status_page="Trang trạng thái",
        how_to_ack="Để nhận xử lý: {command}",
        someone="(không rõ)",
        footer="Gửi từ netmon (mã {page_ids}).",
        date_format="%H:%M %d/%m/%Y",
    ),
}

_SEVERITY_COLOUR = {
    Severity.CRITICAL: "#b71c1c",
    Severity.MAJOR: "#e65100",
    Severity.WARNING: "#f9a825",
    Severity.INFO: "#1565c0",
}
_KIND_COLOUR = {PageKind.RESOLVED: "#2e7d32", PageKind.ACKNOWLEDGED: "#455a64"}


def local(timestamp: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(timestamp, LOCAL_TZ)


def hhmm(timestamp: float) -> str:
    return local(timestamp).strftime("%H:%M")


def reminder_number(page: Page) -> int:
    """The escalation engine's count of repeats when it gives one (`extra["repeat"]`), else
    the page's escalation step from 1."""
    repeat = page.extra.get("repeat", "")
    return int(repeat) if repeat.isdigit() and int(repeat) > 0 else page.step + 1


def headline(page: Page, language: Language) -> str:
    """What kind of page this is: "Cảnh báo", "Nhắc lại lần 2", "Đã khôi phục",
    "Đã nhận xử lý bởi Tuấn"."""
    words = WORDS[language]
    if page.kind is PageKind.REMINDER:
        return words.reminder.format(n=reminder_number(page))
    if page.kind is PageKind.RESOLVED:
        return words.resolved
    if page.kind is PageKind.ACKNOWLEDGED:
        return words.acknowledged.format(by=page.acknowledged_by or words.someone)
    return words.firing


def place(event: AlertEvent) -> str:
    """Where the alert is, for people: its site, else its district, else the target's id."""
    return event.context.get("site") or event.context.get("district") or event.target


def _events(pages: Sequence[Page]) -> list[AlertEvent]:
    return [event for page in pages for event in page.events]


def _top_severity(events: Sequence[AlertEvent]) -> Severity:
    firing = [event for event in events if event.firing] or list(events)
    return max((event.severity for event in firing), key=lambda s: s.rank, default=Severity.INFO)


def _leading_page(pages: Sequence[Page]) -> Page:
    # A group may mix kinds (a new alert and another's resolve): the subject speaks of the
    # most pressing one.
    for kind in (PageKind.FIRING, PageKind.REMINDER, PageKind.ACKNOWLEDGED):
        for page in pages:
            if page.kind is kind:
                return page
    return pages[0]


# --- e-mail ---------------------------------------------------------------------------------


def subject(pages: Sequence[Page], language: Language) -> str:
    """One line: the top severity, the kind of page, the site and what failed, e.g.
    "[CRITICAL] Alert: Xã Tân Lập - ep-tanlap is unreachable (no reply to ping)"; for several
    alerts "[CRITICAL] 3 alerts - Xã Tân Lập, Xã Yên Khương +1"."""
    if not pages:
        raise ValueError("a subject needs at least one page")
    words = WORDS[language]
    events = _events(pages)
    severity = words.severity[_top_severity(events)].upper()
    kind = headline(_leading_page(pages), language)
    if len(events) == 1:
        event = events[0]
        return _one_line(f"[{severity}] {kind}: {place(event)} - {event.summary}")
    sites: list[str] = []
    for event in events:
        if place(event) not in sites:
            sites.append(place(event))
    named = ", ".join(sites[:_SUBJECT_SITES])
    if len(sites) > _SUBJECT_SITES:
        named += f" +{len(sites) - _SUBJECT_SITES}"
    count = words.alerts.format(n=len(events))
    if kind == words.firing:  # not "Alert: 3 alerts"
        return _one_line(f"[{severity}] {count} - {named}")
    return _one_line(f"[{severity}] {kind}: {count} - {named}")


def text_body(pages: Sequence[Page], language: Language) -> str:
    """The plain-text part: a section per page, a block per alert."""
    words = WORDS[language]
    lines: list[str] = []
    for page in pages:
        lines.append(_section_title(page, language))
        lines.append("=" * len(lines[-1]))
        for event in page.events:
            lines.append("")
            lines.append(f"[{words.severity[event.severity].upper()}] {_one_line(event.summary)}")
            lines.extend(f"  {label}: {value}" for label, value in _facts(event, language))
            if page.kind in (PageKind.FIRING, PageKind.REMINDER) and event.firing:
                lines.append("  " + words.how_to_ack.format(command=_ack_command(event)))
        lines.append("")
    status_urls = _status_urls(pages)
    lines.extend(f"{words.status_page}: {url}" for url in status_urls)
    if status_urls:
        lines.append("")
    lines.append("-- ")
    lines.append(words.footer.format(page_ids=", ".join(page.page_id for page in pages)))
    return "\n".join(lines) + "\n"


def html_body(pages: Sequence[Page], language: Language) -> str:
    """The HTML part: the same as the text part, laid out; every value escaped."""
    words = WORDS[language]
    esc = html.escape
    parts = [
        f'<!DOCTYPE html>\n<html lang="{language}"><head><meta charset="utf-8">',
        f"<title>{esc(subject(pages, language))}</title></head>",
        '<body style="font-family: Arial, Helvetica, sans-serif; font-size: 14px; '
        'color: #212121;">',
    ]
    for page in pages:
        colour = _KIND_COLOUR.get(page.kind, _SEVERITY_COLOUR[_top_severity(page.events)])
        parts.append(
            f'<h2 style="color: {colour}; margin: 16px 0 8px;">'
            f"{esc(_section_title(page, language))}</h2>"
        )
        for event in page.events:
            sev_colour = _SEVERITY_COLOUR[event.severity]
            parts.append(
                '<table style="border-collapse: collapse; margin: 0 0 12px; '
                f'border-left: 4px solid {sev_colour};">'
            )
            parts.append(
                f'<tr><td colspan="2" style="padding: 4px 8px;"><strong style="color: '
                f'{sev_colour};">{esc(words.severity[event.severity].upper())}</strong> '
                f"{esc(event.summary)}</td></tr>"
            )
            for label, value in _facts(event, language):
                parts.append(
                    '<tr><td style="padding: 2px 8px; color: #616161;">'
                    f'{esc(label)}</td><td style="padding: 2px 8px;">{esc(value)}</td></tr>'
                )
            if page.kind in (PageKind.FIRING, PageKind.REMINDER) and event.firing:
                command = f"<code>{esc(_ack_command(event))}</code>"
                ack = esc(words.how_to_ack).replace(esc("{command}"), command)
                parts.append(
                    f'<tr><td colspan="2" style="padding: 2px 8px; color: #616161;">{ack}</td></tr>'
                )
            parts.append("</table>")
    for url in _status_urls(pages):
        link = esc(url, quote=True)
        parts.append(f'<p>{esc(words.status_page)}: <a href="{link}">{esc(url)}</a></p>')
    footer = words.footer.format(page_ids=", ".join(page.page_id for page in pages))
    parts.append(f'<p style="color: #9e9e9e; font-size: 12px;">{esc(footer)}</p>')
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def _section_title(page: Page, language: Language) -> str:
    title = headline(page, language)
    if page.kind in (PageKind.FIRING, PageKind.REMINDER) and page.step > 0:
        title += f" ({WORDS[language].step.format(n=page.step + 1)})"
    return title


def _facts(event: AlertEvent, language: Language) -> list[tuple[str, str]]:
    words = WORDS[language]
    facts: list[tuple[str, str]] = []
    if event.context.get("site"):
        facts.append((words.site, event.context["site"]))
    if event.context.get("district"):
        facts.append((words.district, event.context["district"]))
    facts.append((words.target, f"{event.target} ({event.alertname})"))
    when = _date(event.starts_at, language)
    if not event.firing and event.ends_at is not None:
        when += f" {words.until} {_date(event.ends_at, language)}"
    facts.append((_capitalised(words.since), when))
    if event.description:
        facts.append((words.details, event.description))
    return facts


def _date(timestamp: float, language: Language) -> str:
    return local(timestamp).strftime(WORDS[language].date_format) + " (GMT+7)"


def _capitalised(text: str) -> str:
    return text[:1].upper() + text[1:]


def _ack_command(event: AlertEvent) -> str:
    return f"netmon alerts ack {event.fingerprint}"


def _status_urls(pages: Sequence[Page]) -> list[str]:
    return list(dict.fromkeys(page.status_url for page in pages if page.status_url))


def _one_line(text: str) -> str:
    return " ".join(text.split())


# --- SMS ------------------------------------------------------------------------------------

# GSM 03.38: the basic alphabet (one unit each) and its extension table (two units each).
_GSM_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
_GSM_EXTENDED = frozenset("^{}\\[~]|€\f")


def is_gsm7(text: str) -> bool:
    return all(char in _GSM_BASIC or char in _GSM_EXTENDED for char in text)


def sms_units(text: str) -> int:
    """Characters as an SMS counts them: GSM-7 septets (2 for ^{}[]~|€), else UTF-16 units."""
    if is_gsm7(text):
        return sum(2 if char in _GSM_EXTENDED else 1 for char in text)
    return len(text.encode("utf-16-le")) // 2


def sms_segments(text: str) -> int:
    """How many SMS the text is sent as (and billed as, by most providers)."""
    units = sms_units(text)
    single, part = (160, 153) if is_gsm7(text) else (70, 67)
    return 1 if units <= single else math.ceil(units / part)


def strip_diacritics(text: str) -> str:
    """Vietnamese without its marks ("Mất kết nối" -> "Mat ket noi"); any character left
    outside GSM-7 becomes "?"."""
    decomposed = unicodedata.normalize("NFD", text.replace("đ", "d").replace("Đ", "D"))
    plain = "".join(char for char in decomposed if not unicodedata.combining(char))
    return "".join(char if is_gsm7(char) else "?" for char in unicodedata.normalize("NFC", plain))


def sms(page: Page, language: Language, *, strip: bool = False) -> str:
    """One short text for one page, e.g. "16:05 Cảnh báo nghiêm trọng: ep-tanlap mất kết nối
    (không phản hồi ping). Xã Tân Lập, Huyện Như Xuân. Từ lúc 16:03. https://noc.example/s".

    Several alerts in one page: the first, then "+N more". Kept within SMS_GSM_LIMIT (GSM-7)
    or SMS_UCS2_LIMIT (UCS-2) characters by shortening what failed (see the module doc).
    """
    if not page.events:
        raise ValueError("an SMS needs a page about at least one alert")
    words = WORDS[language]
    event = page.events[0]
    prefix = f"{hhmm(page.created_at)} {_sms_kind(page, language)}: "
    what = _one_line(event.summary)
    others = len(page.events) - 1
    more = f" ({words.more.format(n=others)})" if others else ""
    where = ", ".join(
        value for value in (event.context.get("site"), event.context.get("district")) if value
    )
    tail = [where] if where else []
    tail.append(_capitalised(_sms_when(page, event, language)))
    if page.status_url:
        tail.append(page.status_url)

    def assemble(what: str) -> str:
        text = prefix + what + more
        # A shortened "(không..." takes no full stop after it.
        text += (" " if text.endswith("...") else ". ") + ". ".join(tail)
        return strip_diacritics(text) if strip else text

    text = assemble(what)
    limit = SMS_GSM_LIMIT if is_gsm7(text) else SMS_UCS2_LIMIT
    excess = sms_units(text) - limit
    if excess > 0 and len(what) > _MIN_WHAT:
        keep = max(_MIN_WHAT, len(what) - excess - 3)
        text = assemble(what[:keep].rstrip() + "...")
    return text


def _sms_kind(page: Page, language: Language) -> str:
    words = WORDS[language]
    severity = words.severity[page.events[0].severity]
    if page.kind is PageKind.FIRING:
        return f"{words.firing} {severity}"
    if page.kind is PageKind.REMINDER:
        return f"{headline(page, language)}, {severity}"
    return headline(page, language)


def _sms_when(page: Page, event: AlertEvent, language: Language) -> str:
    words = WORDS[language]
    sent = local(page.created_at).date()

    def short(timestamp: float) -> str:
        # The day too when it is not the day of sending: "16:03 08/10".
        when = local(timestamp)
        return when.strftime("%H:%M" if when.date() == sent else "%H:%M %d/%m")

    when = f"{words.since} {short(event.starts_at)}"
    if not event.firing and event.ends_at is not None:
        when += f" {words.until} {short(event.ends_at)}"
    return when


__all__ = [
    "LOCAL_TZ",
    "SMS_GSM_LIMIT",
    "SMS_UCS2_LIMIT",
    "WORDS",
    "headline",
    "html_body",
    "is_gsm7",
    "sms",
    "sms_segments",
    "sms_units",
    "strip_diacritics",
    "subject",
    "text_body",
]

"""What a Telegram page looks like: HTML text within Telegram's limit, and its buttons.

Pure functions, no I/O. A run of pages to one chat becomes one message: a header per kind of
page (firing, reminder, resolved, acknowledged), then one block per alert. Every value (summary,
site, district, names, URLs) is escaped with `html.escape`; tags are only ours, and each block
is built whole, with its visible text beside its HTML, so the message is measured as Telegram
measures it (the text after entity parsing, in UTF-16 code units) and cut only between blocks:
never inside a tag or an entity. What does not fit becomes "+N more" ("+N cảnh báo khác").
The words and times are the e-mails' (`netmon.channels.texts`): one vocabulary for every channel.

Buttons (`callback_data` "ack:<fingerprint>" or "silence1h:<fingerprint>", at most 26 bytes)
go with firing alerts of FIRING and REMINDER pages: one row per alert shown, for the first
`MAX_BUTTON_ROWS` of them; the others are acknowledged from the status page, the API or the CLI.
"""

from __future__ import annotations

import html
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from netmon.alerting.model import AlertEvent, Severity
from netmon.channels.base import ActionKind, Page, PageKind
from netmon.channels.texts import WORDS, headline, local
from netmon.config.alerting import Language

MAX_TEXT = 4096  # UTF-16 code units of the text after entity parsing (Bot API, sendMessage)
MAX_SUMMARY = 1000  # characters of one summary: one alert never fills a message alone
MAX_BUTTON_ROWS = 5
MAX_CALLBACK_DATA = 64  # bytes
_FINGERPRINT = re.compile(r"^[0-9a-f]{16}$")

BUTTONS = {
    ActionKind.ACKNOWLEDGE: "Đã nhận / Acknowledge",
    ActionKind.SILENCE_1H: "Tắt 1 giờ / Silence 1 h",
}
_KIND_MARK = {
    PageKind.FIRING: "🚨",
    PageKind.REMINDER: "🔁",
    PageKind.RESOLVED: "✅",
    PageKind.ACKNOWLEDGED: "👤",
}
_SEVERITY_MARK = {
    Severity.CRITICAL: "🔴",
    Severity.MAJOR: "🟠",
    Severity.WARNING: "🟡",
    Severity.INFO: "🔵",
}


def utf16_len(text: str) -> int:
    """Length as Telegram counts it: UTF-16 code units (an emoji outside the BMP is 2)."""
    return len(text.encode("utf-16-le")) // 2


@dataclass
class Piece:
    """HTML and the visible text it parses to, built together so neither is ever guessed."""

    html: str = ""
    plain: str = ""

    def text(self, value: str) -> Piece:
        self.html += html.escape(value)
        self.plain += value
        return self

    def tag(self, name: str, value: str, *, href: str = "") -> Piece:
        attrs = f' href="{html.escape(href, quote=True)}"' if href else ""
        self.html += f"<{name}{attrs}>{html.escape(value)}</{name}>"
        self.plain += value
        return self

    def __len__(self) -> int:
        return utf16_len(self.plain)


@dataclass
class Message:
    """One sendMessage: `html` with parse_mode=HTML, `plain` the same without entities (the
    fallback when Telegram cannot parse ours), `keyboard` the inline keyboard rows or None."""

    html: str
    plain: str
    keyboard: list[list[dict[str, str]]] | None
    alerts: int  # alert blocks shown in full
    more: int  # alerts only counted in "+N more"
    buttons: list[str] = field(default_factory=list)  # fingerprints with a row of buttons

    def reply_markup(self) -> dict[str, Any] | None:
        return {"inline_keyboard": self.keyboard} if self.keyboard else None


def local_time(unix: float, language: Language) -> str:
    """In Asia/Ho_Chi_Minh, as the e-mails write it."""
    return local(unix).strftime(WORDS[language].date_format)


def callback_data(kind: ActionKind, fingerprint: str) -> str:
    data = f"{kind.value}:{fingerprint}"
    assert len(data.encode()) <= MAX_CALLBACK_DATA, data
    return data


def parse_callback_data(data: object) -> tuple[ActionKind, str] | None:
    """(kind, fingerprint) from a button's callback_data; None when it is not one of ours."""
    if not isinstance(data, str) or len(data) > MAX_CALLBACK_DATA:
        return None
    kind, _, fingerprint = data.partition(":")
    try:
        action = ActionKind(kind)
    except ValueError:
        return None
    return (action, fingerprint) if _FINGERPRINT.match(fingerprint) else None


def _header(page: Page, language: Language) -> Piece:
    words = WORDS[language]
    piece = Piece().text(f"{_KIND_MARK[page.kind]} ").tag("b", headline(page, language))
    if page.kind in (PageKind.FIRING, PageKind.REMINDER):
        if page.step > 0:
            piece.text(f" · {words.step.format(n=page.step + 1)}")
        if page.person:
            piece.text(f" · {page.person}")
    return piece.text("\n")


def _block(event: AlertEvent, language: Language, number: int | None) -> Piece:
    words = WORDS[language]
    summary = event.summary or f"{event.alertname} {event.target}"
    if len(summary) > MAX_SUMMARY:
        summary = summary[: MAX_SUMMARY - 1] + "…"
    mark = "✅" if not event.firing else _SEVERITY_MARK.get(event.severity, "⚪")
    piece = Piece().text(f"{mark} ")
    piece.tag("b", f"{number}. {summary}" if number is not None else summary).text("\n")
    where = [words.severity[event.severity], event.context.get("site") or event.target]
    if event.context.get("district"):
        where.append(event.context["district"])
    when = f"{words.since} {local_time(event.starts_at, language)}"
    if not event.firing and event.ends_at is not None:
        when += f" {words.until} {local_time(event.ends_at, language)}"
    return piece.text(" · ".join([*where, when]) + "\n")


def _more(language: Language, count: int) -> Piece:
    return Piece().text("\n").tag("i", WORDS[language].more.format(n=count))


def _footer(language: Language, url: str) -> Piece:
    piece = Piece().text("\n")
    if url.startswith(("http://", "https://")):
        return piece.tag("a", WORDS[language].status_page, href=url)
    return piece.text(f"{WORDS[language].status_page}: {url}")


def render(
    pages: Sequence[Page],
    *,
    buttons: bool,
    language: Language | None = None,
    limit: int = MAX_TEXT,
) -> Message:
    """One message for a run of pages to the same chat (see the module doc), in `language`,
    else each page's own."""
    if not pages:
        raise ValueError("render() needs at least one page")
    first = language or pages[0].language
    items: list[tuple[Piece, AlertEvent | None, Page]] = []
    count = sum(len(page.events) for page in pages)
    number = 0
    last_header = ""
    for page in pages:
        header = _header(page, language or page.language)
        if header.html != last_header:
            blank = "\n" if items else ""
            items.append((Piece(blank + header.html, blank + header.plain), None, page))
            last_header = header.html
        for event in page.events:
            number += 1
            block = _block(event, language or page.language, number if count > 1 else None)
            items.append((block, event, page))
    url = next((page.status_url for page in pages if page.status_url), "")
    footer = _footer(first, url) if url else Piece()

    included: list[tuple[Piece, AlertEvent | None]] = []
    shown: list[tuple[AlertEvent, Page]] = []
    used, left = 0, count
    for piece, item_event, page in items:
        more = len(_more(first, left)) if left else 0
        if used + len(piece) + len(footer) + more > limit:
            break
        included.append((piece, item_event))
        used += len(piece)
        if item_event is not None:
            shown.append((item_event, page))
            left -= 1
    while left and included and included[-1][1] is None:
        included.pop()  # a header whose first alert did not fit
    body = Piece("".join(p.html for p, _ in included), "".join(p.plain for p, _ in included))
    if left:
        more_piece = _more(first, left)
        body.html += more_piece.html
        body.plain += more_piece.plain
    body.html += footer.html
    body.plain += footer.plain
    keyboard, with_buttons = _keyboard(shown, numbered=count > 1) if buttons else (None, [])
    return Message(
        html=body.html.rstrip("\n"),
        plain=body.plain.rstrip("\n"),
        keyboard=keyboard,
        alerts=len(shown),
        more=left,
        buttons=with_buttons,
    )


def _keyboard(
    shown: Sequence[tuple[AlertEvent, Page]], *, numbered: bool
) -> tuple[list[list[dict[str, str]]] | None, list[str]]:
    rows: list[list[dict[str, str]]] = []
    fingerprints: list[str] = []
    for number, (event, page) in enumerate(shown, start=1):
        if len(rows) == MAX_BUTTON_ROWS:
            break
        if page.kind not in (PageKind.FIRING, PageKind.REMINDER) or not event.firing:
            continue
        if event.fingerprint in fingerprints:
            continue
        prefix = f"{number}. " if numbered else ""
        rows.append(
            [
                {"text": prefix + label, "callback_data": callback_data(kind, event.fingerprint)}
                for kind, label in BUTTONS.items()
            ]
        )
        fingerprints.append(event.fingerprint)
    return (rows or None), fingerprints


__all__ = ["MAX_TEXT", "Message", "parse_callback_data", "render", "utf16_len"]

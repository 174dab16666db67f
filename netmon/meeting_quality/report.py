"""The post-meeting report: one self-contained HTML page, in English or Vietnamese.

No scripts, no external fonts or stylesheets, as the readiness report
(`netmon/checks/html.py`): it opens the same on a phone in the meeting room and attached to an
email. Every value from the config, the rooms or the database is escaped. Worst rooms first,
each with its mean and min MOS, worst loss, its poor minutes, the call's loss against
netmon's own path loss and what that says of where the fault lay, and a small MOS timeline.
"""

from __future__ import annotations

import datetime as dt
import html
from collections.abc import Callable, Sequence
from zoneinfo import ZoneInfo

from netmon.meeting_quality.model import POOR_MOS, Meeting, RoomSample
from netmon.meeting_quality.summary import RoomSummary
from netmon.meeting_quality.texts import TEXTS, Lang

DEFAULT_TZ = "Asia/Ho_Chi_Minh"
MOS_TOP, MOS_BOTTOM = 4.5, 1.0
SVG_W, SVG_H = 300, 48

STYLE = """
body { font-family: system-ui, sans-serif; margin: 1rem; color: #1d1d1f; max-width: 60rem; }
h1 { font-size: 1.3rem; margin: 0 0 .3rem; }
p.meta { color: #4a4a4f; margin: .2rem 0; }
p.summary { font-size: 1.05rem; margin: .6rem 0 1rem; font-weight: 600; }
section.room { border: 1px solid #ddd; border-radius: .4rem; padding: .5rem .7rem;
               margin: 0 0 .7rem; }
section.room h2 { font-size: 1rem; margin: 0 0 .3rem; display: flex; gap: .5rem;
                  align-items: baseline; flex-wrap: wrap; }
section.room h2 small { font-weight: 400; color: #6e6e73; }
span.mos { color: #fff; border-radius: .25rem; padding: .05rem .4rem; font-weight: 700;
           white-space: nowrap; }
dl { display: grid; grid-template-columns: repeat(auto-fill, minmax(8rem, 1fr)); gap: .2rem .8rem;
     margin: .3rem 0; }
dt { font-size: .78rem; color: #6e6e73; } dd { margin: 0; font-weight: 600; }
ul.poor { margin: .2rem 0; padding-left: 1.2rem; color: #b3261e; }
p.hint { margin: .3rem 0; } p.note, p.about { color: #6e6e73; font-size: .85rem; }
svg { width: 100%; max-width: 30rem; height: 3.2rem; display: block; }
"""


def _colour(mos: float | None) -> str:
    if mos is None:
        return "#8a8a8e"
    if mos < 3.1:
        return "#b3261e"
    return "#b26a00" if mos < POOR_MOS else "#1b7f3b"


def _number(value: float, digits: int, lang: Lang) -> str:
    text = f"{value:.{digits}f}"
    return text.replace(".", ",") if lang == "vi" else text


def _percent(value: float | None, lang: Lang) -> str:
    if value is None:
        return TEXTS[lang]["unknown"]
    return _number(value * 100, 1, lang) + " %"


def _mos(value: float | None, lang: Lang) -> str:
    return "—" if value is None else _number(value, 2, lang)


def hint(summary: RoomSummary, lang: Lang) -> str | None:
    """Where the fault lay in words, or None when the room was never poor."""
    words = TEXTS[lang]
    if summary.fault is None:
        return None
    if summary.fault == "delay":
        rtt = summary.mean_path_rtt
        shown = words["unknown"] if rtt is None else f"{_number(rtt * 1000, 0, lang)} ms"
        return words["delay"].format(rtt=shown)
    if summary.fault == "unknown":
        return words["unknown_side"].format(sent=summary.path_sent)
    return words[summary.fault]


def _timeline(samples: Sequence[RoomSample], start: float, end: float) -> str:
    """An inline SVG of the received audio MOS: at most SVG_W points (the worst of each
    pixel's samples), broken where there is no score; the dashed line at 3.6."""
    span = max(end - start, 1.0)

    def y(mos: float) -> float:
        clipped = min(max(mos, MOS_BOTTOM), MOS_TOP)
        return round((MOS_TOP - clipped) / (MOS_TOP - MOS_BOTTOM) * SVG_H, 1)

    worst: dict[int, float | None] = {}
    for sample in samples:
        x = min(SVG_W, max(0, round((sample.t - start) / span * SVG_W)))
        if sample.mos_rx is None:
            worst.setdefault(x, None)
        else:
            known = worst.get(x)
            worst[x] = sample.mos_rx if known is None else min(known, sample.mos_rx)
    lines: list[list[str]] = [[]]
    for x in sorted(worst):
        mos = worst[x]
        if mos is None:
            if lines[-1]:
                lines.append([])
            continue
        lines[-1].append(f"{x},{y(mos)}")
    paths = "".join(
        f'<polyline points="{" ".join(points)}" fill="none" stroke="#1d2a3a" stroke-width="1.5"/>'
        if len(points) > 1
        else f'<circle cx="{points[0].split(",")[0]}" cy="{points[0].split(",")[1]}" r="1.5"/>'
        for points in lines
        if points
    )
    limit = y(POOR_MOS)
    return (
        f'<svg viewBox="0 0 {SVG_W} {SVG_H}" preserveAspectRatio="none" role="img">'
        f'<rect width="{SVG_W}" height="{SVG_H}" fill="#f6f6f8"/>'
        f'<line x1="0" y1="{limit}" x2="{SVG_W}" y2="{limit}" stroke="#b3261e" '
        f'stroke-dasharray="4 3" stroke-width="1"/>{paths}</svg>'
    )


def render_report(
    meeting: Meeting,
    rooms: Sequence[RoomSummary],
    *,
    lang: Lang,
    now: float,
    interval: float,
    tz: str = DEFAULT_TZ,
) -> str:
    words = TEXTS[lang]
    zone = ZoneInfo(tz)

    def at(timestamp: float, fmt: str = "%H:%M") -> str:
        return dt.datetime.fromtimestamp(timestamp, zone).strftime(fmt)

    e = html.escape
    name = words["adhoc"] if meeting.kind == "adhoc" else meeting.name
    last = max((s.t for r in rooms for s in r.timeline), default=meeting.start)
    end = meeting.end if meeting.end is not None else max(last, now)
    until = at(meeting.end) if meeting.end is not None else words["open"]
    scored = [r for r in rooms if r.min_mos is not None]
    poor = sum(1 for r in rooms if r.poor_minutes)
    sections = [_room(r, meeting.start, end, lang, at) for r in rooms]
    other: Lang = "en" if lang == "vi" else "vi"
    progress = f"<p class=note>{e(words['in_progress'])}</p>" if meeting.in_progress(now) else ""
    return f"""<!DOCTYPE html>
<html lang="{lang}">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{e(words["title"])} · {e(name)}</title>
<style>{STYLE}</style>
</head>
<body>
<h1>{e(words["title"])} — {e(name)}</h1>
<p class="meta">{e(at(meeting.start, "%Y-%m-%d %H:%M"))}–{e(until)} ({e(tz)}) ·
{e(words["rooms"].format(count=len(rooms)))} · {e(meeting.id)} ·
<a href="?lang={other}">{e(words["other"])}</a></p>
{progress}
<p class="summary">{e(words["summary"].format(poor=poor, total=len(scored)))}</p>
{chr(10).join(sections)}
<p class="about">{e(words["about"].format(interval=_number(interval, 0, lang), tz=tz))}</p>
</body>
</html>
"""


def _room(
    summary: RoomSummary, start: float, end: float, lang: Lang, at: Callable[..., str]
) -> str:
    words, e = TEXTS[lang], html.escape
    room = summary.room
    title = f"{room.name or room.id} ({room.id})" if room.name and room.name != room.id else room.id
    badge = (
        f'<span class="mos" style="background:{_colour(summary.min_mos)}">'
        f"{e(_mos(summary.min_mos, lang))}</span>"
    )
    if summary.min_mos is None:
        body = f'<p class="note">{e(words["not_scored"])}</p>'
    else:
        figures = (
            (words["mean_mos"], _mos(summary.mean_mos, lang)),
            (words["min_mos"], _mos(summary.min_mos, lang)),
            (words["worst_loss"], _percent(summary.worst_loss, lang)),
            (words["poor_minutes"], str(summary.poor_minutes)),
        )
        body = "<dl>" + "".join(f"<div><dt>{e(k)}</dt><dd>{e(v)}</dd></div>" for k, v in figures)
        body += "</dl>"
        if summary.poor:
            items = "".join(
                "<li>"
                + e(
                    words["period"].format(
                        start=at(p.start),
                        end=at(p.end),
                        minutes=p.minutes,
                        mos=_mos(p.min_mos, lang),
                    )
                )
                + "</li>"
                for p in summary.poor
            )
            body += f'<p>{e(words["poor_at"])}:</p><ul class="poor">{items}</ul>'
            where = words["path_vs_call"].format(
                call=_percent(summary.mean_call_loss, lang),
                path=_percent(summary.mean_path_loss, lang),
            )
            body += (
                f'<p class="hint">{e(where)} <strong>{e(hint(summary, lang) or "")}</strong></p>'
            )
        else:
            body += f'<p class="note">{e(words["no_poor"])}</p>'
        body += _timeline(summary.timeline, start, end)
    district = f"<small>{e(room.district)}</small>" if room.district else ""
    return (
        f'<section class="room" data-room="{e(room.id)}"><h2>{badge}<span>{e(title)}</span>'
        f"{district}</h2>{body}</section>"
    )

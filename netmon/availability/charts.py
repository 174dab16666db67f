"""The report's two small charts as inline SVG: availability per day (a bar a day) and counted
downtime by hour of day (a heatmap of 24 cells). Each says in its caption what it shows."""

from __future__ import annotations

import html
from collections.abc import Iterable, Sequence

from netmon.availability.model import Report
from netmon.availability.model import SubjectReport as Subject
from netmon.availability.texts import TEXTS, Lang, decimal, duration, grade, percent

FONT = 'font-family="DejaVu Sans, sans-serif"'  # as the page's (a PDF's SVG text too)


def daily_means(sites: Sequence[Subject], days: int) -> list[float | None]:
    """Per day, the mean of the sites' availability that day (None: no site had a figure)."""
    means: list[float | None] = []
    for day in range(days):
        known = [s.daily[day] for s in sites if day < len(s.daily) and s.daily[day] is not None]
        means.append(sum(v for v in known if v is not None) / len(known) if known else None)
    return means


def _floor(values: Iterable[float | None]) -> float:
    """The bottom of the daily chart's scale: the highest of 99 %, 95 %, 90 %, 50 %, 0 % at or
    below the lowest day, so that a bad day stands out and none goes below the axis."""
    lowest = min((v for v in values if v is not None), default=1.0)
    return next(f for f in (0.99, 0.95, 0.9, 0.5, 0.0) if f <= lowest)


def charts(report: Report, lang: Lang) -> str:
    words, e = TEXTS[lang], html.escape
    means = daily_means(report.sites, len(report.days))
    floor = _floor(means)
    floor_text = decimal(f"{floor * 100:g}", lang) + " %"
    bar_w, height, top = 12, 80, 10
    width = 34 + bar_w * max(len(means), 1)
    parts = [
        f'<svg class="chart" {FONT} viewBox="0 0 {width} {height + 24}" role="img" '
        f'aria-label="{e(words["daily"])}">',
        f'<rect x="34" y="{top}" width="{width - 34}" height="{height - top}" fill="#f6f6f8"/>',
        f'<text x="31" y="{top + 3}" font-size="7" text-anchor="end">100 %</text>',
        f'<text x="31" y="{height}" font-size="7" text-anchor="end">{e(floor_text)}</text>',
    ]
    for index, (day, value) in enumerate(zip(report.days, means, strict=False)):
        x = 34 + index * bar_w
        label = f"{day.isoformat()}: {percent(value, lang)}"
        if value is None:
            parts.append(
                f'<rect x="{x + 2}" y="{height - 2}" width="{bar_w - 4}" height="2" '
                f'fill="#8a8a8e"><title>{e(label)}</title></rect>'
            )
        else:
            bar = (value - floor) / (1 - floor) * (height - top) if floor < 1 else 0.0
            colour = {"good": "#1b7f3b", "fair": "#b26a00", "poor": "#b3261e"}[grade(value)]
            parts.append(
                f'<rect x="{x + 2}" y="{height - bar:.1f}" width="{bar_w - 4}" '
                f'height="{bar:.1f}" fill="{colour}"><title>{e(label)}</title></rect>'
            )
        parts.append(
            f'<text x="{x + bar_w / 2}" y="{height + 10}" font-size="6" '
            f'text-anchor="middle">{day.day}</text>'
        )
    parts.append("</svg>")
    caption = words["daily_caption"].format(count=len(report.sites), floor=floor_text)
    daily = (
        f"<figure><h3>{e(words['daily'])}</h3>{''.join(parts)}"
        f"<figcaption>{e(caption)}</figcaption></figure>"
    )
    return f"<h2>{e(words['charts'])}</h2>{daily}{_heatmap(report, lang)}"


def _heatmap(report: Report, lang: Lang) -> str:
    words, e = TEXTS[lang], html.escape
    hours = [
        sum(s.down_by_hour[h] for s in report.sites if h < len(s.down_by_hour)) for h in range(24)
    ]
    peak = max(hours)
    cell, left = 16, 4
    parts = [
        f'<svg class="chart" {FONT} viewBox="0 0 {left * 2 + cell * 24} {cell + 14}" '
        'role="img" '
        f'aria-label="{e(words["hourly"])}">'
    ]
    for hour, seconds in enumerate(hours):
        x = left + hour * cell
        shade = seconds / peak if peak > 0 else 0.0
        label = f"{hour:02d}:00–{(hour + 1) % 24:02d}:00: {duration(seconds, lang)}"
        parts.append(
            f'<rect x="{x}" y="0" width="{cell - 1}" height="{cell}" fill="#f0f0f3"/>'
            f'<rect x="{x}" y="0" width="{cell - 1}" height="{cell}" fill="#b3261e" '
            f'fill-opacity="{0.12 + 0.88 * shade if seconds > 0 else 0:.2f}">'
            f"<title>{e(label)}</title></rect>"
        )
        if hour % 3 == 0:
            parts.append(
                f'<text x="{x + (cell - 1) / 2}" y="{cell + 10}" font-size="7" '
                f'text-anchor="middle">{hour}</text>'
            )
    parts.append("</svg>")
    shown = duration(peak, lang) if peak > 0 else words["no_downtime"]
    caption = words["hourly_caption"].format(peak=shown)
    return (
        f"<figure><h3>{e(words['hourly'])}</h3>{''.join(parts)}"
        f"<figcaption>{e(caption)}</figcaption></figure>"
    )

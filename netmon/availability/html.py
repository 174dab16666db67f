"""The availability report as one self-contained HTML page, in English or Vietnamese.

No scripts, no external fonts, images or stylesheets, as the meeting quality report
(`netmon/meeting_quality/report.py`): it opens the same on a phone, attached to an email, and
printed to PDF (`pdf.py`, from this very page: `@page` and `@media print` rules are for that).
Every value from the config, the journal or the policy is escaped. In order: the period and
scope, the districts, the worst sites, two small charts (inline SVG, `charts.py`), the sites,
the links, the meetings, the evidence (every outage piece), when netmon was not running, and the
policy. Numbers and durations are written as `texts.py` says for each language.
"""

from __future__ import annotations

import datetime as dt
import html
from collections.abc import Iterable, Sequence
from typing import Any

from netmon.availability.charts import charts
from netmon.availability.model import DistrictSummary, Figures, MeetingReport, Report
from netmon.availability.model import SubjectReport as Subject
from netmon.availability.texts import (
    DASH,
    LANGS,
    TEXTS,
    Lang,
    cause_text,
    duration,
    grade,
    mos_text,
    percent,
    policy_text,
    why_text,
)

# DejaVu Sans first: Debian's fonts-dejavu-core has every Vietnamese glyph, and the PDF embeds it.
STYLE = """
html { font-family: "DejaVu Sans", system-ui, sans-serif; }
body { margin: 1rem; color: #1d1d1f;
       max-width: 72rem; font-size: 15px; line-height: 1.4; overflow-wrap: anywhere; }
h1 { font-size: 1.3rem; margin: 0 0 .3rem; } h2 { font-size: 1.1rem; margin: 1.4rem 0 .4rem; }
h3 { font-size: 1rem; margin: .8rem 0 .2rem; }
p.meta { color: #4a4a4f; margin: .15rem 0; } p.note, figcaption { color: #6e6e73;
  font-size: .82rem; margin: .2rem 0 .5rem; }
div.scroll { overflow-x: auto; max-width: 100%; margin: 0 0 .6rem; }
table { border-collapse: collapse; font-size: .84rem; overflow-wrap: normal; }
th, td { border-bottom: 1px solid #e2e2e6; padding: .22rem .45rem; text-align: left;
         vertical-align: top; }
th { background: #f3f3f6; font-weight: 600; min-width: 3.5rem; }
td.n { text-align: right; white-space: nowrap; font-variant-numeric: tabular-nums; }
td.t, td.name { white-space: nowrap; } tr.all td { font-weight: 700; }
td small, li small { color: #6e6e73; } code { font-size: .9em; }
.good { color: #1b7f3b; } .fair { color: #b26a00; } .poor { color: #b3261e; }
span.verdict { border-radius: .25rem; padding: 0 .35rem; color: #fff; font-weight: 700;
               white-space: nowrap; }
.GO { background: #1b7f3b; } .WARN { background: #b26a00; } .NO-GO { background: #b3261e; }
figure { margin: .4rem 0 1rem; } svg.chart { display: block; width: 100%; max-width: 40rem;
  height: auto; } svg text { font-family: "DejaVu Sans", system-ui, sans-serif; }
dl.policy { display: grid; grid-template-columns: minmax(8rem, 14rem) 1fr; gap: .3rem 1rem;
            margin: .3rem 0; font-size: .88rem; }
dl.policy dt { color: #4a4a4f; font-weight: 600; } dl.policy dd { margin: 0; }
dl.policy ul, dl.policy ol { margin: 0; padding-left: 1.2rem; }
dl.policy dd dl { margin: 0; } dl.policy dd dt { font-style: italic; font-weight: 400; }
dl.policy dd dd { margin: 0 0 .3rem 1rem; }
span.en { color: #6e6e73; font-size: .8em; }
@media (max-width: 40rem) { body { margin: .6rem; font-size: 14px; }
  dl.policy { grid-template-columns: 1fr; } dl.policy dd { margin-bottom: .4rem; } }
@page { size: A4 landscape; margin: 12mm;
        @bottom-right { content: counter(page) " / " counter(pages); font-size: 8pt; } }
@media print { body { margin: 0; max-width: none; font-size: 9pt; }
  div.scroll { overflow: visible; } table { font-size: 7.5pt; width: 100%; }
  th { min-width: 0; } td.n { white-space: normal; } td.pc { white-space: nowrap; }
  dl.policy dt { break-after: avoid; }
  h2 { break-after: avoid; } tr, figure { break-inside: avoid; } }
"""


def local_time(report: Report, when: float) -> str:
    """ "2026-11-03 23:30:00" in the report's time zone."""
    return dt.datetime.fromisoformat(report.local(when)).strftime("%Y-%m-%d %H:%M:%S")


def _pct_cell(value: float | None, lang: Lang) -> str:
    shade = grade(value)
    css = f"n pc {shade}" if shade else "n pc"
    return f'<td class="{css}">{html.escape(percent(value, lang))}</td>'


def _cell(text: str, css: str = "") -> str:
    attr = f' class="{css}"' if css else ""
    return f"<td{attr}>{html.escape(text)}</td>"


def _table(head: Sequence[str], rows: Iterable[str]) -> str:
    """A table in its horizontally scrolling wrapper (a phone scrolls the table, not the page);
    `rows` are ready <tr> elements."""
    ths = "".join(f"<th>{html.escape(h)}</th>" for h in head)
    return (
        f'<div class="scroll"><table><thead><tr>{ths}</tr></thead>'
        f"<tbody>{''.join(rows)}</tbody></table></div>"
    )


def _subject_name(subject: Subject) -> str:
    e = html.escape
    if subject.name and subject.name != subject.subject:
        return f"{e(subject.name)} <small>{e(subject.subject)}</small>"
    return e(subject.subject)


def render_html(report: Report, lang: str) -> str:
    if lang not in LANGS:
        raise ValueError(f"unknown language {lang!r}: one of {', '.join(LANGS)}")
    language: Lang = "vi" if lang == "vi" else "en"
    words, e = TEXTS[language], html.escape
    first, last = local_time(report, report.start), local_time(report, report.end)
    title = f"{words['title']} · {_period_name(report)}"
    scope = ", ".join(f"{words.get(k, k)} {v}" for k, v in report.scope.items())
    sections = [
        f"<h1>{e(title)}</h1>",
        f'<p class="meta">{e(words["period"])}: {e(first)} – {e(last)} ({e(report.timezone)})</p>',
        f'<p class="meta">{e(words["scope"])}: {e(scope or words["scope_all"])} · '
        f"{e(words['generated'])}: {e(local_time(report, report.generated))} · "
        f"{e(words['policy_version'])}: {e(str(report.policy.get('version', DASH)))}</p>",
        _summary(report, language),
        _worst(report, language),
        charts(report, language),
        f"<h2>{e(words['site_table'])}</h2>",
        _subjects(report.sites, language, words["site"]),
        f"<h2>{e(words['link_table'])}</h2>",
        _subjects(report.links, language, words["link"])
        if report.links
        else f'<p class="note">{e(words["none"])}</p>',
        _services(report, language),
        _meetings(report, language),
        _evidence(report, language),
        _gaps(report, language),
        _policy(report.policy, language),
    ]
    body = "\n".join(sections)
    return f"""<!DOCTYPE html>
<html lang="{language}">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{e(title)}</title>
<style>{STYLE}</style>
</head>
<body>
{body}
</body>
</html>
"""


def _period_name(report: Report) -> str:
    """ "2026-11" for a calendar month, else "2026-11-01 – 2026-11-15" (the last day included)."""
    first = dt.datetime.fromisoformat(report.local(report.start))
    after = dt.datetime.fromisoformat(report.local(report.end))
    midnight = dt.time()
    if first.time() == after.time() == midnight and first.day == after.day == 1:
        months = (after.year - first.year) * 12 + after.month - first.month
        if months == 1:
            return first.strftime("%Y-%m")
    last = after - dt.timedelta(seconds=1) if after.time() == midnight else after
    return f"{first.date().isoformat()} – {last.date().isoformat()}"


def _summary(report: Report, lang: Lang) -> str:
    words = TEXTS[lang]
    # Targets of no district (the core, the provincial hall's own) are a row of their own.
    rows = [_district_row(d.district or words["no_district"], d, lang) for d in report.districts]
    if len(report.districts) > 1:
        total = DistrictSummary(
            words["all"],
            sum((d.sites for d in report.districts), Figures(0, 0, 0, 0, 0, 0)),
            sum((d.links for d in report.districts), Figures(0, 0, 0, 0, 0, 0)),
            sum((d.office for d in report.districts), Figures(0, 0, 0, 0, 0, 0)),
            _meetings_availability(report.meetings),
            sum(d.outages for d in report.districts),
            sum(d.down_seconds for d in report.districts),
        )
        rows.append(_district_row(words["all"], total, lang, css="all"))
    head = (words["district"], words["sites"], words["links"], words["office"],
            words["meetings"], words["outages"], words["mttr"])  # fmt: skip
    return f"<h2>{html.escape(words['summary'])}</h2>" + _table(head, rows)


def _meetings_availability(meetings: Sequence[MeetingReport]) -> float | None:
    up = sum(r.up for m in meetings for r in m.rooms)
    counted = up + sum(r.down for m in meetings for r in m.rooms)
    return up / counted if counted > 0 else None


def _district_row(name: str, district: DistrictSummary, lang: Lang, css: str = "") -> str:
    attr = f' class="{css}"' if css else ""
    return (
        f"<tr{attr}>{_cell(name)}{_pct_cell(district.sites.availability, lang)}"
        f"{_pct_cell(district.links.availability, lang)}"
        f"{_pct_cell(district.office.availability, lang)}"
        f"{_pct_cell(district.meetings, lang)}{_cell(str(district.outages), 'n')}"
        f"{_cell(duration(district.mttr, lang), 'n')}</tr>"
    )


def _worst(report: Report, lang: Lang) -> str:
    words = TEXTS[lang]
    rows = [
        f"<tr>{_cell(str(rank), 'n')}<td class='name'>{_subject_name(s)}</td>{_cell(s.district)}"
        f"{_pct_cell(s.total.availability, lang)}{_cell(duration(s.total.down, lang), 'n')}"
        f"{_cell(str(s.outages), 'n')}</tr>"
        for rank, s in enumerate(report.worst(), 1)
    ]
    head = (words["rank"], words["site"], words["district"], words["availability"],
            words["down"], words["outages"])  # fmt: skip
    body = _table(head, rows) if rows else f'<p class="note">{html.escape(words["none"])}</p>'
    return f"<h2>{html.escape(words['worst'])}</h2>{body}"


def _subjects(subjects: Sequence[Subject], lang: Lang, first: str) -> str:
    words = TEXTS[lang]
    quality = any(s.quality is not None for s in subjects)  # `availability.degraded`
    head = (first, words["district"], words["kind"], words["availability"], words["office"],
            *((words["quality"],) if quality else ()),
            words["up"], words["down"], words["unknown"], words["maintenance"], words["parent"],
            words["outages"], words["mttr"])  # fmt: skip
    rows = []
    for s in subjects:
        t = s.total
        seconds = (t.up, t.down, t.unknown, t.maintenance, t.parent)
        figure = s.quality.availability if s.quality is not None else None
        rows.append(
            f"<tr><td class='name'>{_subject_name(s)}</td>{_cell(s.district)}{_cell(s.kind)}"
            f"{_pct_cell(t.availability, lang)}{_pct_cell(s.office.availability, lang)}"
            + (_pct_cell(figure, lang) if quality else "")
            + "".join(_cell(duration(v, lang), "n") for v in seconds)
            + f"{_cell(str(s.outages), 'n')}{_cell(duration(s.mttr, lang), 'n')}</tr>"
        )
    return _table(head, rows)


def _services(report: Report, lang: Lang) -> str:
    if not report.services:
        return ""
    words = TEXTS[lang]
    heading = f"<h2>{html.escape(words['service_table'])}</h2>"
    return heading + _subjects(report.services, lang, words["service"])


def _meetings(report: Report, lang: Lang) -> str:
    words, e = TEXTS[lang], html.escape
    out = [f"<h2>{e(words['meetings'])}</h2>"]
    if not report.meetings:
        out.append(f'<p class="note">{e(words["none"])}</p>')
    else:
        out.append(f'<p class="note">{e(words["mos_note"])}</p>')
    head = (words["room"], words["district"], words["availability"], words["down"],
            words["unknown"], words["verdict"], words["ready"], words["reasons"],
            words["mean_mos"], words["min_mos"], words["poor_minutes"])  # fmt: skip
    for meeting in report.meetings:
        begins, ends = local_time(report, meeting.start), local_time(report, meeting.end)
        when = f"{begins} – {ends[11:] if ends[:10] == begins[:10] else ends}"
        out.append(
            f'<h3>{e(meeting.name)}</h3><p class="meta">{e(when)} · '
            f"{e(words['availability'])}: <strong>{e(percent(meeting.availability, lang))}"
            "</strong></p>"
        )
        rows = []
        for room in meeting.rooms:
            name = f"{e(room.name)} <small>{e(room.target)}</small>"
            verdict = (
                f'<span class="verdict {e(room.verdict)}">{e(room.verdict)}</span>'
                if room.verdict
                else DASH
            )
            ready = DASH if room.ready is None else words["yes" if room.ready else "no"]
            mos = (DASH, DASH, DASH)
            if (call := room.quality) is not None:
                mos = (mos_text(call.mean_mos, lang), mos_text(call.min_mos, lang),
                       str(call.poor_minutes))  # fmt: skip
            rows.append(
                f"<tr><td class='name'>{name}</td>{_cell(room.district)}"
                f"{_pct_cell(room.availability, lang)}"
                f"{_cell(duration(room.down, lang), 'n')}"
                f"{_cell(duration(room.unknown, lang), 'n')}<td>{verdict}</td>{_cell(ready)}"
                f"{_cell('; '.join(room.reasons) or DASH)}"
                + "".join(_cell(text, "n") for text in mos)
                + "</tr>"
            )
        out.append(_table(head, rows))
    return "".join(out)


def _evidence(report: Report, lang: Lang) -> str:
    words, e = TEXTS[lang], html.escape
    head = (words["site"], words["start"], words["end"], words["duration"], words["cause"],
            words["alert"], words["excluded"], words["reason"])  # fmt: skip
    rows = []
    for s in [*report.sites, *report.links, *report.services]:
        for p in s.pieces:
            end = local_time(report, p.end)
            split = f' <span title="{e(words["split"])}">↦</span>' if p.split else ""
            excluded = words["no"]
            if p.excluded:
                excluded = words["yes"] + (f": {why_text(p.why, lang)}" if p.why else "")
            alert = f"<code>{e(p.alert)}</code>" if p.alert else DASH
            rows.append(
                f"<tr><td class='name'>{_subject_name(s)}</td>"
                f"{_cell(local_time(report, p.start), 't')}"
                f'<td class="t">{e(end)}{split}</td>{_cell(duration(p.seconds, lang), "n")}'
                f"{_cell(cause_text(p.cause, lang))}<td>{alert}</td>{_cell(excluded)}"
                f"{_cell(p.reason or DASH)}</tr>"
            )
    body = _table(head, rows) if rows else f'<p class="note">{e(words["none"])}</p>'
    return f'<h2>{e(words["evidence"])}</h2><p class="note">{e(words["evidence_note"])}</p>{body}'


def _gaps(report: Report, lang: Lang) -> str:
    words, e = TEXTS[lang], html.escape
    rows = [
        f"<tr>{_cell(local_time(report, a), 't')}{_cell(local_time(report, b), 't')}"
        f"{_cell(duration(b - a, lang), 'n')}</tr>"
        for a, b in report.gaps
    ]
    if not rows:
        return f'<h2>{e(words["gaps"])}</h2><p class="note">{e(words["none"])}</p>'
    head = (words["start"], words["end"], words["duration"])
    return f'<h2>{e(words["gaps"])}</h2><p class="note">{e(words["gaps_note"])}</p>' + _table(
        head, rows
    )


def _said(text: Any, lang: Lang) -> str:
    """A fixed text of the policy in `lang`, escaped; marked when it has no translation."""
    shown, translated = policy_text(str(text), lang)
    mark = "" if translated else f' <span class="en">{html.escape(TEXTS[lang]["english"])}</span>'
    return html.escape(shown) + mark


def _policy(policy: dict[str, Any], lang: Lang) -> str:
    words, e = TEXTS[lang], html.escape
    period = policy.get("period", {})
    hours = policy.get("office_hours", {})
    unknown = str(policy.get("unknown", ""))
    days = hours.get("days", [])
    items: list[tuple[str, str]] = [
        (words["version"], e(str(policy.get("version", DASH)))),
        (words["timezone"], e(str(policy.get("timezone", DASH)))),
        (
            words["period"],
            f"{e(_iso_local(period.get('from')))} – {e(_iso_local(period.get('to')))}"
            + (f"<br>{_said(period['note'], lang)}" if period.get("note") else ""),
        ),
        (words["what_down"], _said(policy.get("down", DASH), lang)),
        (
            words["unknown_handling"],
            e(words.get(f"unknown_{unknown}", unknown))
            + (f": {_said(policy['unknown_note'], lang)}" if policy.get("unknown_note") else ""),
        ),
        (words["exclusions"], _list(_said(x, lang) for x in policy.get("excluded", []))),
        (words["precedence"], _list((_said(x, lang) for x in policy.get("precedence", [])), "ol")),
        (words["heartbeat"], e(duration(policy.get("heartbeat_seconds"), lang))),
        (
            words["office_days"],
            ", ".join(_said(d if lang == "vi" else str(d).capitalize(), lang) for d in days),
        ),
        (words["office_periods"], e(", ".join(f"{a}–{b}" for a, b in hours.get("periods", [])))),
        (
            words["holidays"],
            e(str(hours.get("holidays", DASH)))
            + (
                f" <small>({e(str(hours['holidays_source']))})</small>"
                if hours.get("holidays_source")
                else ""
            ),
        ),
        (
            words["holidays_in_period"],
            _list(
                f"{e(str(h.get('day')))} — {e(str(h.get('name')))}"
                for h in hours.get("holidays_in_period", [])
            )
            or e(words["none"]),
        ),
        (
            words["formulas"],
            "<dl>"
            + "".join(
                f"<dt>{_said(name, lang)}</dt><dd>{_said(text, lang)}</dd>"
                for name, text in policy.get("formulas", {}).items()
            )
            + "</dl>",
        ),
    ]
    rows = "".join(f"<dt>{e(k)}</dt><dd>{v}</dd>" for k, v in items)
    return f'<h2>{e(words["policy"])}</h2><dl class="policy">{rows}</dl>'


def _iso_local(text: object) -> str:
    """The policy's ISO 8601 local time as the report shows times; other text as it is."""
    try:
        return dt.datetime.fromisoformat(str(text)).strftime("%Y-%m-%d %H:%M:%S")
    except ValueError:
        return DASH if text is None else str(text)


def _list(items: Iterable[str], tag: str = "ul") -> str:
    """Ready (escaped) items as a list; "" when there are none."""
    shown = "".join(f"<li>{item}</li>" for item in items)
    return f"<{tag}>{shown}</{tag}>" if shown else ""

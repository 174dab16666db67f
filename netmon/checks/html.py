"""The readiness report as one self-contained HTML file, to attach to an email.

No scripts, no external fonts or stylesheets: it must open the same on a laptop without
internet access and on a phone.
"""

from __future__ import annotations

import datetime as dt
import html

from netmon.checks.model import CheckReport, EndpointReport, Verdict

COLOURS = {Verdict.GO: "#1b7f3b", Verdict.WARN: "#b26a00", Verdict.NO_GO: "#b3261e"}

STYLE = """
body { font-family: system-ui, sans-serif; margin: 1rem; color: #1d1d1f; }
h1 { font-size: 1.3rem; margin: 0 0 .3rem; }
p.summary { font-size: 1.05rem; margin: .2rem 0 1rem; }
table { border-collapse: collapse; width: 100%; font-size: .92rem; }
th, td { text-align: left; padding: .35rem .5rem; border-bottom: 1px solid #ddd;
         vertical-align: top; }
th { background: #f3f3f5; }
td.num { text-align: right; white-space: nowrap; }
td.note { color: #6e6e73; }
span[lang="vi"] { color: #4a4a4f; }
span.verdict { color: #fff; border-radius: .25rem; padding: .1rem .4rem; font-weight: 600;
               white-space: nowrap; }
@media (max-width: 640px) { td.opt, th.opt { display: none; } }
"""


def _reasons(endpoint: EndpointReport) -> str:
    """The reasons in English, then in Vietnamese where they differ; a GO room's notes."""
    english, vietnamese = "; ".join(endpoint.reasons), "; ".join(endpoint.reasons_vi)
    if not english:
        return f'<td class="note">{html.escape("; ".join(endpoint.notes))}</td>'
    text = html.escape(english)
    if vietnamese != english:
        text += f'<br><span lang="vi">{html.escape(vietnamese)}</span>'
    return f"<td>{text}</td>"


def render_html(report: CheckReport) -> str:
    def cell(text: object, css: str = "") -> str:
        klass = f' class="{css}"' if css else ""
        return f"<td{klass}>{html.escape(str(text))}</td>"

    rows = []
    for endpoint in report.worst_first():
        verdict = endpoint.verdict
        badge = (
            f'<td><span class="verdict" style="background:{COLOURS[verdict]}">'
            f"{html.escape(verdict.value)}</span></td>"
        )
        rows.append(
            "<tr>"
            + badge
            + cell(f"{endpoint.name} ({endpoint.target})")
            + cell(endpoint.district, "opt")
            + "".join(cell(text, "num opt") for text in endpoint.quality_cells())
            + _reasons(endpoint)
            + "</tr>"
        )
    when = dt.datetime.fromtimestamp(report.started, dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    scope = ", ".join(f"{k}: {v}" for k, v in report.scope.items())
    return f"""<!DOCTYPE html>
<html lang="vi">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Readiness check {html.escape(report.id)}</title>
<style>{STYLE}</style>
</head>
<body>
<h1>Readiness check — {html.escape(scope)}</h1>
<p>{html.escape(when)} · check {html.escape(report.id)}</p>
<p class="summary"><strong>{html.escape(report.summary())}</strong></p>
<table>
<thead><tr><th>verdict</th><th>endpoint</th><th class="opt">district</th>
<th class="opt">RTT p95</th><th class="opt">loss</th><th class="opt">jitter</th>
<th>reasons</th></tr></thead>
<tbody>
{chr(10).join(rows)}
</tbody>
</table>
</body>
</html>
"""

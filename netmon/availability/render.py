"""A report in the format asked for: JSON and CSV for spreadsheets, HTML for people, PDF from
that same HTML."""

from __future__ import annotations

import csv
import io
import json

from netmon.availability.model import Report

SITE_COLUMNS = (
    "target", "name", "district", "group", "kind", "availability", "office_hours_availability",
    "up_seconds", "down_seconds", "unknown_seconds", "maintenance_seconds", "parent_seconds",
    "outages", "mttr_seconds",
)  # fmt: skip
OUTAGE_COLUMNS = (
    "target", "name", "district", "outage", "start", "end", "seconds", "cause", "alert",
    "excluded", "why", "reason", "split",
)  # fmt: skip


def render(report: Report, fmt: str, *, lang: str = "en", table: str = "sites") -> str | bytes:
    if fmt == "json":
        return json.dumps(report.to_json(), ensure_ascii=False, indent=2) + "\n"
    if fmt == "csv":
        return to_csv(report, table)
    if fmt in ("html", "pdf"):
        from netmon.availability.html import render_html

        page = render_html(report, lang)
        if fmt == "html":
            return page
        from netmon.availability.pdf import render_pdf

        return render_pdf(page)
    raise ValueError(f"unknown format {fmt!r}")


def _ratio(value: float | None) -> str:
    return "" if value is None else f"{value:.6f}"


def to_csv(report: Report, table: str = "sites") -> str:
    """One row per site (and per district link), or one row per outage piece (`outages`)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    subjects = [*report.sites, *report.links, *report.services]
    if table == "outages":
        writer.writerow(OUTAGE_COLUMNS)
        for subject in subjects:
            for piece in subject.pieces:
                writer.writerow(
                    [subject.subject, subject.name, subject.district, piece.outage,
                     report.local(piece.start), report.local(piece.end),
                     f"{piece.seconds:.3f}", piece.cause, piece.alert or "",
                     "yes" if piece.excluded else "no", piece.why or "", piece.reason or "",
                     "yes" if piece.split else "no"]
                )  # fmt: skip
        return out.getvalue()
    writer.writerow(SITE_COLUMNS)
    for subject in subjects:
        total = subject.total
        writer.writerow(
            [subject.subject, subject.name, subject.district, subject.group, subject.kind,
             _ratio(total.availability), _ratio(subject.office.availability),
             f"{total.up:.3f}", f"{total.down:.3f}", f"{total.unknown:.3f}",
             f"{total.maintenance:.3f}", f"{total.parent:.3f}", subject.outages,
             "" if subject.mttr is None else f"{subject.mttr:.3f}"]
        )  # fmt: skip
    return out.getvalue()

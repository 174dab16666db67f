"""The availability report as PDF: the HTML report printed by WeasyPrint, its fonts embedded.

WeasyPrint is an optional extra (`pip install 'netmon[report]'`) over Pango, a system library;
it is imported only when a PDF is asked for, so netmon runs and reports HTML, CSV and JSON
without either. Vietnamese needs a font with its glyphs: the page asks for DejaVu Sans
(Debian: fonts-dejavu-core), which WeasyPrint finds through fontconfig and embeds (subsetted).
"""

from __future__ import annotations

INSTALL = (
    "PDF reports need WeasyPrint and Pango: pip install 'netmon[report]' (or `make setup`), "
    "and on Debian apt-get install libpango-1.0-0 libpangoft2-1.0-0 fonts-dejavu-core"
)


def render_pdf(html: str) -> bytes:
    """The PDF of a self-contained HTML page (nothing is fetched: no base URL is given)."""
    try:
        from weasyprint import HTML  # type: ignore[import-untyped, unused-ignore]
        from weasyprint.urls import URLFetcher  # type: ignore[import-untyped, unused-ignore]
    except ImportError as exc:  # the package is not installed
        raise RuntimeError(f"{INSTALL} ({exc})") from exc
    except OSError as exc:  # cffi could not load Pango or one of its libraries
        raise RuntimeError(f"{INSTALL} ({exc})") from exc
    # The page is self-contained: should a URL slip into it, WeasyPrint may not fetch it (it
    # warns and leaves it out); data: URLs are inline.
    fetcher = URLFetcher(allowed_protocols={"data"})
    pdf: bytes = HTML(string=html, url_fetcher=fetcher).write_pdf()
    return pdf

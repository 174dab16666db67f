"""Builds every dashboard and writes its JSON (`netmon dashboards build`).

The files are named after the dashboards' uids, and their bytes depend on nothing but this
code and the pinned grafana-foundation-sdk: a build on a clean checkout changes nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from grafana_foundation_sdk.models import dashboard as dm

from dashboards import endpoints, links, meeting, noc, selfmon
from dashboards.common import to_json

BUILDERS: tuple[Callable[[], dm.Dashboard], ...] = (
    noc.build,
    endpoints.build,
    links.build,
    selfmon.build,
    meeting.build,
)


def render() -> dict[str, str]:
    """File name -> JSON text of every dashboard."""
    rendered = {}
    for build in BUILDERS:
        model = build()
        rendered[f"{model.uid}.json"] = to_json(model)
    return rendered


def write(output: Path) -> list[Path]:
    """Writes every dashboard into `output`; returns the files written."""
    output.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in render().items():
        path = output / name
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written

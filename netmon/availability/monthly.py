"""Last month's report, written by netmon itself once the month is over (`availability.reports`):
`availability-YYYY-MM.html`, `.json`, `.csv` (and `.pdf` where WeasyPrint is installed) in the
reports directory. A month whose files are all there is not written again, so a restart on the
2nd writes what the 1st missed and nothing twice; a month netmon never ran in gets no report.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from zoneinfo import ZoneInfo

from netmon.availability.calendar import month_bounds
from netmon.availability.quality import call_quality, meetings_between
from netmon.availability.recorder import JournalRecorder
from netmon.availability.render import render
from netmon.availability.report import build_report
from netmon.inventory import Inventory
from netmon.meeting_quality.db import MeetingDB

log = logging.getLogger(__name__)

CHECK_EVERY = 600.0
FORMATS = ("html", "json", "csv", "pdf")


def last_month(now: float, zone: ZoneInfo) -> str:
    first = dt.datetime.fromtimestamp(now, zone).date().replace(day=1)
    return (first - dt.timedelta(days=1)).strftime("%Y-%m")


def _write(path: Path, data: bytes) -> None:
    """Whole or not at all: a reader never sees half a report."""
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(data)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


class MonthlyReports:
    def __init__(
        self,
        recorder: JournalRecorder,
        inventory: Callable[[], Inventory],
        directory: Path,
        meeting_record: Callable[[], MeetingDB | None] = lambda: None,
    ) -> None:
        self._recorder = recorder
        self._meeting_record = meeting_record
        self._inventory = inventory
        self.directory = directory
        self._pdf = True  # until WeasyPrint turns out to be missing

    async def run(self) -> None:
        while True:
            try:
                await self.write_due()
            except Exception:
                log.exception("monthly availability report not written")
            await asyncio.sleep(CHECK_EVERY)

    async def write_due(self) -> list[Path]:
        """Write last month's report if it is missing; the files written."""
        inventory = self._inventory()
        config = inventory.config.availability
        zone = ZoneInfo(config.timezone)
        month = last_month(self._recorder.now(), zone)
        formats = [f for f in FORMATS if f != "pdf" or self._pdf]
        paths = {f: self.directory / f"availability-{month}.{f}" for f in formats}
        missing = [f for f, path in paths.items() if not path.exists()]
        if not missing:
            return []
        start, end = month_bounds(month, zone)
        db = self._recorder.db
        journal = await db.call(db.read, start, end)
        if not journal.runs:
            return []  # netmon did not run that month: nothing to account for
        lang = config.report_lang
        record = self._meeting_record()
        meetings = meetings_between(inventory, start, end)
        quality = await record.call(call_quality, record, meetings) if record and meetings else {}

        def build() -> list[Path]:
            report = build_report(journal, inventory, config, lang=lang, call_quality=quality)
            self.directory.mkdir(parents=True, exist_ok=True)
            written = []
            for fmt in missing:
                try:
                    body = render(report, fmt, lang=lang)
                except RuntimeError as exc:  # no WeasyPrint: the other formats still go
                    log.warning("monthly report without PDF", extra={"error": str(exc)})
                    self._pdf = False
                    continue
                _write(paths[fmt], body if isinstance(body, bytes) else body.encode())
                written.append(paths[fmt])
            return written

        written = await asyncio.to_thread(build)
        log.info(
            "monthly availability report written", extra={"month": month, "files": len(written)}
        )
        return written

"""Last month's report, written by netmon itself once the month is over (`availability.reports`):
`availability-YYYY-MM.html`, `.json`, `.csv` (and `.pdf` where WeasyPrint is installed) in the
reports directory. A month whose files are all there is not written again, so a restart on the
2nd writes what the 1st missed and nothing twice; a month netmon never ran in gets no report.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import email.utils
import logging
import os
import tempfile
from collections.abc import Callable
from email.header import Header
from email.mime.application import MIMEApplication
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from pathlib import Path
from zoneinfo import ZoneInfo

from netmon.availability.calendar import month_bounds
from netmon.availability.quality import call_quality, meetings_between
from netmon.availability.recorder import JournalRecorder
from netmon.availability.render import render
from netmon.availability.report import build_report
from netmon.channels.base import SinkRejected, SinkUnavailable
from netmon.channels.email import EmailChannel
from netmon.config.channels import EmailSettings
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
            await self._mail(inventory, month, paths)
            return []
        start, end = month_bounds(month, zone)
        await self._recorder.flush()  # the month's last changes, and netmon ran until now
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
        await self._mail(inventory, month, {f: p for f, p in paths.items() if p.exists()})
        return written

    async def _mail(self, inventory: Inventory, month: str, paths: dict[str, Path]) -> None:
        """Mail the month's report once (`availability.mail_to`); a failure is tried again at
        the next check, every ten minutes, until the relay takes it."""
        config = inventory.config.availability
        marker = self.directory / f".availability-{month}.mailed"
        if not config.mail_to or marker.exists() or "html" not in paths:
            return
        channels = inventory.config.oncall.channels if inventory.config.oncall else []
        settings = next(
            (c for c in channels if c.name == config.mail_channel and c.kind == "email"), None
        )
        if not isinstance(settings, EmailSettings):
            return  # the loader refuses such a config; a reload may have just changed it
        message = report_message(month, paths, config.report_lang, config.mail_to)
        try:
            await EmailChannel(settings).send_message(message, config.mail_to)
        except (SinkUnavailable, SinkRejected) as exc:
            log.warning("monthly report not mailed", extra={"month": month, "error": str(exc)})
            return
        _write(marker, f"{self._recorder.now()}\n".encode())
        log.info("monthly availability report mailed", extra={"month": month})


def report_message(
    month: str, paths: dict[str, Path], lang: str, recipients: list[str]
) -> MIMEMultipart:
    """The report's HTML as the message, its CSV and PDF attached."""
    year, number = month.split("-")
    subject = (
        f"netmon: báo cáo khả dụng tháng {int(number)}/{year}"
        if lang == "vi"
        else f"netmon: availability report {month}"
    )
    message = MIMEMultipart("mixed")
    message["Subject"] = Header(subject, "utf-8")  # type: ignore[assignment]
    message["To"] = ", ".join(recipients)
    message["Date"] = email.utils.formatdate(localtime=False)
    message["Auto-Submitted"] = "auto-generated"
    message.attach(MIMEText(paths["html"].read_text(encoding="utf-8"), "html", "utf-8"))
    for fmt, subtype in (("csv", "csv"), ("pdf", "pdf")):
        if fmt in paths:
            part = MIMEApplication(paths[fmt].read_bytes(), _subtype=subtype)
            part.add_header("Content-Disposition", "attachment", filename=paths[fmt].name)
            message.attach(part)
    return message

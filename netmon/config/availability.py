"""The `availability:` section: the outage journal netmon keeps, and how reports count it.

Plain data (no I/O): the journal's file and retention, the maintenance windows, the office
hours and holidays of the second figure, where the monthly report is written. What each figure
means is the accounting policy (netmon/availability/policy.py), printed on every report.
"""

from __future__ import annotations

import datetime as dt
from typing import Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator

from netmon.config.alerting import MatcherName
from netmon.config.oncall import OfficeHours


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class MaintenanceWindow(_Strict):
    """Planned work: the matching targets' time in it is excluded from their figures, and their
    outages in it are listed as excluded, with this window named."""

    id: str = Field(min_length=1, description="named in the report's evidence table")
    starts_at: AwareDatetime
    ends_at: AwareDatetime
    matchers: dict[MatcherName, str] = Field(
        min_length=1, description="labels (globs) a target must all match: target, district, ..."
    )
    comment: str = ""

    @model_validator(mode="after")
    def _ordered(self) -> MaintenanceWindow:
        if self.starts_at >= self.ends_at:
            raise ValueError("ends_at must be after starts_at")
        return self


class AvailabilityConfig(_Strict):
    enabled: bool = True
    database: str = Field(
        default="netmon-availability.sqlite",
        description="relative paths are where alerting.database's are (the state directory)",
    )
    retention_days: float = Field(default=400.0, gt=0, description="journal rows kept this long")
    heartbeat: float = Field(
        default=60.0,
        ge=1.0,
        le=3600.0,
        description="how often netmon notes it is running: after a crash, the time since the "
        "last note is unknown",
    )
    timezone: str = Field(default="Asia/Ho_Chi_Minh", description="months and days are local")
    office_hours: OfficeHours = Field(default_factory=OfficeHours)
    holidays: str | None = Field(
        default="VN",
        description="public holidays (ISO country code, python-holidays) left out of the "
        "office-hours figure; null for none",
    )
    extra_holidays: list[dt.date] = Field(
        default_factory=list, description="days off decreed on top of the public holidays"
    )
    degraded: bool = Field(
        default=False,
        description="also a quality figure: time up but with a link-quality alert firing "
        "(HighLoss, HighLatency, HighJitter, LossBursts) counted as down",
    )
    unknown: Literal["excluded", "down"] = Field(
        default="excluded",
        description="time without data: out of the denominator (default), or counted as down",
    )
    maintenance: list[MaintenanceWindow] = Field(default_factory=list)
    reports: str | None = Field(
        default=None,
        description="directory where netmon writes last month's report on the 1st (HTML, "
        "JSON, CSV); relative paths are in the state directory",
    )
    report_lang: Literal["vi", "en"] = "vi"
    mail_to: list[str] = Field(
        default_factory=list,
        description="who gets the monthly report by e-mail (needs `reports` and mail_channel)",
    )
    mail_channel: str | None = Field(
        default=None, description="the e-mail channel of `oncall.channels` it goes through"
    )

    @model_validator(mode="after")
    def _mail(self) -> AvailabilityConfig:
        if self.mail_to and (self.mail_channel is None or self.reports is None):
            raise ValueError("mail_to needs mail_channel (an e-mail channel) and reports")
        return self

    @model_validator(mode="after")
    def _unique_windows(self) -> AvailabilityConfig:
        ids = [window.id for window in self.maintenance]
        repeated = sorted({i for i in ids if ids.count(i) > 1})
        if repeated:
            raise ValueError(f"maintenance windows need distinct ids; repeated: {repeated}")
        return self

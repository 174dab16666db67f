"""An availability report as data: what `netmon report` renders as HTML, PDF, CSV or JSON and the
API serves. Times are unix seconds here and local ISO 8601 in the JSON."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo

from netmon.availability.quality import CallQuality

# The accounting rules' version: a report states which rules made its figures, so a figure
# questioned a year later can be recomputed the same way.
POLICY_VERSION = "netmon-availability/1"


@dataclass(frozen=True, slots=True)
class Piece:
    """A part of an outage with one cause, inside the period."""

    start: float
    end: float
    cause: str  # the alert name (EndpointDown, TargetDown, DistrictUnreachable, ...) or maintenance
    alert: str | None  # the alert's fingerprint, as the API and MQTT name it
    excluded: bool
    why: str | None  # why excluded: the window, or the link it is charged to
    reason: str | None  # netmon's word when it judged the target down (timeout, send, ...)
    outage: int  # pieces of one outage share this number (per subject)
    split: bool = False  # the outage began before the period or goes on after it

    @property
    def seconds(self) -> float:
        return self.end - self.start


@dataclass(frozen=True, slots=True)
class Figures:
    """Seconds of one subject (or a sum of several) over the period or its office hours.

    availability = up / (up + down): time in maintenance, behind a cut parent (a site's own
    figure) and without data (by default) is out of the denominator and shown on its own."""

    period: float
    up: float
    down: float
    unknown: float
    maintenance: float
    parent: float

    @property
    def availability(self) -> float | None:
        counted = self.up + self.down
        return self.up / counted if counted > 0 else None

    def __add__(self, other: Figures) -> Figures:
        return Figures(
            self.period + other.period,
            self.up + other.up,
            self.down + other.down,
            self.unknown + other.unknown,
            self.maintenance + other.maintenance,
            self.parent + other.parent,
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "availability": self.availability,
            "period_seconds": round(self.period, 3),
            "up_seconds": round(self.up, 3),
            "down_seconds": round(self.down, 3),
            "unknown_seconds": round(self.unknown, 3),
            "maintenance_seconds": round(self.maintenance, 3),
            "parent_seconds": round(self.parent, 3),
        }


NO_FIGURES = Figures(0.0, 0.0, 0.0, 0.0, 0.0, 0.0)


@dataclass(frozen=True, slots=True)
class SubjectReport:
    """A site (a target) or a district link (the link to a parent, `link:` + its id)."""

    subject: str
    name: str
    district: str
    group: str
    kind: str
    parent: str | None
    total: Figures
    office: Figures
    pieces: list[Piece]
    daily: list[float | None]  # availability per local day of the period
    down_by_hour: list[float]  # counted down seconds by local hour of day (0-23)
    quality: Figures | None = None  # `availability.degraded`: degraded time counted as down

    @property
    def outages(self) -> int:
        """Outages with counted time (not only maintenance or a cut parent)."""
        return len({p.outage for p in self.pieces if not p.excluded})

    @property
    def mttr(self) -> float | None:
        """Counted down seconds per counted outage."""
        return self.total.down / self.outages if self.outages else None


@dataclass(frozen=True, slots=True)
class MeetingRoom:
    target: str
    name: str
    district: str
    seconds: float  # the meeting's length
    up: float
    down: float
    unknown: float
    verdict: str | None  # the last readiness verdict before the start (GO, WARN, NO-GO)
    reasons: tuple[str, ...]
    quality: CallQuality | None = None  # from the meeting quality record, where it has the call

    @property
    def availability(self) -> float | None:
        counted = self.up + self.down
        return self.up / counted if counted > 0 else None

    @property
    def ready(self) -> bool | None:
        return None if self.verdict is None else self.verdict != "NO-GO"


@dataclass(frozen=True, slots=True)
class MeetingReport:
    name: str
    start: float
    end: float
    rooms: list[MeetingRoom]

    @property
    def availability(self) -> float | None:
        up = sum(r.up for r in self.rooms)
        counted = up + sum(r.down for r in self.rooms)
        return up / counted if counted > 0 else None


@dataclass(frozen=True, slots=True)
class DistrictSummary:
    district: str
    sites: Figures
    links: Figures
    office: Figures
    meetings: float | None
    outages: int
    down_seconds: float

    @property
    def mttr(self) -> float | None:
        return self.down_seconds / self.outages if self.outages else None


@dataclass(frozen=True, slots=True)
class Report:
    policy: dict[str, Any]
    start: float
    end: float
    timezone: str
    generated: float
    sites: list[SubjectReport]
    links: list[SubjectReport]
    districts: list[DistrictSummary]
    services: list[SubjectReport]  # each site's service probes (`target/probe`)
    meetings: list[MeetingReport]
    days: list[dt.date]
    scope: dict[str, str] = field(default_factory=dict)
    gaps: list[tuple[float, float]] = field(default_factory=list)  # netmon not running

    def local(self, when: float) -> str:
        return dt.datetime.fromtimestamp(when, ZoneInfo(self.timezone)).isoformat()

    def worst(self, count: int = 10) -> list[SubjectReport]:
        rated = [s for s in self.sites if s.total.availability is not None]
        return sorted(rated, key=lambda s: (s.total.availability, s.subject))[:count]

    def to_json(self) -> dict[str, Any]:
        return {
            "policy": self.policy,
            "period": {"from": self.local(self.start), "to": self.local(self.end)},
            "scope": self.scope,
            "generated": self.local(self.generated),
            "netmon_not_running": [
                {"start": self.local(s), "end": self.local(e), "seconds": round(e - s, 3)}
                for s, e in self.gaps
            ],
            "districts": [self._district(d) for d in self.districts],
            "targets": [self._subject(s) for s in self.sites],
            "links": [self._subject(s) for s in self.links],
            "services": [self._subject(s) for s in self.services],
            "meetings": [self._meeting(m) for m in self.meetings],
        }

    def _subject(self, subject: SubjectReport) -> dict[str, Any]:
        return {
            "target": subject.subject,
            "name": subject.name,
            "district": subject.district,
            "group": subject.group,
            "kind": subject.kind,
            "parent": subject.parent,
            "availability": subject.total.availability,
            "unknown_seconds": round(subject.total.unknown, 3),
            "figures": subject.total.to_json(),
            "office_hours": subject.office.to_json(),
            "quality": None if subject.quality is None else subject.quality.to_json(),
            "outage_count": subject.outages,
            "mttr_seconds": None if subject.mttr is None else round(subject.mttr, 3),
            "daily": subject.daily,
            "outages": [self._piece(p) for p in subject.pieces],
        }

    def _piece(self, piece: Piece) -> dict[str, Any]:
        return {
            "start": self.local(piece.start),
            "end": self.local(piece.end),
            "seconds": round(piece.seconds, 3),
            "cause": piece.cause,
            "alert": piece.alert,
            "excluded": piece.excluded,
            "why": piece.why,
            "reason": piece.reason,
            "outage": piece.outage,
            "split": piece.split,
        }

    def _district(self, district: DistrictSummary) -> dict[str, Any]:
        return {
            "district": district.district,
            "site_availability": district.sites.availability,
            "link_availability": district.links.availability,
            "office_hours_availability": district.office.availability,
            "meeting_availability": district.meetings,
            "outages": district.outages,
            "mttr_seconds": None if district.mttr is None else round(district.mttr, 3),
        }

    def _meeting(self, meeting: MeetingReport) -> dict[str, Any]:
        return {
            "name": meeting.name,
            "start": self.local(meeting.start),
            "end": self.local(meeting.end),
            "availability": meeting.availability,
            "rooms": [
                {
                    "target": r.target,
                    "name": r.name,
                    "district": r.district,
                    "availability": r.availability,
                    "up_seconds": round(r.up, 3),
                    "down_seconds": round(r.down, 3),
                    "unknown_seconds": round(r.unknown, 3),
                    "verdict": r.verdict,
                    "ready": r.ready,
                    "reasons": list(r.reasons),
                    "call_quality": None if r.quality is None else r.quality.to_json(),
                }
                for r in meeting.rooms
            ],
        }

"""What a readiness check reports: per endpoint a verdict with its reasons, and a summary.

The JSON form (`CheckReport.to_json`) is a stable, documented schema (README, "Readiness
checks"); `SCHEMA_VERSION` changes only when a field changes meaning or goes away.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from netmon.model import iso

SCHEMA_VERSION = 1


class Verdict(StrEnum):
    GO = "GO"
    WARN = "WARN"
    NO_GO = "NO-GO"

    @property
    def rank(self) -> int:
        return {Verdict.GO: 0, Verdict.WARN: 1, Verdict.NO_GO: 2}[self]


@dataclass(frozen=True, slots=True)
class Finding:
    """One thing the check found. A GO finding is a note ("status not available"), not a
    reason against the meeting. `reason_vi` is the same in Vietnamese, where written."""

    verdict: Verdict
    reason: str  # plain words: "loss 4.0% > 1%", "SIP OPTIONS: no answer"
    reason_vi: str = ""


@dataclass(slots=True)
class EndpointReport:
    target: str
    name: str
    district: str
    address: str
    findings: list[Finding] = field(default_factory=list)
    measurements: dict[str, Any] = field(default_factory=dict)

    @property
    def verdict(self) -> Verdict:
        return max((f.verdict for f in self.findings), key=lambda v: v.rank, default=Verdict.GO)

    def _against(self) -> list[Finding]:
        worst = sorted(self.findings, key=lambda f: -f.verdict.rank)
        return [f for f in worst if f.verdict is not Verdict.GO]

    @property
    def reasons(self) -> list[str]:
        return [f.reason for f in self._against()]

    @property
    def reasons_vi(self) -> list[str]:
        """The reasons in Vietnamese; one not written in Vietnamese stays in English."""
        return [f.reason_vi or f.reason for f in self._against()]

    @property
    def notes(self) -> list[str]:
        return [f.reason for f in self.findings if f.verdict is Verdict.GO]

    def quality_cells(self) -> tuple[str, str, str]:
        """RTT p95, loss and jitter as a person reads them ("-" when not measured), for the
        table and the HTML report alike."""
        m = self.measurements
        return (
            f"{m['rtt_p95_ms']:.1f} ms" if "rtt_p95_ms" in m else "-",
            f"{m['loss_ratio'] * 100:.1f}%" if "loss_ratio" in m else "-",
            f"{m['jitter_ms']:.1f} ms" if "jitter_ms" in m else "-",
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "target": self.target,
            "name": self.name,
            "district": self.district,
            "address": self.address,
            "verdict": self.verdict.value,
            "reasons": self.reasons,
            "reasons_vi": self.reasons_vi,
            "notes": self.notes,
            "measurements": self.measurements,
        }


@dataclass(slots=True)
class CheckReport:
    id: str
    scope: dict[str, Any]
    started: float
    finished: float = 0.0
    endpoints: list[EndpointReport] = field(default_factory=list)

    @property
    def duration(self) -> float:
        return max(0.0, self.finished - self.started)

    def counts(self) -> dict[str, int]:
        counted = Counter(report.verdict for report in self.endpoints)
        return {verdict.value: counted.get(verdict, 0) for verdict in Verdict}

    def worst_first(self) -> list[EndpointReport]:
        return sorted(self.endpoints, key=lambda r: (-r.verdict.rank, r.district, r.target))

    def summary(self) -> str:
        counts = self.counts()
        return (
            f"{counts['GO']} GO, {counts['WARN']} WARN, {counts['NO-GO']} NO-GO "
            f"({len(self.endpoints)} endpoints checked in {self.duration:.1f} s)"
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "schema_version": SCHEMA_VERSION,
            "id": self.id,
            "scope": self.scope,
            "started": iso(self.started),
            "finished": iso(self.finished) if self.finished else None,
            "duration_seconds": round(self.duration, 3),
            "counts": self.counts(),
            "summary": self.summary(),
            "endpoints": [report.to_json() for report in self.worst_first()],
        }

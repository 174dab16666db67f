"""Meetings: a room's faults are raised one severity while a meeting is on there.

A lossy link in an idle room is a warning; in the room of the provincial meeting in ten minutes
it is critical. This holds the meeting windows and says which severity an alert has now; it
does not fire or re-announce anything (the engine's tick does, when the answer changes).
"""

from __future__ import annotations

from collections.abc import Sequence

from netmon.alerting.model import Severity
from netmon.alerting.tracked import Tracked

# The faults of a room that matter more when a meeting is on (not its management alerts).
MEETING_RAISED = frozenset(
    {
        "EndpointDown",
        "HighLatency",
        "HighPacketLoss",
        "HighJitter",
        "ProbeFailed",
        "EndpointUnregistered",
        "PeripheralDisconnected",
        "EndpointDiagnosticError",
        "OneSidedRegistration",
        "CallQualityDegraded",
        "CallQualityBad",
    }
)
RAISED = {
    Severity.INFO: Severity.WARNING,
    Severity.WARNING: Severity.MAJOR,
    Severity.MAJOR: Severity.CRITICAL,
    Severity.CRITICAL: Severity.CRITICAL,
}


class Meetings:
    def __init__(self) -> None:
        self._windows: list[tuple[float, float, frozenset[str]]] = []

    def set_windows(self, windows: Sequence[tuple[float, float, frozenset[str]]]) -> None:
        """(from, until, endpoints) of each meeting."""
        self._windows = list(windows)

    def _in_meeting(self, target_id: str, now: float) -> bool:
        return any(a <= now < b and target_id in ids for a, b, ids in self._windows)

    def severity(self, tracked: Tracked, now: float) -> Severity:
        """The alert's severity now: its level's, raised if its room is in a meeting."""
        severity = tracked.severity
        if tracked.alertname in MEETING_RAISED and self._in_meeting(tracked.target, now):
            return RAISED[severity]
        return severity

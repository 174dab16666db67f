"""One alert identity and where it stands: its level, a pending change, flapping, holds.

Plain data plus the one rule of hysteresis (`desired_level`); the engine's rooms read and move
it. Nothing here decides a transition, renders or writes anything.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field

from netmon.alerting.model import AlertEvent, Severity, fingerprint
from netmon.config.rules import Level, Rule


@dataclass(frozen=True, slots=True)
class Acknowledgement:
    """Someone is on it: who, when (unix seconds), what they said, and the severity they took
    it at (a rise above it is news, and clears the acknowledgement)."""

    by: str
    at: float
    comment: str
    severity: Severity


def acknowledgement_of(event: AlertEvent) -> Acknowledgement | None:
    """The acknowledgement a stored firing event carries (a restart brings it back)."""
    if not event.acknowledged:
        return None
    at = event.acknowledged_at or event.event_at
    return Acknowledgement(event.acknowledged_by, at, event.acknowledged_comment, event.severity)


@dataclass(slots=True)
class Tracked:
    """One alert identity and where it stands."""

    alertname: str
    target: str
    labels: dict[str, str]
    rule: Rule
    metric: str
    level: int = -1  # index into rule.levels; -1 = not firing
    candidate: int | None = None
    candidate_since: float = 0.0
    value: float | None = None
    started: float = 0.0
    toggles: deque[float] = field(default_factory=deque)
    raw_active: bool = False
    flapping: bool = False
    peak: int = -1  # highest level while flapping
    announced: bool = False  # the sinks have its current firing
    emitted: AlertEvent | None = None  # the last firing event (announced or recorded)
    restored_until: float | None = None
    hold_until: float | None = None  # event alerts resolve by themselves then
    held_until: float | None = None  # topology wait before a child's down alert is paged
    suppressed_by: str | None = None
    extra: dict[str, object] = field(default_factory=dict)
    ack: Acknowledgement | None = None

    @property
    def key(self) -> str:
        return fingerprint(self.alertname, self.target, self.labels)

    @property
    def severity(self) -> Severity:
        level = self.peak if self.flapping else self.level
        return self.rule.levels[max(level, 0)].severity


@dataclass(frozen=True, slots=True)
class Estimate:
    """A share measured on a sample (loss over the echoes of a window), with the bounds of its
    confidence interval: a reading judged with statistics, not taken at face value."""

    value: float
    low: float
    high: float


def wilson(lost: int, sent: int, z: float) -> Estimate:
    """The share lost with its Wilson score interval: unlike the normal approximation it stays
    inside 0..1 and is honest for the few losses a healthy link has."""
    z2 = z * z
    if not lost:
        # The formula's bounds with no loss, exactly (it gives a lower bound of 0 only up to
        # rounding), without its square root: every echo round of every healthy target.
        return Estimate(0.0, 0.0, z2 / (sent + z2))
    share = lost / sent
    centre = (share + z2 / (2 * sent)) / (1 + z2 / sent)
    half = z * math.sqrt(share * (1 - share) / sent + z2 / (4 * sent * sent)) / (1 + z2 / sent)
    return Estimate(share, max(0.0, centre - half), min(1.0, centre + half))


def desired_level(levels: Sequence[Level], current: int, value: float | Estimate) -> int:
    """The highest level whose raise point the value passed, or that it has not yet fallen
    back below the clear point of (hysteresis). An estimate is judged by `judged_level`."""
    if isinstance(value, Estimate):
        return judged_level(levels, current, value)
    desired = -1
    for index, level in enumerate(levels):
        if value > level.above or (index <= current and value > level.clear_at):
            desired = index
    return desired


def judged_level(levels: Sequence[Level], current: int, estimate: Estimate) -> int:
    """Levels for a statistical reading, so that one incident is one notification.

    - Quiet, it fires once the lower bound passes the lowest level (netmon is sure the share
      is above it), at the level of the measured share then: a 5 % loss is major at once, not
      a warning and then a major.
    - Firing, it rises only when the lower bound passes a higher level, and never falls while
      it lasts (a share near a level would otherwise notify at every wobble); the value shown
      with it stays current.
    - It clears once the measured share is back at the lowest level's clear point.
    """
    if current < 0:
        if estimate.low <= levels[0].above:
            return -1
        return max(i for i, level in enumerate(levels) if i == 0 or estimate.value > level.above)
    surer = [i for i, level in enumerate(levels) if i > current and estimate.low > level.above]
    if surer:
        return surer[-1]
    if estimate.value <= levels[0].clear_at:
        return -1
    return current

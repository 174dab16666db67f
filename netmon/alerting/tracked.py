"""One alert identity and where it stands: its level, a pending change, flapping, holds.

Plain data plus the one rule of hysteresis (`desired_level`); the engine's rooms read and move
it. Nothing here decides a transition, renders or writes anything.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field

from netmon.alerting.model import AlertEvent, Severity, fingerprint
from netmon.config.rules import Level, Rule


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

    @property
    def key(self) -> str:
        return fingerprint(self.alertname, self.target, self.labels)

    @property
    def severity(self) -> Severity:
        level = self.peak if self.flapping else self.level
        return self.rule.levels[max(level, 0)].severity


def desired_level(levels: Sequence[Level], current: int, value: float) -> int:
    """The highest level whose raise point the value passed, or that it has not yet fallen
    back below the clear point of (hysteresis)."""
    desired = -1
    for index, level in enumerate(levels):
        if value > level.above or (index <= current and value > level.clear_at):
            desired = index
    return desired

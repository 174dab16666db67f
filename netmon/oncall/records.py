"""What the escalator keeps: an escalation per alert, who it paged, and what one decision
changes (saved and ended escalations, the pages of a step). Plain data and its JSON."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from netmon.alerting.model import AlertEvent
from netmon.channels.base import Page
from netmon.config.alerting import Language
from netmon.config.rules import Severity


def page_queue(channel: str) -> str:
    return f"page:{channel}"


@dataclass(frozen=True, slots=True)
class Paged:
    """Someone a page went to: told again when the alert is acknowledged or resolved."""

    channel: str
    recipient: str
    person: str
    language: Language


@dataclass(slots=True)
class Escalation:
    fingerprint: str
    policy: str
    event: AlertEvent  # the latest the escalator heard of
    severity: Severity  # the severity it (re)started at, or the latest after a fall
    step: int = 0  # the next step to fire
    next_at: float | None = None  # unix seconds; None: nothing more to fire
    acknowledged: bool = False
    paged: list[Paged] = field(default_factory=list)
    on_call: dict[str, str] = field(default_factory=dict)  # rota -> the person it paged
    on_call_step: dict[str, int] = field(default_factory=dict)  # rota -> the step that did
    snoozed_until: float = 0.0  # "Silence 1 h": no page before then
    last_event_id: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "fingerprint": self.fingerprint,
            "policy": self.policy,
            "event": self.event.to_json(),
            "severity": self.severity.value,
            "step": self.step,
            "next_at": self.next_at,
            "acknowledged": self.acknowledged,
            "paged": [[p.channel, p.recipient, p.person, p.language] for p in self.paged],
            "on_call": self.on_call,
            "on_call_step": self.on_call_step,
            "snoozed_until": self.snoozed_until,
            "last_event_id": self.last_event_id,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Escalation:
        return cls(
            fingerprint=str(data["fingerprint"]),
            policy=str(data["policy"]),
            event=AlertEvent.from_json(data["event"]),
            severity=Severity(data["severity"]),
            step=int(data["step"]),
            next_at=None if data["next_at"] is None else float(data["next_at"]),
            acknowledged=bool(data["acknowledged"]),
            paged=[Paged(c, r, p, lang) for c, r, p, lang in data["paged"]],
            on_call={str(k): str(v) for k, v in data["on_call"].items()},
            on_call_step={str(k): int(v) for k, v in data.get("on_call_step", {}).items()},
            snoozed_until=float(data.get("snoozed_until", 0.0)),
            last_event_id=str(data.get("last_event_id", "")),
        )


@dataclass(slots=True)
class Changes:
    """What one event or tick decided, written in one transaction."""

    saved: dict[str, Escalation] = field(default_factory=dict)
    ended: set[str] = field(default_factory=set)
    pages: list[Page] = field(default_factory=list)

    def save(self, escalation: Escalation) -> None:
        self.ended.discard(escalation.fingerprint)
        self.saved[escalation.fingerprint] = escalation

    def end(self, fingerprint: str) -> None:
        self.saved.pop(fingerprint, None)
        self.ended.add(fingerprint)

    def __bool__(self) -> bool:
        return bool(self.saved or self.ended or self.pages)

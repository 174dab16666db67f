"""What an alert transition looks like to everything outside the engine.

An `AlertEvent` is one transition (firing, or resolved) of one alert. Its identity is
(alertname, target, identity labels); severity is an attribute that may rise or fall while the
alert fires. The JSON form is the MQTT payload (docs/architecture.md, "MQTT") and is what the
outbox stores.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any

# Severity is declared with the rules that name it (the config may not import alerting); an
# event's severity is one of them, so this module offers it too.
from netmon.config.rules import Severity as Severity
from netmon.model import iso


class Status(StrEnum):
    FIRING = "firing"
    RESOLVED = "resolved"


def parse_iso(text: str | None) -> float | None:
    if text is None:
        return None
    return dt.datetime.fromisoformat(text).timestamp()


def fingerprint(alertname: str, target: str, labels: Mapping[str, str]) -> str:
    """A stable identity: the same alert has the same fingerprint across restarts."""
    text = "\x1f".join([alertname, target, *(f"{k}={v}" for k, v in sorted(labels.items()))])
    return hashlib.sha256(text.encode()).hexdigest()[:16]


class Fingerprints:
    """`fingerprint`, remembered: hashing an identity costs more than looking it up, and the
    engine asks for the same few identities on every observation."""

    # Identities remembered at most (one per rule, target and interface): beyond, the memo
    # starts again rather than grow with identities long gone (renamed ports).
    LIMIT = 200_000

    def __init__(self) -> None:
        self._known: dict[tuple[object, ...], str] = {}

    def of(self, alertname: str, target: str, labels: Mapping[str, str]) -> str:
        memo = (alertname, target, *labels.items()) if labels else (alertname, target)
        key = self._known.get(memo)
        if key is None:
            if len(self._known) >= self.LIMIT:
                self._known.clear()
            key = self._known[memo] = fingerprint(alertname, target, labels)
        return key

    def clear(self) -> None:
        self._known.clear()


def new_event_id() -> str:
    """A fresh transition's idempotency key (see `AlertEvent.event_id`)."""
    return uuid.uuid4().hex


@dataclass(frozen=True, slots=True)
class AlertEvent:
    """One transition of one alert, as every sink receives it.

    `labels` are the identity labels beyond alertname and target (ifname, district, ...);
    `context` are the target's descriptive labels (kind, site, district, group) that routing
    uses but that are not part of the identity.
    """

    alertname: str
    target: str
    severity: Severity
    status: Status
    starts_at: float  # unix seconds
    ends_at: float | None
    summary: str
    labels: Mapping[str, str] = field(default_factory=dict)
    context: Mapping[str, str] = field(default_factory=dict)
    value: float | None = None
    description: str = ""
    flapping: bool = False
    event_at: float = 0.0  # when this transition happened (unix seconds)
    # Set on a firing event whose severity changed: routers that key alerts by their labels
    # (Alertmanager) must end the alert under the old severity.
    previous_severity: Severity | None = None
    # The transition's idempotency key, given when the outbox stores it and kept with it: a
    # re-send of the same transition (a broker reconnect, a netmon killed between the sink's
    # acknowledgement and the outbox's) carries the same id, every other transition another.
    # Delivery is at least once; consumers that must see each transition once dedupe on it.
    # Empty on an event not (yet) recorded, such as a pending alert rendered for the API.
    event_id: str = ""
    # Someone is on it (issue 18): set while the alert fires acknowledged, and on the resolve
    # of an alert that was (who had taken it). Empty / None otherwise.
    acknowledged_by: str = ""
    acknowledged_at: float | None = None
    acknowledged_comment: str = ""

    @property
    def acknowledged(self) -> bool:
        return bool(self.acknowledged_by)

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.alertname, self.target, self.labels)

    @property
    def topic_key(self) -> str:
        """The last MQTT topic level: the alertname, plus the fingerprint when identity labels
        (an interface, say) make several alerts of one name on one target."""
        return f"{self.alertname}~{self.fingerprint}" if self.labels else self.alertname

    @property
    def firing(self) -> bool:
        return self.status is Status.FIRING

    def all_labels(self) -> dict[str, str]:
        """Every label a router (Alertmanager) may match on: context, identity, name, severity."""
        return {
            **self.context,
            **self.labels,
            "alertname": self.alertname,
            "target": self.target,
            "severity": self.severity.value,
        }

    def resolved(self, at: float) -> AlertEvent:
        return replace(self, status=Status.RESOLVED, ends_at=at, event_at=at)

    def to_json(self) -> dict[str, Any]:
        return {
            "alertname": self.alertname,
            "target": self.target,
            "severity": self.severity.value,
            "status": self.status.value,
            "starts_at": iso(self.starts_at),
            "ends_at": iso(self.ends_at),
            "summary": self.summary,
            "description": self.description,
            "labels": dict(self.labels),
            "context": dict(self.context),
            "value": self.value,
            "flapping": self.flapping,
            "event_at": iso(self.event_at),
            "fingerprint": self.fingerprint,
            "previous_severity": self.previous_severity.value if self.previous_severity else None,
            "event_id": self.event_id or None,
            "acknowledged": self.acknowledged,
            "acknowledged_by": self.acknowledged_by or None,
            "acknowledged_at": iso(self.acknowledged_at),
            "acknowledged_comment": self.acknowledged_comment or None,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> AlertEvent:
        starts_at = parse_iso(data["starts_at"])
        if starts_at is None:
            raise ValueError("an alert event without starts_at")
        return cls(
            alertname=data["alertname"],
            target=data["target"],
            severity=Severity(data["severity"]),
            status=Status(data["status"]),
            starts_at=starts_at,
            ends_at=parse_iso(data.get("ends_at")),
            summary=data.get("summary", ""),
            description=data.get("description", ""),
            labels=dict(data.get("labels", {})),
            context=dict(data.get("context", {})),
            value=data.get("value"),
            flapping=bool(data.get("flapping", False)),
            event_at=parse_iso(data.get("event_at")) or starts_at,
            previous_severity=Severity(data["previous_severity"])
            if data.get("previous_severity")
            else None,
            event_id=str(data.get("event_id") or ""),
            acknowledged_by=str(data.get("acknowledged_by") or ""),
            acknowledged_at=parse_iso(data.get("acknowledged_at")),
            acknowledged_comment=str(data.get("acknowledged_comment") or ""),
        )

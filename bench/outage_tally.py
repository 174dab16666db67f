"""`make outage`'s counting: what a sink's far side received against what it should have.

Pure functions over received alert events (the MQTT event or webhook JSON, with the time it
arrived), so the campaign's verdicts can be checked without running it. An alert is
`alertname/target`; the campaign knows the statuses each goes through (firing, resolved,
firing...). Delivery is at least once, so a transition may arrive twice. A *raw* duplicate is a
message beyond the expected count of its alert and status, whatever its event_id; a duplicate
*by event_id* is an event id beyond that count, i.e. what a consumer deduping on event_id would
still take for a second firing. The goals are 0 duplicates by event_id, 0 lost and 0 out of
order; raw duplicates are reported (the re-sends at-least-once allows).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

Received = tuple[float, Mapping[str, Any]]  # (arrival, unix seconds; the alert JSON)


@dataclass
class Tally:
    """One sink's deliveries in one scenario, against the transitions expected per alert."""

    expected: int = 0
    received: int = 0  # raw: every message
    delivered: int = 0  # distinct expected transitions that arrived
    duplicates_raw: int = 0  # extra copies of a transition (same or other event_id)
    duplicates_by_id: int = 0  # extra event ids for one transition
    lost: int = 0
    out_of_order: int = 0  # alerts whose transitions arrived in another order
    unexpected: int = 0  # transitions of alerts or statuses nobody expected
    missing_event_id: int = 0
    last_arrival: float | None = None
    lost_detail: list[str] = field(default_factory=list)
    order_detail: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def alert_key(alert: Mapping[str, Any]) -> str:
    return f"{alert.get('alertname')}/{alert.get('target')}"


def tally(received: Sequence[Received], expected: Mapping[str, Sequence[str]]) -> Tally:
    """Count `received` against `expected`: alert key (`alertname/target`) → the statuses it
    should go through, in order (`["firing", "resolved", "firing"]`)."""
    result = Tally(expected=sum(len(statuses) for statuses in expected.values()))
    result.received = len(received)
    messages: Counter[tuple[str, str]] = Counter()
    ids: dict[tuple[str, str], set[str]] = {}
    order: dict[str, list[str]] = {}  # alert → statuses, at the first arrival of each id
    for at, alert in received:
        key, status = alert_key(alert), str(alert.get("status"))
        if key not in expected:
            result.unexpected += 1
            continue
        event_id = alert.get("event_id")
        if not event_id:
            result.missing_event_id += 1
            event_id = f"starts_at {alert.get('starts_at')}"  # the incident, at least
        messages[key, status] += 1
        seen = ids.setdefault((key, status), set())
        if event_id not in seen:
            seen.add(str(event_id))
            order.setdefault(key, []).append(status)
            result.last_arrival = max(result.last_arrival or at, at)
    for key, statuses in expected.items():
        want = Counter(statuses)
        for status, count in want.items():
            result.duplicates_raw += max(0, messages[key, status] - count)
            distinct = len(ids.get((key, status), ()))
            result.duplicates_by_id += max(0, distinct - count)
            result.lost += max(0, count - distinct)
        got = order.get(key, [])
        # Extra ids are counted above; the order is that of the first ones of each status.
        kept: list[str] = []
        for status in got:
            if kept.count(status) < want[status]:
                kept.append(status)
        if len(kept) < len(statuses):
            result.lost_detail.append(f"{key}: expected {list(statuses)}, got {got}")
        elif kept != list(statuses):
            result.out_of_order += 1
            result.order_detail.append(f"{key}: expected {list(statuses)}, got {got}")
    result.delivered = result.expected - result.lost
    return result

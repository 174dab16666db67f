"""`make outage`'s counting (bench/outage_tally.py): a re-send is a raw duplicate only, a
transition announced again under a new event_id is a duplicate firing, and missing or swapped
transitions are lost or out of order."""

from __future__ import annotations

from typing import Any

from bench.outage_tally import Received, tally

EXPECTED = {"EndpointDown/a": ["firing", "resolved"], "EndpointDown/b": ["firing"]}


def event(target: str, status: str, event_id: str, at: float = 0.0) -> Received:
    alert: dict[str, Any] = {
        "alertname": "EndpointDown", "target": target, "status": status,
        "starts_at": "2026-12-05T00:00:00+00:00", "event_id": event_id,
    }  # fmt: skip
    return (at, alert)


def test_every_transition_once_is_all_delivered() -> None:
    counted = tally(
        [event("a", "firing", "1"), event("b", "firing", "2"), event("a", "resolved", "3", 9.0)],
        EXPECTED,
    )
    assert (counted.expected, counted.delivered, counted.lost) == (3, 3, 0)
    assert (counted.duplicates_raw, counted.duplicates_by_id, counted.out_of_order) == (0, 0, 0)
    assert counted.last_arrival == 9.0


def test_a_resend_is_a_raw_duplicate_that_event_id_dedupes() -> None:
    counted = tally(
        [event("a", "firing", "1"), event("a", "firing", "1"), event("a", "resolved", "3"),
         event("b", "firing", "2")],
        EXPECTED,
    )  # fmt: skip
    assert (counted.duplicates_raw, counted.duplicates_by_id, counted.lost) == (1, 0, 0)


def test_a_firing_announced_again_under_a_new_id_is_a_duplicate_firing() -> None:
    counted = tally(
        [event("a", "firing", "1"), event("a", "firing", "4"), event("a", "resolved", "3"),
         event("b", "firing", "2")],
        EXPECTED,
    )  # fmt: skip
    assert (counted.duplicates_raw, counted.duplicates_by_id, counted.out_of_order) == (1, 1, 0)


def test_missing_and_swapped_transitions_are_lost_and_out_of_order() -> None:
    counted = tally(
        [event("a", "resolved", "3"), event("a", "firing", "1"), event("x", "firing", "9")],
        EXPECTED,
    )
    assert (counted.lost, counted.delivered, counted.out_of_order) == (1, 2, 1)
    assert counted.unexpected == 1

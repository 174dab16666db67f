"""The contract between the delivery workers and a sink.

A delivery worker owns one sink. It reads that sink's events from the durable outbox in order
and calls `send` for each; the event leaves the outbox only when `send` returns. So a sink
must return only once the far side has the event (an MQTT PUBACK, an HTTP 2xx), raise
`SinkUnavailable` when it should be tried again later (the worker backs off and retries the
same event: order is kept), and raise `SinkRejected` when the far side refuses this very event
for good (it is dropped and counted, so one bad event cannot block the queue forever).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Protocol, runtime_checkable

from netmon.alerting.model import AlertEvent


class SinkUnavailable(Exception):  # noqa: N818 - a state of the sink, not a programming error
    """The sink cannot take events now (broker down, HTTP 5xx, timeout, a wrong token or URL,
    a rate limit): retry later, and not before `retry_after` seconds when the far side said."""

    def __init__(self, reason: str, *, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.retry_after = retry_after


class SinkRejected(Exception):  # noqa: N818
    """The sink refused this very event for good (HTTP 400, 413, 422...): drop it, count it,
    go on."""


ActiveAlerts = Callable[[], Sequence[AlertEvent]]
"""The alerts firing right now (sinks that re-send or reconcile state ask for them)."""


class Sink(Protocol):
    """One destination. `name` is the `sink` label of netmon_alert_notifications_total
    ("mqtt", "alertmanager", "webhook"); `queue` names this instance's outbox queue and is
    unique and stable across restarts ("mqtt", "alertmanager:http://am1:9093", "webhook:ops")."""

    name: str
    queue: str

    async def start(self) -> None:
        """Begin background work (connections, periodic re-sends); must not wait for the peer."""

    async def send(self, event: AlertEvent) -> None:
        """Deliver one transition; see the module docstring for what to raise."""

    async def close(self) -> None:
        """Stop background work and release connections; pending events stay in the outbox."""


@runtime_checkable
class StatusPublisher(Protocol):
    """A sink that also carries live per-target status (MQTT's retained status topics)."""

    def publish_status(self, target: str, status: dict[str, object]) -> None:
        """Latest value wins: called on every change, never blocks, never raises."""

    def forget_statuses(self, keep: Iterable[str]) -> None:
        """Clear the statuses of every target not in `keep` (they left the inventory)."""


@runtime_checkable
class ReportPublisher(Protocol):
    """A sink that also carries readiness reports (MQTT's `{prefix}/checks/{id}`)."""

    def publish_report(self, check_id: str, report: dict[str, object]) -> None:
        """Kept until the far side has it; never blocks, never raises."""

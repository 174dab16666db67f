"""Pages: what the on-call loop (issue 18) hands a channel, and what a channel promises back.

netmon's sinks (MQTT, Alertmanager, webhooks) carry every alert transition to machines. A
channel carries *pages* to people: one message to one recipient (a Telegram chat, an e-mail
address, a phone number) about one or more alerts, decided by an escalation step. Pages are
queued durably like alert events, and a channel is driven by a delivery worker the same way:

- `deliver(pages)` gets the oldest pending pages of its queue (at most `batch`), in order.
  It returns how many of them, from the first, the far side now has (all of them, or fewer
  when a rate limit or a size limit stops it: the rest is offered again). Pages for the same
  recipient that wait together may be sent as one message ("a burst of alerts becomes one
  message per chat, not 50"); they all count as delivered then.
- It raises `SinkUnavailable` (retry later, `retry_after` honoured) when nothing could be
  sent, and `SinkRejected` when the first page is refused for good (dropped and counted).

A channel never sees a secret in a page: tokens and passwords are in its own settings.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Protocol

from netmon.alerting.model import AlertEvent
from netmon.alerting.sinks.base import SinkRejected as SinkRejected
from netmon.alerting.sinks.base import SinkUnavailable as SinkUnavailable
from netmon.config.alerting import Language


class PageKind(StrEnum):
    FIRING = "firing"  # the first page of an escalation step
    REMINDER = "reminder"  # a step repeated: still firing, still nobody on it
    RESOLVED = "resolved"  # the alert ended: told to whoever was paged about it
    ACKNOWLEDGED = "acknowledged"  # someone is on it: told to whoever was paged about it


@dataclass(frozen=True, slots=True)
class Page:
    """One message to one recipient on one channel.

    `recipient` is the channel's own address: a Telegram chat id, optionally with a forum
    topic as "CHAT_ID:THREAD_ID"; an e-mail address; a phone number in E.164 for a gateway.
    `events` are the alerts it is about (the latest transition of each), `person` the name of
    the person paged ("" for a group chat), `acknowledged_by` who took it (ACKNOWLEDGED).
    `page_id` is unique and short (16 hex characters): a provider's idempotency key, and what
    a reply button refers to together with an alert's fingerprint.
    """

    page_id: str
    channel: str  # the configured channel's name
    recipient: str
    kind: PageKind
    events: tuple[AlertEvent, ...]
    language: Language
    created_at: float  # unix seconds
    step: int = 0  # the escalation step that sent it, from 0
    person: str = ""
    acknowledged_by: str = ""
    status_url: str = ""  # netmon's status page, for a link; "" when not published
    extra: dict[str, str] = field(default_factory=dict)


class ActionKind(StrEnum):
    ACKNOWLEDGE = "ack"
    SILENCE_1H = "silence1h"


@dataclass(frozen=True, slots=True)
class Action:
    """A person's answer from a channel (a Telegram button): do `kind` to the alert whose
    fingerprint is `fingerprint`, as `by` (the channel's name for the person, e.g.
    "telegram:@tuan" or "telegram:123456"), with the channel's `user_id` for the allow-list."""

    kind: ActionKind
    fingerprint: str
    by: str
    user_id: str
    channel: str


ActionHandler = Callable[[Action], Awaitable[str]]
"""Carries out an action; returns the short text shown to the person (e.g. "Acknowledged")."""


class Channel(Protocol):
    name: str  # the configured channel's name: its queue is f"page:{name}"
    kind: str  # "telegram", "email", "gateway": the `channel` label of its metrics

    async def start(self) -> None:
        """Begin background work (Telegram's getUpdates); must not wait for the far side."""

    async def deliver(self, pages: Sequence[Page]) -> int:
        """Send pages from the first; return how many are done (see the module doc)."""

    async def close(self) -> None:
        """Stop background work; pending pages stay queued."""

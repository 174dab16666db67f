"""Alertmanager sink: hands netmon's alert transitions to one Alertmanager (API v2).

One sink per Alertmanager URL, each with its own outbox queue, so one dead member of an HA pair
never holds up the other. Besides delivering transitions it re-sends every firing alert each
`resend_interval`, as Prometheus does: Alertmanager expects it, and it is how an Alertmanager
that restarted with empty memory gets the alerts back. Routing, grouping, inhibition and
silences are Alertmanager's job; the one silence this module makes is asked for
(`silence_on_ack`): an acknowledged alert's, until it resolves.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import time
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp

from netmon.alerting.model import AlertEvent, Severity
from netmon.alerting.sinks.base import ActiveAlerts, SinkRejected, SinkUnavailable
from netmon.alerting.sinks.webhook import post_json
from netmon.config.sinks import AlertmanagerSettings
from netmon.model import iso

log = logging.getLogger(__name__)

ALERTS_PATH = "/api/v2/alerts"
SILENCES_PATH = "/api/v2/silences"
# An acknowledged alert's silence is expired when it resolves; this bounds one whose resolve
# never comes (netmon's database lost): a week, then Alertmanager pages it again.
ACK_SILENCE_MAX = 7 * 86_400.0
# Prometheus' own factor: an alert ends by itself 4 resends after netmon went quiet for good.
ENDS_AT_RESENDS = 4
# Keeps one re-send request of a large outage well below Alertmanager's body limits.
RESEND_BATCH = 500


class AlertmanagerSink:
    """Delivers alert transitions to the Alertmanager at `url`, and re-sends firing alerts."""

    name = "alertmanager"

    def __init__(
        self,
        url: str,
        settings: AlertmanagerSettings,
        *,
        active: ActiveAlerts,
        generator_url: str,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.url = url.rstrip("/")
        self.settings = settings
        self.queue = f"alertmanager:{self.url}"
        self._active = active
        self._generator_url = generator_url
        self._sleep = sleep  # paces the re-sends; tests hand in a fake clock's
        self._session: aiohttp.ClientSession | None = None
        self._resender: asyncio.Task[None] | None = None
        # A re-send must not overtake a transition sent meanwhile (a stale "firing" after a
        # "resolved" would revive the alert for 4 resend intervals): posts go one at a time.
        self._post_lock = asyncio.Lock()
        self._resend_failing: bool | None = None

    def __repr__(self) -> str:
        return f"AlertmanagerSink(queue={self.queue!r})"

    async def start(self) -> None:
        tls: ssl.SSLContext | bool = True
        if self.settings.tls_insecure:
            tls = False
        elif self.settings.ca_file is not None:
            # Reads the CA file: off the loop.
            tls = await asyncio.to_thread(
                ssl.create_default_context, cafile=str(self.settings.ca_file)
            )
        self._session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=tls))
        self._resender = asyncio.create_task(self._resend_loop(), name=f"resend-{self.queue}")

    async def close(self) -> None:
        if self._resender is not None:
            self._resender.cancel()
            await asyncio.gather(self._resender, return_exceptions=True)
            self._resender = None
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def __aenter__(self) -> AlertmanagerSink:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def send(self, event: AlertEvent) -> None:
        if not event.firing and self._superseded(event):
            # A resolve that waited in the outbox (Alertmanager was away) while the alert fired
            # again: the re-sends already told Alertmanager of the newer incident, and this
            # old "resolved" would end it there until the next re-send.
            log.info(
                "resolve of an earlier incident skipped: the alert fires again",
                extra={"sink": self.queue, "alert": event.alertname, "target": event.target},
            )
            return
        now = time.time()
        alerts = [self._alert(event, now)]
        if event.firing and event.previous_severity not in (None, event.severity):
            # Alertmanager keys alerts by their labels, severity included: without this the
            # old-severity alert would stay active until its endsAt.
            alerts.append(self._alert(event, now, ended_severity=event.previous_severity))
        async with self._post_lock:
            if self.settings.silence_on_ack:
                await self._follow_acknowledgement(event, now)
            await self._post(alerts)

    async def _follow_acknowledgement(self, event: AlertEvent, now: float) -> None:
        """`silence_on_ack`: an acknowledged alert silenced in Alertmanager until it resolves
        or nobody is on it any more. The silences are found again by their comment, which
        names the alert's fingerprint: nothing to remember across a restart, and a re-sent
        acknowledgement does not make a second silence."""
        marker = f"[netmon {event.fingerprint}]"
        ours = [
            silence
            for silence in await self._request("GET", SILENCES_PATH)
            if marker in str(silence.get("comment", ""))
            and silence.get("status", {}).get("state") in ("active", "pending")
        ]
        if event.firing and event.acknowledged:
            if ours:
                return
            matchers = [
                {"name": name, "value": value, "isRegex": False, "isEqual": True}
                for name, value in {
                    "alertname": event.alertname, "target": event.target, **event.labels
                }.items()
            ]  # fmt: skip
            comment = f"acknowledged in netmon by {event.acknowledged_by}"
            if event.acknowledged_comment:
                comment += f": {event.acknowledged_comment}"
            await self._request(
                "POST",
                SILENCES_PATH,
                {
                    "matchers": matchers,
                    "startsAt": iso(now),
                    "endsAt": iso(now + ACK_SILENCE_MAX),
                    "createdBy": "netmon",
                    "comment": f"{comment} {marker}",
                },
            )
            return
        for silence in ours:
            await self._request("DELETE", f"/api/v2/silence/{silence['id']}")

    async def _request(self, method: str, path: str, body: Any = None) -> Any:
        """A silences API call, its failures mapped as a post's are."""
        if self._session is None:
            raise RuntimeError("AlertmanagerSink used before start()")
        try:
            async with self._session.request(
                method,
                self.url + path,
                json=body,
                headers=self.settings.auth_headers(),
                allow_redirects=False,
                timeout=aiohttp.ClientTimeout(total=self.settings.timeout),
            ) as response:
                if response.status >= 300:
                    raise SinkUnavailable(f"silences API: HTTP {response.status}")
                return await response.json(content_type=None) if method == "GET" else None
        except TimeoutError:
            raise SinkUnavailable(f"no answer within {self.settings.timeout:g}s") from None
        except (aiohttp.ClientError, ValueError) as exc:
            raise SinkUnavailable(f"silences API: {type(exc).__name__}") from None

    def _superseded(self, resolved: AlertEvent) -> bool:
        """Whether a newer incident of the same alert fires now."""
        return any(
            event.firing
            and event.fingerprint == resolved.fingerprint
            and event.starts_at > resolved.starts_at
            for event in self._active()
        )

    async def resend_active(self) -> int:
        """Re-send every firing alert now; returns how many. Raises like `send`."""
        async with self._post_lock:
            # Taken under the lock, so a transition sent after this snapshot lands after it.
            events = [event for event in self._active() if event.firing]
            now = time.time()
            for first in range(0, len(events), RESEND_BATCH):
                batch = events[first : first + RESEND_BATCH]
                await self._post([self._alert(event, now) for event in batch])
        return len(events)

    async def _post(self, alerts: list[dict[str, Any]]) -> None:
        if self._session is None:
            raise RuntimeError("AlertmanagerSink used before start()")
        await post_json(
            self._session,
            self.url + ALERTS_PATH,
            alerts,
            timeout=self.settings.timeout,
            headers=self.settings.auth_headers(),
        )

    def _alert(
        self, event: AlertEvent, now: float, *, ended_severity: Severity | None = None
    ) -> dict[str, Any]:
        labels = {name: value for name, value in event.all_labels().items() if value}
        if ended_severity is not None:
            labels["severity"] = ended_severity.value
            ends_at = now
        elif event.firing:
            ends_at = now + ENDS_AT_RESENDS * self.settings.resend_interval
        else:
            ends_at = event.ends_at if event.ends_at is not None else now
        # Alertmanager refuses an alert that ends before it starts (clock steps, replays).
        ends_at = max(ends_at, event.starts_at)
        alert: dict[str, Any] = {
            "labels": labels,
            "annotations": _annotations(event),
            "startsAt": iso(event.starts_at),
            "endsAt": iso(ends_at),
        }
        if self._generator_url:
            separator = "&" if "?" in self._generator_url else "?"
            alert["generatorURL"] = (
                f"{self._generator_url}{separator}fingerprint={event.fingerprint}"
            )
        return alert

    async def _resend_loop(self) -> None:
        while True:
            await self._sleep(self.settings.resend_interval)
            try:
                count = await self.resend_active()
            except (SinkUnavailable, SinkRejected) as exc:
                self._resend_state(failing=True, reason=str(exc))
            except Exception as exc:
                # A bug in active() or here must not end the re-sends for good.
                self._resend_state(failing=True, reason=f"{type(exc).__name__}: {exc}")
            else:
                self._resend_state(failing=False, count=count)

    def _resend_state(self, *, failing: bool, reason: str = "", count: int = 0) -> None:
        # Logged on transitions only: an Alertmanager down for an hour is two lines, not 60.
        if failing == self._resend_failing or (self._resend_failing is None and not failing):
            self._resend_failing = failing
            return
        self._resend_failing = failing
        if failing:
            log.warning(
                "alertmanager re-send failing; firing alerts are re-sent when it answers",
                extra={"sink": self.queue, "reason": reason},
            )
        else:
            log.info(
                "alertmanager re-send working again", extra={"sink": self.queue, "alerts": count}
            )


def _annotations(event: AlertEvent) -> dict[str, str]:
    annotations = {"summary": event.summary, "fingerprint": event.fingerprint}
    if event.description:
        annotations["description"] = event.description
    if event.value is not None:
        annotations["value"] = format(event.value, ".6g")
    if event.flapping:
        annotations["flapping"] = "true"
    return {name: text for name, text in annotations.items() if text}


__all__ = ["AlertmanagerSink"]

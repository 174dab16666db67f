"""MQTT sink: alert transitions and live target status on a broker (docs/architecture.md, MQTT).

One owned background task keeps one connection to the broker, reconnecting with jittered
backoff. Each (re)connection first makes the broker's retained state true again (service
`online`, the retained alert topics equal to the alerts firing now, every target's latest
status), and only then accepts events. It keeps no copy of which alerts fire: it asks
`active()`. It never blocks the event loop and never prints the password.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import random
import ssl
from collections.abc import AsyncIterator, Awaitable, Iterable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import aiomqtt

from netmon.alerting.model import AlertEvent
from netmon.alerting.sinks.base import ActiveAlerts, SinkRejected, SinkUnavailable
from netmon.config.sinks import MqttSettings, topic_level_ok

log = logging.getLogger(__name__)

T = TypeVar("T")

# The broker replays retained messages right after SUBACK; quiet this long means it is done.
_REPLAY_QUIET = 0.3
_REPLAY_MAX = 2.0
# `offline` on close is a courtesy (the will covers a crash): it must not hold up shutdown.
_CLOSE_TIMEOUT = 1.0
# Publishes in flight at once: 215 status topics go out in a few round trips, not 215.
_BATCH = 64


def _tls_context(settings: MqttSettings) -> ssl.SSLContext:
    """Reads certificate files: run it off the event loop."""
    context = ssl.create_default_context(cafile=settings.ca_file)
    if settings.cert_file is not None:
        context.load_cert_chain(settings.cert_file, settings.key_file)
    # The chain is still verified; only the name in the certificate may differ from `host`.
    context.check_hostname = not settings.tls_insecure
    return context


def _status_payload(status: dict[str, object]) -> bytes:
    # NaN is not JSON: a dashboard's JSON.parse would drop the whole status for one bad number.
    finite = {
        key: None if isinstance(value, float) and not math.isfinite(value) else value
        for key, value in status.items()
    }
    return json.dumps(finite, default=str, allow_nan=False).encode()


@dataclass(eq=False)
class _Session:
    """One live connection. `lost` completes when the broker connection ends."""

    client: aiomqtt.Client
    lost: asyncio.Future[None]
    inbox: asyncio.Queue[aiomqtt.Message] = field(default_factory=asyncio.Queue)
    reason: str = "connection lost"


class MqttSink:
    """Delivers alert transitions to an MQTT broker and keeps its retained topics current."""

    name = "mqtt"
    queue = "mqtt"

    def __init__(
        self,
        settings: MqttSettings,
        *,
        instance: str,
        active: ActiveAlerts,
        shard: int | None = None,
    ) -> None:
        if not topic_level_ok(instance):
            raise ValueError(f"instance {instance!r} cannot be an MQTT topic level")
        self._settings = settings
        self._active = active
        self._instance = instance
        # Who says it: the instance, and its shard when the inventory is sharded.
        self._origin: dict[str, object] = {"instance": instance}
        if shard is not None:
            self._origin["shard"] = shard
        # An HA pair's replicas watch the same targets: each keeps its own tree, so neither
        # overwrites nor clears the other's retained alerts and statuses (README, "HA pair").
        self._prefix = f"{settings.prefix}/{instance}" if settings.per_instance else settings.prefix
        self._service_topic = f"{settings.prefix}/service/{instance}"
        self._client_id = settings.client_id or f"netmon-{instance}"
        self._broker = f"{settings.host}:{settings.port}"
        self._statuses: dict[str, bytes] = {}
        self._dirty: set[str] = set()
        self._status_wake = asyncio.Event()
        self._reports: dict[str, bytes] = {}
        self._status_lock = asyncio.Lock()  # one writer per status topic keeps "latest wins"
        self._session: _Session | None = None
        self._up = asyncio.Event()
        self._reachable: bool | None = None
        self._tls: ssl.SSLContext | None = None
        self._task: asyncio.Task[None] | None = None
        self._served = False  # this attempt reached the connected state: backoff starts over

    @property
    def connected(self) -> bool:
        """True once the broker holds our current state and `send` can deliver."""
        return self._session is not None and not self._session.lost.done()

    async def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="mqtt-sink")

    async def close(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    async def send(self, event: AlertEvent) -> None:
        session = self._session
        if session is None or session.lost.done():
            raise SinkUnavailable(f"MQTT broker {self._broker} not connected")
        for level in (event.target, event.topic_key):
            if not topic_level_ok(level):
                raise SinkRejected(f"{level!r} cannot be an MQTT topic level")
        payload = self._alert_payload(event)
        try:
            await self._publish(session, [(f"{self._prefix}/events/alerts", payload, False)])
            retained = payload if event.firing else b""  # empty + retained deletes it
            await self._publish(session, [(self._alert_topic(event), retained, True)])
        except aiomqtt.MqttError as exc:
            raise SinkUnavailable(f"MQTT publish to {self._broker} failed: {exc}") from exc

    def publish_status(self, target: str, status: dict[str, object]) -> None:
        if not topic_level_ok(target):
            log.warning("status not published: not an MQTT topic level", extra={"target": target})
            return
        try:
            payload = _status_payload(status)
        except (TypeError, ValueError) as exc:
            log.warning("status not published", extra={"target": target, "reason": str(exc)})
            return
        self._statuses[target] = payload
        self._dirty.add(target)
        self._status_wake.set()

    def publish_report(self, check_id: str, report: dict[str, object]) -> None:
        """A readiness report on `{prefix}/checks/{id}` (QoS 1, not retained); kept until the
        broker has it, the last 100 at most."""
        if not topic_level_ok(check_id):
            return
        self._reports[check_id] = json.dumps(report, ensure_ascii=False).encode()
        while len(self._reports) > 100:
            self._reports.pop(next(iter(self._reports)))
        self._status_wake.set()

    def _alert_topic(self, event: AlertEvent) -> str:
        return f"{self._prefix}/alerts/{event.target}/{event.topic_key}"

    def _alert_payload(self, event: AlertEvent) -> bytes:
        # `instance` says whose alert a retained topic is: several netmons (shards, an HA pair,
        # a test instance) may share one broker and prefix, and each reconciles only its own.
        return json.dumps({**event.to_json(), **self._origin}).encode()

    def _ours(self, payload: bytes) -> bool:
        """Whether a retained alert was published by this instance (or by a netmon from before
        alerts named their instance, which was alone on its broker)."""
        try:
            document = json.loads(payload)
        except ValueError:
            return False
        if not isinstance(document, dict):
            return False
        owner = document.get("instance")
        return owner is None or owner == self._instance

    def forget_statuses(self, keep: Iterable[str]) -> None:
        """Targets gone from the inventory: their retained statuses are cleared, not
        republished at every reconnect for ever."""
        kept = set(keep)
        for target in [t for t in self._statuses if t not in kept]:
            self._statuses[target] = b""  # empty + retained deletes it
            self._dirty.add(target)
        self._status_wake.set()

    async def _run(self) -> None:
        async with asyncio.TaskGroup() as tasks:
            tasks.create_task(self._keep_connected(), name="mqtt-connection")
            tasks.create_task(self._publish_statuses(), name="mqtt-status")

    async def _keep_connected(self) -> None:
        delay = self._settings.reconnect_min
        while True:
            self._served = False
            try:
                await self._connect_and_serve()
            except (aiomqtt.MqttError, OSError) as exc:
                self._set_reachable(False, str(exc) or type(exc).__name__)
            except Exception as exc:
                # A bug here must not leave the sink dead for good: log it and try again.
                log.exception("MQTT connection failed", extra={"broker": self._broker})
                self._set_reachable(False, type(exc).__name__)
            if self._served:
                delay = self._settings.reconnect_min
            # Jitter, so many netmon instances do not hit a restarted broker in step.
            await asyncio.sleep(min(self._settings.reconnect_max, delay * random.uniform(1, 1.5)))
            delay = min(delay * 2, self._settings.reconnect_max)

    async def _connect_and_serve(self) -> None:
        settings = self._settings
        if settings.tls and self._tls is None:
            self._tls = await asyncio.to_thread(_tls_context, settings)
        client = aiomqtt.Client(
            settings.host,
            settings.port,
            username=settings.username,
            password=settings.password.reveal() if settings.password else None,
            identifier=self._client_id,
            will=aiomqtt.Will(self._service_topic, b"offline", qos=1, retain=True),
            keepalive=int(settings.keepalive),
            timeout=settings.connect_timeout,
            tls_context=self._tls,
            max_inflight_messages=_BATCH,
        )
        # aiomqtt warns above 10 calls awaiting an ack; a full batch is normal here.
        client.pending_calls_threshold = 2 * _BATCH
        async with _connection(client):
            session = _Session(client, asyncio.get_running_loop().create_future())
            receiver = asyncio.create_task(self._receive(session), name="mqtt-receive")
            try:
                await self._prepare(session)
                self._session = session
                self._up.set()
                self._served = True
                self._set_reachable(True, "")
                await asyncio.wait([session.lost])
            except asyncio.CancelledError:
                if not session.lost.done():
                    with contextlib.suppress(aiomqtt.MqttError):
                        await self._publish(
                            session, [(self._service_topic, b"offline", True)], _CLOSE_TIMEOUT
                        )
                raise
            finally:
                self._session = None
                self._up.clear()
                receiver.cancel()
                await asyncio.gather(receiver, return_exceptions=True)
        raise aiomqtt.MqttError(session.reason)

    async def _receive(self, session: _Session) -> None:
        """Feeds the reconcile step, and is how the session learns the connection is gone."""
        try:
            async for message in session.client.messages:
                session.inbox.put_nowait(message)
        except aiomqtt.MqttError as exc:
            cause = exc.__cause__
            session.reason = f"connection lost ({cause})" if cause else "connection lost"
        finally:
            if not session.lost.done():
                session.lost.set_result(None)

    async def _prepare(self, session: _Session) -> None:
        """Make the broker's retained state ours again: it may have restarted empty, or kept
        alerts that resolved while we could not reach it."""
        await self._publish(session, [(self._service_topic, b"online", True)])
        retained = await self._retained_alert_topics(session)
        active = {
            self._alert_topic(e): e
            for e in self._active()
            if e.firing and topic_level_ok(e.target) and topic_level_ok(e.topic_key)
        }
        await self._publish(session, [(topic, b"", True) for topic in retained - active.keys()])
        await self._publish(
            session, [(topic, self._alert_payload(e), True) for topic, e in active.items()]
        )
        self._dirty.update(self._statuses)
        await self._flush_statuses(session)

    async def _retained_alert_topics(self, session: _Session) -> set[str]:
        client = session.client
        alerts = f"{self._prefix}/alerts/#"
        granted = await self._until_lost(session, client.subscribe(alerts))
        if any(code >= 0x80 if isinstance(code, int) else code.is_failure for code in granted):
            # An ACL may forbid reading our own topics; publishing still works, so go on.
            log.warning(
                "MQTT broker refused the subscription to retained alerts; stale ones stay",
                extra={"broker": self._broker, "topic": alerts},
            )
            return set()
        found: set[str] = set()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + _REPLAY_MAX
        while (left := deadline - loop.time()) > 0:
            try:
                message = await self._until_lost(
                    session, asyncio.wait_for(session.inbox.get(), min(_REPLAY_QUIET, left))
                )
            except TimeoutError:
                break
            payload = message.payload
            if message.retain and isinstance(payload, bytes) and payload and self._ours(payload):
                found.add(message.topic.value)
        await self._until_lost(session, client.unsubscribe(alerts))
        return found

    async def _publish_statuses(self) -> None:
        while True:
            await self._status_wake.wait()
            await self._up.wait()
            self._status_wake.clear()
            session = self._session
            if session is None:
                continue
            try:
                await self._flush_statuses(session)
            except Exception as exc:
                if not isinstance(exc, aiomqtt.MqttError):
                    log.exception("MQTT status publishing failed")
                # A lost connection republishes everything on reconnect; a live one gets
                # another try after a pause.
                self._status_wake.set()
                await asyncio.sleep(self._settings.reconnect_min)

    async def _flush_statuses(self, session: _Session) -> None:
        async with self._status_lock:
            pending = list(self._dirty)
            self._dirty.clear()
            try:
                for start in range(0, len(pending), _BATCH):
                    chunk = pending[start : start + _BATCH]
                    await self._publish(
                        session,
                        [(f"{self._prefix}/status/{t}", self._statuses[t], True) for t in chunk],
                    )
            except BaseException:
                self._dirty.update(pending)  # the acked ones again too: harmless, and simple
                raise
            for target in pending:
                if self._statuses.get(target) == b"" and target not in self._dirty:
                    del self._statuses[target]  # cleared on the broker: nothing left to keep
            for check_id, payload in list(self._reports.items()):
                await self._publish(
                    session, [(f"{self._prefix}/checks/{check_id}", payload, False)]
                )
                self._reports.pop(check_id, None)

    async def _publish(
        self,
        session: _Session,
        messages: Iterable[tuple[str, bytes, bool]],
        timeout: float | None = None,
    ) -> None:
        """Publish at QoS 1 and return once the broker acknowledged every message.

        aiomqtt's `publish(qos=1)` returns on the PUBACK (paho marks a QoS 1 message
        published only then), but does not notice a lost connection: it would wait out its
        timeout. Racing it against `lost` makes a dead broker an error at once.
        """
        timeout = timeout or self._settings.connect_timeout
        pending = list(messages)
        publish = session.client.publish
        for start in range(0, len(pending), _BATCH):
            chunk = pending[start : start + _BATCH]
            sent = asyncio.gather(
                *(publish(t, p, qos=1, retain=r, timeout=timeout) for t, p, r in chunk),
                return_exceptions=True,
            )
            for result in await self._until_lost(session, sent):
                if isinstance(result, BaseException):
                    raise result

    async def _until_lost(self, session: _Session, awaitable: Awaitable[T]) -> T:
        task = asyncio.ensure_future(awaitable)
        try:
            racing: list[asyncio.Future[Any]] = [task, session.lost]
            await asyncio.wait(racing, return_when=asyncio.FIRST_COMPLETED)
        finally:
            unfinished = not task.done()
            if unfinished:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
        if unfinished:
            raise aiomqtt.MqttError(session.reason)
        return task.result()

    def _set_reachable(self, reachable: bool, reason: str) -> None:
        if reachable == self._reachable:
            return
        self._reachable = reachable
        if reachable:
            log.info(
                "MQTT broker connected",
                extra={"broker": self._broker, "client_id": self._client_id},
            )
        else:
            log.warning("MQTT broker unreachable", extra={"broker": self._broker, "reason": reason})


@contextlib.asynccontextmanager
async def _connection(client: aiomqtt.Client) -> AsyncIterator[aiomqtt.Client]:
    """`async with client`, except that no failed or cancelled attempt leaves a socket open."""
    entering = asyncio.ensure_future(_enter(client))
    try:
        await asyncio.shield(entering)
    except asyncio.CancelledError:
        # paho connects in a thread that cannot be interrupted: let the attempt end (it is
        # bounded by connect_timeout) so that its socket can be closed, then stop.
        with contextlib.suppress(aiomqtt.MqttError):
            await entering
            await client.__aexit__(None, None, None)
        raise
    try:
        yield client
    finally:
        with contextlib.suppress(aiomqtt.MqttError):
            await client.__aexit__(None, None, None)


async def _enter(client: aiomqtt.Client) -> None:
    try:
        await client.__aenter__()
    except aiomqtt.MqttError as exc:
        if isinstance(exc.__context__, TimeoutError):
            # No CONNACK in time: aiomqtt leaves the socket open (paho would close it only at
            # its keepalive check, 30 s on). A DISCONNECT closes it now; the wait for the
            # broker's side of it can only time out, so keep that short.
            client.timeout = 0.1
            with contextlib.suppress(aiomqtt.MqttError):
                await client.__aexit__(None, None, None)
        raise

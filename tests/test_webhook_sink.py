"""The webhook sink against an HTTP server of the test's own: the body a receiver gets, its
headers, and which answers are retried and which dropped."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest
from pydantic import ValidationError

from netmon.alerting.model import AlertEvent, Severity, Status
from netmon.alerting.sinks.base import SinkRejected, SinkUnavailable
from netmon.alerting.sinks.webhook import WebhookSink
from netmon.config.sinks import WebhookSettings
from tests.peers import free_port

# The peer module is also a plugin (its fixtures): have its asserts rewritten before importing it.
pytest.register_assert_rewrite("tests.alertmanager_peer")
from tests.alertmanager_peer import HttpRecorder  # noqa: E402

pytest_plugins = ["tests.alertmanager_peer"]

TOKEN = "hook-7d1e9b3f0a5c"  # noqa: S105 - a test value that must never show up anywhere
API_KEY = "key-2c4e6a8b0d1f"
HANG = 30.0  # seconds: a hang guard, far beyond any timeout here; never a speed figure


def link_event() -> AlertEvent:
    return AlertEvent(
        alertname="LinkSaturated",
        target="sw-agg-dl",
        severity=Severity.WARNING,
        status=Status.FIRING,
        starts_at=1_760_000_000.0,
        ends_at=None,
        summary="uplink above 90% for 5 minutes",
        labels={"ifname": "xe-0/0/1"},
        context={"kind": "switch", "district": "Đắk Lắk"},
        value=0.93,
        event_at=1_760_000_000.0,
    )


def webhook(url: str, **extra: Any) -> WebhookSink:
    return WebhookSink(WebhookSettings.model_validate({"url": url, **extra}), instance="noc-1")


async def test_receiver_gets_the_alert_json_with_its_headers(
    http_recorder: HttpRecorder, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    event = link_event()
    sink = webhook(
        http_recorder.url + "/hooks/netmon?channel=noc",
        name="ops",
        bearer_token=TOKEN,
        headers={"X-Api-Key": API_KEY},
    )
    assert (sink.name, sink.queue) == ("webhook", "webhook:ops")
    async with sink:
        await sink.send(event)
        await sink.send(event.resolved(1_760_000_600.0))

    firing, resolved = http_recorder.requests
    assert (firing.method, firing.path) == ("POST", "/hooks/netmon?channel=noc")
    assert firing.headers["Content-Type"] == "application/json"
    assert firing.headers["Authorization"] == f"Bearer {TOKEN}"
    assert firing.headers["X-Api-Key"] == API_KEY
    assert firing.json() == {"version": 1, "instance": "noc-1", "alert": event.to_json()}
    # What a receiver reads, spelled out: the contract is the alert JSON of docs/architecture.md.
    alert = firing.json()["alert"]
    assert alert["status"] == "firing"
    assert alert["labels"] == {"ifname": "xe-0/0/1"}
    assert alert["context"]["district"] == "Đắk Lắk"
    assert resolved.json()["alert"]["status"] == "resolved"
    assert resolved.json()["alert"]["ends_at"] == "2025-10-09T09:03:20.000+00:00"

    assert TOKEN not in caplog.text
    assert API_KEY not in caplog.text
    assert TOKEN not in repr(sink.settings)
    assert API_KEY not in repr(sink.settings)


@pytest.mark.parametrize(
    ("answer", "raised", "reason"),
    [
        (503, SinkUnavailable, "HTTP 503"),
        (500, SinkUnavailable, "HTTP 500"),
        (429, SinkUnavailable, "HTTP 429"),
        # A wrong token or URL is the sink's problem, not this event's: kept, retried, alerted
        # on (NetmonNotificationsFailing), never dropped.
        ((401, "bad token"), SinkUnavailable, "HTTP 401: bad token"),
        (403, SinkUnavailable, "HTTP 403"),
        (404, SinkUnavailable, "HTTP 404"),
        ((400, "unknown field 'alert'"), SinkRejected, "HTTP 400: unknown field 'alert'"),
        (422, SinkRejected, "HTTP 422"),
    ],
)
async def test_answers_map_onto_retry_or_drop(
    http_recorder: HttpRecorder, answer: int | tuple[int, str], raised: type[Exception], reason: str
) -> None:
    http_recorder.answers["/hook"] = answer
    async with webhook(http_recorder.url + "/hook") as sink:
        with pytest.raises(raised, match=reason):
            await sink.send(link_event())


async def test_nobody_listening_is_unavailable_at_once() -> None:
    async with webhook(f"http://127.0.0.1:{free_port()}/hook") as sink:
        # "At once": the refusal itself is the answer ("cannot connect"), not the sink's
        # timeout ("no answer within ..."); how many milliseconds that takes is no test's.
        async with asyncio.timeout(HANG):
            with pytest.raises(SinkUnavailable, match=r"cannot connect to 127\.0\.0\.1"):
                await sink.send(link_event())


async def test_a_hanging_receiver_is_unavailable_after_the_timeout(
    http_recorder: HttpRecorder,
) -> None:
    http_recorder.delay = 1.0
    async with webhook(http_recorder.url + "/hook", timeout="200ms") as sink:
        # The reason names the 200 ms timeout: the sink gave up then, before the answer held
        # back for 1 s could come (it would have been a success).
        async with asyncio.timeout(HANG):
            with pytest.raises(SinkUnavailable, match=r"no answer within 0\.2s"):
                await sink.send(link_event())


async def test_a_key_in_the_url_path_stays_out_of_errors_and_reprs() -> None:
    # Chat webhooks (Teams, Slack, Google Chat) carry their key in the URL itself.
    secret_path = "/webhookb2/9f8e7d6c5b4a"  # noqa: S105 - a stand-in key
    sink = webhook(f"http://127.0.0.1:{free_port()}{secret_path}")
    async with sink:
        with pytest.raises(SinkUnavailable) as unavailable:
            await sink.send(link_event())
    assert secret_path not in str(unavailable.value)
    assert secret_path not in repr(sink)
    assert secret_path not in repr(sink.settings)


@pytest.mark.parametrize(
    ("config", "field", "message"),
    [
        ({}, "url", "Field required"),
        ({"url": "hooks.example/x"}, "url", "must be an http:// or https:// URL with a host"),
        ({"url": "https://u:p@hooks.example/x"}, "url", "must not contain credentials"),
        ({"url": "https://h/x", "name": "ops team"}, "name", "use letters, digits"),
        ({"url": "https://h/x", "timeout": "0ms"}, "timeout", "greater than 0"),
        ({"url": "https://h/x", "headers": {"X Key": "v"}}, "headers", "not a valid header name"),
        ({"url": "https://h/x", "headers": {"content-type": "text/plain"}}, "headers", "set by"),
        (
            {"url": "https://h/x", "bearer_token": "t", "headers": {"Authorization": "Basic x"}},
            "headers",
            "Authorization is already set by bearer_token",
        ),
        ({"url": "https://h/x", "token": "t"}, "token", "Extra inputs are not permitted"),
    ],
)
def test_bad_settings_name_the_field(config: dict[str, Any], field: str, message: str) -> None:
    with pytest.raises(ValidationError) as raised:
        WebhookSettings.model_validate(config)
    [error] = raised.value.errors()
    assert ".".join(str(part) for part in error["loc"]) == field
    assert message in error["msg"]


@pytest.mark.parametrize(
    ("header", "seconds"),
    [("7", 7.0), ("100000", 600.0), ("Wed, 21 Oct 2015 07:28:00 GMT", 0.0), ("soon", None)],
    ids=["seconds", "capped at 10 min", "a date in the past", "unreadable"],
)
async def test_a_rate_limit_says_how_long_to_wait(
    http_recorder: HttpRecorder, header: str, seconds: float | None
) -> None:
    http_recorder.answers["/hook"] = 429
    http_recorder.headers["/hook"] = {"Retry-After": header}
    async with webhook(http_recorder.url + "/hook") as sink:
        with pytest.raises(SinkUnavailable) as raised:
            await sink.send(link_event())
    assert raised.value.retry_after == seconds


async def test_a_shard_says_which_it_is_beside_its_instance(http_recorder: HttpRecorder) -> None:
    settings = WebhookSettings.model_validate({"url": http_recorder.url + "/hook"})
    event = link_event()
    async with WebhookSink(settings, instance="north", shard=2) as sink:
        await sink.send(event)
    (request,) = http_recorder.requests
    assert request.json() == {
        "version": 1, "instance": "north", "shard": 2, "alert": event.to_json(),
    }  # fmt: skip

"""The Alertmanager sink against a real Alertmanager: what the on-call engineer's Alertmanager
shows after netmon sent its alerts, an HA pair with one member down, recovery of an
Alertmanager that restarted, and the answers that must be retried or dropped."""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import datetime as dt
import json
import logging
import ssl
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from netmon.alerting.model import AlertEvent, Severity, Status
from netmon.alerting.sinks.alertmanager import AlertmanagerSink
from netmon.alerting.sinks.base import SinkRejected, SinkUnavailable
from netmon.config.sinks import AlertmanagerSettings

# The peer modules are also plugins (fixtures): have their asserts rewritten before importing.
pytest.register_assert_rewrite("tests.alertmanager_peer", "tests.mqtt_peer")
from tests.alertmanager_peer import (  # noqa: E402
    Alertmanager,
    AlertmanagerFactory,
    HttpRecorder,
    eventually,
)
from tests.fake_clock import FakeClock  # noqa: E402
from tests.helpers import http_get  # noqa: E402
from tests.mqtt_peer import CertAuthority  # noqa: E402

pytest_plugins = ["tests.alertmanager_peer"]

pytestmark = pytest.mark.peer

GENERATOR = "http://netmon.example:9842/api/v1/alerts"
ALERTS = "/api/v2/alerts"
TOKEN = "tok-3f9a1c7e5b2d"  # noqa: S105 - a test value that must never show up anywhere
PASSWORD = "pw-8e2b6d4a0c1f"  # noqa: S105
HANG = 30.0  # seconds: a hang guard, far beyond any timeout here; never a speed figure


def endpoint_event(
    *,
    alertname: str = "EndpointDown",
    target: str = "ep-hall-01",
    severity: Severity = Severity.CRITICAL,
    previous: Severity | None = None,
    district: str = "Thành phố",
    starts_at: float | None = None,
) -> AlertEvent:
    started = time.time() - 30 if starts_at is None else starts_at
    return AlertEvent(
        alertname=alertname,
        target=target,
        severity=severity,
        status=Status.FIRING,
        starts_at=started,
        ends_at=None,
        summary=f"{target} does not answer",
        description="no echo reply for 3 probes in a row",
        context={"kind": "endpoint", "site": "Hội trường tỉnh", "district": district, "group": ""},
        value=1.0,
        event_at=started,
        previous_severity=previous,
    )


def settings(urls: Sequence[str], **extra: Any) -> AlertmanagerSettings:
    return AlertmanagerSettings.model_validate({"urls": list(urls), **extra})


def sink_for(
    url: str, active: Sequence[AlertEvent] | None = None, **extra: Any
) -> AlertmanagerSink:
    firing = list(active or [])
    return AlertmanagerSink(
        url, settings([url], **extra), active=lambda: firing, generator_url=GENERATOR
    )


def timestamp(text: str) -> float:
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


async def test_firing_alert_shows_in_alertmanager_and_resolving_ends_it(
    alertmanager: Alertmanager,
) -> None:
    event = endpoint_event()
    async with sink_for(alertmanager.url) as sink:
        sent_at = time.time()
        await sink.send(event)
        answered_at = time.time()
        [alert] = alertmanager.alerts(alertname="EndpointDown")
        # Exactly the labels routing needs; the empty group label is left out (Alertmanager
        # would drop it anyway), Vietnamese text arrives intact.
        assert alert["labels"] == {
            "alertname": "EndpointDown",
            "target": "ep-hall-01",
            "severity": "critical",
            "kind": "endpoint",
            "site": "Hội trường tỉnh",
            "district": "Thành phố",
        }
        assert alert["annotations"]["summary"] == "ep-hall-01 does not answer"
        assert alert["annotations"]["description"] == "no echo reply for 3 probes in a row"
        assert alert["annotations"]["value"] == "1"
        assert alert["status"]["state"] == "active"
        assert alert["generatorURL"] == f"{GENERATOR}?fingerprint={event.fingerprint}"
        # The alert started when netmon saw it start, not when Alertmanager heard of it...
        assert timestamp(alert["startsAt"]) == pytest.approx(event.starts_at, abs=0.002)
        # ...and ends by itself 4 re-send intervals on, should netmon die for good.
        # (Between the moments the send began and ended, however long it took; 2 ms for the
        # millisecond timestamps.)
        assert sent_at + 240 - 0.002 <= timestamp(alert["endsAt"]) <= answered_at + 240 + 0.002

        await sink.send(event.resolved(time.time()))
        # GET /api/v2/alerts lists no alert whose endsAt has passed: that is "resolved".
        assert alertmanager.alerts(alertname="EndpointDown") == []


async def test_severity_change_leaves_only_the_new_severity_active(
    alertmanager: Alertmanager,
) -> None:
    warning = endpoint_event(alertname="HighPacketLoss", severity=Severity.WARNING)
    major = endpoint_event(
        alertname="HighPacketLoss",
        severity=Severity.MAJOR,
        previous=Severity.WARNING,
        starts_at=warning.starts_at,
    )
    async with sink_for(alertmanager.url) as sink:
        await sink.send(warning)
        assert [a["severity"] for a in alertmanager.label_sets(alertname="HighPacketLoss")] == [
            "warning"
        ]
        await sink.send(major)
        # Without ending the warning, Alertmanager would hold two alerts for one fault (and
        # route the stale warning for 4 more minutes).
        held = alertmanager.label_sets(alertname="HighPacketLoss")
        assert [a["severity"] for a in held] == ["major"]


async def test_ha_pair_each_member_gets_every_alert_and_a_dead_one_fails_fast(
    alertmanager_factory: AlertmanagerFactory,
) -> None:
    am1, am2 = alertmanager_factory(), alertmanager_factory()
    both = settings([am1.url, am2.url])
    sinks = [AlertmanagerSink(url, both, active=list, generator_url=GENERATOR) for url in both.urls]
    assert sinks[0].queue != sinks[1].queue  # each member has an outbox of its own
    for sink in sinks:
        await sink.start()
    try:
        first = endpoint_event(target="ep-a")
        for sink in sinks:
            await sink.send(first)
        assert am1.label_sets(target="ep-a")
        assert am2.label_sets(target="ep-a")

        am2.stop()
        second = endpoint_event(target="ep-b")
        await sinks[0].send(second)
        assert am1.label_sets(target="ep-b")
        # A refused connection is known at once: the worker backs off, the other member is
        # not held up, and no 5 s timeout is waited for: the reason is the refusal ("cannot
        # connect"), not the timeout ("no answer within 5s").
        async with asyncio.timeout(HANG):
            with pytest.raises(SinkUnavailable, match="cannot connect"):
                await sinks[1].send(second)

        am2.start()
        await sinks[1].send(second)  # what the worker's retry does
        assert am2.label_sets(target="ep-b")
    finally:
        for sink in sinks:
            await sink.close()


async def test_resend_gives_a_restarted_alertmanager_its_alerts_back(
    alertmanager: Alertmanager, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="netmon.alerting.sinks.alertmanager")
    event = endpoint_event(target="ep-district-7")
    firing: list[AlertEvent] = []
    calls = 0

    def active() -> list[AlertEvent]:
        nonlocal calls
        calls += 1
        return firing

    interval = 0.3
    sink = AlertmanagerSink(
        alertmanager.url,
        settings([alertmanager.url], resend_interval=f"{interval}s"),
        active=active,
        generator_url=GENERATOR,
    )
    async with sink:
        await sink.send(event)
        alertmanager.restart(keep_storage=False)
        # Re-sends are held back (nothing active yet) to show the restart really lost it.
        assert alertmanager.alerts(target="ep-district-7") == []

        firing.append(event)
        # That a re-send comes every interval is timed on a fake clock
        # (test_firing_alerts_are_re_sent_every_interval); here, that it brings the alert back.
        [alert] = await eventually(
            lambda: alertmanager.alerts(target="ep-district-7"), timeout=HANG, what="the re-send"
        )
        # It comes back as the same alert: same start, not a new fault.
        assert timestamp(alert["startsAt"]) == pytest.approx(event.starts_at, abs=0.002)

        # Down for several re-send intervals: one warning, not one per attempt...
        alertmanager.stop()
        calls_when_stopped = calls
        await eventually(lambda: calls >= calls_when_stopped + 4, timeout=HANG)
        alertmanager.start()
        # ...and one line when it works again, after which the alert is back.
        await eventually(lambda: alertmanager.alerts(target="ep-district-7"), timeout=3)
        await eventually(lambda: "working again" in caplog.text, timeout=3)

    lines = [record.getMessage() for record in caplog.records]
    assert sum("re-send failing" in line for line in lines) == 1, lines
    assert sum("re-send working again" in line for line in lines) == 1, lines
    failing = next(r for r in caplog.records if "re-send failing" in r.getMessage())
    assert "cannot connect" in failing.reason  # type: ignore[attr-defined]


async def test_firing_alerts_are_re_sent_every_interval(http_recorder: HttpRecorder) -> None:
    # On a fake clock: the re-send interval is exact, whatever the machine's load.
    clock = FakeClock()
    firing = [endpoint_event(target="ep-district-7")]
    resends = 0

    def active() -> list[AlertEvent]:
        nonlocal resends
        resends += 1
        return firing

    def posted() -> list[str]:
        return [a["labels"]["target"] for r in http_recorder.on(ALERTS) for a in r.json()]

    sink = AlertmanagerSink(
        http_recorder.url,
        settings([http_recorder.url], resend_interval="60s"),
        active=active,
        generator_url=GENERATOR,
        sleep=clock.sleep,
    )
    async with sink:
        await clock.advance(59.9)
        assert resends == 0  # not before the interval is over
        await clock.advance(0.1)
        assert resends == 1
        await eventually(lambda: clock.sleeping, timeout=HANG, what="the first re-send done")
        assert posted() == ["ep-district-7"]
        await clock.advance(59.9)
        assert resends == 1
        await clock.advance(0.1)
        assert resends == 2
        await eventually(lambda: clock.sleeping, timeout=HANG, what="the second re-send done")
        assert posted() == ["ep-district-7", "ep-district-7"]


@pytest.mark.parametrize(
    ("answer", "raised", "reason"),
    [
        (500, SinkUnavailable, "HTTP 500"),
        (503, SinkUnavailable, "HTTP 503"),
        (429, SinkUnavailable, "HTTP 429"),
        ((400, 'invalid label set: invalid name "if-name"'), SinkRejected, "invalid label set"),
        (404, SinkUnavailable, "HTTP 404"),  # a wrong URL: the events wait for the fix
        (302, SinkUnavailable, "HTTP 302"),
    ],
)
async def test_answers_map_onto_retry_or_drop(
    http_recorder: HttpRecorder, answer: int | tuple[int, str], raised: type[Exception], reason: str
) -> None:
    http_recorder.answers["/api/v2/alerts"] = answer
    async with sink_for(http_recorder.url) as sink:
        with pytest.raises(raised, match=reason):
            await sink.send(endpoint_event())
    assert len(http_recorder.on("/api/v2/alerts")) == 1


async def test_no_answer_in_time_is_unavailable(http_recorder: HttpRecorder) -> None:
    http_recorder.delay = 1.0
    async with sink_for(http_recorder.url, timeout="300ms") as sink:
        # The reason names the 300 ms timeout: the sink gave up then, before the answer held
        # back for 1 s could come (it would have been a success).
        async with asyncio.timeout(HANG):
            with pytest.raises(SinkUnavailable, match=r"no answer within 0\.3s"):
                await sink.send(endpoint_event())


async def test_base_url_with_a_path_prefix(http_recorder: HttpRecorder) -> None:
    # Alertmanager behind a reverse proxy (--web.route-prefix=/alertmanager).
    async with sink_for(http_recorder.url + "/alertmanager/") as sink:
        await sink.send(endpoint_event())
    assert [r.path for r in http_recorder.requests] == ["/alertmanager/api/v2/alerts"]


async def test_https_with_a_private_ca(tmp_path: Path) -> None:
    authority = CertAuthority.create(tmp_path)
    cert, key = authority.issue_server(tmp_path)
    server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_tls.load_cert_chain(cert, key)
    recorder = HttpRecorder()
    await recorder.start(tls=server_tls)
    try:
        assert recorder.url.startswith("https://")
        async with sink_for(recorder.url, ca_file=str(authority.cert_file)) as sink:
            await sink.send(endpoint_event())
        assert len(recorder.on("/api/v2/alerts")) == 1
        # An unknown CA is a refusal to talk, retried (and logged by the worker) until fixed.
        async with sink_for(recorder.url) as sink:
            with pytest.raises(SinkUnavailable, match="certificate verify failed"):
                await sink.send(endpoint_event())
        assert len(recorder.on("/api/v2/alerts")) == 1
        async with sink_for(recorder.url, tls_insecure=True) as sink:
            await sink.send(endpoint_event())
        assert len(recorder.on("/api/v2/alerts")) == 2
    finally:
        await recorder.close()


async def test_bearer_token_is_sent_and_never_logged(
    http_recorder: HttpRecorder, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    event = endpoint_event()
    sink = sink_for(http_recorder.url, active=[event], bearer_token=TOKEN, resend_interval="0.1s")
    async with sink:
        await sink.send(event)
        assert http_recorder.requests[0].headers["Authorization"] == f"Bearer {TOKEN}"
        # Re-sends carry it too.
        await eventually(lambda: len(http_recorder.requests) >= 2, timeout=2)
        assert http_recorder.requests[1].headers["Authorization"] == f"Bearer {TOKEN}"

        http_recorder.answers["/api/v2/alerts"] = (401, "bad token")
        with pytest.raises(SinkUnavailable) as rejected:  # kept until the token is fixed
            await sink.send(event)
        await eventually(lambda: "re-send failing" in caplog.text, timeout=2)

    assert TOKEN not in caplog.text
    assert TOKEN not in str(rejected.value)
    assert TOKEN not in repr(sink.settings)
    assert TOKEN not in str(sink.settings.model_dump())
    assert TOKEN not in repr(sink)


async def test_basic_auth_is_sent_and_never_logged(
    http_recorder: HttpRecorder, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    basic = {"username": "netmon", "password": PASSWORD}
    event = endpoint_event()
    http_recorder.answers["/api/v2/alerts"] = 500
    sink = sink_for(http_recorder.url, [event], basic_auth=basic, resend_interval="0.1s")
    async with sink:
        with pytest.raises(SinkUnavailable) as unavailable:
            await sink.send(event)
        await eventually(lambda: "re-send failing" in caplog.text, timeout=2)
    expected = base64.b64encode(f"netmon:{PASSWORD}".encode()).decode()
    assert http_recorder.requests[0].headers["Authorization"] == f"Basic {expected}"
    assert PASSWORD not in caplog.text
    assert expected not in caplog.text
    assert PASSWORD not in str(unavailable.value)
    assert PASSWORD not in repr(sink.settings)


GOOD = {"urls": ["http://127.0.0.1:9093"]}


@pytest.mark.parametrize(
    ("config", "field", "message"),
    [
        ({"urls": []}, "urls", "List should have at least 1 item"),
        ({}, "urls", "Field required"),
        ({"urls": ["am1:9093"]}, "urls.0", "must be an http:// or https:// URL with a host"),
        ({"urls": ["ftp://am1"]}, "urls.0", "must be an http:// or https:// URL with a host"),
        (
            {"urls": ["http://netmon:pw@am1:9093"]},
            "urls.0",
            "must not contain credentials: use bearer_token or basic_auth",
        ),
        ({"urls": ["http://am1:9093?x=1"]}, "urls.0", "must not have a query"),
        ({"urls": ["http://am1:9093", "http://am1:9093/"]}, "urls", "is listed twice"),
        ({**GOOD, "resend_interval": "0s"}, "resend_interval", "greater than 0"),
        ({**GOOD, "timeout": "soon"}, "timeout", "not a duration: 'soon'"),
        (
            {**GOOD, "bearer_token": "t", "basic_auth": {"username": "u", "password": "p"}},
            "basic_auth",
            "use either bearer_token or basic_auth, not both",
        ),
        ({**GOOD, "basic_auth": {"password": "p"}}, "basic_auth.username", "Field required"),
        ({**GOOD, "ca_file": "/nonexistent/ca.pem"}, "ca_file", "is not a readable file"),
        ({**GOOD, "url": "http://am1:9093"}, "url", "Extra inputs are not permitted"),
    ],
)
def test_bad_settings_name_the_field(config: dict[str, Any], field: str, message: str) -> None:
    with pytest.raises(ValidationError) as raised:
        AlertmanagerSettings.model_validate(config)
    [error] = raised.value.errors()
    assert ".".join(str(part) for part in error["loc"]) == field
    assert message in error["msg"]


def test_settings_defaults_and_secret_sources(tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN + "\n")
    loaded = AlertmanagerSettings.model_validate(
        {
            "urls": ["http://am1:9093/", "https://am2:9093"],
            "bearer_token": {"file": str(token_file)},
        }
    )
    assert loaded.urls == ["http://am1:9093", "https://am2:9093"]
    assert (loaded.resend_interval, loaded.timeout) == (60.0, 5.0)
    assert loaded.auth_headers() == {"Authorization": f"Bearer {TOKEN}"}
    assert TOKEN not in repr(loaded)


async def test_a_late_resolve_of_an_earlier_incident_never_ends_the_newer_one(
    http_recorder: HttpRecorder,
) -> None:
    # Alertmanager was away while the alert fired, resolved and fired again: the re-sends
    # announce the newer incident; the first incident's resolve, delivered from the outbox
    # after it, must not end it in Alertmanager (which would show it resolved, then re-fire).
    first = endpoint_event(starts_at=time.time() - 120)
    again = endpoint_event(starts_at=time.time() - 10)
    async with sink_for(http_recorder.url, active=[again]) as sink:
        await sink.send(first.resolved(time.time() - 60))
        assert http_recorder.on("/api/v2/alerts") == []
        await sink.send(again.resolved(time.time()))  # its own resolve still goes out
    (request,) = http_recorder.on("/api/v2/alerts")
    (posted,) = json.loads(request.body)
    assert timestamp(posted["startsAt"]) == pytest.approx(again.starts_at, abs=0.001)


async def test_an_acknowledged_alert_is_silenced_in_alertmanager_until_it_resolves(
    alertmanager: Alertmanager,
) -> None:
    """`silence_on_ack`: Alertmanager's own routes stop paging an alert someone took."""
    event = endpoint_event()
    taken = dataclasses.replace(
        event, acknowledged_by="Tuấn", acknowledged_at=time.time(), acknowledged_comment="on it"
    )

    def silences() -> list[dict[str, Any]]:
        status, _, body = http_get(f"{alertmanager.url}/api/v2/silences")
        assert status == 200
        found = json.loads(body)
        return [s for s in found if s["status"]["state"] == "active"]

    async with sink_for(alertmanager.url, silence_on_ack=True) as sink:
        await sink.send(event)
        assert silences() == []
        await sink.send(taken)
        await sink.send(taken)  # delivered again (at least once): still one silence
        (silence,) = silences()
        assert {(m["name"], m["value"]) for m in silence["matchers"]} == {
            ("alertname", "EndpointDown"),
            ("target", "ep-hall-01"),
        }
        assert silence["comment"].startswith("acknowledged in netmon by Tuấn: on it")
        await eventually(
            lambda: alertmanager.alerts(alertname="EndpointDown", active=False, silenced=True),
            what="the alert shown silenced",
        )
        await sink.send(taken.resolved(time.time()))
        assert silences() == []
        assert alertmanager.alerts(alertname="EndpointDown") == []

"""The HTTP gateway channel against an HTTP server of the test's own playing an SMS
brand-name provider (eSMS.vn-like) and Zalo ZNS: the request rendered from the template, the
secrets filled in and kept out of everything else, and which answers keep or drop a page."""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import replace
from typing import Any

import pytest
from pydantic import ValidationError

from netmon.alerting.model import AlertEvent, Severity, Status
from netmon.channels.base import Page, PageKind, SinkRejected, SinkUnavailable
from netmon.channels.gateway import GatewayChannel
from netmon.channels.texts import sms_segments
from netmon.config.channels import GatewaySettings
from tests.peers import free_port

# The peer module is also a plugin (its fixtures): have its asserts rewritten before importing it.
pytest.register_assert_rewrite("tests.alertmanager_peer")
from tests.alertmanager_peer import HttpRecorder  # noqa: E402

pytest_plugins = ["tests.alertmanager_peer"]

API_KEY = "esms-key-5f3a9c1e7b"  # a test value that must never show up anywhere
SECRET_KEY = "esms-secret-2d8b6f4a0c"  # noqa: S105
ZALO_TOKEN = "zalo-token-8e1c3a5b7d"  # noqa: S105
SECRETS = (API_KEY, SECRET_KEY, ZALO_TOKEN)
HANG = 30.0  # seconds: a hang guard, far beyond any timeout here; never a speed figure
T0 = 1_760_000_000.0  # 2025-10-09 15:53:20 in Asia/Ho_Chi_Minh


def down_event(target: str = "ep-tanlap", **changes: Any) -> AlertEvent:
    event = AlertEvent(
        alertname="EndpointDown",
        target=target,
        severity=Severity.CRITICAL,
        status=Status.FIRING,
        starts_at=T0,
        ends_at=None,
        summary=f"{target} mất kết nối (không phản hồi ping)",
        context={"site": "Xã Tân Lập", "district": "Huyện Như Xuân"},
        event_at=T0,
    )
    return replace(event, **changes)


def page(page_id: str = "0123456789abcdef", **changes: Any) -> Page:
    return replace(
        Page(
            page_id=page_id,
            channel="sms",
            recipient="+84987654321",
            kind=PageKind.FIRING,
            events=(down_event(),),
            language="vi",
            created_at=T0 + 120,  # 15:55
            status_url="https://noc.example.vn/s",
        ),
        **changes,
    )


def esms(url: str, **extra: Any) -> GatewaySettings:
    """The README's eSMS.vn example, pointed at the test's server."""
    return GatewaySettings.model_validate(
        {
            "name": "sms",
            "url": url,
            "secrets": {"api_key": API_KEY, "secret_key": SECRET_KEY},
            "body": {
                "ApiKey": "{secrets.api_key}",
                "SecretKey": "{secrets.secret_key}",
                "Phone": "{phone_national}",
                "Content": "{text}",
                "Brandname": "NETMON",
                "SmsType": "2",
                "IsUnicode": "0",
                "RequestId": "{page_id}",
            },
            "strip_diacritics": True,
            "success": {"path": "CodeResult", "equals": "100", "message_path": "ErrorMessage"},
            "timeout": "5s",
            **extra,
        }
    )


def zalo(url: str, **extra: Any) -> GatewaySettings:
    """The README's Zalo ZNS example, pointed at the test's server."""
    return GatewaySettings.model_validate(
        {
            "name": "zalo",
            "url": url,
            "headers": {"access_token": "{secret}"},
            "secret": ZALO_TOKEN,
            "body": {
                "phone": "{phone}",
                "template_id": "231456",
                "template_data": {
                    "site": "{site}",
                    "district": "{district}",
                    "alert": "{summary}",
                    "since": "{since}",
                    "time": "{time}",
                    "link": "{status_url}",
                },
                "tracking_id": "{page_id}",
            },
            "success": {"path": "error", "equals": 0, "retry": [-124], "message_path": "message"},
            **extra,
        }
    )


def accepted(code: str = "100") -> tuple[int, str]:
    return 200, json.dumps({"CodeResult": code, "SMSID": "a1b2c3", "ErrorMessage": ""})


async def test_esms_gets_one_request_per_page_rendered_from_the_template(
    http_recorder: HttpRecorder, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    http_recorder.answers["/esms"] = accepted()
    later = page("fedcba9876543210", kind=PageKind.REMINDER, step=1, created_at=T0 + 720)
    async with GatewayChannel(esms(http_recorder.url + "/esms")) as channel:
        assert (channel.name, channel.kind) == ("sms", "gateway")
        assert await channel.deliver([page(), later]) == 2

    first, second = http_recorder.requests
    assert (first.method, first.path) == ("POST", "/esms")
    assert first.headers["Content-Type"] == "application/json"
    body = first.json()
    assert body == {
        "ApiKey": API_KEY,
        "SecretKey": SECRET_KEY,
        "Phone": "0987654321",
        "Content": "15:55 Canh bao nghiem trong: ep-tanlap mat ket noi (khong phan hoi ping). "
        "Xa Tan Lap, Huyen Nhu Xuan. Tu luc 15:53. https://noc.example.vn/s",
        "Brandname": "NETMON",
        "SmsType": "2",
        "IsUnicode": "0",
        "RequestId": "0123456789abcdef",
    }
    assert sms_segments(body["Content"]) == 1  # GSM-7 within 160
    # The reminder about the same alert differs in its first words (the time, the count), so a
    # provider that drops the same phone and content within 5 minutes does not swallow it.
    assert second.json()["Content"].startswith("16:05 Nhac lai lan 2, nghiem trong: ep-tanlap")
    assert second.json()["RequestId"] == "fedcba9876543210"

    for secret in SECRETS:
        assert secret not in caplog.text
        assert secret not in repr(channel)
        assert secret not in repr(channel.settings)
        assert secret not in str(channel.settings.model_dump())


async def test_vietnamese_with_diacritics_unless_stripped(http_recorder: HttpRecorder) -> None:
    http_recorder.answers["/esms"] = accepted()
    settings = esms(http_recorder.url + "/esms", strip_diacritics=False)
    async with GatewayChannel(settings) as channel:
        await channel.deliver([page()])
    text = http_recorder.requests[0].json()["Content"]
    assert text.startswith("15:55 Cảnh báo nghiêm trọng: ep-tanlap mất kết nối")
    assert text.endswith("Xã Tân Lập, Huyện Như Xuân. Từ lúc 15:53. https://noc.example.vn/s")
    assert sms_segments(text) == 2  # UCS-2: within two parts of 67


async def test_a_provider_refusal_is_rejected_with_its_words_and_no_secret(
    http_recorder: HttpRecorder, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    # Providers echo the request: this one quotes the key back.
    refusal = {"CodeResult": "104", "ErrorMessage": f"Brandname chưa đăng ký (ApiKey {API_KEY})"}
    http_recorder.answers["/esms"] = (200, json.dumps(refusal))
    async with GatewayChannel(esms(http_recorder.url + "/esms")) as channel:
        with pytest.raises(SinkRejected) as rejected:
            await channel.deliver([page()])
    reason = str(rejected.value)
    assert reason == 'CodeResult="104": Brandname chưa đăng ký (ApiKey <secret>)'
    for secret in SECRETS:
        assert secret not in caplog.text


async def test_zalo_zns_gets_its_token_header_and_template_data(
    http_recorder: HttpRecorder,
) -> None:
    http_recorder.answers["/zns"] = (200, json.dumps({"error": 0, "message": "Success"}))
    async with GatewayChannel(zalo(http_recorder.url + "/zns")) as channel:
        assert await channel.deliver([page()]) == 1
    (request,) = http_recorder.requests
    assert request.headers["access_token"] == ZALO_TOKEN
    assert request.json() == {
        "phone": "84987654321",
        "template_id": "231456",
        "template_data": {
            "site": "Xã Tân Lập",
            "district": "Huyện Như Xuân",
            "alert": "ep-tanlap mất kết nối (không phản hồi ping)",
            "since": "15:53",
            "time": "15:55",
            "link": "https://noc.example.vn/s",
        },
        "tracking_id": "0123456789abcdef",
    }


@pytest.mark.parametrize(
    ("answer", "raised", "reason"),
    [
        ({"error": -108, "message": "Phone number is invalid"}, SinkRejected, "error=-108"),
        # An expired token, told with HTTP 200: listed in `retry`, so the page waits.
        ({"error": -124, "message": "Access token is invalid"}, SinkUnavailable, "error=-124"),
        ({"message": "no error field"}, SinkRejected, "error=missing"),
    ],
)
async def test_the_success_condition_decides(
    http_recorder: HttpRecorder, answer: dict[str, Any], raised: type[Exception], reason: str
) -> None:
    http_recorder.answers["/zns"] = (200, json.dumps(answer))
    async with GatewayChannel(zalo(http_recorder.url + "/zns")) as channel:
        with pytest.raises(raised, match=reason) as failed:
            await channel.deliver([page()])
    assert ZALO_TOKEN not in str(failed.value)


async def test_a_rate_limit_keeps_the_page_for_retry_after(http_recorder: HttpRecorder) -> None:
    http_recorder.answers["/esms"] = (429, "Too many requests")
    http_recorder.headers["/esms"] = {"Retry-After": "7"}
    async with GatewayChannel(esms(http_recorder.url + "/esms")) as channel:
        with pytest.raises(SinkUnavailable, match="HTTP 429: Too many requests") as unavailable:
            await channel.deliver([page()])
    assert unavailable.value.retry_after == 7.0


@pytest.mark.parametrize(
    ("answer", "raised"),
    [
        (503, SinkUnavailable),
        (500, SinkUnavailable),
        # A wrong key or URL is the channel's problem, not this page's: kept and retried.
        (401, SinkUnavailable),
        (404, SinkUnavailable),
        ((400, f'{{"error": "bad phone", "echo": "{API_KEY}"}}'), SinkRejected),
        (422, SinkRejected),
    ],
)
async def test_http_answers_map_onto_retry_or_drop(
    http_recorder: HttpRecorder, answer: int | tuple[int, str], raised: type[Exception]
) -> None:
    http_recorder.answers["/esms"] = answer
    async with GatewayChannel(esms(http_recorder.url + "/esms")) as channel:
        with pytest.raises(raised, match="HTTP ") as failed:
            await channel.deliver([page()])
    for secret in SECRETS:
        assert secret not in str(failed.value)


async def test_a_web_page_instead_of_the_api_keeps_the_page(http_recorder: HttpRecorder) -> None:
    http_recorder.answers["/esms"] = (200, "<html>Welcome to the captive portal</html>")
    async with GatewayChannel(esms(http_recorder.url + "/esms")) as channel:
        with pytest.raises(SinkUnavailable, match="not JSON"):
            await channel.deliver([page()])


async def test_grouping_is_opt_in(http_recorder: HttpRecorder) -> None:
    http_recorder.answers["/esms"] = accepted()
    other = page("a1" * 8, events=(down_event("ep-yenkhuong"),))
    third = page("b2" * 8, recipient="+84912345678")
    async with GatewayChannel(esms(http_recorder.url + "/esms", group=True)) as channel:
        assert await channel.deliver([page(), other, third]) == 3
    first, second = (request.json() for request in http_recorder.requests)
    assert first["Content"].startswith("15:55 Canh bao nghiem trong: ep-tanlap mat ket noi")
    assert "(+1 canh bao khac)" in first["Content"]
    assert first["RequestId"] == "0123456789abcdef"
    assert second["Phone"] == "0912345678"


async def test_nobody_listening_is_unavailable() -> None:
    settings = esms(f"http://127.0.0.1:{free_port()}/esms")
    async with GatewayChannel(settings) as channel:
        async with asyncio.timeout(HANG):
            with pytest.raises(SinkUnavailable, match=r"cannot connect to 127\.0\.0\.1"):
                await channel.deliver([page()])


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"body": {"to": "{phone_number}"}}, "unknown placeholder {phone_number}"),
        ({"body": {"to": "{secrets.token}"}}, "secrets has no such name"),
        ({"headers": {"Authorization": "Bearer {secret}"}}, "no secret is set"),
        ({"body": {"text": "a { b"}}, "a lone '{'"),
        ({"headers": {"Content-Type": "text/plain"}}, "set by netmon"),
        ({"url": "https://user:pw@sms.example.vn/send"}, "must not contain credentials"),
        ({"method": "GET"}, "POST"),
    ],
)
def test_templates_that_cannot_work_fail_at_load(change: dict[str, Any], message: str) -> None:
    settings = {
        "url": "https://sms.example.vn/send",
        "secrets": {"api_key": API_KEY},
        "body": {"key": "{secrets.api_key}", "to": "{phone}", "text": "{text}"},
        **change,
    }
    with pytest.raises(ValidationError, match=message) as invalid:
        GatewaySettings.model_validate(settings)
    assert API_KEY not in str(invalid.value)


def test_literal_braces_and_non_text_values_pass_through() -> None:
    settings = GatewaySettings.model_validate(
        {
            "url": "https://sms.example.vn/send",
            "body": {"text": "{{netmon}} {text}", "unicode": 0, "flags": [True, None, "{kind}"]},
        }
    )
    body = GatewayChannel(settings).request_body([page()])
    assert body["text"].startswith("{netmon} 15:55 Cảnh báo")
    assert body["unicode"] == 0
    assert body["flags"] == [True, None, "firing"]

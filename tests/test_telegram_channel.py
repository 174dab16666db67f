"""The Telegram channel end to end against the Bot API contract server
(netmon_lab/telegram_server.py).

What an on-call engineer sees in the chat: escaped text, a burst as one message within
Telegram's limit, Vietnamese words and times, forum topics, buttons that acknowledge; and what
the delivery worker is told: done, retry later (with Telegram's retry_after), or rejected.
Rate limits run on a fake clock; nothing sleeps on the wall clock.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import subprocess
import sys
import traceback
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from netmon.alerting.model import AlertEvent, Severity, Status
from netmon.channels.base import Action, ActionKind, Page, PageKind, SinkRejected, SinkUnavailable
from netmon.channels.telegram import TelegramChannel
from netmon.config.channels import TelegramSettings
from netmon_lab.telegram_server import TelegramServer, utf16_len
from tests.fake_clock import FakeClock
from tests.peers import free_port

TOKEN = "123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw"  # noqa: S105 - a test bot's
SECRET_PART = TOKEN.split(":")[1]
GROUP = "-1001234567890"
PERSON = "555000111"
ALLOWED_ID = 111
# 2025-12-05 08:00 UTC is 15:00 in Hà Nội.
STARTS_AT = 1764921600.0


class Actions:
    """The on_action handler: records what people asked for."""

    def __init__(self, reply: str = "Acknowledged") -> None:
        self.seen: list[Action] = []
        self.reply = reply

    async def __call__(self, action: Action) -> str:
        self.seen.append(action)
        return self.reply


def event(
    i: int = 0, *, site: str = "", summary: str = "", status: Status = Status.FIRING
) -> AlertEvent:
    site = site or f"UBND xã Nga Thạch {i}"
    return AlertEvent(
        alertname="EndpointDown",
        target=f"ep-{i}",
        severity=Severity.CRITICAL,
        status=status,
        starts_at=STARTS_AT + 60 * i,
        ends_at=STARTS_AT + 3600 if status is Status.RESOLVED else None,
        summary=summary or f"{site} is unreachable (no reply to ping)",
        context={"site": site, "district": "Huyện Nga Sơn"},
    )


def page(
    *events: AlertEvent,
    recipient: str = GROUP,
    kind: PageKind = PageKind.FIRING,
    language: Any = "en",
    **extra: Any,
) -> Page:
    return Page(
        page_id=f"{len(events):016x}",
        channel="telegram",
        recipient=recipient,
        kind=kind,
        events=events or (event(),),
        language=language,
        created_at=STARTS_AT,
        **extra,
    )


async def on_clock(clock: FakeClock, task: asyncio.Task[Any], *, within: float) -> float:
    """Run `task` to its end, letting fake time pass whenever it waits on the clock (and only
    then); its real I/O in between is waited for. Returns the fake time it took."""
    start = clock.now
    while not task.done():
        if clock.sleeping:
            left = within - (clock.now - start)
            await clock.advance_until(
                lambda: task.done() or not clock.sleeping, within=left, what="the task"
            )
        else:
            await asyncio.wait({task}, timeout=0.01)
    return clock.now - start


@pytest.fixture
async def server() -> AsyncIterator[TelegramServer]:
    async with TelegramServer(TOKEN, chats=[GROUP, PERSON]) as telegram:
        yield telegram


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def actions() -> Actions:
    return Actions()


def settings(url: str, **overrides: Any) -> TelegramSettings:
    raw = {"api_url": url, "bot_token": TOKEN, "allowed_users": [ALLOWED_ID, "@Tuan_NOC"]}
    return TelegramSettings.model_validate(raw | overrides)


@pytest.fixture
async def channel(
    server: TelegramServer, clock: FakeClock, actions: Actions
) -> AsyncIterator[TelegramChannel]:
    telegram = TelegramChannel(settings(server.url), actions, clock=clock, sleep=clock.sleep)
    await telegram.start()
    try:
        yield telegram
    finally:
        await telegram.close()


async def test_markup_characters_in_a_site_name_arrive_as_written(
    channel: TelegramChannel, server: TelegramServer
) -> None:
    site = 'Trạm <Core> & "Nga Sơn"'
    assert await channel.deliver([page(event(site=site))]) == 1
    (message,) = server.messages[GROUP]
    assert message.parse_mode == "HTML"
    assert site in message.plain  # the server parsed our HTML: every value was escaped
    assert f"{site} is unreachable (no reply to ping)" in message.plain


async def test_a_burst_of_60_alerts_is_one_message_within_the_limit(
    channel: TelegramChannel, server: TelegramServer
) -> None:
    endpoints = ", ".join(f"ep-{n}" for n in range(12))
    burst = [
        page(event(i, summary=f"District {i} unreachable: 12 endpoints are down: {endpoints}"))
        for i in range(60)
    ]
    assert await channel.deliver(burst) == 60
    (message,) = server.messages[GROUP]
    assert utf16_len(message.plain) <= 4096
    shown = sum(f"District {i} unreachable" in message.plain for i in range(60))
    assert 10 < shown < 60
    assert f"+{60 - shown} more" in message.plain
    # The alerts shown are the first ones, whole: nothing cut in the middle.
    assert all(f"{i + 1}. District {i} unreachable" in message.plain for i in range(shown))
    assert message.plain.count(endpoints) == shown


async def test_vietnamese_page_reads_in_vietnamese_with_hanoi_time(
    channel: TelegramChannel, server: TelegramServer
) -> None:
    summary = "UBND xã Nga Thạch mất kết nối (không phản hồi ping) 📵"
    burst = [page(event(0, summary=summary), language="vi", step=1)]
    burst += [page(event(i, summary=summary * 20), language="vi", step=1) for i in range(1, 30)]
    assert await channel.deliver(burst) == 30
    (message,) = server.messages[GROUP]
    assert message.plain.startswith("🚨 Cảnh báo · bước 2")
    assert summary in message.plain
    assert "từ lúc 15:00 05/12/2025" in message.plain
    assert "cảnh báo khác" in message.plain
    assert utf16_len(message.plain) <= 4096


async def test_a_forum_topic_gets_the_page(
    channel: TelegramChannel, server: TelegramServer
) -> None:
    assert await channel.deliver([page(recipient=f"{GROUP}:42")]) == 1
    (message,) = server.messages[GROUP]
    assert message.message_thread_id == 42


async def test_pages_to_different_chats_are_separate_messages_in_order(
    channel: TelegramChannel, server: TelegramServer, clock: FakeClock
) -> None:
    pages = [page(event(0)), page(event(1)), page(event(2), recipient=PERSON), page(event(3))]
    sending = asyncio.create_task(channel.deliver(pages))
    # The group's second message waits its second: on the fake clock.
    await on_clock(clock, sending, within=5)
    assert sending.result() == 4
    first, second = server.messages[GROUP]
    assert "Thạch 0" in first.plain
    assert "Thạch 1" in first.plain
    assert "Thạch 2" in server.messages[PERSON][0].plain
    assert "Thạch 3" in second.plain


async def test_a_429_is_honoured_before_the_next_message(
    channel: TelegramChannel, server: TelegramServer, clock: FakeClock
) -> None:
    server.rate_limit(retry_after=7)
    with pytest.raises(SinkUnavailable) as refused:
        await channel.deliver([page()])
    assert refused.value.retry_after is not None
    assert refused.value.retry_after >= 7
    assert server.messages[GROUP] == []

    retry = asyncio.create_task(channel.deliver([page()]))
    waited = await on_clock(clock, retry, within=30)
    assert waited >= 7
    assert retry.result() == 1
    assert len(server.messages[GROUP]) == 1


async def test_a_long_wait_is_left_to_the_delivery_worker(
    server: TelegramServer, clock: FakeClock, actions: Actions
) -> None:
    limits = settings(server.url, per_chat_interval=0, per_group_per_minute=3)
    async with TelegramChannel(limits, actions, clock=clock, sleep=clock.sleep) as telegram:
        for i in range(3):
            assert await telegram.deliver([page(event(i))]) == 1
        # The fourth message of the minute would break Telegram's group limit.
        with pytest.raises(SinkUnavailable) as later:
            await telegram.deliver([page(event(3)), page(event(4), recipient=PERSON)])
        assert later.value.retry_after == pytest.approx(60)
        assert len(server.messages[GROUP]) == 3
        assert server.messages[PERSON] == []
        await clock.advance(60)
        assert await telegram.deliver([page(event(3))]) == 1


async def test_one_chat_gets_at_most_one_message_a_second(
    channel: TelegramChannel, server: TelegramServer, clock: FakeClock
) -> None:
    assert await channel.deliver([page(event(0), recipient=PERSON)]) == 1
    second = asyncio.create_task(channel.deliver([page(event(1), recipient=PERSON)]))
    waited = await on_clock(clock, second, within=5)
    assert waited == pytest.approx(1.0)
    assert second.result() == 1
    assert len(server.messages[PERSON]) == 2


async def test_html_telegram_cannot_parse_goes_out_as_plain_text(
    channel: TelegramChannel, server: TelegramServer
) -> None:
    server.fail(
        "sendMessage", 400, 'Bad Request: can\'t parse entities: Unsupported start tag "x" at '
        "byte offset 3",
    )  # fmt: skip
    site = "Trạm <Core> & Co"
    assert await channel.deliver([page(event(site=site))]) == 1
    (message,) = server.messages[GROUP]
    assert message.parse_mode is None
    assert f"{site} is unreachable" in message.text
    assert "<b>" not in message.text
    assert "&amp;" not in message.text


async def test_an_unknown_or_blocked_chat_rejects_the_page(
    channel: TelegramChannel, server: TelegramServer
) -> None:
    with pytest.raises(SinkRejected, match="chat not found"):
        await channel.deliver([page(recipient="-100999")])
    server.blocked.add(PERSON)
    with pytest.raises(SinkRejected, match="blocked"):
        await channel.deliver([page(recipient=PERSON)])
    # After pages that went out, a refused one is left for the next call to reject.
    assert await channel.deliver([page(), page(recipient="-100999")]) == 1
    assert len(server.messages[GROUP]) == 1


async def test_server_errors_and_no_server_keep_the_pages(
    channel: TelegramChannel, server: TelegramServer, actions: Actions
) -> None:
    server.fail("sendMessage", 500, "Internal Server Error")
    with pytest.raises(SinkUnavailable, match="Internal Server Error"):
        await channel.deliver([page()])
    server.fail("sendMessage", 502, raw=b"<html>502 Bad Gateway</html>")
    with pytest.raises(SinkUnavailable, match="502"):
        await channel.deliver([page()])
    nowhere = TelegramChannel(settings(f"http://127.0.0.1:{free_port()}"), actions)
    async with nowhere:
        with pytest.raises(SinkUnavailable, match="cannot connect"):
            await nowhere.deliver([page()])


async def test_firing_page_buttons_one_row_per_alert_shown(
    channel: TelegramChannel, server: TelegramServer, clock: FakeClock
) -> None:
    await channel.deliver([page(event(0))])
    await channel.deliver([page(*(event(i) for i in range(8)), recipient=PERSON)])
    await clock.advance(1)  # the group's next message, a second later
    await channel.deliver([page(event(0, status=Status.RESOLVED), kind=PageKind.RESOLVED)])
    single, resolved = server.messages[GROUP]
    assert [b["text"] for b in single.buttons()] == [
        "Đã nhận / Acknowledge",
        "Tắt 1 giờ / Silence 1 h",
    ]
    (several,) = server.messages[PERSON]
    rows = several.reply_markup["inline_keyboard"] if several.reply_markup else []
    assert len(rows) == 5
    assert rows[1][0]["text"] == "2. Đã nhận / Acknowledge"
    assert resolved.reply_markup is None
    assert resolved.plain.startswith("✅ Resolved")


async def test_an_allowed_user_acknowledges_with_the_button(
    channel: TelegramChannel, server: TelegramServer, actions: Actions
) -> None:
    alert = event(3)
    await channel.deliver([page(alert)])
    query = await server.press_button(GROUP, "Acknowledge", user_id=ALLOWED_ID)
    await server.until(lambda: server.answer_to(query), what="the press answered")
    assert actions.seen == [
        Action(ActionKind.ACKNOWLEDGE, alert.fingerprint, "telegram:111", "111", "telegram")
    ]
    answer = server.answer_to(query)
    assert answer is not None
    assert answer.text == "Acknowledged"

    silence = await server.press_button(GROUP, "Silence", user_id=222, username="Tuan_NOC")
    await server.until(lambda: server.answer_to(silence), what="the second press answered")
    assert actions.seen[1].kind is ActionKind.SILENCE_1H
    assert actions.seen[1].by == "telegram:@Tuan_NOC"
    assert len(actions.seen) == 2  # each press once: the poll confirmed the first


async def test_a_user_not_allowed_is_told_so_and_nothing_happens(
    channel: TelegramChannel, server: TelegramServer, actions: Actions
) -> None:
    await channel.deliver([page()])
    query = await server.press_button(GROUP, "Acknowledge", user_id=999, username="mallory")
    await server.until(lambda: server.answer_to(query), what="the press answered")
    answer = server.answer_to(query)
    assert answer is not None
    assert "not allowed" in answer.text
    assert actions.seen == []


async def test_a_malformed_button_is_answered_and_the_loop_goes_on(
    channel: TelegramChannel, server: TelegramServer, actions: Actions
) -> None:
    bad = await server.press(GROUP, "ack:../../etc", user_id=ALLOWED_ID)
    await server.until(lambda: server.answer_to(bad), what="the bad press answered")
    assert channel.counts["malformed"] == 1
    assert actions.seen == []
    await channel.deliver([page()])
    good = await server.press_button(GROUP, "Acknowledge", user_id=ALLOWED_ID)
    await server.until(lambda: server.answer_to(good), what="the good press answered")
    assert len(actions.seen) == 1


async def test_the_token_appears_in_no_log_and_no_error(
    server: TelegramServer, clock: FakeClock, actions: Actions, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    texts: list[str] = []

    async def failing(telegram: TelegramChannel) -> None:
        try:
            await telegram.deliver([page()])
        except (SinkUnavailable, SinkRejected) as exc:
            texts.append("".join(traceback.format_exception(exc)))
            texts.append(repr(exc))
        else:
            raise AssertionError("delivered")

    server.fail("getUpdates", 500, "Internal Server Error", times=2)
    telegram = TelegramChannel(settings(server.url), actions, clock=clock, sleep=clock.sleep)
    async with telegram:
        await server.until(lambda: telegram.counts["poll_errors"] >= 1, what="a failed poll")
        server.fail("sendMessage", 500, "Internal Server Error")
        await failing(telegram)
        server.fail("sendMessage", 502, raw=b"<html>502 Bad Gateway</html>")
        await failing(telegram)
        server.fail("sendMessage", 400, "Bad Request: can't parse entities: x", times=2)
        await failing(telegram)
        texts.append(repr(telegram) + repr(telegram.settings))
    wrong = settings(server.url, bot_token="123456789:" + "B" * 35)
    async with TelegramChannel(wrong, actions, clock=clock, sleep=clock.sleep) as other:
        await failing(other)
    async with TelegramChannel(
        settings(f"http://127.0.0.1:{free_port()}"), actions, clock=clock, sleep=clock.sleep
    ) as nowhere:
        await failing(nowhere)
    # Something that is not HTTP: aiohttp's own error for it prints the whole URL.
    async with _garbage_server() as url, TelegramChannel(settings(url), actions) as confused:
        await failing(confused)
    texts += [record.getMessage() + (record.exc_text or "") for record in caplog.records]
    assert any("getUpdates" in text for text in texts)  # the failures were logged
    assert [text for text in texts if SECRET_PART in text or "B" * 35 in text] == []


@contextlib.asynccontextmanager
async def _garbage_server() -> AsyncIterator[str]:
    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"SURPRISE\r\n\r\n")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(answer, "127.0.0.1", 0)
    try:
        yield f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    finally:
        server.close()
        await server.wait_closed()


def test_settings_check_the_token_without_showing_it() -> None:
    with pytest.raises(ValueError, match="bot token") as bad:
        TelegramSettings.model_validate({"bot_token": "123:short/../x"})
    assert "is not a bot token" in str(bad.value)
    good = TelegramSettings.model_validate({"bot_token": TOKEN, "allowed_users": [5, "@Ab_cde"]})
    assert SECRET_PART not in repr(good)
    assert good.allowed_users == ("5", "@ab_cde")
    assert good.may_act("7", "AB_CDE")
    assert not good.may_act("8", None)
    with pytest.raises(ValueError, match="neither a numeric user id"):
        TelegramSettings.model_validate({"bot_token": TOKEN, "allowed_users": ["tuan"]})


def test_the_settings_load_without_aiohttp() -> None:
    probe = "import sys, netmon.config.channels; print('aiohttp' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


async def test_a_failing_handler_is_answered_and_the_next_press_works(
    server: TelegramServer, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    calls: list[Action] = []

    async def flaky(action: Action) -> str:
        calls.append(action)
        if len(calls) == 1:
            raise RuntimeError("the alert database is locked")
        return "Acknowledged"

    async with TelegramChannel(settings(server.url), flaky, clock=clock, sleep=clock.sleep) as ch:
        await ch.deliver([page()])
        first = await server.press_button(GROUP, "Acknowledge", user_id=ALLOWED_ID)
        await server.until(lambda: server.answer_to(first), what="the first press answered")
        second = await server.press_button(GROUP, "Acknowledge", user_id=ALLOWED_ID)
        await server.until(lambda: server.answer_to(second), what="the second press answered")
    answers = [server.answer_to(first), server.answer_to(second)]
    assert [answer.text if answer else None for answer in answers] == [
        "Lỗi, thử lại sau / failed, try again",
        "Acknowledged",
    ]
    assert "the alert database is locked" in caplog.text


async def test_one_delivery_waits_for_rate_limits_no_longer_than_its_timeout(
    server: TelegramServer, clock: FakeClock, actions: Actions
) -> None:
    slow = settings(server.url, per_chat_interval=3, timeout=5)
    async with TelegramChannel(slow, actions, clock=clock, sleep=clock.sleep) as telegram:
        alternating = [page(event(i), recipient=(GROUP, PERSON)[i % 2]) for i in range(6)]
        sending = asyncio.create_task(telegram.deliver(alternating))
        held = await on_clock(clock, sending, within=60)
        # The group's third message would have needed a second wait of 3 s: left for later.
        assert sending.result() == 4
        assert held <= 5
        assert len(server.messages[GROUP]) == 2
        assert len(server.messages[PERSON]) == 2


@pytest.mark.parametrize(
    ("body", "status", "description"),
    [
        ({"text": "<b>bold"}, 400, "can't parse entities"),
        ({"text": "<b>bold</i>"}, 400, "can't parse entities"),
        ({"text": "<blink>x</blink>"}, 400, "Unsupported start tag"),
        ({"text": "1 < 2"}, 400, "can't parse entities"),
        ({"text": "R&D"}, 400, "can't parse entities"),
        ({"text": "&lt;b&gt; &amp; &#39;&#x1F600;"}, 200, ""),
        ({"text": "<b>" + "é" * 4096 + "</b>"}, 200, ""),
        ({"text": "<b>" + "😀" * 2049 + "</b>"}, 400, "message is too long"),
        (
            {
                "text": "x",
                "reply_markup": {"inline_keyboard": [[{"text": "a", "callback_data": "x" * 65}]]},
            },
            400,
            "BUTTON_DATA_INVALID",
        ),
        ({"text": "x", "chat_id": "-42"}, 400, "chat not found"),
    ],
)
async def test_the_contract_server_refuses_what_telegram_refuses(
    server: TelegramServer, body: dict[str, Any], status: int, description: str
) -> None:
    request = {"chat_id": GROUP, "parse_mode": "HTML"} | body
    async with aiohttp.ClientSession() as session:
        async with session.post(f"{server.url}/bot{TOKEN}/sendMessage", json=request) as answer:
            assert answer.status == status
            reply = await answer.json()
        async with session.post(f"{server.url}/bot1:wrong/sendMessage", json=request) as wrong:
            assert wrong.status == 401
            assert await wrong.json() == {
                "ok": False,
                "error_code": 401,
                "description": "Unauthorized",
            }
    assert reply["ok"] is (status == 200)
    assert description in reply.get("description", "")


async def test_the_channels_language_overrides_the_pages(
    server: TelegramServer, clock: FakeClock, actions: Actions
) -> None:
    vietnamese = settings(server.url, language="vi")
    async with TelegramChannel(vietnamese, actions, clock=clock, sleep=clock.sleep) as telegram:
        await telegram.deliver([page(event(0, status=Status.RESOLVED), kind=PageKind.RESOLVED)])
    (message,) = server.messages[GROUP]
    assert message.plain.startswith("✅ Đã khôi phục")
    assert "từ lúc 15:00 05/12/2025 đến 16:00 05/12/2025" in message.plain

"""Telegram channel: pages as Bot API messages, and the Acknowledge/Silence buttons pressed on them.

Delivery (`deliver`): each run of consecutive pages to the same chat is one `sendMessage` with
`parse_mode=HTML` (the text: `telegram_format`); "CHAT_ID:THREAD_ID" posts into a forum topic
(`message_thread_id`). Telegram's limits are kept by the channel itself: a chat gets at most one
message per `per_chat_interval`, a group (a negative chat id, or an @channel) at most
`per_group_per_minute`. Waits of up to `timeout` in all are waited inside `deliver`; a
longer one stops the batch there: the pages sent so far are returned as done, or, when none was,
`SinkUnavailable(retry_after=...)` says when to come back. A 429 sets the chat's wait to
`parameters.retry_after`. A 400 "can't parse entities" is a bug of ours, not of the page: the
message is sent once more as plain text. Other 400s and 403s (chat not found, bot blocked or
kicked) reject the page; 401, 404, 5xx, timeouts and connection failures keep it
(`SinkUnavailable`).

Button presses (`start` → a long-polling `getUpdates` task, `close` cancels it): each
callback_query is checked against `allowed_users` (numeric id or @username), carried out by the
`on_action` handler, and answered with `answerCallbackQuery` (the handler's text, or "not
allowed"); malformed data is answered and counted, and nothing a press contains stops the loop.

The token is part of every URL (`/bot<TOKEN>/method`), so no URL is ever logged or put in an
exception: aiohttp's errors are reduced to their class (or host and port), and the far side's
`description` is the only text taken from an answer.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import aiohttp

from netmon.channels.base import (
    Action,
    ActionHandler,
    Page,
    SinkRejected,
    SinkUnavailable,
)
from netmon.channels.telegram_format import Message, parse_callback_data, render
from netmon.config.channels import TelegramSettings

log = logging.getLogger(__name__)

NOT_ALLOWED = "Không có quyền / not allowed"
UNKNOWN_BUTTON = "Nút không hợp lệ / unknown button"
FAILED = "Lỗi, thử lại sau / failed, try again"
MAX_ANSWER = 200  # answerCallbackQuery text, characters
MAX_RETRY_AFTER = 3600.0
POLL_BACKOFF = (1.0, 30.0)  # after a failed getUpdates: from, up to


class TelegramError(Exception):
    """An answer with ok=false, or no answer; the text never contains the URL."""

    def __init__(self, reason: str, *, status: int = 0, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.status = status
        self.retry_after = retry_after


def parse_recipient(recipient: str) -> tuple[str, int | None]:
    """("CHAT_ID", THREAD_ID or None) from "CHAT_ID" or "CHAT_ID:THREAD_ID"."""
    chat, sep, thread = recipient.strip().partition(":")
    chat_ok = chat.lstrip("-").isdigit() or (chat.startswith("@") and len(chat) > 1)
    if not chat_ok or (sep and not thread.isdigit()):
        raise ValueError(f"{recipient!r} is not CHAT_ID or CHAT_ID:THREAD_ID")
    return chat, int(thread) if sep else None


def is_group(chat: str) -> bool:
    return chat.startswith(("-", "@"))


class RateLimits:
    """When each chat may get its next message: 1 per interval per chat, N a minute per group,
    and a 429's retry_after."""

    def __init__(self, settings: TelegramSettings, clock: Callable[[], float]) -> None:
        self.interval = settings.per_chat_interval
        self.per_minute = settings.per_group_per_minute
        self.clock = clock
        self._last: dict[str, float] = {}
        self._group: dict[str, collections.deque[float]] = {}
        self._blocked: dict[str, float] = {}

    def wait(self, chat: str) -> float:
        now = self.clock()
        wait = max(0.0, self._blocked.get(chat, now) - now)
        if chat in self._last:
            wait = max(wait, self._last[chat] + self.interval - now)
        sent = self._group.get(chat)
        if sent is not None:
            while sent and sent[0] <= now - 60.0:
                sent.popleft()
            if len(sent) >= self.per_minute:
                wait = max(wait, sent[0] + 60.0 - now)
        return wait

    def sent(self, chat: str) -> None:
        now = self.clock()
        self._last[chat] = now
        if is_group(chat):
            self._group.setdefault(chat, collections.deque()).append(now)

    def block(self, chat: str, seconds: float) -> None:
        self._blocked[chat] = max(self._blocked.get(chat, 0.0), self.clock() + seconds)


class TelegramChannel:
    kind = "telegram"

    def __init__(
        self,
        settings: TelegramSettings,
        on_action: ActionHandler,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.settings = settings
        self.name = settings.name
        self.on_action = on_action
        self.sleep = sleep
        self.limits = RateLimits(settings, clock)
        # What happened to button presses and messages, for metrics and tests.
        self.counts: collections.Counter[str] = collections.Counter()
        self._session: aiohttp.ClientSession | None = None
        self._poller: asyncio.Task[None] | None = None
        self._offset = 0  # the next getUpdates' offset: every update below it is handled

    def __repr__(self) -> str:
        return f"TelegramChannel(name={self.name!r})"

    async def start(self) -> None:
        if self._session is None:
            self._session = aiohttp.ClientSession()
        if self.settings.updates == "poll" and self._poller is None:
            self._poller = asyncio.create_task(self._poll(), name=f"telegram-poll:{self.name}")

    async def close(self) -> None:
        if self._poller is not None:
            self._poller.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._poller
            self._poller = None
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def __aenter__(self) -> TelegramChannel:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    # -- delivery -------------------------------------------------------------------------

    async def deliver(self, pages: Sequence[Page]) -> int:
        done = 0
        # All the rate-limit waits of one call together stay within `timeout`: a batch that
        # alternates between two chats must not hold the worker for a second per page.
        budget = [self.settings.timeout]
        for run in _runs(pages):
            try:
                await self._send_run(run, budget)
            except (SinkUnavailable, SinkRejected) as exc:
                if done == 0:
                    raise
                log.info(
                    "telegram %s: %d of %d pages sent, then: %s", self.name, done, len(pages), exc
                )
                return done
            done += len(run)
        return done

    async def _send_run(self, run: Sequence[Page], budget: list[float]) -> None:
        try:
            chat, thread = parse_recipient(run[0].recipient)
        except ValueError as exc:
            raise SinkRejected(str(exc)) from None
        wait = self.limits.wait(chat)
        if wait > budget[0]:
            raise SinkUnavailable(f"rate limit of chat {chat}", retry_after=wait)
        if wait > 0:
            budget[0] -= wait
            await self.sleep(wait)
        message = render(run, buttons=self.settings.buttons, language=self.settings.language)
        body: dict[str, Any] = {"chat_id": chat, "text": message.html, "parse_mode": "HTML"}
        if thread is not None:
            body["message_thread_id"] = thread
        if (markup := message.reply_markup()) is not None:
            body["reply_markup"] = markup
        try:
            await self._send(chat, body)
        except TelegramError as exc:
            if exc.status == 400 and "can't parse entities" in str(exc).lower():
                # Our HTML is wrong: the page still goes out, without formatting.
                log.error(
                    "telegram %s: Telegram cannot parse our HTML (%s); sent as plain text",
                    self.name,
                    exc,
                )
                self.counts["plain_fallback"] += 1
                await self._send_plain(chat, body, message)
            else:
                raise self._contract_error(chat, exc) from None
        self.counts["messages"] += 1
        self.counts["alerts_summarised"] += message.more

    async def _send_plain(self, chat: str, body: dict[str, Any], message: Message) -> None:
        plain = {key: value for key, value in body.items() if key != "parse_mode"}
        plain["text"] = message.plain
        try:
            await self._send(chat, plain)
        except TelegramError as exc:
            raise self._contract_error(chat, exc) from None

    async def _send(self, chat: str, body: dict[str, Any]) -> None:
        await self.call("sendMessage", body, timeout=self.settings.timeout)
        # Only a message Telegram took counts against its limits; a 429 sets its own wait.
        self.limits.sent(chat)

    def _contract_error(self, chat: str, exc: TelegramError) -> Exception:
        if exc.retry_after is not None:
            self.limits.block(chat, exc.retry_after)
        if exc.status in (400, 403):
            return SinkRejected(str(exc))
        return SinkUnavailable(str(exc), retry_after=exc.retry_after)

    async def call(self, method: str, body: dict[str, Any], *, timeout: float) -> Any:
        """One Bot API method; its `result`, or TelegramError (status 0: no answer)."""
        if self._session is None:
            raise RuntimeError("TelegramChannel used before start()")
        url = f"{self.settings.api_url}/bot{self.settings.bot_token.reveal()}/{method}"
        try:
            async with self._session.post(
                url, json=body, allow_redirects=False, timeout=aiohttp.ClientTimeout(total=timeout)
            ) as response:
                status = response.status
                raw = await response.read()
        except TimeoutError:
            raise TelegramError(f"{method}: no answer within {timeout:g} s") from None
        except aiohttp.ClientError as exc:
            raise TelegramError(f"{method}: {_describe(exc)}") from None
        return _result(method, status, raw)

    # -- button presses -------------------------------------------------------------------

    async def _poll(self) -> None:
        backoff = POLL_BACKOFF[0]
        while True:
            try:
                await self._poll_once()
            except TelegramError as exc:
                failure = str(exc)
            except Exception as exc:  # a bug of ours must not end the buttons for good
                log.exception("telegram %s: handling button presses failed", self.name)
                failure = type(exc).__name__
            else:
                backoff = POLL_BACKOFF[0]
                continue
            self.counts["poll_errors"] += 1
            log.warning("telegram %s: getUpdates: %s; again in %g s", self.name, failure, backoff)
            await self.sleep(backoff)
            backoff = min(backoff * 2, POLL_BACKOFF[1])

    async def _poll_once(self) -> None:
        poll = self.settings.poll_timeout
        body = {"offset": self._offset, "timeout": int(poll), "allowed_updates": ["callback_query"]}
        updates = await self.call("getUpdates", body, timeout=poll + self.settings.timeout)
        for update in updates if isinstance(updates, list) else []:
            if not isinstance(update, dict) or not isinstance(update.get("update_id"), int):
                continue
            # Confirmed at the next poll, handled or not: one bad press is never retried.
            self._offset = max(self._offset, update["update_id"] + 1)
            query = update.get("callback_query")
            if isinstance(query, dict):
                await self._pressed(query)

    async def _pressed(self, query: dict[str, Any]) -> None:
        self.counts["presses"] += 1
        query_id = query.get("id")
        if not isinstance(query_id, str):
            self.counts["malformed"] += 1
            return
        sender: dict[str, Any] = query["from"] if isinstance(query.get("from"), dict) else {}
        user_id = str(sender.get("id", ""))
        username = sender.get("username") if isinstance(sender.get("username"), str) else None
        parsed = parse_callback_data(query.get("data"))
        if parsed is None:
            self.counts["malformed"] += 1
            text = UNKNOWN_BUTTON
        elif not self.settings.may_act(user_id, username):
            self.counts["not_allowed"] += 1
            log.warning(
                "telegram %s: user %s (@%s) is not allowed to act",
                self.name,
                user_id,
                username or "-",
            )
            text = NOT_ALLOWED
        else:
            kind, fingerprint = parsed
            action = Action(
                kind=kind,
                fingerprint=fingerprint,
                by=f"telegram:@{username}" if username else f"telegram:{user_id}",
                user_id=user_id,
                channel=self.name,
            )
            text = await self._act(action)
        try:
            await self.call(
                "answerCallbackQuery",
                {"callback_query_id": query_id, "text": text[:MAX_ANSWER]},
                timeout=self.settings.timeout,
            )
        except TelegramError as exc:
            log.warning("telegram %s: answerCallbackQuery failed: %s", self.name, exc)

    async def _act(self, action: Action) -> str:
        try:
            text = await asyncio.wait_for(self.on_action(action), self.settings.timeout)
        except TimeoutError:
            log.error(
                "telegram %s: %s of %s took over %g s",
                self.name,
                action.kind.value,
                action.fingerprint,
                self.settings.timeout,
            )
            self.counts["action_errors"] += 1
            return FAILED
        except Exception:
            log.exception(
                "telegram %s: %s of %s failed", self.name, action.kind.value, action.fingerprint
            )
            self.counts["action_errors"] += 1
            return FAILED
        self.counts["actions"] += 1
        return text


def _runs(pages: Sequence[Page]) -> list[list[Page]]:
    """Consecutive pages to the same recipient, together."""
    runs: list[list[Page]] = []
    for page in pages:
        if runs and runs[-1][0].recipient == page.recipient:
            runs[-1].append(page)
        else:
            runs.append([page])
    return runs


def _result(method: str, status: int, raw: bytes) -> Any:
    try:
        answer = json.loads(raw)
    except ValueError:
        answer = None
    if not isinstance(answer, dict):
        raise TelegramError(f"{method}: HTTP {status}, not a Bot API answer", status=status)
    if answer.get("ok") is True and 200 <= status < 300:
        return answer.get("result")
    error_code = answer.get("error_code")
    code = error_code if isinstance(error_code, int) else status
    description = " ".join(str(answer.get("description", "")).split())[:300]
    parameters: dict[str, Any] = (
        answer["parameters"] if isinstance(answer.get("parameters"), dict) else {}
    )
    retry_after = parameters.get("retry_after")
    if isinstance(retry_after, int | float) and not isinstance(retry_after, bool):
        retry = min(max(float(retry_after), 0.0), MAX_RETRY_AFTER)
    else:
        retry = None
    raise TelegramError(
        f"{method}: {description or f'HTTP {status}'}", status=code, retry_after=retry
    )


def _describe(exc: aiohttp.ClientError) -> str:
    # Most aiohttp errors print the request's URL, which holds the token: keep the safe parts.
    if isinstance(exc, aiohttp.ClientConnectorError):
        cause = exc.os_error.strerror or type(exc.os_error).__name__
        return f"cannot connect to {exc.host}:{exc.port}: {cause}"
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        return "the server closed the connection"
    if isinstance(exc, aiohttp.ClientOSError):
        return f"{type(exc).__name__}: {exc.strerror or exc.errno}"
    return type(exc).__name__


__all__ = ["TelegramChannel", "TelegramError", "parse_recipient"]

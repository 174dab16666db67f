"""A Telegram Bot API contract server for tests: the methods netmon's Telegram channel uses.

Mirrors https://core.telegram.org/bots/api for:

- Requests: `POST /bot<TOKEN>/<method>` with JSON, form or query parameters; answers are
  `{"ok": true, "result": ...}` or `{"ok": false, "error_code": N, "description": "...",
  "parameters": {...}}`. A wrong token is 401 "Unauthorized", an unknown method 404 "Not Found".
- `sendMessage` (chat_id, text, parse_mode, message_thread_id, reply_markup): an unknown chat is
  400 "Bad Request: chat not found", a chat that blocked the bot 403 "Forbidden: bot was blocked
  by the user". With parse_mode=HTML ("Formatting options", HTML style) only the documented
  tags are accepted (b, strong, i, em, u, ins, s, strike, del, span class="tg-spoiler",
  tg-spoiler, a href, code, pre, blockquote, tg-emoji), tags must nest and close, and only the
  named entities &lt; &gt; &amp; &quot; and numeric ones are known; anything else is 400 "Bad
  Request: can't parse entities: ...". Stricter than Telegram on one point, on purpose: a bare
  `&` that starts no entity is refused too (Telegram lets some through), since it means a value
  went out unescaped. The text after entity parsing must be 1-4096 UTF-16 code units ("Bad
  Request: message is too long" / "message text is empty"). An inline keyboard button's
  callback_data must be 1-64 bytes ("Bad Request: BUTTON_DATA_INVALID").
- `getUpdates` (offset, limit, timeout, allowed_updates): long polling; an offset confirms every
  update below it, which is never returned again; a second poll while one waits ends the first
  with 409 "Conflict: terminated by other getUpdates request".
- `answerCallbackQuery` (callback_query_id, text ≤ 200 characters): an unknown or already
  answered id is 400 "Bad Request: query is too old and response timeout expired or query ID is
  invalid".

Test switches: `rate_limit(retry_after)` answers the next sendMessage(s) with 429 and
`parameters.retry_after`; `fail(status, ...)` answers the next calls of a method with an error
(or a body that is not JSON, as a proxy would); `press(...)`/`press_button(...)` queue the
callback_query a user's button press makes. Every message a chat receives is kept in
`messages[chat_id]` (text, its parsed plain text, reply_markup, message_thread_id, time);
every answer to a button press in `answers`. `until(condition)` waits for a condition on them.
"""

from __future__ import annotations

import asyncio
import contextlib
import html
import itertools
import json
import re
import time
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

MAX_TEXT = 4096
MAX_CALLBACK_DATA = 64
MAX_ANSWER_TEXT = 200
TAGS = frozenset(
    {"b", "strong", "i", "em", "u", "ins", "s", "strike", "del", "span", "tg-spoiler", "a",
     "code", "pre", "blockquote", "tg-emoji"}
)  # fmt: skip
_NAMED = {"lt": "<", "gt": ">", "amp": "&", "quot": '"'}
_ENTITY = re.compile(r"&(#[0-9]{1,7}|#[xX][0-9a-fA-F]{1,6}|[A-Za-z]+);")
_ATTR = re.compile(r"""([A-Za-z][A-Za-z0-9-]*)\s*=\s*("[^"]*"|'[^']*'|[^\s"'>]+)""")


class ParseError(ValueError):
    pass


@dataclass
class Received:
    """A message as a chat shows it."""

    message_id: int
    chat_id: str
    text: str  # as sent
    plain: str  # what the user reads: the text after entity parsing
    parse_mode: str | None
    reply_markup: dict[str, Any] | None
    message_thread_id: int | None
    at: float  # time.monotonic()

    def buttons(self) -> list[dict[str, str]]:
        rows = (self.reply_markup or {}).get("inline_keyboard", [])
        return [button for row in rows for button in row]


@dataclass
class Answer:
    callback_query_id: str
    text: str
    show_alert: bool


@dataclass
class _Failure:
    status: int
    description: str
    times: int
    raw: bytes | None = None
    parameters: dict[str, Any] = field(default_factory=dict)


def utf16_len(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def parse_html(text: str) -> str:
    """The plain text Telegram shows for `text` with parse_mode=HTML; ParseError like its."""
    out: list[str] = []
    stack: list[str] = []
    i = 0
    while i < len(text):
        char = text[i]
        offset = len(text[:i].encode())
        if char == "<":
            end = text.find(">", i)
            if end < 0:
                raise ParseError(f"Unclosed start tag at byte offset {offset}")
            inside = text[i + 1 : end]
            if inside.startswith("/"):
                name = inside[1:].strip().lower()
                if not stack:
                    raise ParseError(f"Unexpected end tag at byte offset {offset}")
                if name and name != stack[-1]:
                    raise ParseError(
                        f'Can\'t find end tag corresponding to start tag "{stack[-1]}"'
                    )
                stack.pop()
            else:
                name, _, attrs = inside.partition(" ")
                name = name.strip().lower()
                if name not in TAGS:
                    raise ParseError(f'Unsupported start tag "{name}" at byte offset {offset}')
                values = {k.lower(): html.unescape(v.strip("\"'")) for k, v in _ATTR.findall(attrs)}
                if name == "a" and not values.get("href"):
                    raise ParseError(f"Can't find href of the link at byte offset {offset}")
                if name == "span" and values.get("class") != "tg-spoiler":
                    raise ParseError(
                        f'Tag "span" must have class "tg-spoiler" at byte offset {offset}'
                    )
                stack.append(name)
            i = end + 1
        elif char == "&":
            match = _ENTITY.match(text, i)
            if match is None:
                raise ParseError(f"Unescaped & at byte offset {offset}")
            name = match.group(1)
            if name.startswith("#"):
                hexadecimal = name[1:2] in ("x", "X")
                number = int(name[2:], 16) if hexadecimal else int(name[1:])
                out.append(chr(number) if 0 < number <= 0x10FFFF else "\ufffd")
            elif name in _NAMED:
                out.append(_NAMED[name])
            else:
                raise ParseError(f'Unsupported HTML entity "&{name};" at byte offset {offset}')
            i = match.end()
        else:
            out.append(char)
            i += 1
    if stack:
        raise ParseError(f'Can\'t find end tag corresponding to start tag "{stack[-1]}"')
    return "".join(out)


class TelegramServer:
    """The Bot API on 127.0.0.1 and an ephemeral port, for one bot token."""

    def __init__(self, token: str, *, chats: Iterable[int | str] = ()) -> None:
        self.token = token
        self.chats = {str(chat) for chat in chats}
        self.blocked: set[str] = set()  # chats whose user blocked the bot: 403
        self.messages: dict[str, list[Received]] = defaultdict(list)
        self.answers: list[Answer] = []
        self.calls: list[tuple[str, int]] = []  # (method, HTTP status) of every request
        self.polls = 0  # getUpdates requests answered
        self.url = ""
        self._runner: web.AppRunner | None = None
        self._failures: dict[str, list[_Failure]] = defaultdict(list)
        self._updates: list[dict[str, Any]] = []
        self._update_ids = itertools.count(1)
        self._message_ids = itertools.count(1)
        self._query_ids = itertools.count(1)
        self._open_queries: set[str] = set()
        self._poll_generation = 0
        self._changed = asyncio.Condition()
        self._closing = False

    # -- lifecycle ------------------------------------------------------------------------

    async def start(self) -> TelegramServer:
        app = web.Application()
        app.router.add_route("*", "/{bot}/{method}", self._handle)
        # No access log: the token is in every path, and the tests check that netmon's own
        # logs never show it.
        self._runner = web.AppRunner(
            app, handle_signals=False, access_log=None, shutdown_timeout=1.0
        )
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        server = site._server
        assert server is not None
        port = server.sockets[0].getsockname()[1]  # type: ignore[attr-defined]
        self.url = f"http://127.0.0.1:{port}"
        return self

    async def close(self) -> None:
        self._closing = True
        await self._notify()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> TelegramServer:
        return await self.start()

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    # -- switches -------------------------------------------------------------------------

    def rate_limit(self, retry_after: int, *, times: int = 1) -> None:
        """The next `times` sendMessage calls get 429 with parameters.retry_after."""
        self._failures["sendMessage"].append(
            _Failure(429, f"Too Many Requests: retry after {retry_after}", times,
                     parameters={"retry_after": retry_after})
        )  # fmt: skip

    def fail(
        self, method: str, status: int, description: str = "", *, times: int = 1,
        raw: bytes | None = None,
    ) -> None:  # fmt: skip
        """The next `times` calls of `method` fail with `status` (and a Bot API error, or `raw`
        as the body: what a proxy in front of the API would send)."""
        self._failures[method].append(_Failure(status, description, times, raw=raw))

    async def press(
        self, chat: int | str, data: str, *, user_id: int, username: str | None = None,
        message_id: int = 1,
    ) -> str:  # fmt: skip
        """A user presses a button whose callback_data is `data`: queues the callback_query
        update and returns its id."""
        query_id = f"q{next(self._query_ids)}"
        sender: dict[str, Any] = {"id": user_id, "is_bot": False, "first_name": "User"}
        if username is not None:
            sender["username"] = username
        chat_id = int(chat) if str(chat).lstrip("-").isdigit() else chat
        self._open_queries.add(query_id)
        self._updates.append({
            "update_id": next(self._update_ids),
            "callback_query": {
                "id": query_id,
                "from": sender,
                "message": {"message_id": message_id, "date": int(time.time()),
                            "chat": {"id": chat_id, "type": "supergroup"}},
                "chat_instance": "42",
                "data": data,
            },
        })  # fmt: skip
        await self._notify()
        return query_id

    async def press_button(
        self, chat: int | str, label: str, *, user_id: int, username: str | None = None,
        message: int = -1,
    ) -> str:  # fmt: skip
        """A user presses the first button whose text contains `label` on a message the chat
        received (the last by default)."""
        received = self.messages[str(chat)][message]
        for button in received.buttons():
            if label in button["text"]:
                return await self.press(
                    chat, button["callback_data"], user_id=user_id, username=username,
                    message_id=received.message_id,
                )  # fmt: skip
        raise AssertionError(f"no button {label!r} on {received.buttons()}")

    async def until(self, condition: Callable[[], object], *, what: str = "") -> None:
        """Wait until `condition()` holds, re-checked after every request the server handles.
        The 30 s bound only keeps a broken test from hanging: no test relies on it."""

        async def wait() -> None:
            while not condition():
                # Woken by the next request, or soon anyway: the condition may be on the
                # client's side (what it did with an answer), which the server cannot hear.
                async with self._changed:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._changed.wait(), 0.02)

        try:
            await asyncio.wait_for(wait(), 30.0)
        except TimeoutError:
            raise AssertionError(f"never happened: {what or condition}") from None

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    # -- the API --------------------------------------------------------------------------

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        method = request.match_info["method"]
        response = await self._answer(request, method)
        self.calls.append((method, response.status))
        await self._notify()
        return response

    async def _answer(self, request: web.Request, method: str) -> web.StreamResponse:
        if request.match_info["bot"] != f"bot{self.token}":
            return _error(401, "Unauthorized")
        handler = {
            "sendMessage": self._send_message,
            "getUpdates": self._get_updates,
            "answerCallbackQuery": self._answer_callback_query,
        }.get(method)
        if handler is None:
            return _error(404, "Not Found")
        failures = self._failures[method]
        if failures:
            failure = failures[0]
            failure.times -= 1
            if failure.times <= 0:
                failures.pop(0)
            if failure.raw is not None:
                return web.Response(status=failure.status, body=failure.raw,
                                    content_type="text/html")  # fmt: skip
            return _error(failure.status, failure.description, failure.parameters)
        try:
            params = await _params(request)
        except ValueError:
            return _error(400, "Bad Request: can't parse request body")
        return await handler(params)

    async def _send_message(self, params: dict[str, Any]) -> web.Response:
        chat = str(params.get("chat_id", ""))
        if not chat:
            return _error(400, "Bad Request: chat_id is empty")
        text = params.get("text")
        if not isinstance(text, str) or not text.strip():
            return _error(400, "Bad Request: message text is empty")
        parse_mode = params.get("parse_mode")
        if parse_mode not in (None, "", "HTML"):
            return _error(400, f"Bad Request: unsupported parse_mode {parse_mode}")
        if parse_mode == "HTML":
            try:
                plain = parse_html(text)
            except ParseError as exc:
                return _error(400, f"Bad Request: can't parse entities: {exc}")
        else:
            plain = text
        if not plain.strip():
            return _error(400, "Bad Request: message text is empty")
        if utf16_len(plain) > MAX_TEXT:
            return _error(400, "Bad Request: message is too long")
        markup = params.get("reply_markup")
        if isinstance(markup, str):
            try:
                markup = json.loads(markup)
            except ValueError:
                return _error(400, "Bad Request: can't parse reply keyboard markup JSON object")
        if markup is not None and (problem := _check_markup(markup)):
            return _error(400, f"Bad Request: {problem}")
        if chat not in self.chats:
            return _error(400, "Bad Request: chat not found")
        if chat in self.blocked:
            return _error(403, "Forbidden: bot was blocked by the user")
        thread = params.get("message_thread_id")
        received = Received(
            message_id=next(self._message_ids),
            chat_id=chat,
            text=text,
            plain=plain,
            parse_mode=parse_mode or None,
            reply_markup=markup,
            message_thread_id=int(thread) if thread is not None else None,
            at=time.monotonic(),
        )
        self.messages[chat].append(received)
        chat_id: int | str = int(chat) if chat.lstrip("-").isdigit() else chat
        return _ok({"message_id": received.message_id, "date": int(time.time()),
                    "chat": {"id": chat_id}, "text": plain})  # fmt: skip

    async def _get_updates(self, params: dict[str, Any]) -> web.Response:
        try:
            offset = int(params.get("offset", 0))
            limit = min(max(int(params.get("limit", 100)), 1), 100)
            timeout = max(float(params.get("timeout", 0)), 0.0)
        except (TypeError, ValueError):
            return _error(400, "Bad Request: wrong parameter")
        self._poll_generation += 1
        generation = self._poll_generation
        if offset > 0:  # confirmed: never sent again
            self._updates = [u for u in self._updates if u["update_id"] >= offset]

        def ready() -> bool:
            return bool(self._updates) or self._closing or generation != self._poll_generation

        if timeout > 0 and not ready():
            async with self._changed:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._changed.wait_for(ready), timeout)
        if generation != self._poll_generation:
            return _error(409, "Conflict: terminated by other getUpdates request; make sure "
                               "that only one bot instance is running")  # fmt: skip
        self.polls += 1
        return _ok(self._updates[:limit])

    async def _answer_callback_query(self, params: dict[str, Any]) -> web.Response:
        query_id = str(params.get("callback_query_id", ""))
        if query_id not in self._open_queries:
            return _error(400, "Bad Request: query is too old and response timeout expired or "
                               "query ID is invalid")  # fmt: skip
        text = str(params.get("text", ""))
        if len(text) > MAX_ANSWER_TEXT:
            return _error(400, "Bad Request: MESSAGE_TOO_LONG")
        self._open_queries.discard(query_id)
        self.answers.append(Answer(query_id, text, bool(params.get("show_alert", False))))
        return _ok(True)

    def answer_to(self, query_id: str) -> Answer | None:
        return next((a for a in self.answers if a.callback_query_id == query_id), None)


def _check_markup(markup: Any) -> str:
    if not isinstance(markup, dict):
        return "can't parse reply keyboard markup JSON object"
    rows = markup.get("inline_keyboard")
    if rows is None:
        return ""
    if not isinstance(rows, list) or not all(isinstance(row, list) for row in rows):
        return 'field "inline_keyboard" of the InlineKeyboardMarkup must be an Array of Arrays'
    for row in rows:
        for button in row:
            if not isinstance(button, dict) or not button.get("text"):
                return "can't parse inline keyboard button: Text buttons are unallowed in the "\
                       "inline keyboard"  # fmt: skip
            data = button.get("callback_data")
            if data is not None and not 1 <= len(str(data).encode()) <= MAX_CALLBACK_DATA:
                return "BUTTON_DATA_INVALID"
    return ""


async def _params(request: web.Request) -> dict[str, Any]:
    params: dict[str, Any] = dict(request.query)
    if request.content_type == "application/json":
        body = await request.json()
        if not isinstance(body, dict):
            raise ValueError("not an object")
        params.update(body)
    elif request.content_type in ("application/x-www-form-urlencoded", "multipart/form-data"):
        params.update(dict(await request.post()))
    for key in ("allowed_updates", "reply_markup"):
        if isinstance(params.get(key), str) and params[key].startswith(("[", "{")):
            params[key] = json.loads(params[key])
    return params


def _ok(result: Any) -> web.Response:
    return web.json_response({"ok": True, "result": result})


def _error(status: int, description: str, parameters: dict[str, Any] | None = None) -> web.Response:
    body: dict[str, Any] = {"ok": False, "error_code": status, "description": description}
    if parameters:
        body["parameters"] = parameters
    return web.json_response(body, status=status)


__all__ = ["Answer", "Received", "TelegramServer", "parse_html"]

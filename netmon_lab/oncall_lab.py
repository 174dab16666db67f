"""The demo's on-call world (issue 18): a Telegram Bot API of its own and a mail catcher.

The demo pages the way a province's NOC would: a forum group with one topic per district,
paged at once; the engineer on call (a daily rota of two) on Telegram and by e-mail when
nobody has acknowledged after two minutes; again every ten minutes. Nothing leaves the
machine: the Bot API is the lab's contract server and the mail goes to an SMTP catcher, both
on loopback. `GET /api/v1/demo/pages` shows what they received, and
`POST /api/v1/demo/press` presses a button of the last page of a chat as an engineer would.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from aiohttp import web

from netmon_lab.mail_catcher import MailCatcher
from netmon_lab.telegram_server import TelegramServer

PAGES_PATH = "/api/v1/demo/pages"
PRESS_PATH = "/api/v1/demo/press"
# A made-up token of the right shape: the contract server checks it like Telegram does.
TOKEN = "123456789:" + "NetmonDemoBotTokenNotARealOne00000"[:35]
GROUP = "-1001000000001"  # the NOC's forum group: a topic per district
PEOPLE = {
    "tuan": {"name": "Nguyễn Văn Tuấn", "telegram": "1001", "email": "tuan@noc.demo.invalid"},
    "lan": {"name": "Trần Thị Lan", "telegram": "1002", "email": "lan@noc.demo.invalid"},
}
STEP_2 = "2m"
REPEAT = "10m"
BUTTONS = ("ack", "silence")


class OncallLab:
    def __init__(self) -> None:
        self.telegram = TelegramServer(
            TOKEN, chats=[GROUP, *(p["telegram"] for p in PEOPLE.values())]
        )
        self.mail = MailCatcher()
        self.topics: dict[str, int] = {}

    async def start(self) -> None:
        await self.telegram.start()
        await self.mail.start()

    async def close(self) -> None:
        await self.telegram.close()
        await self.mail.close()

    def config(self, districts: Sequence[str], status_url: str) -> dict[str, Any]:
        """The demo config's `oncall:` section."""
        self.topics = {district: i for i, district in enumerate(sorted(districts), start=2)}
        return {
            "status_url": status_url,
            "people": PEOPLE,
            "rotas": {"noc": {"people": list(PEOPLE), "shift": "daily", "handover": "08:00"}},
            "districts": {d: {"telegram": f"{GROUP}:{topic}"} for d, topic in self.topics.items()},
            "channels": [
                {
                    "kind": "telegram",
                    "name": "telegram",
                    "api_url": self.telegram.url,
                    "bot_token": TOKEN,
                    "allowed_users": [p["telegram"] for p in PEOPLE.values()],
                },
                {
                    "kind": "email",
                    "name": "mail",
                    "host": "127.0.0.1",
                    "port": self.mail.port,
                    "security": "none",
                    "from_address": "netmon demo <netmon@noc.demo.invalid>",
                },
            ],
            "policies": [
                {
                    "name": "outages",
                    "match": {"severity": ["critical", "major"]},
                    "steps": [
                        {"after": "0s", "notify": [{"channel": "telegram", "to": "district"}]},
                        {
                            "after": STEP_2,
                            "notify": [
                                {"channel": "telegram", "to": "oncall:noc"},
                                {"channel": "mail", "to": "oncall:noc"},
                            ],
                        },
                    ],
                    "repeat": REPEAT,
                }
            ],
        }

    def banner(self, url_option: str) -> list[str]:
        return [
            f"On call: the district's Telegram topic is paged at once, the engineer on call after "
            f"{STEP_2} (Telegram and e-mail), again every {REPEAT} until acknowledged; Telegram "
            f"is the lab's Bot API at {self.telegram.url}, e-mail a catcher on "
            f"127.0.0.1:{self.mail.port}",
            f"  what they received: netmon demo pages{url_option}; acknowledge: netmon alerts "
            f"ack ID{url_option}, the status page, or the Telegram button: netmon demo press "
            f"ack{url_option}",
        ]

    def routes(self) -> list[web.RouteDef]:
        return [web.get(PAGES_PATH, self._pages), web.post(PRESS_PATH, self._press)]

    async def _pages(self, request: web.Request) -> web.Response:
        now_monotonic, now = time.monotonic(), time.time()
        telegram: list[dict[str, Any]] = [
            {
                "chat": chat,
                "thread": message.message_thread_id,
                "message_id": message.message_id,
                "at": now - (now_monotonic - message.at),
                "text": message.plain,
                "buttons": [button["text"] for button in message.buttons()],
            }
            for chat, messages in self.telegram.messages.items()
            for message in messages
        ]
        telegram.sort(key=lambda m: float(m["at"]))
        answers = [answer.text for answer in self.telegram.answers]
        mail = [m.to_json() for m in self.mail.mails]
        return web.json_response(
            {"telegram": telegram, "button_answers": answers, "mail": mail},
            dumps=_dumps,
        )

    async def _press(self, request: web.Request) -> web.Response:
        try:
            body = await request.json()
        except ValueError:
            return web.json_response({"error": "the body must be JSON"}, status=400)
        if not isinstance(body, dict) or body.get("button", "ack") not in BUTTONS:
            return web.json_response({"error": "button: ack or silence"}, status=400)
        button = str(body.get("button", "ack"))
        chat = str(body.get("chat") or GROUP)
        alert = str(body.get("alert") or "")  # a fingerprint, or its beginning
        engineer = int(body.get("user") or PEOPLE["tuan"]["telegram"])
        prefix = f"{'ack' if button == 'ack' else 'silence1h'}:{alert}"
        for message in reversed(self.telegram.messages.get(chat, [])):
            found = [b for b in message.buttons() if b["callback_data"].startswith(prefix)]
            if found:
                break
        else:
            return web.json_response(
                {
                    "error": f"no page in chat {chat} has that button"
                    + (f" for {alert}" if alert else "")
                },
                status=404,
            )
        answered = len(self.telegram.answers)
        await self.telegram.press(
            chat, found[0]["callback_data"], user_id=engineer, message_id=message.message_id
        )
        try:
            await self.telegram.until(
                lambda: len(self.telegram.answers) > answered, what="netmon's answer"
            )
        except AssertionError:
            return web.json_response({"error": "netmon did not answer the press"}, status=504)
        return web.json_response(
            {"pressed": found[0]["text"], "on": message.plain.splitlines()[1],
             "answer": self.telegram.answers[-1].text},
            dumps=_dumps,
        )  # fmt: skip


def _dumps(data: Any) -> str:
    import json

    return json.dumps(data, ensure_ascii=False)

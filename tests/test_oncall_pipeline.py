"""The on-call loop end to end (issue 18): `netmon run` pages a lab fault to the district's
Telegram topic at once, e-mails the engineer on call at step 2, repeats until someone presses
"Acknowledge" in Telegram, and then pages nobody more until the alert resolves.

Real peers on loopback: the Bot API contract server and an SMTP server (aiosmtpd), both of the
lab; the endpoint is a host in the test's own network namespace.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from netmon_lab.mail_catcher import MailCatcher
from netmon_lab.telegram_server import TelegramServer
from tests.alertmanager_peer import eventually
from tests.helpers import NetmonProcess, metric_value, write_config
from tests.lab.netlab import NetLab
from tests.test_alert_pipeline import request

TOKEN = "123456789:" + "K" * 35
GROUP, TOPIC, ENGINEER = "-1001500", 7, "1001"
ABSENCE = 3.0  # seconds: three of the policy's 1 s repeat intervals


async def test_a_fault_is_paged_escalated_and_stopped_by_the_telegram_button(
    netlab: NetLab, tmp_path: Path
) -> None:
    host = netlab.add_host()
    (tmp_path / "bot-token").write_text(TOKEN + "\n")
    mail = MailCatcher()
    await mail.start()
    async with TelegramServer(TOKEN, chats=[GROUP, ENGINEER]) as telegram:
        config = write_config(
            tmp_path / "netmon.yaml",
            {
                "alerting": {"database": str(tmp_path / "alerts.sqlite"), "language": "vi"},
                "oncall": {
                    "status_url": "http://netmon.example/",
                    "people": {"tuan": {"name": "Tuấn", "telegram": ENGINEER,
                                        "email": "tuan@noc.example.vn"}},
                    "rotas": {"noc": {"people": ["tuan"], "shift": "daily"}},
                    "districts": {"Bá Thước": {"tg": f"{GROUP}:{TOPIC}"}},
                    "channels": [
                        {"kind": "telegram", "name": "tg", "api_url": telegram.url,
                         "bot_token": {"file": str(tmp_path / "bot-token")},
                         "allowed_users": [ENGINEER], "per_chat_interval": "0s"},
                        {"kind": "email", "name": "mail", "host": "127.0.0.1",
                         "port": mail.port, "security": "none",
                         "from_address": "netmon <netmon@noc.example.vn>"},
                    ],
                    "policies": [{
                        "name": "outages",
                        "match": {"severity": ["critical"]},
                        "steps": [
                            {"after": "0s", "notify": [{"channel": "tg", "to": "district"}]},
                            {"after": "2s", "notify": [{"channel": "tg", "to": "oncall:noc"},
                                                       {"channel": "mail", "to": "oncall:noc"}]},
                        ],
                        "repeat": "1s",
                    }],
                },
                "targets": [{"id": "ep-xa", "address": host.address, "kind": "endpoint",
                             "name": "UBND xã Thanh Sơn", "district": "Bá Thước"}],
            },
        )  # fmt: skip
        netmon = NetmonProcess(config)
        try:
            await eventually(
                lambda: metric_value(netmon.metrics(), "netmon_target_up", target="ep-xa") == 1,
                timeout=10,
                what="the endpoint up",
            )
            host.link_down()
            await telegram.until(lambda: telegram.messages[GROUP], what="the district's page")
            (first,) = telegram.messages[GROUP]
            assert first.message_thread_id == TOPIC
            assert "UBND xã Thanh Sơn" in first.plain
            assert "Bá Thước" in first.plain

            # Nobody acknowledges: step 2, to the engineer on call, on Telegram and by e-mail.
            await eventually(lambda: mail.mails, timeout=15, what="the step-2 e-mail")
            assert mail.mails[0].recipients == ("tuan@noc.example.vn",)
            assert "UBND xã Thanh Sơn" in mail.mails[0].subject + mail.mails[0].text
            await telegram.until(
                lambda: len(telegram.messages[ENGINEER]) >= 2, what="a reminder to the engineer"
            )

            await telegram.press_button(GROUP, "Acknowledge", user_id=int(ENGINEER), message=0)
            await telegram.until(lambda: telegram.answers, what="the answer to the press")
            assert "Đã nhận" in telegram.answers[0].text
            (alert,) = request(netmon.url + "/api/v1/alerts")[1]["alerts"]
            assert alert["acknowledged"] is True
            assert alert["acknowledged_by"] == f"Tuấn (telegram:{ENGINEER})"
            notice = await eventually(
                lambda: [m for m in telegram.messages[GROUP] if m.message_id != first.message_id],
                timeout=10,
                what="the acknowledgement told to the district",
            )
            assert "Đã nhận xử lý" in notice[0].plain
            paged_before = len(telegram.messages[ENGINEER])

            assert metric_value(netmon.metrics(), "netmon_escalations", acknowledged="true") == 1
            # Absence cannot be waited on as a condition: three repeat intervals pass in which
            # a reminder would come if the escalation had not stopped.
            await asyncio.sleep(ABSENCE)
            host.link_up()
            await telegram.until(
                lambda: any("Đã khôi phục" in m.plain for m in telegram.messages[ENGINEER]),
                what="the resolve told to the engineer",
            )
            after = telegram.messages[ENGINEER][paged_before:]
            kinds = ["khôi phục" if "Đã khôi phục" in m.plain else "nhận" if "Đã nhận" in m.plain
                     else "other" for m in after]  # fmt: skip
            assert "other" not in kinds, [m.plain for m in after]
            text = netmon.metrics()
            assert metric_value(text, "netmon_pages_total", channel="tg", result="success")
            assert metric_value(text, "netmon_pages_queued", channel="mail") == 0
            assert (
                metric_value(text, "netmon_channel_events_total", channel="tg", event="presses")
                == 1
            )
            assert TOKEN not in "".join(netmon.stderr_lines)
            assert TOKEN.split(":")[1] not in json.dumps(request(netmon.url + "/api/v1/alerts")[1])
        finally:
            netmon.stop()
            await mail.close()

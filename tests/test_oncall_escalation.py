"""Escalation on a fake clock (issue 18): every step at its time, an acknowledgement at any
point stops it, a restart resumes it without repeating or skipping a step, and a rota handing
over mid-escalation pages the new person."""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import replace
from types import SimpleNamespace
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from netmon.alerting.model import AlertEvent, Severity, Status
from netmon.alerting.store import AlertDB
from netmon.channels.base import Page, PageKind
from netmon.config.oncall import OncallConfig
from netmon.oncall.escalation import Escalator
from netmon.oncall.pages import page_from_json
from netmon.oncall.service import OnCall

HCM = ZoneInfo("Asia/Ho_Chi_Minh")
MINUTE = 60.0
CHANNELS = {"tg": "telegram", "mail": "email", "sms": "gateway"}


def at(text: str) -> float:
    return dt.datetime.fromisoformat(text).replace(tzinfo=HCM).timestamp()


T0 = at("2026-12-08T09:00")  # a Tuesday morning; the daily rota hands over at 09:15


def config(**extra: Any) -> OncallConfig:
    data: dict[str, Any] = {
        "status_url": "https://netmon.example/",
        "people": {
            "tuan": {"name": "Tuấn", "telegram": "1001", "email": "tuan@example.vn",
                     "phone": "+84900000001"},
            "lan": {"name": "Lan", "telegram": "1002", "email": "lan@example.vn",
                    "phone": "+84900000002"},
            "lead": {"name": "Hoa", "phone": "+84900000009", "language": "en"},
        },
        "rotas": {"noc": {"people": ["tuan", "lan"], "shift": "daily", "handover": "09:15",
                          "start": "2026-12-07"}},
        "districts": {"Bá Thước": {"tg": "-1001234:77"}},
        "channels": [
            {"kind": "telegram", "name": "tg", "bot_token": "123456789:" + "A" * 35},
            {"kind": "email", "name": "mail", "host": "127.0.0.1", "from_address": "n@x.vn"},
            {"kind": "gateway", "name": "sms", "url": "https://sms.example.vn/send",
             "body": {"to": "{phone}", "text": "{text}"}},
        ],
        "policies": [{
            "name": "critical",
            "match": {"severity": ["critical", "major"]},
            "steps": [
                {"after": "0s", "notify": [{"channel": "tg", "to": "district"}]},
                {"after": "10m", "notify": [{"channel": "tg", "to": "oncall:noc"},
                                            {"channel": "mail", "to": "oncall:noc"}]},
                {"after": "20m", "notify": [{"channel": "sms", "to": "oncall:noc"},
                                            {"channel": "sms", "to": "person:lead"}]},
            ],
            "repeat": "30m",
        }, {
            "name": "warnings",
            "match": {"severity": ["warning"]},
            "hours": "office",
            "steps": [{"after": "0s", "notify": [{"channel": "mail", "to": "oncall:noc"}]}],
        }],
    }  # fmt: skip
    data.update(extra)
    return OncallConfig.model_validate(data)


def alert(severity: Severity = Severity.CRITICAL, **changes: Any) -> AlertEvent:
    event = AlertEvent(
        alertname="EndpointDown", target="ep-xa", severity=severity, status=Status.FIRING,
        starts_at=T0, ends_at=None, summary="UBND xã Thanh Sơn mất kết nối",
        context={"district": "Bá Thước", "site": "Xã Thanh Sơn"}, event_at=T0,
    )  # fmt: skip
    return replace(event, event_id=uuid.uuid4().hex, **changes)


class Loop:
    """An escalator on a fake clock, its pages read back from the database."""

    def __init__(self, db: AlertDB, now: float = T0, oncall: OncallConfig | None = None) -> None:
        self.db = db
        self.now = now
        self.escalator = Escalator(
            oncall or config(), channels=CHANNELS, db=db, language="vi", clock=lambda: self.now
        )
        self.seen = 0

    async def at(self, moment: float) -> list[Page]:
        """Tick every second up to `moment`; the pages queued since the last look."""
        while self.now < moment:
            self.now = min(moment, self.now + 1.0)
            await self.escalator.tick()
        return await self.new_pages()

    async def send(self, event: AlertEvent) -> list[Page]:
        await self.escalator.send(event)
        return await self.new_pages()

    async def new_pages(self) -> list[Page]:
        pages: list[tuple[int, Page]] = []
        for queue in ("page:tg", "page:mail", "page:sms"):
            rows = await self.db.call(self.db.pending_pages, queue, 1000)
            pages += [(seq, page_from_json(data)) for seq, data in rows]
        pages.sort(key=lambda item: item[0])
        fresh = [page for seq, page in pages if seq > self.seen]
        self.seen = max([self.seen, *(seq for seq, _ in pages)])
        return fresh


def sent(pages: list[Page]) -> list[tuple[str, str, str]]:
    return [(p.channel, p.recipient, p.kind.value) for p in pages]


async def test_every_step_fires_at_its_time_then_repeats_until_acknowledged(db: AlertDB) -> None:
    loop = Loop(db)
    assert sent(await loop.send(alert())) == [("tg", "-1001234:77", "firing")]
    assert await loop.at(T0 + 10 * MINUTE - 1) == []
    step2 = await loop.at(T0 + 10 * MINUTE)
    # 09:10: Tuấn's daily shift (it ends at 09:15).
    assert sent(step2) == [("tg", "1001", "firing"), ("mail", "tuan@example.vn", "firing")]
    assert (step2[0].step, step2[0].person) == (1, "Tuấn")
    step3 = await loop.at(T0 + 20 * MINUTE)
    assert ("sms", "+84900000009", "firing") in sent(step3)
    assert step3[-1].language == "en"  # the lead reads English
    assert await loop.at(T0 + 50 * MINUTE - 1) == []
    reminders = await loop.at(T0 + 50 * MINUTE)
    assert {p.kind for p in reminders} == {PageKind.REMINDER}
    assert len(reminders) == 2


async def test_an_acknowledgement_at_any_step_stops_it_and_tells_who_was_paged(
    db: AlertDB,
) -> None:
    loop = Loop(db)
    await loop.send(alert())
    await loop.at(T0 + 5 * MINUTE)
    taken = await loop.send(alert(acknowledged_by="Tuấn", acknowledged_at=T0 + 5 * MINUTE))
    assert sent(taken) == [("tg", "-1001234:77", "acknowledged")]
    assert taken[0].acknowledged_by == "Tuấn"
    assert await loop.at(T0 + 2 * 3600) == []  # no step 2, 3 or reminder
    # Taken back: the next step comes its own delay (10 - 0 min) later, not at once.
    assert await loop.send(alert()) == []
    assert await loop.at(loop.now + 10 * MINUTE - 1) == []
    assert len(await loop.at(loop.now + 1)) == 2


async def test_a_restart_mid_escalation_neither_repeats_nor_skips_a_step(db: AlertDB) -> None:
    loop = Loop(db)
    await loop.send(alert())
    await loop.at(T0 + 3 * MINUTE)
    # netmon stops here and comes back 22 minutes after the alert fired: steps 2 and 3 both
    # came due while it was away; both go out, step 1 not again.
    later = Loop(db, now=T0 + 22 * MINUTE)
    later.seen = loop.seen
    await later.escalator.start()
    pages = await later.new_pages()
    assert [p.step for p in pages] == [1, 1, 2, 2]
    assert all(p.kind is PageKind.FIRING for p in pages)
    assert await later.at(T0 + 50 * MINUTE - 1) == []


async def test_a_handover_mid_escalation_pages_the_new_person_on_call(db: AlertDB) -> None:
    loop = Loop(db)
    await loop.send(alert())
    assert sent(await loop.at(T0 + 10 * MINUTE))[0] == ("tg", "1001", "firing")  # Tuấn
    handover = await loop.at(at("2026-12-08T09:15"))
    assert sent(handover) == [("tg", "1002", "reminder"), ("mail", "lan@example.vn", "reminder")]
    assert handover[0].extra == {"handover": "tuan"}
    step3 = await loop.at(T0 + 20 * MINUTE)
    assert ("sms", "+84900000002", "firing") in sent(step3)  # Lan now, not Tuấn


async def test_a_resolve_tells_everyone_paged_and_ends_it(db: AlertDB) -> None:
    loop = Loop(db)
    await loop.send(alert())
    await loop.at(T0 + 10 * MINUTE)
    over = await loop.send(alert(status=Status.RESOLVED, ends_at=T0 + 12 * MINUTE))
    assert sorted(sent(over)) == [
        ("mail", "tuan@example.vn", "resolved"),
        ("tg", "-1001234:77", "resolved"),
        ("tg", "1001", "resolved"),
    ]
    assert await loop.at(T0 + 3600) == []
    assert await db.call(db.load_escalations) == []


async def test_worse_is_news_and_a_resent_event_is_not_taken_twice(db: AlertDB) -> None:
    loop = Loop(db)
    first = alert(Severity.MAJOR)
    await loop.send(first)
    await loop.at(T0 + 10 * MINUTE)
    assert await loop.send(first) == []  # the same transition delivered again
    worse = await loop.send(alert(Severity.CRITICAL))
    assert sent(worse) == [("tg", "-1001234:77", "firing")]  # from step 1 again
    assert worse[0].events[0].severity is Severity.CRITICAL


async def test_an_office_hours_route_waits_for_monday_morning(db: AlertDB) -> None:
    friday_evening = at("2026-12-04T19:00")
    loop = Loop(db, now=friday_evening)
    assert await loop.send(alert(Severity.WARNING)) == []
    assert await loop.at(at("2026-12-07T07:29:59")) == []
    (page,) = await loop.at(at("2026-12-07T07:30"))
    # Sunday's daily shift (Lan's) runs until Monday's 09:15 handover.
    assert (page.channel, page.recipient) == ("mail", "lan@example.vn")


async def test_an_alert_no_policy_takes_pages_nobody(db: AlertDB) -> None:
    loop = Loop(db)
    assert await loop.send(alert(Severity.INFO)) == []
    assert loop.escalator.escalations == {}


async def test_a_write_that_fails_loses_no_step(db: AlertDB, monkeypatch: Any) -> None:
    loop = Loop(db)
    real = db.save_escalations
    failures = [OSError("disk I/O error")]

    def flaky(*args: Any) -> None:
        if failures:
            raise failures.pop()
        real(*args)

    monkeypatch.setattr(db, "save_escalations", flaky)
    event = alert()
    with pytest.raises(OSError, match="disk I/O"):
        await loop.escalator.send(event)
    # The delivery worker offers the same transition again: it is not taken as seen.
    assert sent(await loop.send(event)) == [("tg", "-1001234:77", "firing")]
    assert len(await loop.at(T0 + 10 * MINUTE)) == 2  # and step 2 comes at its time


async def test_a_policy_shortened_by_a_reload_ends_the_escalation_without_a_crash(
    db: AlertDB,
) -> None:
    loop = Loop(db)
    await loop.send(alert())
    await loop.at(T0 + 10 * MINUTE)  # steps 1 and 2 done
    shorter = config()
    policies = [shorter.policies[0].model_copy(update={"steps": shorter.policies[0].steps[:1],
                                                        "repeat": None})]  # fmt: skip
    loop.escalator.set_config(shorter.model_copy(update={"policies": policies}), CHANNELS)
    assert await loop.at(T0 + 2 * 3600) == []
    (escalation,) = loop.escalator.escalations.values()
    assert escalation.next_at is None


async def test_a_handover_repages_the_step_that_paged_the_rota_not_the_last_one(
    db: AlertDB,
) -> None:
    policy = {
        "name": "critical",
        "steps": [
            {"after": "0s", "notify": [{"channel": "tg", "to": "district"}]},
            {"after": "1m", "notify": [{"channel": "tg", "to": "oncall:noc"}]},
            {"after": "2m", "notify": [{"channel": "sms", "to": "person:lead"}]},
        ],
    }
    loop = Loop(db, oncall=config(policies=[policy]))
    await loop.send(alert())
    assert len(await loop.at(T0 + 2 * MINUTE)) == 2  # Tuấn on Telegram, then the lead by SMS
    handover = await loop.at(at("2026-12-08T09:15"))
    assert sent(handover) == [("tg", "1002", "reminder")]  # Lan, as step 2 paged Tuấn
    assert handover[0].step == 1


async def test_silence_1h_pages_nobody_for_an_hour_not_even_at_a_handover(db: AlertDB) -> None:
    loop = Loop(db)
    await loop.send(alert())
    await loop.at(T0 + 10 * MINUTE)
    assert await loop.escalator.snooze(alert().fingerprint, until=T0 + 70 * MINUTE)
    assert await loop.at(T0 + 70 * MINUTE - 1) == []  # step 3, the 09:15 handover: held
    assert len(await loop.at(T0 + 70 * MINUTE)) >= 1


async def test_office_hours_need_a_day() -> None:
    with pytest.raises(ValueError, match=r"office_hours\.days"):
        config(office_hours={"days": []})


async def test_an_escalation_whose_alert_stopped_firing_unheard_ends_after_two_minutes(
    db: AlertDB,
) -> None:
    """An alert handed over to another shard is not announced as resolved: its escalation
    must not page for ever."""
    now = [T0]
    firing: list[AlertEvent] = []
    engine = SimpleNamespace(firing=lambda: firing)
    oncall = OnCall(config(), db=db, engine=engine, language="vi", clock=lambda: now[0])  # type: ignore[arg-type]
    event = alert()
    firing.append(event)
    await oncall.escalator.send(event)
    await oncall.tick()
    firing.clear()  # gone without a word to the escalator
    await oncall.tick()  # first seen missing
    now[0] += 119
    await oncall.tick()
    assert list(oncall.escalator.escalations) == [event.fingerprint]  # a resolve may be on its way
    now[0] += 1
    await oncall.tick()
    assert oncall.escalator.escalations == {}
    assert await db.call(db.load_escalations) == []

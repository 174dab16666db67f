"""The `oncall:` section (issue 18): people, rotas, escalation policies, office hours.

Plain pydantic models with their cross-checks (a rota names people who exist, a step names a
rota or a person who exists); the on-call loop (`netmon.oncall`) takes them as they are.
Times of day are local to `timezone` (Asia/Ho_Chi_Minh by default): a handover at 08:00 is
08:00 in Thanh Hóa, whatever the server's clock says.
"""

from __future__ import annotations

import datetime as dt
import itertools
import re
from typing import Annotated, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from netmon.config.alerting import Language
from netmon.config.channels import ChannelSettings
from netmon.config.rules import Severity
from netmon.model import Duration

_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
Weekday = Literal["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"]
WEEKDAYS: tuple[Weekday, ...] = (
    "monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday",
)  # fmt: skip


def _check_id(value: str) -> str:
    if not _ID.match(value):
        raise ValueError(
            "letters, digits, '_', '.', '-' (at most 64), starting with a letter or digit"
        )
    return value


def _check_zone(value: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(
            f"no time zone {value!r} (an IANA name such as Asia/Ho_Chi_Minh)"
        ) from None
    return value


Id = Annotated[str, AfterValidator(_check_id)]
Zone = Annotated[str, AfterValidator(_check_zone)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Person(_Strict):
    """Someone who may be paged, with an address per kind of channel."""

    name: str = Field(default="", description="as shown in messages; the id when empty")
    telegram: str | None = Field(default=None, description="Telegram chat id (a private chat)")
    email: str | None = None
    phone: str | None = Field(default=None, description="E.164, e.g. +84912345678")
    language: Language = "vi"


class Override(_Strict):
    """`person` is on call from `start` to `end` instead of the rota's (a swap, a holiday)."""

    start: dt.datetime = Field(description="local to oncall.timezone unless it names an offset")
    end: dt.datetime
    person: Id

    @model_validator(mode="after")
    def _ordered(self) -> Override:
        if self._aware(self.end, dt.UTC) <= self._aware(self.start, dt.UTC):
            raise ValueError("end must be after start")
        return self

    @staticmethod
    def _aware(value: dt.datetime, zone: dt.tzinfo) -> dt.datetime:
        return value if value.tzinfo is not None else value.replace(tzinfo=zone)


class Rota(_Strict):
    """People on call in turn: shifts of a day or a week, handed over at `handover`."""

    people: list[Id] = Field(min_length=1, description="in the order their shifts come")
    shift: Literal["daily", "weekly"] = "weekly"
    handover: dt.time = dt.time(8, 0)
    handover_day: Weekday = Field(
        default="monday", description="weekly shifts: the day they change"
    )
    start: dt.date = Field(
        default=dt.date(2026, 1, 5),
        description="a date on or before which the first person's shift began (for weekly "
        "shifts, the handover_day of that week counts)",
    )
    overrides: list[Override] = Field(default_factory=list)


class OfficeHours(_Strict):
    """Giờ hành chính: when "office hours only" routes page."""

    days: list[Weekday] = Field(default_factory=lambda: list(WEEKDAYS[:5]), min_length=1)
    periods: list[tuple[dt.time, dt.time]] = Field(
        default_factory=lambda: [
            (dt.time(7, 30), dt.time(11, 30)),
            (dt.time(13, 30), dt.time(17, 0)),
        ],
        min_length=1,
    )

    @model_validator(mode="after")
    def _ordered(self) -> OfficeHours:
        for start, end in self.periods:
            if end <= start:
                raise ValueError(f"periods: {start}-{end} ends before it starts")
        ends = sorted(self.periods)
        for (_, end), (start, _) in itertools.pairwise(ends):
            if start < end:
                raise ValueError("periods must not overlap")
        return self


class Notify(_Strict):
    """Whom a step pages, on which channel.

    `to`: `oncall:ROTA` (whoever is on call in that rota when the step fires), `person:ID`,
    `district` (the alert's district's address for this channel, from `oncall.districts`), or
    the channel's own address (a Telegram chat id, "CHAT:THREAD" for a forum topic, an e-mail
    address, a phone number).
    """

    channel: Id
    to: str = Field(min_length=1)


class Step(_Strict):
    after: Duration = Field(default=0.0, ge=0, description="since the alert fired (unacknowledged)")
    notify: list[Notify] = Field(min_length=1)


class Match(_Strict):
    """Which alerts a policy takes; an empty list takes any. Districts, groups and alert names
    are shell globs."""

    severity: list[Severity] = Field(default_factory=list)
    district: list[str] = Field(default_factory=list)
    group: list[str] = Field(default_factory=list)
    alertname: list[str] = Field(default_factory=list)


class Policy(_Strict):
    name: Id
    match: Match = Field(default_factory=Match)
    steps: list[Step] = Field(min_length=1)
    repeat: Duration | None = Field(
        default=None, gt=0, description="the last step again this often until acknowledged"
    )
    hours: Literal["always", "office"] = Field(
        default="always",
        description="office: steps fire and delays run only in office hours (warnings)",
    )

    @model_validator(mode="after")
    def _steps_in_order(self) -> Policy:
        afters = [step.after for step in self.steps]
        if afters != sorted(afters):
            raise ValueError("steps: each step's `after` must be at least the one before")
        return self


class OncallConfig(_Strict):
    timezone: Zone = "Asia/Ho_Chi_Minh"
    status_url: str = Field(default="", description="netmon's status page, linked in pages")
    people: dict[Id, Person] = Field(default_factory=dict)
    rotas: dict[Id, Rota] = Field(default_factory=dict)
    districts: dict[str, dict[Id, str]] = Field(
        default_factory=dict,
        description="district -> {channel: address}: where `to: district` pages (a Telegram "
        "group, or one topic of a forum group per district)",
    )
    policies: list[Policy] = Field(
        default_factory=list, description="the first whose match takes an alert escalates it"
    )
    office_hours: OfficeHours = Field(default_factory=OfficeHours)
    channels: list[ChannelSettings] = Field(
        default_factory=list, description="where pages go: telegram, email, gateway (SMS, Zalo)"
    )

    @model_validator(mode="after")
    def _references(self) -> OncallConfig:
        problems = []
        channels = [channel.name for channel in self.channels]
        repeated = sorted({n for n in channels if channels.count(n) > 1})
        if repeated:
            problems.append(f"channels need distinct names; repeated: {', '.join(repeated)}")
        for name, rota in self.rotas.items():
            problems += [
                f"rotas.{name}: no person {p!r} in oncall.people"
                for p in {*rota.people, *(o.person for o in rota.overrides)}
                if p not in self.people
            ]
        for i, policy in enumerate(self.policies):
            for j, step in enumerate(policy.steps):
                for k, notify in enumerate(step.notify):
                    where = f"policies.{i}.steps.{j}.notify.{k}.to"
                    if notify.channel not in channels:
                        problems.append(
                            f"policies.{i}.steps.{j}.notify.{k}.channel: no channel "
                            f"{notify.channel!r} in oncall.channels"
                        )
                    kind, _, name = notify.to.partition(":")
                    if kind == "oncall" and name not in self.rotas:
                        problems.append(f"{where}: no rota {name!r} in oncall.rotas")
                    if kind == "person" and name not in self.people:
                        problems.append(f"{where}: no person {name!r} in oncall.people")
        names = [policy.name for policy in self.policies]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            problems.append(f"policies need distinct names; repeated: {', '.join(twice)}")
        if problems:
            raise ValueError("; ".join(problems))
        return self

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def channel_kinds(self) -> dict[str, str]:
        return {channel.name: channel.kind for channel in self.channels}

"""Who is on call (issue 18): weekly and daily shifts handed over in Asia/Ho_Chi_Minh, overrides
for a date range, and delays counted in office hours for "office hours only" routes."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest

from netmon.config.oncall import OfficeHours, OncallConfig, Rota
from netmon.oncall.rota import Hours, next_on_call, on_call

HCM = ZoneInfo("Asia/Ho_Chi_Minh")


def at(text: str) -> float:
    """A local Vietnamese time as unix seconds."""
    return dt.datetime.fromisoformat(text).replace(tzinfo=HCM).timestamp()


WEEKLY = Rota.model_validate(
    {"people": ["tuan", "lan", "hoa"], "handover": "08:00", "handover_day": "monday",
     "start": "2026-11-30"}
)  # fmt: skip


def test_weekly_shifts_change_on_monday_at_eight_local_time() -> None:
    assert on_call(WEEKLY, at("2026-11-30T08:00"), HCM).person == "tuan"
    assert on_call(WEEKLY, at("2026-12-07T07:59"), HCM).person == "tuan"
    shift = on_call(WEEKLY, at("2026-12-07T08:00"), HCM)
    assert (shift.person, shift.start, shift.end) == (
        "lan",
        at("2026-12-07T08:00"),
        at("2026-12-14T08:00"),
    )
    assert on_call(WEEKLY, at("2026-12-21T09:00"), HCM).person == "tuan"  # round again
    # Before the rota's start date the turns run backwards, not into an error.
    assert on_call(WEEKLY, at("2026-11-29T23:00"), HCM).person == "hoa"
    assert next_on_call(WEEKLY, at("2026-12-05T12:00"), HCM).person == "lan"


def test_a_start_date_mid_week_counts_from_that_weeks_handover_day() -> None:
    rota = WEEKLY.model_copy(update={"start": dt.date(2026, 12, 3)})  # a Thursday
    assert on_call(rota, at("2026-12-01T09:00"), HCM).person == "tuan"


def test_daily_shifts_hand_over_at_their_time() -> None:
    rota = Rota.model_validate({"people": ["a", "b"], "shift": "daily", "handover": "07:30",
                                "start": "2026-12-01"})  # fmt: skip
    assert on_call(rota, at("2026-12-01T07:30"), HCM).person == "a"
    assert on_call(rota, at("2026-12-02T07:29"), HCM).person == "a"
    assert on_call(rota, at("2026-12-02T07:30"), HCM).person == "b"
    assert on_call(rota, at("2026-12-03T10:00"), HCM).person == "a"


def test_an_override_takes_its_range_and_the_regular_shift_comes_back_after() -> None:
    rota = WEEKLY.model_copy(
        update={"overrides": Rota.model_validate(
            {"people": ["x"], "overrides": [
                {"start": "2026-12-10T18:00", "end": "2026-12-11T08:00", "person": "hoa"}]}
        ).overrides}
    )  # fmt: skip
    before = on_call(rota, at("2026-12-10T12:00"), HCM)
    assert (before.person, before.end) == ("lan", at("2026-12-10T18:00"))  # cut short by it
    during = on_call(rota, at("2026-12-10T23:00"), HCM)
    assert (during.person, during.override) == ("hoa", True)
    after = next_on_call(rota, at("2026-12-10T23:00"), HCM)
    assert (after.person, after.start, after.end) == (
        "lan", at("2026-12-11T08:00"), at("2026-12-14T08:00"),
    )  # fmt: skip
    assert on_call(rota, at("2026-12-11T08:00"), HCM).person == "lan"


def test_office_hours_delays_count_only_office_time() -> None:
    hours = Hours(OfficeHours(), HCM)
    assert hours.within(at("2026-12-04T09:00"))  # a Friday morning
    assert not hours.within(at("2026-12-04T12:00"))  # lunch
    assert not hours.within(at("2026-12-05T09:00"))  # Saturday
    # 10 minutes asked at 11:25: 5 before lunch, 5 after it.
    assert hours.add(at("2026-12-04T11:25"), 600) == at("2026-12-04T13:35")
    # Raised on Friday evening: paged on Monday at 07:30, and its step 2 ten minutes later.
    assert hours.add(at("2026-12-04T19:00"), 0) == at("2026-12-07T07:30")
    assert hours.add(at("2026-12-04T19:00"), 600) == at("2026-12-07T07:40")


def test_a_rota_of_someone_unknown_is_refused_with_the_place() -> None:
    with pytest.raises(ValueError, match=r"rotas.noc: no person 'ghost'"):
        OncallConfig.model_validate(
            {"people": {"tuan": {}}, "rotas": {"noc": {"people": ["tuan", "ghost"]}}}
        )
    with pytest.raises(ValueError, match=r"policies.0.steps.0.notify.0.to: no rota 'nco'"):
        OncallConfig.model_validate(
            {
                "policies": [
                    {"name": "p", "steps": [{"notify": [{"channel": "t", "to": "oncall:nco"}]}]}
                ]
            }
        )

"""State store: up/down decisions, loss and jitter windows, histograms, inventory changes."""

from __future__ import annotations

import pytest

from netmon.config.loader import load_data
from netmon.inventory import Inventory
from netmon.model import EchoRound, Observation
from netmon.state import Clock, Reach, StateStore
from netmon.windows import EchoWindow, Histogram


def _inventory(*targets: dict[str, object], **icmp: object) -> Inventory:
    return load_data({"defaults": {"icmp": icmp}, "targets": list(targets)})


def _echo(target: str, *rtts: float | None) -> EchoRound:
    ok = any(rtt is not None for rtt in rtts)
    return EchoRound(target=target, collector="icmp", ok=ok, duration=0.01, rtts=tuple(rtts),
                     address="127.0.0.1", reason=None if ok else "timeout")  # fmt: skip


def test_reach_follows_down_after_and_up_after() -> None:
    store = StateStore()
    store.apply_inventory(_inventory({"id": "a", "address": "127.0.0.1"}, down_after=3, up_after=2))
    state = store.targets["a"]
    assert state.reach is Reach.UNKNOWN
    store.record(_echo("a", 0.01))
    assert state.reach is Reach.UP  # first proof of life from unknown
    store.record(_echo("a", None, None))
    assert state.reach is Reach.UP
    store.record(_echo("a", None))
    assert state.reach is Reach.DOWN
    store.record(_echo("a", 0.01))
    assert state.reach is Reach.DOWN
    store.record(_echo("a", None, 0.01, 0.01))  # a loss in between restarts the count
    assert state.reach is Reach.UP


def test_reach_listeners_hear_each_transition_once() -> None:
    store = StateStore()
    store.apply_inventory(_inventory({"id": "a", "address": "127.0.0.1"}, down_after=1))
    heard: list[tuple[Reach, Reach]] = []
    store.on_reach_change(lambda change: heard.append((change.previous, change.reach)))
    for _ in range(3):
        store.record(_echo("a", None))
    assert heard == [(Reach.UNKNOWN, Reach.DOWN)]


@pytest.mark.parametrize(
    ("rtts", "loss", "jitter"),
    [
        ([0.010, 0.020, 0.010, 0.020], 0.0, 0.010),
        ([0.010, None, 0.014, None], 0.5, 0.004),
        ([None, None], 1.0, None),
        ([0.020], 0.0, None),
    ],
)
def test_loss_and_jitter(rtts: list[float | None], loss: float, jitter: float | None) -> None:
    window = EchoWindow(60)
    window.add(100.0, rtts)
    assert window.loss_ratio() == pytest.approx(loss)
    assert window.jitter() == (pytest.approx(jitter) if jitter is not None else None)


def test_window_forgets_old_echoes() -> None:
    window = EchoWindow(10)
    window.add(100.0, [None, None])
    window.add(105.0, [0.01])
    window.add(111.0, [0.01, 0.01])
    assert window.sent == 3
    assert window.loss_ratio() == 0.0


def test_histogram_is_cumulative() -> None:
    hist = Histogram([0.001, 0.01])
    for value in (0.0005, 0.001, 0.005, 3.0):
        hist.observe(value)
    assert hist.cumulative() == [("0.001", 2), ("0.01", 3), ("+Inf", 4)]
    assert hist.sum == pytest.approx(3.0065)


def test_reload_keeps_unchanged_state_and_drops_removed_targets() -> None:
    store = StateStore()
    store.apply_inventory(
        _inventory({"id": "a", "address": "127.0.0.1"}, {"id": "b", "address": "127.0.0.2"})
    )
    store.record(_echo("a", 0.01))
    store.record(_echo("b", 0.01))
    added, removed, changed = store.apply_inventory(
        _inventory(
            {"id": "a", "address": "127.0.0.1"},
            {"id": "c", "address": "127.0.0.3"},
        )
    )
    assert (added, removed, changed) == ({"c"}, {"b"}, set())
    icmp = store.targets["a"].icmp
    assert icmp is not None
    assert icmp.sent_total == 1
    assert "b" not in store.targets


def test_a_new_address_starts_afresh_but_a_new_name_does_not() -> None:
    store = StateStore()
    store.apply_inventory(_inventory({"id": "a", "address": "127.0.0.1"}))
    store.record(_echo("a", 0.01))
    store.apply_inventory(_inventory({"id": "a", "address": "127.0.0.1", "name": "Renamed"}))
    assert store.targets["a"].icmp is not None
    assert store.targets["a"].target.name == "Renamed"
    store.apply_inventory(_inventory({"id": "a", "address": "127.0.0.9"}))
    assert store.targets["a"].icmp is None


def test_results_for_removed_targets_are_ignored() -> None:
    store = StateStore()
    store.apply_inventory(_inventory({"id": "a", "address": "127.0.0.1"}))
    store.record(Observation(target="gone", collector="icmp", ok=False, duration=1.0))
    assert list(store.targets) == ["a"]


def test_a_target_whose_rounds_stopped_reports_no_stale_loss() -> None:
    from netmon.exporter import StoreCollector

    store = StateStore()
    store.apply_inventory(_inventory({"id": "a", "address": "127.0.0.1"}, window=10))
    store.record(_echo("a", None, None))
    icmp = store.targets["a"].icmp
    assert icmp is not None
    assert icmp.window.loss_ratio() == 1.0
    icmp.window._entries = type(icmp.window._entries)(
        (when - 60.0, rtt) for when, rtt in icmp.window._entries
    )  # as if the last round was a minute ago
    families = {family.name: family for family in StoreCollector(store).collect()}
    assert families["netmon_icmp_loss_ratio"].samples == []
    assert icmp.window.loss_ratio() is None


def _confirmation(target: str, *rtts: float | None) -> EchoRound:
    ok = any(rtt is not None for rtt in rtts)
    return EchoRound(target=target, collector="icmp", ok=ok, duration=0.5, rtts=tuple(rtts),
                     address="127.0.0.1", confirmation=True)  # fmt: skip


class Ticks:
    """A monotonic clock the test moves."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _store(**icmp: object) -> tuple[StateStore, Ticks]:
    ticks = Ticks()
    store = StateStore(clock=Clock(wall=ticks, monotonic=ticks))
    store.apply_inventory(_inventory({"id": "a", "address": "127.0.0.1"}, **icmp))
    return store, ticks


def test_a_lost_echo_is_doubtful_and_only_a_lost_confirmation_takes_the_target_down() -> None:
    store, _ = _store()  # defaults: 10 confirmation echoes, down after 11 lost, up after 3
    state = store.targets["a"]
    store.record(_echo("a", 0.01))
    store.record(_echo("a", None))
    assert state.icmp is not None
    assert (state.reach, state.icmp.doubtful) == (Reach.UP, True)
    store.record(_confirmation("a", *[None] * 9, 0.01))  # one reply: it is there after all
    assert (state.reach, state.icmp.doubtful) == (Reach.UP, False)
    store.record(_echo("a", None))
    store.record(_confirmation("a", *[None] * 10))
    assert (state.reach, state.icmp.doubtful) == (Reach.DOWN, False)
    store.record(_echo("a", None))
    assert not state.icmp.doubtful  # down and silent: nothing to confirm
    store.record(_echo("a", 0.01))
    assert (state.reach, state.icmp.doubtful) == (Reach.DOWN, True)  # a reply from a down one
    store.record(_confirmation("a", 0.01, 0.01, *[None] * 8))
    assert state.reach is Reach.UP


def test_confirmation_echoes_decide_reach_but_stay_out_of_the_statistics() -> None:
    store, _ = _store()
    store.record(_echo("a", 0.01))
    store.record(_echo("a", None))
    store.record(_confirmation("a", 0.5, *[0.01] * 9))
    icmp = store.targets["a"].icmp
    assert icmp is not None
    assert (icmp.sent_total, icmp.received_total) == (2, 1)
    assert (icmp.confirm_sent_total, icmp.confirm_received_total) == (10, 10)
    assert icmp.loss.counts() == (2, 1)
    assert icmp.window.rtts() == [0.01]  # the confirmation's slow first reply is not in it
    assert icmp.rtt.count == 1
    assert icmp.last_rtt == 0.01  # but it is the freshest news of the link


def test_an_outage_is_not_packet_loss() -> None:
    store, _ = _store()
    store.record(_echo("a", *[0.01] * 100))
    store.record(_echo("a", None))
    store.record(_confirmation("a", *[None] * 10))
    store.record(_echo("a", *[None] * 30))  # 30 s of outage
    store.record(_echo("a", 0.01))
    store.record(_confirmation("a", *[0.01] * 10))
    icmp = store.targets["a"].icmp
    assert icmp is not None
    assert store.targets["a"].reach is Reach.UP
    assert icmp.loss.counts() == (101, 0)  # the outage's echoes left out, the echoes before kept


def test_a_run_of_five_lost_echoes_that_ends_in_a_reply_is_a_burst_for_ten_minutes() -> None:
    store, ticks = _store()
    store.record(_echo("a", 0.01))
    icmp = store.targets["a"].icmp
    assert icmp is not None
    store.record(_echo("a", None))
    store.record(_confirmation("a", *[None] * 3, *[0.01] * 7))  # 4 in a row: not yet a burst
    assert len(icmp.bursts) == 0
    store.record(_echo("a", None))
    store.record(_confirmation("a", *[None] * 4, *[0.01] * 6))  # 5 in a row, then a reply
    assert len(icmp.bursts) == 1
    store.record(_echo("a", None))
    store.record(_confirmation("a", *[None] * 10))  # an outage is not a burst
    store.record(_echo("a", 0.01))
    store.record(_confirmation("a", *[0.01] * 10))
    assert len(icmp.bursts) == 1
    ticks.now += 599
    store.record(_echo("a", 0.01))
    assert len(icmp.bursts) == 1
    ticks.now += 2
    store.record(_echo("a", 0.01))
    assert len(icmp.bursts) == 0  # forgotten after the loss window (10 minutes)


def test_the_loss_window_forgets_echoes_after_about_ten_minutes() -> None:
    store, ticks = _store()
    store.record(_echo("a", *[None, 0.01] * 30))
    icmp = store.targets["a"].icmp
    assert icmp is not None
    ticks.now += 300
    store.record(_echo("a", *[0.01] * 60))
    assert icmp.loss.counts() == (120, 30)
    ticks.now += 311  # kept in 10 s buckets: gone between 600 and 610 s
    store.record(_echo("a", 0.01))
    assert icmp.loss.counts() == (61, 0)


def test_a_regular_echo_lost_in_a_burst_but_judged_after_it_is_the_bursts() -> None:
    store, ticks = _store()
    store.record(_echo("a", *[0.01] * 100))
    store.record(_echo("a", None))  # the burst begins
    ticks.now += 1.75
    store.record(_confirmation("a", *[None] * 6, *[0.01] * 4))  # ...and ends: seen here
    ticks.now += 0.05
    store.record(
        EchoRound(target="a", collector="icmp", ok=False, duration=0.8, rtts=(None,),
                  address="127.0.0.1", reason="timeout")
    )  # fmt: skip  # sent 0.8 s ago, during the burst
    icmp = store.targets["a"].icmp
    assert icmp is not None
    assert len(icmp.bursts) == 1
    assert icmp.loss.counts() == (100, 0)
    ticks.now += 1.0
    store.record(_echo("a", None))  # sent after the burst was seen: loss
    assert icmp.loss.counts() == (101, 1)


def test_without_confirmation_two_lost_echoes_in_a_row_take_a_target_down() -> None:
    store, _ = _store(confirm=0)  # down_after not given: one lost echo must not decide
    state = store.targets["a"]
    store.record(_echo("a", 0.01))
    store.record(_echo("a", None))
    assert state.reach is Reach.UP
    store.record(_echo("a", None))
    assert state.reach is Reach.DOWN

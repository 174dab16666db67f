"""State store: up/down decisions, loss and jitter windows, histograms, inventory changes."""

from __future__ import annotations

import pytest

from netmon.config.loader import load_data
from netmon.inventory import Inventory
from netmon.model import EchoRound, Observation
from netmon.state import EchoWindow, Histogram, Reach, StateStore


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

"""No false pages on lossy links: the state store and the alert engine against simulated links.

Each endpoint's echoes are lost as the lab responder loses them (`netmon_lab.responder.LossModel`:
random loss and Gilbert–Elliott bursts counted in echoes), one regular echo a second, and the
10 confirmation echoes netmon sends after a doubtful one; the engine runs on a fake clock, so
ten minutes take a second or two. The figures on real packets, 215 endpoints per condition, are
`make lossy-links` (bench/lossy_links.py) and the README's table; these are the same questions
on fewer endpoints, with a fixed seed.
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass

from netmon.alerting.engine import AlertEngine
from netmon.alerting.model import AlertEvent, Severity, Status
from netmon.alerting.store import AlertDB
from netmon.config.loader import load_data
from netmon.model import EchoRound, ReachPolicy
from netmon.state import Clock, Reach, StateStore
from netmon_lab.responder import Impairment, LossModel

POLICY = ReachPolicy()  # netmon's defaults
RTT = 0.02
LOSS_ALERTS = ("HighPacketLoss", "LinkUnstable")


class Ticks:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class Run:
    events: list[AlertEvent]
    endpoints: int
    bursts: int  # endpoints that had at least one loss burst

    def firing(self, *alertnames: str) -> Counter[str]:
        """Firing events (a change of severity is one too) per endpoint."""
        return Counter(
            e.target for e in self.events if e.status is Status.FIRING and e.alertname in alertnames
        )


async def run_links(
    db: AlertDB,
    impairment: Impairment,
    *,
    endpoints: int,
    seconds: int,
    seed: int = 13,
    cuts: tuple[tuple[int, int], ...] = (),
) -> Run:
    """`seconds` of one echo a second to `endpoints` links; during `cuts` (from, to seconds)
    every link is cut."""
    ticks = Ticks()
    inventory = load_data(
        {"targets": [{"id": f"ep{i}", "address": f"192.0.2.{i + 1}"} for i in range(endpoints)]}
    )
    store = StateStore(clock=Clock(wall=ticks, monotonic=ticks))
    store.apply_inventory(inventory)
    engine = AlertEngine(
        store=store,
        config=inventory.config.alerting,
        rules=inventory.rules,
        db=db,
        queues=lambda: ["test"],
        on_queued=lambda: None,
        clock=ticks,
    )
    engine.apply_inventory(inventory)
    store.on_record(lambda state, _observation: engine.observe(state))
    rng = random.Random(seed)
    links = {f"ep{i}": LossModel(impairment, rng) for i in range(endpoints)}

    def round_(target: str, now: float, count: int, *, confirmation: bool) -> None:
        spacing = POLICY.confirm_spacing if confirmation else 0.0
        cut = any(begin <= now - start < end for begin, end in cuts)
        lost = [links[target].next_lost(now + k * spacing) or cut for k in range(count)]
        rtts = tuple(None if gone else RTT for gone in lost)
        store.record(
            EchoRound(target=target, collector="icmp", ok=not all(lost), duration=0.1,
                      address="192.0.2.1", rtts=rtts, confirmation=confirmation)
        )  # fmt: skip

    start = ticks.now
    for _ in range(seconds):
        for index, target in enumerate(links):
            now = ticks.now + index / endpoints  # spread over the second, as the scheduler does
            round_(target, now, 1, confirmation=False)
            icmp = store.targets[target].icmp
            if icmp is not None and icmp.doubtful:
                round_(target, now + 0.8, POLICY.confirm, confirmation=True)
        ticks.now += 1.0
        engine.tick()
    await engine.flush()
    events = [entry.event for entry in await db.call(db.pending, "test", 100_000)]
    bursty = sum(1 for s in store.targets.values() if s.icmp is not None and s.icmp.bursts)
    assert ticks.now - start == seconds
    assert all(s.reach is Reach.UP for s in store.targets.values())
    return Run(events, endpoints, bursty)


async def test_half_a_percent_of_loss_pages_nobody(db: AlertDB) -> None:
    run = await run_links(db, Impairment(loss=0.005), endpoints=60, seconds=600)
    assert run.firing("EndpointDown") == {}
    assert run.firing(*LOSS_ALERTS) == {}


async def test_two_percent_of_loss_is_one_alert_per_endpoint_never_repeated(
    db: AlertDB,
) -> None:
    # At one echo a second, 2 % is told from a healthy 0.5 % in 2 to 20 minutes: at least two
    # thirds are caught within 15 (README, "Lossy links"), each once.
    run = await run_links(db, Impairment(loss=0.02), endpoints=40, seconds=900)
    notified = run.firing(*LOSS_ALERTS)
    assert run.firing("EndpointDown") == {}
    assert set(notified.values()) == {1}
    assert len(notified) >= 2 / 3 * run.endpoints
    assert {e.alertname for e in run.events if e.status is Status.FIRING} == {"HighPacketLoss"}


async def test_five_percent_of_loss_is_one_alert_per_endpoint_mostly_major(db: AlertDB) -> None:
    # Its severity is the measured loss when it fires: on the few endpoints whose first minutes
    # happened to lose 3 % or 10 %, a warning or a critical (README, "Lossy links").
    run = await run_links(db, Impairment(loss=0.05), endpoints=40, seconds=480)
    firing = [e for e in run.events if e.status is Status.FIRING]
    assert run.firing("EndpointDown") == {}
    assert run.firing(*LOSS_ALERTS) == {f"ep{i}": 1 for i in range(run.endpoints)}
    major_or_above = [e for e in firing if e.severity.rank >= Severity.MAJOR.rank]
    assert len(major_or_above) >= 0.9 * run.endpoints


async def test_bursts_of_lost_echoes_are_one_instability_alert_not_down_pages(
    db: AlertDB,
) -> None:
    bursts = Impairment(burst_every=120, burst_min=5, burst_max=10)
    run = await run_links(db, bursts, endpoints=40, seconds=600)
    assert run.firing("EndpointDown") == {}
    unstable = run.firing("LinkUnstable")
    assert len(unstable) == run.bursts >= 0.9 * run.endpoints
    assert set(unstable.values()) == {1}
    assert set(run.firing(*LOSS_ALERTS).values()) == {1}  # no HighPacketLoss on top


async def test_outages_of_a_lossy_link_page_as_outages_not_as_loss(db: AlertDB) -> None:
    # Two 30 s cuts of a 1 % link: two EndpointDown each, and the outages' echoes are not loss
    # (nor do they throw away the history that says the link is fine).
    run = await run_links(
        db, Impairment(loss=0.01), endpoints=40, seconds=600, cuts=((200, 230), (400, 430))
    )
    assert run.firing("EndpointDown") == {f"ep{i}": 2 for i in range(run.endpoints)}
    assert sum(run.firing(*LOSS_ALERTS).values()) <= 1

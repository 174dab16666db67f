"""The engine evaluates only the rules an observation can change (netmon/alerting/relevance.py).

Wired as netmon runs it (the store's listener passes the observation on), so a metric mapped
to the wrong kinds of observation shows here: a table of every metric with the observation
that carries its change, which must raise (or clear) the alert; and random mixes of every kind
of observation, whose transitions must be exactly those of an engine that evaluates every rule
on every observation.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import pytest

from netmon.alerting.engine import AlertEngine
from netmon.alerting.model import AlertEvent
from netmon.alerting.relevance import CHANGED_BY, KNOWN, changes
from netmon.alerting.signals import SIGNALS
from netmon.alerting.store import AlertDB
from netmon.inventory import Inventory
from netmon.model import (
    Call,
    CallMedia,
    Contact,
    DeviceSample,
    Diagnostic,
    DiagnosticLevel,
    EchoRound,
    EndpointStatus,
    HttpAnswer,
    InterfaceSample,
    MediaStream,
    Observation,
    Peripheral,
    PeripheralKind,
    RegistrarContacts,
    Registration,
    RegistrationState,
)
from netmon.state import StateStore
from tests.test_alert_engine import Clock, inventory

SPEED = 100_000_000


def province() -> Inventory:
    """One target of each sort a rule watches."""
    return inventory(
        {
            "credentials": {
                "codecs": {"user": "netmon", "password": "pw"},
                "lab": {"snmp_version": "2c", "community": "public"},
            },
            "defaults": {"xapi": {"credential": "codecs"}, "snmp": {"credential": "lab"}},
        },
        [
            {"id": "ep", "address": "192.0.2.10"},
            {"id": "room", "address": "192.0.2.11", "vendor": "cisco", "registrar": "reg",
             "aor": "room"},
            {"id": "sip", "address": "192.0.2.12", "vendor": "sip", "registrar": "reg",
             "aor": "sip-room"},
            {"id": "reg", "address": "192.0.2.2", "kind": "service",
             "probes": {"kamailio": {}}},
            {"id": "portal", "address": "192.0.2.80", "kind": "service",
             "probes": {"http": {"url": "http://192.0.2.80/"}}},
            {"id": "svc", "address": "192.0.2.13",
             "probes": {"icmp": {}, "sip": {}, "http": {"url": "http://192.0.2.13/"}}},
            {"id": "sw", "address": "192.0.2.3", "kind": "switch",
             "probes": {"icmp": {}, "snmp": {}}},
            {"id": "agent", "address": "192.0.2.4", "kind": "switch", "probes": {"snmp": {}}},
        ],
    )  # fmt: skip


class Runtime:
    """A store and an engine wired as netmon.alerting.runtime wires them; `every_rule` wires
    them as before the relevance map (every rule on every observation)."""

    def __init__(self, db: AlertDB, clock: Clock, *, every_rule: bool = False) -> None:
        inv = province()
        self.store = StateStore()
        self.store.apply_inventory(inv)
        self.clock = clock
        self.db = db
        self.engine = AlertEngine(
            store=self.store,
            config=inv.config.alerting,
            rules=inv.rules,
            db=db,
            queues=lambda: ["test"],
            on_queued=lambda: None,
            clock=clock,
        )
        self.engine.apply_inventory(inv)
        if every_rule:
            self.store.on_record(lambda state, _observation: self.engine.observe(state))
        else:
            self.store.on_record(self.engine.observe)
        self.ticks = 0

    def record(self, *observations: Observation) -> None:
        for observation in observations:
            if isinstance(observation, CallMedia):
                self.store.record_media(observation)
            else:
                self.store.record(observation)

    def echo(self, target: str, *rtts: float | None, confirmation: bool = False) -> None:
        for rtt in rtts:
            self.record(echo(target, rtt, confirmation=confirmation))

    def advance(self, seconds: float) -> None:
        end = self.clock.now + seconds
        while self.clock.now < end:
            self.clock.now = min(end, self.clock.now + 1.0)
            self.engine.tick()

    async def events(self) -> list[AlertEvent]:
        await self.engine.flush()
        return [entry.event for entry in await self.db.call(self.db.pending, "test", 100_000)]


def echo(target: str, rtt: float | None, *, confirmation: bool = False) -> EchoRound:
    return EchoRound(target=target, collector="icmp", ok=rtt is not None, duration=0.01,
                     address="192.0.2.1", rtts=(rtt,), confirmation=confirmation)  # fmt: skip


def port(oper_up: bool = True, *, errors: int = 0, octets: int = 0) -> InterfaceSample:
    return InterfaceSample(
        index=1, name="Gi0/1", alias="", descr="", admin_up=True, oper_up=oper_up,
        speed_bps=SPEED, counter_bits=64, in_octets=octets, out_octets=0, in_errors=errors,
        out_errors=0, in_discards=0, out_discards=0,
    )  # fmt: skip


def poll(target: str, ticks: int, *interfaces: InterfaceSample) -> DeviceSample:
    return DeviceSample(target=target, collector="snmp", ok=True, duration=0.05,
                        uptime_ticks=ticks, interfaces=interfaces)  # fmt: skip


def snmp_failed(target: str, reason: str = "timeout") -> Observation:
    return Observation(target, "snmp", False, 2.0, reason)


def status(
    target: str = "room",
    *,
    sip: RegistrationState = RegistrationState.REGISTERED,
    camera: bool = True,
    error: bool = False,
    loss: float | None = None,
) -> EndpointStatus:
    calls = (Call("connected", "sip", "outgoing", "sip:vp@conf.lab"),) if loss is not None else ()
    streams = (stream(loss),) if loss is not None else ()
    return EndpointStatus(
        target=target, collector="xapi", ok=True, duration=0.05,
        registrations=(Registration("sip", sip, "403 Forbidden" if sip != "registered" else ""),),
        peripherals=(Peripheral(PeripheralKind.CAMERA, "Quad Camera", camera),),
        diagnostics=(Diagnostic(DiagnosticLevel.ERROR, "TemperatureCheck"),) if error else (),
        calls=calls, streams=streams,
    )  # fmt: skip


def stream(loss: float) -> MediaStream:
    return MediaStream("1", "rx", "audio", codec="G711Mu", loss_ratio=loss, jitter=0.01)


def contacts(*aors: str) -> RegistrarContacts:
    return RegistrarContacts(target="reg", collector="kamailio", ok=True, duration=0.01,
                             registrar="kamailio",
                             contacts=tuple(Contact(a, f"sip:{a}@192.0.2.9")
                                            for a in aors))  # fmt: skip


def http(target: str, code: int) -> HttpAnswer:
    return HttpAnswer(target, "http", code < 400, 0.1, None if code < 400 else "status",
                      status_code=code)  # fmt: skip


@dataclass(frozen=True)
class Row:
    metric: str
    alertname: str
    target: str
    setup: Callable[[Runtime], None]
    change: Callable[[], list[Observation]]  # the observations that carry the change
    wait: float = 0.0  # the rule's `for` (or `clear_for`)
    status: str = "firing"


def _up(*targets: str) -> Callable[[Runtime], None]:
    def setup(rt: Runtime) -> None:
        for target in targets:
            rt.echo(target, 0.01, 0.01, 0.01)

    return setup


def _then(*steps: Callable[[Runtime], None]) -> Callable[[Runtime], None]:
    def setup(rt: Runtime) -> None:
        for step in steps:
            step(rt)

    return setup


def _recording(*observations: Observation) -> Callable[[Runtime], None]:
    return lambda rt: rt.record(*observations)


def _waiting(seconds: float) -> Callable[[Runtime], None]:
    return lambda rt: rt.advance(seconds)


ROWS = [
    Row("down", "EndpointDown", "ep", _up("ep"),
        lambda: [echo("ep", None), echo("ep", None, confirmation=True)] + [
            echo("ep", None, confirmation=True) for _ in range(9)]),
    Row("down", "ServiceDown", "portal", _recording(http("portal", 200)),
        lambda: [http("portal", 503)]),
    Row("down", "ServiceDown", "portal", _recording(http("portal", 200)),
        lambda: [Observation("portal", "http", False, 2.0, "timeout")]),
    Row("down", "ServiceDown", "portal", _recording(http("portal", 503)),
        lambda: [http("portal", 200)], wait=5, status="resolved"),
    Row("rtt_p95", "HighLatency", "ep", _up("ep"), lambda: [echo("ep", 0.4)] * 45, wait=11),
    Row("jitter", "HighJitter", "ep", _up("ep"),
        lambda: [echo("ep", 0.01 if i % 2 else 0.09) for i in range(45)], wait=11),
    Row("loss_ratio", "HighPacketLoss", "ep", _up("ep"),
        lambda: [echo("ep", None if i % 5 == 0 else 0.01) for i in range(100)], wait=61),
    Row("loss_bursts", "LinkUnstable", "ep", _up("ep"),
        lambda: [echo("ep", None)] * 6 + [echo("ep", 0.01)]),
    Row("snmp_down", "SNMPUnreachable", "sw", _then(_up("sw"), _recording(poll("sw", 100))),
        lambda: [snmp_failed("sw")], wait=31),
    Row("snmp_down", "SNMPUnreachable", "sw",
        _then(_up("sw"), _recording(poll("sw", 100), snmp_failed("sw")), _waiting(31)),
        lambda: [echo("sw", None)] + [echo("sw", None, confirmation=True)] * 10,
        status="resolved"),  # the target is down: TargetDown says it all
    Row("snmp_down", "SNMPUnreachable", "sw",
        _then(_up("sw"), _recording(snmp_failed("sw")), _waiting(31)),
        lambda: [poll("sw", 100)], status="resolved"),
    Row("snmp_auth", "SNMPAuthFailure", "sw", _then(_up("sw"), _recording(poll("sw", 100))),
        lambda: [snmp_failed("sw", "auth")]),
    Row("interface_down", "InterfaceDown", "sw",
        _then(_up("sw"), _recording(poll("sw", 100, port()))),
        lambda: [poll("sw", 1100, port(oper_up=False))]),
    Row("interface_errors", "InterfaceErrors", "sw",
        _then(_up("sw"), _recording(poll("sw", 100, port()))),
        lambda: [poll("sw", 1100, port(errors=100))]),
    Row("interface_utilization", "LinkSaturated", "sw",
        _then(_up("sw"), _recording(poll("sw", 100, port()))),
        lambda: [poll("sw", 1100, port(octets=SPEED * 95 // 100 * 10 // 8))], wait=121),
    Row("probe_failed", "ProbeFailed", "svc", _up("svc"),
        lambda: [Observation("svc", "sip", False, 3.0, "timeout")], wait=61),
    Row("probe_failed", "ProbeFailed", "svc", _up("svc"), lambda: [http("svc", 500)], wait=61),
    Row("unregistered", "EndpointUnregistered", "room", _up("room"),
        lambda: [status(sip=RegistrationState.FAILED)]),
    Row("unregistered", "EndpointUnregistered", "sip",
        _then(_up("sip"), _recording(contacts("sip-room"))),
        lambda: [contacts()]),
    Row("unregistered", "EndpointUnregistered", "sip", _then(_up("sip"), _recording(contacts())),
        lambda: [Observation("reg", "kamailio", False, 2.0, "timeout"), contacts("sip-room")],
        status="resolved"),
    Row("peripheral_disconnected", "PeripheralDisconnected", "room", _up("room"),
        lambda: [status(camera=False)]),
    Row("diagnostic_error", "EndpointDiagnosticError", "room", _up("room"),
        lambda: [status(error=True)]),
    Row("one_sided_registration", "OneSidedRegistration", "room",
        _then(_up("room"), _recording(contacts("room"), status())),
        lambda: [contacts()], wait=61),
    Row("one_sided_registration", "OneSidedRegistration", "room",
        _then(_up("room"), _recording(contacts("room"), status())),
        lambda: [status(sip=RegistrationState.UNREGISTERED)], wait=61),
    Row("call_mos", "CallQualityBad", "room", _up("room"), lambda: [status(loss=0.3)], wait=11),
    Row("call_mos", "CallQualityBad", "room", _then(_up("room"), _recording(status(loss=0.0))),
        lambda: [CallMedia("room", "xapi", True, 0.01, streams=(stream(0.3),))], wait=11),
    Row("call_mos", "CallQualityBad", "room",
        _then(_up("room"), _recording(status(loss=0.3)), _waiting(11)),
        lambda: [echo("room", None)] + [echo("room", None, confirmation=True)] * 10,
        # The room is down: EndpointDown says it, nothing stays firing behind it.
        wait=31, status="resolved"),
]  # fmt: skip


@pytest.mark.parametrize(
    "row", ROWS, ids=[f"{r.metric}-{r.alertname}-{r.status}-{i}" for i, r in enumerate(ROWS)]
)
async def test_the_observation_that_carries_a_change_moves_the_alert(db: AlertDB, row: Row) -> None:
    rt = Runtime(db, Clock())
    row.setup(rt)
    rt.advance(1)
    before = {(e.alertname, e.target, e.status.value) for e in await rt.events()}
    if row.status == "resolved":
        assert (row.alertname, row.target, "firing") in before, "the row's setup fires it"
    change = row.change()
    carrier = type(change[-1])
    assert changes(row.metric, carrier), f"{carrier.__name__} is not in the map of {row.metric}"
    rt.record(*change)
    rt.advance(row.wait + 1)
    after = [(e.alertname, e.target, e.status.value) for e in await rt.events()]
    assert (row.alertname, row.target, row.status) in after[len(before) :] or (
        row.status == "firing" and (row.alertname, row.target, "firing") in after
    )
    if row.status == "firing":
        assert (row.alertname, row.target, "firing") not in before, "the change, not the setup"


def test_every_metric_has_a_row_and_a_place_in_the_map() -> None:
    assert set(CHANGED_BY) == set(SIGNALS)
    assert {row.metric for row in ROWS} == set(SIGNALS)
    for kinds in CHANGED_BY.values():
        assert kinds is None or kinds <= KNOWN
    # An unknown kind of observation (a collector's own subclass) may change anything.
    assert all(changes(metric, type("Other", (Observation,), {})) for metric in SIGNALS)


# --- random mixes: the map against evaluating every rule ----------------------------------


def _random_observation(rng: random.Random, ticks: dict[str, int]) -> Observation:
    roll = rng.random()
    if roll < 0.45:
        target = rng.choice(["ep", "room", "sip", "svc", "sw"])
        rtt = rng.choice([None, 0.005, 0.01, 0.09, 0.4, 0.01, 0.01])
        return echo(target, rtt, confirmation=rng.random() < 0.15)
    if roll < 0.6:
        target = rng.choice(["sw", "agent"])
        if rng.random() < 0.25:
            return snmp_failed(target, rng.choice(["timeout", "auth"]))
        ticks[target] = ticks.get(target, 0) + rng.choice([1000, 1000, 1000, -500])
        samples = port(
            rng.random() < 0.6,
            errors=rng.randrange(0, 400),
            octets=rng.randrange(0, SPEED * 10 // 8),
        )
        return poll(target, max(ticks[target], 1), samples)
    if roll < 0.7:
        target = rng.choice(["portal", "svc"])
        if rng.random() < 0.5:
            return http(target, rng.choice([200, 200, 503]))
        return Observation(target, "sip", rng.random() < 0.6, 0.1, "timeout")
    if roll < 0.85:
        loss = rng.choice([None, None, 0.0, 0.3])
        return status(
            sip=rng.choice(list(RegistrationState)),
            camera=rng.random() < 0.7,
            error=rng.random() < 0.3,
            loss=loss,
        )
    if roll < 0.92:
        return CallMedia("room", "xapi", True, 0.01, streams=(stream(rng.choice([0.0, 0.3])),))
    if rng.random() < 0.2:
        return Observation("reg", "kamailio", False, 2.0, "timeout")
    return contacts(*rng.sample(["room", "sip-room", "other"], rng.randrange(0, 3)))


def _transitions(events: list[AlertEvent]) -> list[tuple[Any, ...]]:
    return [
        (e.alertname, e.target, e.status.value, e.severity, dict(e.labels), e.value, e.summary,
         e.starts_at, e.ends_at, e.flapping)
        for e in events
    ]  # fmt: skip


@pytest.mark.parametrize("seed", range(6))
async def test_only_the_rules_an_observation_can_change_make_no_difference(
    tmp_path: Any, seed: int
) -> None:
    databases = [AlertDB(tmp_path / f"{name}.sqlite") for name in ("mapped", "every")]
    for database in databases:
        await database.call(database.open)
    try:
        mapped = Runtime(databases[0], Clock())
        every = Runtime(databases[1], Clock(), every_rule=True)
        rng = random.Random(seed)
        ticks: dict[str, int] = {}
        for _ in range(1500):
            observation = _random_observation(rng, ticks)
            mapped.record(observation)
            every.record(observation)
            if rng.random() < 0.1:
                seconds = rng.choice([1, 1, 5, 40])
                mapped.advance(seconds)
                every.advance(seconds)
        events = _transitions(await every.events())
        assert len({e[0] for e in events}) >= 8  # the mix moves many alerts
        assert _transitions(await mapped.events()) == events
    finally:
        for database in databases:
            database.shutdown()


def test_a_registrar_poll_reaches_its_endpoints_as_the_same_observation() -> None:
    """The map's premise for room metrics: an endpoint hears its registrar's poll as that
    poll (the registrar's kind), not as an observation of its own."""
    store = StateStore()
    store.apply_inventory(province())
    heard: list[tuple[str, type[Observation]]] = []
    store.on_record(lambda state, observation: heard.append((state.target.id, type(observation))))
    store.record(contacts("room"))
    assert sorted(heard) == [
        ("reg", RegistrarContacts),
        ("room", RegistrarContacts),
        ("sip", RegistrarContacts),
    ]
    store.record(replace(echo("room", 0.01)))
    assert heard[-1] == ("room", EchoRound)

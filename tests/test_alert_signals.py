"""Alert signals: what each rule metric reads from a target's state, one table row per case."""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from typing import Any, get_args

import pytest

from collectors.codec_settings import XapiSettings
from collectors.registry import settings_model
from netmon.alerting.model import Severity
from netmon.alerting.rules import LOSS_CONFIDENCE_Z
from netmon.alerting.signals import (
    SIGNALS,
    interface_names,
    interfaces_complete,
    interfaces_seen_up,
)
from netmon.alerting.tracked import Estimate, wilson
from netmon.call_quality import binomial_cdf, path_explains
from netmon.config.rules import Level, Metric, Rule
from netmon.devices import DeviceState, InterfaceState
from netmon.endpoints import RegistrarWord
from netmon.inventory import Target
from netmon.model import (
    Contact,
    Diagnostic,
    DiagnosticLevel,
    EndpointStatus,
    InterfaceSample,
    MediaStream,
    Peripheral,
    PeripheralKind,
    ReachPolicy,
    Registration,
    RegistrationFailure,
    RegistrationState,
)
from netmon.quality import audio_mos
from netmon.state import IcmpState, ProbeState, Reach, TargetState
from netmon.windows import EchoWindow, LossCounter


def _target(*probes: str) -> Target:
    """A target with these probes, each with its default settings."""
    return Target(
        id="t",
        address="192.0.2.1",
        kind="endpoint",
        name="",
        site="",
        district="",
        group="",
        labels=(),
        probes=tuple((name, settings_model(name)()) for name in probes),
    )


def _icmp(reach: Reach, rtts: Iterable[float | None] = (), *, bursts: int = 0) -> IcmpState:
    """ICMP state whose windows hold `rtts`, sent since the target last came up, and `bursts`
    loss bursts."""
    rtts = list(rtts)
    policy = ReachPolicy()
    window = EchoWindow(policy.window)
    window.add(10.0, rtts)
    loss = LossCounter(policy.loss_window)
    loss.add(10.0, len(rtts), rtts.count(None))
    return IcmpState(
        window=window,
        loss=loss,
        policy=policy,
        since=0.0,
        since_monotonic=10.0,
        reach=reach,
        bursts=deque([10.0] * bursts),
    )


def _probe(success: bool, reason: str | None = None) -> ProbeState:
    return ProbeState(
        success=success,
        duration=0.1,
        reason=reason,
        detail=None,
        updated=0.0,
        updated_monotonic=0.0,
    )


def _interface(
    index: int,
    name: str,
    *,
    admin: bool | None = True,
    oper: bool | None = True,
    descr: str = "",
    errors: float | None = None,
    utilization: tuple[float, float] | None = None,
) -> tuple[int, InterfaceState]:
    sample = InterfaceSample(
        index=index,
        name=name,
        alias="",
        descr=descr,
        admin_up=admin,
        oper_up=oper,
        speed_bps=None,
        counter_bits=64,
        in_octets=None,
        out_octets=None,
        in_errors=None,
        out_errors=None,
        in_discards=None,
        out_discards=None,
    )
    return index, InterfaceState(sample, utilization=utilization, errors_per_second=errors)


def _device(*interfaces: tuple[int, InterfaceState], up: bool = True) -> DeviceState:
    return DeviceState(up=up, interfaces=dict(interfaces))


@dataclass
class Case:
    icmp: IcmpState | None = None
    probes: dict[str, ProbeState] = field(default_factory=dict)
    devices: dict[str, DeviceState] = field(default_factory=dict)
    rule: dict[str, Any] = field(default_factory=dict)  # beyond metric and levels
    seen_up: frozenset[tuple[str, str]] = frozenset()
    # The room's own status: an `xapi` probe whose last read gave `status` (None: it failed),
    # and what its registrar says.
    api: bool = False
    status: EndpointStatus | None = None
    registrar: RegistrarWord | None = None

    def state(self) -> TargetState:
        target = _target(*self.probes)  # configured: the probes that have results
        probes = dict(self.probes)
        if self.api:
            target = replace(
                target, probes=(*target.probes, ("xapi", XapiSettings(credential="c")))
            )
            probes["xapi"] = _probe(self.status is not None, None if self.status else "timeout")
        if self.registrar is not None:
            target = replace(target, registrar=self.registrar.registrar, aor="t")
        return TargetState(
            target,
            icmp=self.icmp,
            probes=probes,
            devices=dict(self.devices),
            status=self.status,
            registrar_word=self.registrar,
        )


def _status(
    sip: RegistrationState | None = RegistrationState.REGISTERED,
    *,
    h323: RegistrationState | None = None,
    peripherals: tuple[tuple[PeripheralKind, bool], ...] = (),
    diagnostics: tuple[DiagnosticLevel, ...] = (),
) -> EndpointStatus:
    registrations = [
        Registration(protocol, state)
        for protocol, state in (("sip", sip), ("h323", h323))
        if state is not None
    ]
    return EndpointStatus(
        target="t",
        collector="xapi",
        ok=True,
        duration=0.1,
        registrations=tuple(registrations),
        peripherals=tuple(Peripheral(kind, kind.value, up) for kind, up in peripherals),
        diagnostics=tuple(Diagnostic(level, "t", level.value) for level in diagnostics),
    )


def _with_streams(*streams: MediaStream) -> EndpointStatus:
    return replace(_status(), streams=streams)


def _registrar(registered: bool | None) -> RegistrarWord:
    if registered is None:
        return RegistrarWord("reg", known=False, reason="timeout")
    contacts = (Contact("t", "sip:t@192.0.2.1"),) if registered else ()
    failure = None if registered else RegistrationFailure("t", "401 Unauthorized", 0.0)
    return RegistrarWord("reg", known=True, contacts=contacts, failure=failure)


def _snmp(reason: str | None = None, icmp: IcmpState | None = None) -> Case:
    """A target polled by SNMP: its agent answered (no reason) or not, and why."""
    answered = reason is None
    return Case(
        icmp=icmp, probes={"snmp": _probe(answered, reason)}, devices={"snmp": _device(up=answered)}
    )


RTTS = (0.010, 0.012, 0.011, 0.020, 0.015) * 8  # 40 round trips
PORT_DOWN = _interface(1, "Gi0/1", oper=False)

Expected = list[tuple[dict[str, str], float | Estimate | None]]
CASES: list[tuple[str, str, Case, Expected]] = [
    # down: ICMP's verdict; a web service's probes when it has nothing else
    ("down", "unknown until ICMP decides", Case(icmp=_icmp(Reach.UNKNOWN)), [({}, None)]),
    ("down", "icmp down", Case(icmp=_icmp(Reach.DOWN)), [({}, 1.0)]),
    ("down", "icmp up", Case(icmp=_icmp(Reach.UP)), [({}, 0.0)]),
    ("down", "nothing observed yet", Case(), []),
    ("down", "web service failing", Case(probes={"http": _probe(False)}), [({}, 1.0)]),
    ("down", "web service answering", Case(probes={"http": _probe(True)}), [({}, 0.0)]),
    ("down", "snmp only: not its job", _snmp("timeout"), []),
    # snmp_down: the agent does not answer, but not for refused credentials or a down target
    ("snmp_down", "agent answers", _snmp(), [({}, 0.0)]),
    ("snmp_down", "agent silent", _snmp("timeout"), [({}, 1.0)]),
    ("snmp_down", "credentials refused", _snmp("auth"), [({}, 0.0)]),
    (
        "snmp_down",
        "target down: TargetDown says it",
        _snmp("timeout", _icmp(Reach.DOWN)),
        [({}, 0.0)],
    ),
    ("snmp_down", "device without a probe result", Case(devices={"snmp": _device()}), []),
    # snmp_auth
    ("snmp_auth", "credentials refused", _snmp("auth"), [({}, 1.0)]),
    ("snmp_auth", "agent silent", _snmp("timeout"), [({}, 0.0)]),
    ("snmp_auth", "no snmp", Case(icmp=_icmp(Reach.UP)), []),
    # probe_failed: TCP/SIP/HTTP probes of a target that ICMP or SNMP also watches
    (
        "probe_failed",
        "one failing, one fine; icmp and snmp are not service probes",
        Case(
            icmp=_icmp(Reach.UP),
            probes={
                "icmp": _probe(True),
                "snmp": _probe(False),
                "sip": _probe(False),
                "tcp": _probe(True),
            },
        ),
        [({"probe": "sip"}, 1.0), ({"probe": "tcp"}, 0.0)],
    ),
    ("probe_failed", "a web service: down says it", Case(probes={"http": _probe(False)}), []),
    # loss_ratio: the echoes since the target last came up, from 60, with their 99 % bounds
    ("loss_ratio", "no icmp", Case(), []),
    ("loss_ratio", "target down", Case(icmp=_icmp(Reach.DOWN, [None] * 60)), [({}, None)]),
    ("loss_ratio", "fewer than 60 echoes", Case(icmp=_icmp(Reach.UP, [0.01] * 59)), [({}, None)]),
    (
        "loss_ratio",
        "none lost of 600",
        Case(icmp=_icmp(Reach.UP, [0.01] * 600)),
        [({}, wilson(0, 600, LOSS_CONFIDENCE_Z))],
    ),
    (
        "loss_ratio",
        "12 lost of 600",
        Case(icmp=_icmp(Reach.UP, [None] * 12 + [0.01] * 588)),
        [({}, wilson(12, 600, LOSS_CONFIDENCE_Z))],
    ),
    # loss_bursts: counted by the state store while the target is up
    ("loss_bursts", "two bursts", Case(icmp=_icmp(Reach.UP, bursts=2)), [({}, 2.0)]),
    ("loss_bursts", "none", Case(icmp=_icmp(Reach.UP)), [({}, 0.0)]),
    ("loss_bursts", "target down", Case(icmp=_icmp(Reach.DOWN, bursts=2)), [({}, None)]),
    # rtt_p95 and jitter: from 40 round trips (a late reply or two cannot move them), only up
    ("rtt_p95", "39 round trips", Case(icmp=_icmp(Reach.UP, RTTS[:39])), [({}, None)]),
    ("rtt_p95", "40 round trips", Case(icmp=_icmp(Reach.UP, RTTS)), [({}, 0.020)]),
    (
        "rtt_p95",
        "two late replies do not move it",
        Case(icmp=_icmp(Reach.UP, (0.5, *RTTS[1:20], 0.5, *RTTS[21:]))),
        [({}, 0.020)],
    ),
    ("rtt_p95", "target down", Case(icmp=_icmp(Reach.DOWN, RTTS)), [({}, None)]),
    ("rtt_p95", "no icmp", Case(probes={"http": _probe(True)}), []),
    ("jitter", "39 round trips", Case(icmp=_icmp(Reach.UP, RTTS[:39])), [({}, None)]),
    ("jitter", "40 round trips", Case(icmp=_icmp(Reach.UP, RTTS)), [({}, 0.004)]),
    (
        "jitter",
        "one late reply is not jitter",
        Case(icmp=_icmp(Reach.UP, (*RTTS[:20], 0.3, *RTTS[21:]))),
        [({}, 0.0043056)],
    ),
    ("jitter", "target unknown", Case(icmp=_icmp(Reach.UNKNOWN, RTTS)), [({}, None)]),
    # interface_down: admin up and oper down, once seen up (unused ports stay quiet)
    (
        "interface_down",
        "seen up before",
        Case(
            devices={"snmp": _device(PORT_DOWN, _interface(2, "Gi0/2"))},
            seen_up=frozenset({("t", "Gi0/1")}),
        ),
        [({"ifname": "Gi0/1"}, 1.0), ({"ifname": "Gi0/2"}, 0.0)],
    ),
    (
        "interface_down",
        "never seen up",
        Case(devices={"snmp": _device(PORT_DOWN)}),
        [({"ifname": "Gi0/1"}, 0.0)],
    ),
    (
        "interface_down",
        "never seen up, every port watched",
        Case(devices={"snmp": _device(PORT_DOWN)}, rule={"only_seen_up": False}),
        [({"ifname": "Gi0/1"}, 1.0)],
    ),
    (
        "interface_down",
        "shut down by an admin",
        Case(
            devices={"snmp": _device(_interface(1, "Gi0/1", admin=False, oper=False))},
            seen_up=frozenset({("t", "Gi0/1")}),
        ),
        [({"ifname": "Gi0/1"}, 0.0)],
    ),
    (
        "interface_down",
        "seen up on another collector of the target just before",
        Case(devices={"a": _device(_interface(1, "Gi0/1")), "b": _device(PORT_DOWN)}),
        [({"ifname": "Gi0/1"}, 0.0), ({"ifname": "Gi0/1"}, 1.0)],
    ),
    (
        "interface_down",
        "globs select",
        Case(
            devices={"snmp": _device(PORT_DOWN, _interface(2, "Vlan1", oper=False))},
            rule={"interfaces": ["Vlan*"], "only_seen_up": False},
        ),
        [({"ifname": "Vlan1"}, 1.0)],
    ),
    (
        "interface_down",
        "the same ifDescr on every port: made unique",
        Case(
            devices={
                "snmp": _device(
                    _interface(1, "", descr="eth", oper=False),
                    _interface(2, "", descr="eth", oper=False),
                )
            },
            rule={"only_seen_up": False},
        ),
        [({"ifname": "eth#1"}, 1.0), ({"ifname": "eth#2"}, 1.0)],
    ),
    # interface_errors and interface_utilization
    (
        "interface_errors",
        "a rate, or unknown before the second poll",
        Case(devices={"snmp": _device(_interface(1, "Gi0/1", errors=0.5), _interface(2, "Gi0/2"))}),
        [({"ifname": "Gi0/1"}, 0.5), ({"ifname": "Gi0/2"}, None)],
    ),
    (
        "interface_utilization",
        "the busier direction; nothing before the second poll",
        Case(
            devices={
                "snmp": _device(
                    _interface(1, "Gi0/1", utilization=(0.2, 0.9)), _interface(2, "Gi0/2")
                )
            }
        ),
        [({"ifname": "Gi0/1"}, 0.9)],
    ),
    # unregistered: per protocol the room has set up; its own word, else its registrar's
    (
        "unregistered",
        "registered over SIP, H.323 not set up",
        Case(api=True, status=_status(h323=RegistrationState.INACTIVE)),
        [({"protocol": "sip"}, 0.0)],
    ),
    (
        "unregistered",
        "SIP failed, gatekeeper registered",
        Case(
            api=True,
            status=_status(RegistrationState.FAILED, h323=RegistrationState.REGISTERED),
        ),
        [({"protocol": "sip"}, 1.0), ({"protocol": "h323"}, 0.0)],
    ),
    (
        "unregistered",
        "registering: not judged at this poll",
        Case(api=True, status=_status(RegistrationState.REGISTERING)),
        [({"protocol": "sip"}, None)],
    ),
    ("unregistered", "its API cannot be read: nothing to say", Case(api=True), []),
    (
        "unregistered",
        "a plain SIP room: its registrar has no contact",
        Case(registrar=_registrar(False)),
        [({"protocol": "sip"}, 1.0)],
    ),
    (
        "unregistered",
        "a plain SIP room: its registrar cannot be read",
        Case(registrar=_registrar(None)),
        [],
    ),
    (
        "unregistered",
        "a room that is down: EndpointDown says it, every protocol cleared",
        Case(
            icmp=_icmp(Reach.DOWN),
            api=True,
            status=_status(RegistrationState.FAILED),
        ),
        [({"protocol": "sip"}, 0.0), ({"protocol": "h323"}, 0.0)],
    ),
    (
        "unregistered",
        "a room with an API: its own word wins over the registrar's",
        Case(api=True, status=_status(), registrar=_registrar(False)),
        [({"protocol": "sip"}, 0.0)],
    ),
    # peripheral_disconnected: per camera, microphone, display the room reports
    (
        "peripheral_disconnected",
        "camera out, microphone in, touch panel out (not essential)",
        Case(
            api=True,
            status=_status(
                peripherals=(
                    (PeripheralKind.CAMERA, False),
                    (PeripheralKind.MICROPHONE, True),
                    (PeripheralKind.TOUCH_PANEL, False),
                )
            ),
        ),
        [({"peripheral": "camera"}, 1.0), ({"peripheral": "microphone"}, 0.0)],
    ),
    ("peripheral_disconnected", "no API", Case(icmp=_icmp(Reach.UP)), []),
    (
        "peripheral_disconnected",
        "down, its API unreadable: every essential peripheral cleared, none left firing",
        Case(icmp=_icmp(Reach.DOWN), api=True),
        [
            ({"peripheral": "camera"}, 0.0),
            ({"peripheral": "microphone"}, 0.0),
            ({"peripheral": "display"}, 0.0),
        ],
    ),
    # diagnostic_error: how many at Error or Critical
    (
        "diagnostic_error",
        "one error, one critical, one warning",
        Case(
            api=True,
            status=_status(
                diagnostics=(
                    DiagnosticLevel.ERROR,
                    DiagnosticLevel.CRITICAL,
                    DiagnosticLevel.WARNING,
                )
            ),
        ),
        [({}, 2.0)],
    ),
    ("diagnostic_error", "the API cannot be read", Case(api=True), [({}, None)]),
    # one_sided_registration: the room and its registrar disagree
    (
        "one_sided_registration",
        "the room says registered, the registrar has no contact",
        Case(api=True, status=_status(), registrar=_registrar(False)),
        [({}, 1.0)],
    ),
    (
        "one_sided_registration",
        "both say registered",
        Case(api=True, status=_status(), registrar=_registrar(True)),
        [({}, 0.0)],
    ),
    (
        "one_sided_registration",
        "the registrar cannot be read",
        Case(api=True, status=_status(), registrar=_registrar(None)),
        [({}, None)],
    ),
    (
        "one_sided_registration",
        "the room failed, the registrar still holds a contact",
        Case(api=True, status=_status(RegistrationState.FAILED), registrar=_registrar(True)),
        [({}, 1.0)],
    ),
    # call_mos: the worst received audio's E-model MOS; 4.5 (nothing wrong) out of a call
    (
        "call_mos",
        "in a call, 5 % loss on the audio received",
        Case(
            icmp=replace(_icmp(Reach.UP, RTTS), last_rtt=0.3),  # a slow path lowers it too
            api=True,
            status=_with_streams(
                MediaStream("1", "rx", "audio", codec="G711u", loss_ratio=0.05, jitter=0.01),
                MediaStream("1", "tx", "audio", codec="G711u", loss_ratio=0.2, jitter=0.01),
            ),
        ),
        [({}, audio_mos("G711u", 0.05, rtt=0.3, jitter=0.01).mos)],  # type: ignore[union-attr]
    ),
    (
        "call_mos",
        "in a call, a stream it cannot score: unknown, not perfect",
        Case(
            icmp=_icmp(Reach.UP, RTTS),
            api=True,
            status=_with_streams(MediaStream("1", "rx", "audio", codec="AACLD", loss_ratio=0.3)),
        ),
        [({}, None)],
    ),
    ("call_mos", "not in a call", Case(api=True, status=_status()), [({}, 4.5)]),
    ("call_mos", "the API cannot be read", Case(api=True), []),
    (
        "call_mos",
        "down: EndpointDown says it",
        Case(
            icmp=_icmp(Reach.DOWN),
            api=True,
            status=_with_streams(MediaStream("1", "rx", "audio", codec="G711u", loss_ratio=0.5)),
        ),
        [({}, 4.5)],
    ),
]


def test_every_metric_has_a_signal() -> None:
    assert set(SIGNALS) == set(get_args(Metric))
    assert {metric for metric, *_ in CASES} == set(SIGNALS)


@pytest.mark.parametrize(
    ("metric", "case", "expected"),
    [
        pytest.param(metric, case, expected, id=f"{metric}: {name}")
        for metric, name, case, expected in CASES
    ],
)
def test_signal(metric: str, case: Case, expected: Expected) -> None:
    level = {"below": 3.6} if metric == "call_mos" else {"above": 0.5}
    rule = Rule.model_validate(
        {"metric": metric, "levels": [{"severity": "warning", **level}], **case.rule}
    )
    readings = list(SIGNALS[metric](case.state(), rule, case.seen_up))
    assert readings == [
        (labels, value if isinstance(value, Estimate) else pytest.approx(value, abs=1e-6))
        for labels, value in expected
    ]


def test_interfaces_seen_up_are_those_an_interface_down_rule_watches_that_are_up() -> None:
    interfaces = _interface(1, "Gi0/1"), _interface(2, "Gi0/2", oper=False), _interface(3, "Vlan1")
    state = TargetState(_target(), devices={"snmp": _device(*interfaces)})
    levels = [Level(severity=Severity.MAJOR, above=0.5)]
    watched = Rule(metric="interface_down", levels=levels, interfaces=["Gi*"])
    assert interfaces_seen_up(state, watched) == {("t", "Gi0/1")}
    other = Rule(metric="interface_errors", levels=levels)
    assert interfaces_seen_up(state, other) == set()


def test_interface_names_prefer_ifname_then_ifdescr_then_the_index() -> None:
    samples = {
        i: s.sample
        for i, s in (_interface(1, "Gi0/1"), _interface(2, "", descr="eth"), _interface(3, ""))
    }
    assert interface_names(samples) == {1: "Gi0/1", 2: "eth", 3: "3"}


def test_an_interface_table_is_complete_only_from_a_device_that_answered() -> None:
    assert interfaces_complete(TargetState(_target(), devices={"s": _device(PORT_DOWN)}))
    assert not interfaces_complete(TargetState(_target(), devices={"s": _device(up=False)}))
    assert not interfaces_complete(TargetState(_target(), devices={"s": _device()}))


def test_the_call_hint_blames_the_path_only_when_its_pings_lose_alike() -> None:
    # Binomial(10, 0.5): P(X <= 2) = 56/1024.
    assert binomial_cdf(2, 10, 0.5) == pytest.approx(56 / 1024)
    assert binomial_cdf(10, 10, 0.3) == 1.0
    # 240 pings (4 a second for a minute) and a call losing 5 %:
    assert path_explains(12, 240, 0.05) is True  # the path loses as much: the WAN
    assert path_explains(0, 240, 0.10) is False  # clearly cleaner: the room's LAN
    # 60 pings, none lost, 5 % call loss: a clean path and a 2.5 % one would both do that.
    assert path_explains(0, 60, 0.05) is None
    assert path_explains(0, 0, 0.05) is None

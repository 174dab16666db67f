"""Signals: what each rule metric reads from a target's state, as one table of pure functions.

A signal turns a `TargetState` into the values a rule compares with its levels: one
(labels, value) reading per alert identity (no labels for the target itself, `ifname` per
interface, `probe` per probe), the value None where it cannot be judged now (too few echoes,
the quality of a dead link). Signals decide no alert and change nothing, not even the one
memory they read (which interfaces were ever seen up): `interfaces_seen_up` says what to add.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable, Container, Iterable, Iterator, Mapping

from netmon.alerting.rules import LOSS_CONFIDENCE_Z, MIN_LOSS_SAMPLES, MIN_RTT_SAMPLES
from netmon.alerting.tracked import Estimate, wilson
from netmon.call_quality import fault_side, stream_score
from netmon.config.rules import Rule
from netmon.devices import InterfaceState
from netmon.endpoints import ESSENTIAL_PERIPHERALS, PROTOCOLS, EndpointView
from netmon.model import InterfaceSample, RegistrationState
from netmon.state import IcmpState, Reach, TargetState

Reading = tuple[dict[str, str], float | Estimate | None]
# (the target's state, the rule, the (target, ifname) of interfaces seen up before) -> readings
# The signals an echo round changes return a tuple, not a generator: at 5,000 targets they run
# 20,000 times a second, and a generator costs more to start than the reading to compute.
Signal = Callable[[TargetState, Rule, Container[tuple[str, str]]], Iterable[Reading]]


def down(state: TargetState, rule: Rule, seen_up: Container[tuple[str, str]]) -> Iterable[Reading]:
    if state.probes_only:
        return (({}, float(state.reach is Reach.DOWN)),)  # a web service: its probes say
    if state.icmp is not None:
        reach = state.icmp.reach
        return (({}, None if reach is Reach.UNKNOWN else float(reach is Reach.DOWN)),)
    return ()


def snmp_down(
    state: TargetState, rule: Rule, seen_up: Container[tuple[str, str]]
) -> Iterator[Reading]:
    for collector, device in state.devices.items():
        probe = state.probes.get(collector)
        if probe is None:
            continue
        if state.icmp is not None and state.icmp.reach is Reach.DOWN:
            yield {}, 0.0  # the target is down: TargetDown says it all
        else:
            yield {}, float(not device.up and probe.reason != "auth")


def snmp_auth(
    state: TargetState, rule: Rule, seen_up: Container[tuple[str, str]]
) -> Iterator[Reading]:
    for collector in state.devices:
        probe = state.probes.get(collector)
        if probe is not None:
            yield {}, float(probe.reason == "auth")


def probe_failed(
    state: TargetState, rule: Rule, seen_up: Container[tuple[str, str]]
) -> Iterator[Reading]:
    for name, probe in state.probes.items():
        if state.target.is_service_probe(name) and not state.probes_only:
            yield {"probe": name}, float(not probe.success)


def _link_quality(measure: Callable[[IcmpState], float | Estimate | None]) -> Signal:
    """A quality signal of the ICMP window: nothing without ICMP, and unknown while the target
    is not up (the quality of a dead link means nothing; EndpointDown covers it)."""

    def signal(
        state: TargetState, rule: Rule, seen_up: Container[tuple[str, str]]
    ) -> Iterable[Reading]:
        icmp = state.icmp
        if icmp is None:
            return ()
        return (({}, measure(icmp) if icmp.reach is Reach.UP else None),)

    return signal


def _loss(icmp: IcmpState) -> Estimate | None:
    # The loss window leaves out the echoes lost in outages and in bursts (IcmpState.fold).
    sent, lost = icmp.loss.counts()
    return wilson(lost, sent, LOSS_CONFIDENCE_Z) if sent >= MIN_LOSS_SAMPLES else None


# Both kept by the window as echoes come and go (`EchoWindow`), not recomputed per rule.
def _rtt_p95(icmp: IcmpState) -> float | None:
    window = icmp.window
    return window.percentile_95() if window.replies >= MIN_RTT_SAMPLES else None


def _jitter(icmp: IcmpState) -> float | None:
    window = icmp.window
    return window.jitter() if window.replies >= MIN_RTT_SAMPLES else None


def interface_names(samples: Mapping[int, InterfaceSample]) -> dict[int, str]:
    """ifName (else ifDescr, else ifIndex) per index, made unique: cheap switches give
    every port the same ifDescr, and two ports must not share one alert."""
    names = {index: s.name or s.descr or str(index) for index, s in samples.items()}
    counts: dict[str, int] = {}
    for name in names.values():
        counts[name] = counts.get(name, 0) + 1
    return {i: (f"{n}#{i}" if counts[n] > 1 else n) for i, n in names.items()}


def interfaces_complete(state: TargetState) -> bool:
    """Whether a device of the target gave a full interface table (so a missing interface is
    gone, not unread)."""
    return any(device.up and device.interfaces for device in state.devices.values())


def _interfaces(state: TargetState, rule: Rule) -> Iterator[tuple[str, InterfaceState]]:
    """(ifname, interface) of every interface the rule's globs select."""
    for device in state.devices.values():
        names = interface_names({i: x.sample for i, x in device.interfaces.items()})
        for index, interface in device.interfaces.items():
            ifname = names[index]
            if any(fnmatch.fnmatchcase(ifname, glob) for glob in rule.interfaces):
                yield ifname, interface


def interface_down(
    state: TargetState, rule: Rule, seen_up: Container[tuple[str, str]]
) -> Iterator[Reading]:
    # An interface of this name up on a device read before, in this same state (a target with
    # two SNMP collectors), counts as seen up, as it would once remembered.
    seen_now: set[str] = set()
    for ifname, interface in _interfaces(state, rule):
        sample = interface.sample
        if sample.oper_up:
            seen_now.add(ifname)
        down = sample.admin_up is True and sample.oper_up is False
        seen = ifname in seen_now or (state.target.id, ifname) in seen_up
        if down and rule.only_seen_up and not seen:
            down = False
        yield {"ifname": ifname}, float(down)


def interfaces_seen_up(state: TargetState, rule: Rule) -> set[tuple[str, str]]:
    """(target, ifname) of the interfaces an interface_down rule watches that are up now: what
    its `only_seen_up` remembers (unused ports stay quiet)."""
    if rule.metric != "interface_down":
        return set()
    return {(state.target.id, n) for n, i in _interfaces(state, rule) if i.sample.oper_up}


def interface_errors(
    state: TargetState, rule: Rule, seen_up: Container[tuple[str, str]]
) -> Iterator[Reading]:
    for ifname, interface in _interfaces(state, rule):
        yield {"ifname": ifname}, interface.errors_per_second


def interface_utilization(
    state: TargetState, rule: Rule, seen_up: Container[tuple[str, str]]
) -> Iterator[Reading]:
    for ifname, interface in _interfaces(state, rule):
        if interface.utilization is not None:
            yield {"ifname": ifname}, max(interface.utilization)


def _room_status(
    read: Callable[[EndpointView], Iterator[Reading]], identities: list[dict[str, str]]
) -> Signal:
    """A signal of the room's own status: nothing for a target without a status source, and
    0 while the target is down (EndpointDown says it all: no second page for a dead room)."""

    def signal(
        state: TargetState, rule: Rule, seen_up: Container[tuple[str, str]]
    ) -> Iterator[Reading]:
        view = state.endpoint_view()
        if view is None:
            return
        if state.reach is Reach.DOWN:
            # Every identity the signal can have, cleared: the room's status is often
            # unreadable once it is down, and what it said before must not stay firing.
            for labels in identities:
                yield labels, 0.0
            return
        yield from read(view)

    return signal


def _unregistered(view: EndpointView) -> Iterator[Reading]:
    for protocol in PROTOCOLS:
        registered = view.registered(protocol)
        own = view.own_registration(protocol)
        if registered is not None or (
            own is not None and own.state is not RegistrationState.INACTIVE
        ):
            yield {"protocol": protocol}, None if registered is None else float(not registered)


def _disconnected(view: EndpointView) -> Iterator[Reading]:
    if view.status is None:
        return
    disconnected = {p.kind for p in view.disconnected()}
    reported = {p.kind for p in view.status.peripherals}
    for kind in ESSENTIAL_PERIPHERALS:
        if kind in reported:
            yield {"peripheral": kind.value}, float(kind in disconnected)


def _diagnostics(view: EndpointView) -> Iterator[Reading]:
    if view.status is not None:
        yield {}, float(len(view.diagnostics()))
    elif view.has_api:
        yield {}, None


def _one_sided(view: EndpointView) -> Iterator[Reading]:
    if view.has_api and view.registrar is not None:
        one_sided = view.one_sided
        yield {}, None if one_sided is None else float(one_sided)


# Call quality judged on what the room receives; a call ended is no degraded call.
NO_IMPAIRMENT = 4.5


def _received_audio(state: TargetState) -> list[tuple[float | None, float | None]]:
    """(MOS, loss) of each audio stream the room receives in its calls; MOS None for a stream
    that cannot be scored (a wideband codec, or nothing measured this interval)."""
    view = state.endpoint_view()
    if view is None or view.status is None:
        return []
    rtt = state.path_rtt
    found: list[tuple[float | None, float | None]] = []
    for stream in view.status.streams:
        if stream.direction != "rx" or stream.media != "audio":
            continue
        score = stream_score(stream, rtt)
        found.append((None if score is None else score.mos, stream.loss_ratio))
    return found


def call_mos(
    state: TargetState, rule: Rule, seen_up: Container[tuple[str, str]]
) -> Iterator[Reading]:
    view = state.endpoint_view()
    if view is None:
        return
    if state.reach is Reach.DOWN:
        yield {}, NO_IMPAIRMENT  # EndpointDown says it; nothing stays firing behind it
        return
    if view.status is None:
        return  # the codec cannot be read now: nothing to judge
    received = _received_audio(state)
    if not received:
        yield {}, NO_IMPAIRMENT  # not in a call: no degraded call
        return
    scores = [mos for mos, _ in received if mos is not None]
    # A stream that cannot be scored is unknown, not perfect: no verdict from it alone.
    yield {}, min(scores) if scores else None


def _call_hint(state: TargetState, labels: Mapping[str, str]) -> dict[str, object]:
    """Where the fault lies: netmon's own path to the site losing as much as the call does
    points at the WAN; a clean path with a lossy call, at the room's LAN or the endpoint."""
    scored = [(mos, loss) for mos, loss in _received_audio(state) if mos is not None]
    if not scored:
        return {}
    _, call_loss = min(scored)
    window = state.icmp.window if state.icmp is not None else None
    sent = window.sent if window is not None else 0
    path_loss = (window.loss_ratio() or 0.0) if window is not None else 0.0
    side = fault_side(call_loss, round(path_loss * sent), sent)
    if side == "delay":
        # Not lost packets: late ones. The delay and jitter are the path's (or the room's).
        rtt = state.path_rtt
        where = f"netmon's RTT to the site is {rtt * 1000:.0f} ms" if rtt is not None else ""
        return {"hint": f"delay and jitter, not loss{': ' + where if where else ''}"}
    if side == "wan":
        return {"hint": f"WAN path: netmon's pings lose {path_loss * 100:.1f}% too"}
    if side == "room":
        return {"hint": "room LAN / endpoint: netmon's path to the site is clean"}
    seconds = window.seconds if window is not None else 0.0
    return {"hint": f"WAN or room LAN: netmon's {sent} pings in {seconds:.0f} s cannot tell yet"}


# Every `Metric` a rule may name, and the signal that reads it. Which kinds of observation can
# change what each one reads (so which rules an echo round evaluates): relevance.CHANGED_BY; a
# new signal, or a signal reading more of the state, must be entered there too.
SIGNALS: Mapping[str, Signal] = {
    "down": down,
    "rtt_p95": _link_quality(_rtt_p95),
    "loss_ratio": _link_quality(_loss),
    "jitter": _link_quality(_jitter),
    "loss_bursts": _link_quality(lambda icmp: float(len(icmp.bursts))),
    "snmp_down": snmp_down,
    "snmp_auth": snmp_auth,
    "interface_down": interface_down,
    "interface_errors": interface_errors,
    "interface_utilization": interface_utilization,
    "probe_failed": probe_failed,
    "unregistered": _room_status(_unregistered, [{"protocol": p} for p in PROTOCOLS]),
    "peripheral_disconnected": _room_status(
        _disconnected, [{"peripheral": kind.value} for kind in ESSENTIAL_PERIPHERALS]
    ),
    "diagnostic_error": _room_status(_diagnostics, [{}]),
    "one_sided_registration": _room_status(_one_sided, [{}]),
    "call_mos": call_mos,
}


def _room_details(state: TargetState, labels: Mapping[str, str]) -> dict[str, object]:
    """What a room-status alert's summary says beside its name: the source's own reason."""
    view = state.endpoint_view()
    if view is None:
        return {}
    protocol = labels.get("protocol")
    if protocol is not None:
        return {"reason": view.unregistered_reason(protocol), "protocol": protocol.upper()}
    peripheral = labels.get("peripheral")
    if peripheral is not None:
        names = [p.name for p in view.disconnected() if p.kind == peripheral]
        return {"devices": ", ".join(names) or peripheral}
    severe = view.diagnostics()
    one_sided = view.one_sided
    if severe:
        return {"diagnostics": "; ".join(d.description or d.type for d in severe)}
    if one_sided and view.registrar is not None:
        own = view.own_registration("sip")
        if own is not None and own.state is RegistrationState.REGISTERED:
            side = f"{view.registrar.registrar} holds no contact for it"
        else:
            side = f"{view.registrar.registrar} still routes calls to it"
        return {"side": side}
    return {}


# The metrics of a room's own status (its API, its registrar): their alerts go when the room's
# status stops being read.
ROOM_METRICS = frozenset(
    {
        "unregistered",
        "peripheral_disconnected",
        "diagnostic_error",
        "one_sided_registration",
        "call_mos",
    }
)

# Words beside a room-status alert's summary, by rule metric (the others need none).
RoomDetails = Callable[[TargetState, Mapping[str, str]], dict[str, object]]
DETAILS: Mapping[str, RoomDetails] = {
    **dict.fromkeys(
        ("unregistered", "peripheral_disconnected", "diagnostic_error", "one_sided_registration"),
        _room_details,
    ),
    "call_mos": _call_hint,
}

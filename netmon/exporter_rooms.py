"""The room-status families: what each endpoint says of itself and what its registrar says.

Built from the same `EndpointView` the alerts and the readiness checks read, so a dashboard
shows what netmon judged. A series exists only while its source can say: a room whose API
cannot be read has no `netmon_endpoint_registered` (its `netmon_probe_success` says why),
rather than a 0 that would read as "not registered".
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import GaugeMetricFamily, Metric

from netmon.endpoints import PROTOCOLS
from netmon.model import DiagnosticLevel, PeripheralKind
from netmon.state import StateStore

REPORTED_PERIPHERALS = (
    PeripheralKind.CAMERA,
    PeripheralKind.MICROPHONE,
    PeripheralKind.DISPLAY,
    PeripheralKind.TOUCH_PANEL,
)


def room_families(store: StateStore) -> Iterator[Metric]:
    registered = GaugeMetricFamily(
        "netmon_endpoint_registered",
        "1 if the room can be called over the protocol (sip, h323): its own word, or for a "
        "plain SIP room its registrar's; absent while neither can say or it is not set up",
        labels=["target", "protocol"],
    )
    one_sided = GaugeMetricFamily(
        "netmon_endpoint_registration_one_sided",
        "1 if the room and its registrar disagree on its SIP registration",
        labels=["target"],
    )
    contacts = GaugeMetricFamily(
        "netmon_endpoint_registrar_contacts",
        "live contacts the room's registrar holds for its address of record",
        labels=["target", "registrar"],
    )
    calls = GaugeMetricFamily(
        "netmon_endpoint_calls", "calls the room is in (or setting up)", labels=["target"]
    )
    in_call = GaugeMetricFamily(
        "netmon_endpoint_in_call", "1 if the room is in a call", labels=["target"]
    )
    standby = GaugeMetricFamily(
        "netmon_endpoint_standby", "1 if the room is in standby", labels=["target"]
    )
    peripheral = GaugeMetricFamily(
        "netmon_endpoint_peripheral_connected",
        "1 if every peripheral of the type the room reports is connected, 0 if one is not",
        labels=["target", "peripheral"],
    )
    diagnostics = GaugeMetricFamily(
        "netmon_endpoint_diagnostics",
        "diagnostics messages the room raises about itself, by level",
        labels=["target", "level"],
    )
    info = GaugeMetricFamily(
        "netmon_endpoint_info",
        "the room's vendor, model, software version and serial number, from its API",
        labels=["target", "vendor", "model", "software", "serial"],
    )
    registrar_contacts = GaugeMetricFamily(
        "netmon_registrar_contacts",
        "live contacts in a registrar's location table at its last poll",
        labels=["target"],
    )
    for target_id, state in store.targets.items():
        if state.registrar_table is not None:
            total = sum(len(c) for c in state.registrar_table.contacts.values())
            registrar_contacts.add_metric([target_id], float(total))
        view = state.endpoint_view()
        if view is None:
            continue
        for protocol in PROTOCOLS:
            word = view.registered(protocol)
            if word is not None:
                registered.add_metric([target_id, protocol], float(word))
        if (sided := view.one_sided) is not None:
            one_sided.add_metric([target_id], float(sided))
        if view.registrar is not None and view.registrar.known:
            contacts.add_metric(
                [target_id, view.registrar.registrar], float(len(view.registrar.contacts))
            )
        status = view.status
        if status is None:
            continue
        calls.add_metric([target_id], float(len(status.calls)))
        in_call.add_metric([target_id], float(bool(status.calls)))
        if status.standby is not None:
            standby.add_metric([target_id], float(status.standby))
        for kind in REPORTED_PERIPHERALS:
            of_kind = [p for p in status.peripherals if p.kind is kind]
            if of_kind:
                connected = all(p.connected for p in of_kind)
                peripheral.add_metric([target_id, kind.value], float(connected))
        for level in DiagnosticLevel:
            count = sum(1 for d in status.diagnostics if d.level is level)
            diagnostics.add_metric([target_id, level.value], float(count))
        info.add_metric(
            [target_id, status.vendor, status.model, status.software, status.serial], 1.0
        )
    yield from (registered, one_sided, contacts, calls, in_call, standby, peripheral)
    yield from (diagnostics, info, registrar_contacts)

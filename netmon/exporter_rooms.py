"""The room-status families: what each endpoint says of itself and what its registrar says.

Built from the same `EndpointView` the alerts and the readiness checks read, so a dashboard
shows what netmon judged. A series exists only while its source can say: a room whose API
cannot be read has no `netmon_endpoint_registered` (its `netmon_probe_success` says why),
rather than a 0 that would read as "not registered".
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import Metric

from netmon.endpoints import PROTOCOLS
from netmon.exporter_sink import Family, MetricSink, Sink, numbered
from netmon.model import DiagnosticLevel, PeripheralKind
from netmon.state import StateStore, TargetState

REPORTED_PERIPHERALS = (
    PeripheralKind.CAMERA,
    PeripheralKind.MICROPHONE,
    PeripheralKind.DISPLAY,
    PeripheralKind.TOUCH_PANEL,
)


REGISTERED = Family(
    "netmon_endpoint_registered",
    "gauge",
    "1 if the room can be called over the protocol (sip, h323): its own word, or for a "
    "plain SIP room its registrar's; absent while neither can say or it is not set up",
    ["target", "protocol"],
)
ONE_SIDED = Family(
    "netmon_endpoint_registration_one_sided",
    "gauge",
    "1 if the room and its registrar disagree on its SIP registration",
    ["target"],
)
CONTACTS = Family(
    "netmon_endpoint_registrar_contacts",
    "gauge",
    "live contacts the room's registrar holds for its address of record",
    ["target", "registrar"],
)
CALLS = Family("netmon_endpoint_calls", "gauge", "calls the room is in (or setting up)", ["target"])
IN_CALL = Family("netmon_endpoint_in_call", "gauge", "1 if the room is in a call", ["target"])
STANDBY = Family("netmon_endpoint_standby", "gauge", "1 if the room is in standby", ["target"])
PERIPHERAL = Family(
    "netmon_endpoint_peripheral_connected",
    "gauge",
    "1 if every peripheral of the type the room reports is connected, 0 if one is not",
    ["target", "peripheral"],
)
DIAGNOSTICS = Family(
    "netmon_endpoint_diagnostics",
    "gauge",
    "diagnostics messages the room raises about itself, by level",
    ["target", "level"],
)
INFO = Family(
    "netmon_endpoint_info",
    "gauge",
    "the room's vendor, model, software version and serial number, from its API",
    ["target", "vendor", "model", "software", "serial"],
)
REGISTRAR_CONTACTS = Family(
    "netmon_registrar_contacts",
    "gauge",
    "live contacts in a registrar's location table at its last poll",
    ["target"],
)
ROOM_FAMILIES = numbered(
    REGISTERED, ONE_SIDED, CONTACTS, CALLS, IN_CALL, STANDBY, PERIPHERAL, DIAGNOSTICS, INFO,
    REGISTRAR_CONTACTS,
)  # fmt: skip


def room_families(store: StateStore) -> Iterator[Metric]:
    sink = MetricSink(ROOM_FAMILIES)
    for target_id, state in store.exported_targets().items():
        emit_room(sink, target_id, state)
    yield from sink.metrics.values()


def emit_room(sink: Sink, target_id: str, state: TargetState) -> None:
    if state.registrar_table is not None:
        total = sum(len(c) for c in state.registrar_table.contacts.values())
        sink.add(REGISTRAR_CONTACTS, [target_id], float(total))
    view = state.endpoint_view()
    if view is None:
        return
    for protocol in PROTOCOLS:
        word = view.registered(protocol)
        if word is not None:
            sink.add(REGISTERED, [target_id, protocol], float(word))
    if (sided := view.one_sided) is not None:
        sink.add(ONE_SIDED, [target_id], float(sided))
    if view.registrar is not None and view.registrar.known:
        sink.add(
            CONTACTS, [target_id, view.registrar.registrar], float(len(view.registrar.contacts))
        )
    status = view.status
    if status is None:
        return
    sink.add(CALLS, [target_id], float(len(status.calls)))
    sink.add(IN_CALL, [target_id], float(bool(status.calls)))
    if status.standby is not None:
        sink.add(STANDBY, [target_id], float(status.standby))
    for kind in REPORTED_PERIPHERALS:
        of_kind = [p for p in status.peripherals if p.kind is kind]
        if of_kind:
            connected = all(p.connected for p in of_kind)
            sink.add(PERIPHERAL, [target_id, kind.value], float(connected))
    for level in DiagnosticLevel:
        count = sum(1 for d in status.diagnostics if d.level is level)
        sink.add(DIAGNOSTICS, [target_id, level.value], float(count))
    sink.add(INFO, [target_id, status.vendor, status.model, status.software, status.serial], 1.0)

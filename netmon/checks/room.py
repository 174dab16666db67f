"""The room's own status in a readiness check: registration, peripherals, diagnostics, calls.

Read fresh by the check (the room's API once, each registrar once) and judged with the same
`EndpointView` the alerts use. Every finding is worded in English and Vietnamese, since the
organiser reading it may read either. A room without a vendor API or registrar keeps the
network checks and a note that its status is not available, rather than a GO that pretends.
"""

from __future__ import annotations

from collections.abc import Callable

from netmon.checks.collected import Collected
from netmon.checks.model import EndpointReport, Finding, Verdict
from netmon.endpoints import EndpointView
from netmon.inventory import Target
from netmon.model import DiagnosticLevel, EndpointStatus, PeripheralKind, RegistrationState

# A room still in standby this close to the start should have woken for the meeting already.
STANDBY_WARN_BEFORE = 600.0

PERIPHERAL_VI = {
    PeripheralKind.CAMERA: "camera",
    PeripheralKind.MICROPHONE: "micro",
    PeripheralKind.DISPLAY: "màn hình",
    PeripheralKind.TOUCH_PANEL: "bảng điều khiển cảm ứng",
}
LEVEL_VI = {
    DiagnosticLevel.CRITICAL: "nghiêm trọng",
    DiagnosticLevel.ERROR: "lỗi",
    DiagnosticLevel.WARNING: "cảnh báo",
}


def view_of(target: Target, collected: Collected) -> EndpointView | None:
    status_probe = target.status_probe()
    if status_probe is None and collected.registrar is None:
        return None
    read = collected.status
    status = read if isinstance(read, EndpointStatus) and read.ok else None
    problem = None
    if status_probe is not None and status is None:
        problem = "not read (the check ran out of time)"
        if read is not None:
            problem = read.detail or read.reason or "failed"
    return EndpointView(
        has_api=status_probe is not None,
        status=status,
        status_problem=problem,
        registrar=collected.registrar,
    )


def judge_room(
    report: EndpointReport,
    target: Target,
    collected: Collected,
    *,
    protocol: str,
    starts_in: float | None,
) -> None:
    """Findings on the room's own status. `protocol` is how the meeting calls the room;
    `starts_in` the seconds until the meeting starts (negative once on), None outside one."""
    add = report.findings.append
    view = view_of(target, collected)
    if view is None:
        add(
            Finding(
                Verdict.GO,
                "status not available (no codec API or registrar)",
                "không có trạng thái thiết bị (không có API hoặc máy chủ đăng ký)",
            )
        )
        return
    if view.has_api and view.status is None:
        add(
            Finding(
                Verdict.WARN,
                f"endpoint status not available: {view.status_problem}",
                f"không đọc được trạng thái thiết bị: {view.status_problem}",
            )
        )
    _registration(add, view, protocol)
    status = view.status
    if status is None:
        return
    report.measurements["room"] = _measurements(status)
    for peripheral in view.disconnected():
        add(
            Finding(
                Verdict.NO_GO,
                f"{peripheral.kind.value.replace('_', ' ')} disconnected ({peripheral.name})",
                f"mất kết nối {PERIPHERAL_VI[peripheral.kind]} ({peripheral.name})",
            )
        )
    for diagnostic in status.diagnostics:
        if diagnostic.level is DiagnosticLevel.INFO:
            continue
        verdict = Verdict.WARN if diagnostic.level is DiagnosticLevel.WARNING else Verdict.NO_GO
        text = diagnostic.description or diagnostic.type
        add(
            Finding(
                verdict,
                f"diagnostic {diagnostic.level.value}: {text}",
                f"chẩn đoán {LEVEL_VI[diagnostic.level]}: {text}",
            )
        )
    if status.calls and (starts_in is None or starts_in > 0):
        remote = ", ".join(c.remote or c.status for c in status.calls)
        add(
            Finding(
                Verdict.WARN,
                f"already in another call ({remote})",
                f"đang trong một cuộc gọi khác ({remote})",
            )
        )
    if status.standby and starts_in is not None and 0 < starts_in <= STANDBY_WARN_BEFORE:
        minutes = max(1, round(starts_in / 60))
        add(
            Finding(
                Verdict.WARN,
                f"still in standby {minutes} min before the meeting",
                f"vẫn ở chế độ chờ {minutes} phút trước cuộc họp",
            )
        )


def _registration(add: Callable[[Finding], None], view: EndpointView, protocol: str) -> None:
    name = protocol.upper().replace("H323", "H.323")
    own = view.own_registration(protocol)
    registered = view.registered(protocol)
    if registered is False:
        reason = view.unregistered_reason(protocol)
        add(
            Finding(
                Verdict.NO_GO,
                f"not registered ({name}): {reason}",
                f"chưa đăng ký ({name}): {reason}",
            )
        )
    elif own is not None and own.state is RegistrationState.INACTIVE:
        add(
            Finding(
                Verdict.NO_GO,
                f"not set up to register over {name}, which the meeting uses",
                f"chưa cấu hình đăng ký {name}, giao thức cuộc họp sử dụng",
            )
        )
    elif own is not None and own.state is RegistrationState.REGISTERING:
        add(
            Finding(
                Verdict.WARN,
                f"registration under way ({name})",
                f"đang đăng ký ({name})",
            )
        )
    elif registered is None and view.registrar is not None and not view.registrar.known:
        add(
            Finding(
                Verdict.WARN,
                f"registrar {view.registrar.registrar} not read: {view.registrar.reason}",
                f"không đọc được máy chủ đăng ký {view.registrar.registrar}: "
                f"{view.registrar.reason}",
            )
        )
    if protocol == "sip" and view.one_sided:
        side = (
            "the room says registered, the registrar holds no contact"
            if own is not None and own.state is RegistrationState.REGISTERED
            else "the registrar holds a contact the room does not know of"
        )
        side_vi = (
            "thiết bị báo đã đăng ký, máy chủ đăng ký không có"
            if own is not None and own.state is RegistrationState.REGISTERED
            else "máy chủ đăng ký còn giữ đăng ký mà thiết bị không có"
        )
        add(
            Finding(
                Verdict.NO_GO,
                f"one-sided registration: {side}",
                f"đăng ký một phía: {side_vi}",
            )
        )


def _measurements(status: EndpointStatus) -> dict[str, object]:
    return {
        "vendor": status.vendor,
        "model": status.model,
        "software": status.software,
        "registrations": {r.protocol: r.state.value for r in status.registrations},
        "calls": len(status.calls),
        "standby": status.standby,
        "peripherals": {
            p.name: "connected" if p.connected else "disconnected" for p in status.peripherals
        },
        "diagnostics": [f"{d.level.value}: {d.description or d.type}" for d in status.diagnostics],
    }

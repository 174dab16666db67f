"""Alert summaries in plain words, in English or Vietnamese, from `str.format` templates.

Placeholders: {name} (the target's name, else its id), {target}, {value}, {threshold},
{ifname}, {district}, {count}, {targets}, {trap}, {alertname}; the room-status alerts add
{protocol} and {reason}, {peripheral} and {devices}, {diagnostics}, {side}. A placeholder a
template uses but an alert lacks renders as "?" rather than failing.
"""

from __future__ import annotations

from collections.abc import Mapping

from netmon.config.alerting import Language

SUMMARIES: dict[str, dict[str, str]] = {
    "en": {
        "EndpointDown": "{name} is unreachable (no reply to ping)",
        "TargetDown": "{name} is down (no reply to ping)",
        "DistrictUnreachable": (
            "District {district} unreachable: {count} endpoints behind {name} are down: {targets}"
        ),
        "HighLatency": "High latency to {name}: RTT p95 {value} > {threshold}",
        "HighPacketLoss": "Packet loss to {name}: {value} > {threshold}",
        "HighJitter": "High jitter to {name}: {value} > {threshold}",
        "LinkUnstable": "Unstable link to {name}: {value} bursts of 5 or more lost echoes",
        "InterfaceDown": "Interface {ifname} on {name} is down",
        "InterfaceErrors": "Errors on interface {ifname} of {name}: {value} > {threshold}",
        "LinkSaturated": "Link {ifname} on {name} saturated: {value} > {threshold}",
        "DeviceRebooted": "{name} restarted",
        "SNMPUnreachable": "The SNMP agent of {name} does not answer",
        "ProbeFailed": "{name}: the {probe} probe fails",
        "ServiceDown": "{name} does not answer its checks",
        "EndpointNotReady": "{name} is NO-GO for meeting {meeting}: {reasons}",
        "SNMPAuthFailure": "The SNMP agent of {name} refuses netmon's credentials",
        "EndpointUnregistered": "{name} is not registered ({protocol}): {reason}",
        "PeripheralDisconnected": "{name}: {peripheral} disconnected ({devices})",
        "EndpointDiagnosticError": "{name} reports {value} diagnostic error(s): {diagnostics}",
        "OneSidedRegistration": "{name}: one-sided SIP registration ({side})",
        "CallQualityDegraded": "Call quality at {name}: MOS {value} < {threshold} ({hint})",
        "CallQualityBad": "Call quality at {name} is bad: MOS {value} < {threshold} ({hint})",
        "DeviceAuthenticationFailure": (
            "{name} reports an SNMP authentication failure (a wrong community or key was used)"
        ),
        "_default": "{alertname} on {name}",
        "_flapping": " (flapping: {changes} changes in {window})",
    },
    "vi": {
        "EndpointDown": "{name} mất kết nối (không phản hồi ping)",
        "TargetDown": "Thiết bị {name} mất kết nối (không phản hồi ping)",
        "DistrictUnreachable": (
            "Mất kết nối {district}: {count} điểm cầu sau {name} không liên lạc được: {targets}"
        ),
        "HighLatency": "Độ trễ cao tới {name}: RTT p95 {value} > {threshold}",
        "HighPacketLoss": "Mất gói tới {name}: {value} > {threshold}",
        "HighJitter": "Độ biến thiên trễ (jitter) cao tới {name}: {value} > {threshold}",
        "LinkUnstable": "Đường truyền tới {name} chập chờn: {value} đợt mất từ 5 gói liên tiếp",
        "InterfaceDown": "Giao diện {ifname} trên {name} bị mất kết nối (down)",
        "InterfaceErrors": "Lỗi trên giao diện {ifname} của {name}: {value} > {threshold}",
        "LinkSaturated": "Đường truyền {ifname} trên {name} quá tải: {value} > {threshold}",
        "DeviceRebooted": "{name} đã khởi động lại",
        "SNMPUnreachable": "SNMP của {name} không phản hồi",
        "ProbeFailed": "{name}: kiểm tra {probe} không thành công",
        "ServiceDown": "Dịch vụ {name} không phản hồi",
        "EndpointNotReady": "{name} chưa sẵn sàng cho cuộc họp {meeting}: {reasons}",
        "SNMPAuthFailure": "SNMP của {name} từ chối thông tin xác thực của netmon",
        "EndpointUnregistered": "{name} chưa đăng ký ({protocol}): {reason}",
        "PeripheralDisconnected": "{name}: mất kết nối {peripheral} ({devices})",
        "EndpointDiagnosticError": "{name} báo {value} lỗi chẩn đoán: {diagnostics}",
        "OneSidedRegistration": "{name}: đăng ký SIP một phía ({side})",
        "CallQualityDegraded": "Chất lượng cuộc gọi tại {name} giảm: MOS {value} < {threshold} "
        "({hint})",
        "CallQualityBad": "Chất lượng cuộc gọi tại {name} kém: MOS {value} < {threshold} ({hint})",
        "DeviceAuthenticationFailure": (
            "{name} báo lỗi xác thực SNMP (có truy cập dùng sai community hoặc khóa)"
        ),
        "_default": "{alertname} trên {name}",
        "_flapping": " (chập chờn: {changes} lần thay đổi trong {window})",
    },
}


class _Lenient(dict[str, object]):
    def __missing__(self, key: str) -> str:
        return "?"


def render(template: str, values: Mapping[str, object]) -> str:
    try:
        return template.format_map(_Lenient(values))
    except (ValueError, IndexError, AttributeError, KeyError) as exc:
        # A bad user template must not lose the alert: say what is wrong in its place.
        name, alertname = values.get("name", "?"), values.get("alertname", "?")
        return f"{alertname} on {name} (template error: {exc})"


def summary(
    language: Language, alertname: str, values: Mapping[str, object], override: str | None = None
) -> str:
    templates = SUMMARIES[language]
    template = override or templates.get(alertname) or templates["_default"]
    return render(template, {"alertname": alertname, **values})


def flapping_suffix(language: Language, changes: int, window: float) -> str:
    return render(
        SUMMARIES[language]["_flapping"], {"changes": changes, "window": format_seconds(window)}
    )


def format_seconds(seconds: float) -> str:
    if seconds >= 60 and seconds % 60 == 0:
        return f"{int(seconds // 60)} min"
    return f"{seconds:g} s"


def format_value(metric: str, value: float | None) -> str:
    if value is None:
        return "?"
    if metric in ("rtt_p95", "jitter"):
        return f"{value * 1000:.0f} ms" if value >= 0.01 else f"{value * 1000:.1f} ms"
    if metric in ("loss_ratio", "interface_utilization"):
        return f"{value * 100:.1f}%"
    if metric == "interface_errors":
        return f"{value:.2f}/s"
    if metric == "call_mos":
        return f"{value:.2f}"
    return f"{value:g}"

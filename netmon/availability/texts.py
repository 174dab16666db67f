"""The availability report's words, in English and Vietnamese.

The policy block's values are data (the report's JSON carries them in English); the fixed texts
among them (what counts as down, the formulas, ...) are translated here by their English text,
so a text changed in `policy.py` without its translation shows in English, marked as such,
rather than an old translation of a rule that no longer holds (a test checks none is missing).
Numbers are written here too: a decimal comma in Vietnamese, durations in its words.
"""

from __future__ import annotations

import re
from typing import Literal

from netmon.availability.policy import FORMULAS

Lang = Literal["en", "vi"]
LANGS: tuple[Lang, ...] = ("en", "vi")
DASH = "—"

TEXTS: dict[Lang, dict[str, str]] = {
    "en": {
        "title": "Availability report",
        "period": "Period",
        "scope": "Scope",
        "scope_all": "all targets",
        "district": "District",
        "group": "Group",
        "target": "Target",
        "generated": "Generated",
        "policy_version": "Accounting rules",
        "summary": "Summary by district",
        "all": "All",
        "sites": "Sites",
        "site": "Site",
        "links": "Links",
        "link": "Link",
        "no_district": "(no district)",
        "service": "Service",
        "service_table": "Services (each site's service probes)",
        "office": "Office hours",
        "quality": "Quality",
        "meetings": "Meetings",
        "outages": "Outages",
        "mttr": "MTTR",
        "availability": "Availability",
        "worst": "Worst sites",
        "rank": "#",
        "down": "Downtime",
        "charts": "At a glance",
        "daily": "Availability per day",
        "daily_caption": "Each bar is one local day: the mean of the {count} sites' availability "
        "that day (a site without a figure that day is left out; a grey mark: no site had "
        "one). The scale runs from {floor} (bottom) to 100 % (top).",
        "hourly": "Outages by hour of day",
        "hourly_caption": "Counted downtime of the sites by local hour of day (0-23), summed over "
        "the period: the darker, the more ({peak} at most, in one hour).",
        "no_downtime": "no counted downtime",
        "site_table": "Sites",
        "link_table": "District links",
        "kind": "Kind",
        "up": "Up",
        "unknown": "Unknown",
        "maintenance": "Maintenance",
        "parent": "Behind a cut link",
        "none": "None.",
        "meeting": "Meeting",
        "room": "Room",
        "verdict": "Check before",
        "ready": "Ready",
        "reasons": "Reasons",
        "mean_mos": "Mean MOS",
        "min_mos": "Lowest MOS",
        "poor_minutes": "Poor minutes",
        "mos_note": "Per room: its availability over the meeting's scheduled time, the last "
        "readiness check before the start, and its call quality (received audio MOS; poor: "
        "below 3.6) where the meeting quality record has the room in the call.",
        "yes": "yes",
        "no": "no",
        "evidence": "Evidence: every outage",
        "evidence_note": "Each piece of an outage with one cause, inside the period. Excluded "
        "pieces are out of the site's figure (and why); a piece marked ↦ is cut at the "
        "period's bound.",
        "start": "Start",
        "end": "End",
        "duration": "Duration",
        "cause": "Cause",
        "alert": "Alert",
        "excluded": "Excluded",
        "reason": "netmon's reason",
        "split": "cut at the period's bound",
        "gaps": "When netmon was not running",
        "gaps_note": "No site was watched then: this time is unknown for every site.",
        "policy": "How the figures are computed",
        "version": "Version",
        "timezone": "Time zone",
        "what_down": "What counts as down",
        "unknown_handling": "Time without data (unknown)",
        "unknown_excluded": "excluded from the denominator",
        "unknown_down": "counted as down",
        "exclusions": "Left out of the figures",
        "precedence": "Precedence (each second, the first that applies)",
        "heartbeat": "Heartbeat",
        "office_days": "Office days",
        "office_periods": "Office hours",
        "holidays": "Public holidays",
        "holidays_in_period": "Public holidays in the period",
        "formulas": "Formulas",
        "english": "(in English)",
        "seconds": "{value} s",
        "d": "d",
        "h": "h",
        "min": "min",
        "s": "s",
    },
    "vi": {
        "title": "Báo cáo khả dụng",
        "period": "Kỳ báo cáo",
        "scope": "Phạm vi",
        "scope_all": "tất cả đối tượng",
        "district": "Huyện",
        "group": "Nhóm",
        "target": "Đối tượng",
        "generated": "Lập lúc",
        "policy_version": "Quy tắc tính",
        "summary": "Tổng hợp theo huyện",
        "all": "Tất cả",
        "sites": "Điểm",
        "site": "Điểm",
        "links": "Đường truyền",
        "link": "Đường truyền",
        "no_district": "(không thuộc huyện)",
        "service": "Dịch vụ",
        "service_table": "Dịch vụ (các phép thử dịch vụ của từng điểm)",
        "office": "Giờ hành chính",
        "quality": "Chất lượng",
        "meetings": "Cuộc họp",
        "outages": "Số lần ngừng",
        "mttr": "Khắc phục TB (MTTR)",
        "availability": "Khả dụng",
        "worst": "Các điểm kém nhất",
        "rank": "#",
        "down": "Thời gian ngừng",
        "charts": "Tổng quan",
        "daily": "Khả dụng theo ngày",
        "daily_caption": "Mỗi cột là một ngày (giờ địa phương): trung bình khả dụng trong ngày "
        "của {count} điểm (điểm không có số liệu ngày đó không được tính; vạch xám: không điểm "
        "nào có số liệu). Thang đo từ {floor} (đáy) đến 100 % (đỉnh).",
        "hourly": "Thời gian ngừng theo giờ trong ngày",
        "hourly_caption": "Thời gian ngừng được tính của các điểm theo giờ địa phương (0-23), "
        "cộng dồn cả kỳ: màu càng đậm, ngừng càng nhiều (nhiều nhất {peak} trong một giờ).",
        "no_downtime": "không có thời gian ngừng được tính",
        "site_table": "Các điểm",
        "link_table": "Đường truyền huyện",
        "kind": "Loại",
        "up": "Hoạt động",
        "unknown": "Không rõ",
        "maintenance": "Bảo trì",
        "parent": "Do đường truyền cấp trên bị cắt",
        "none": "Không có.",
        "meeting": "Cuộc họp",
        "room": "Điểm cầu",
        "verdict": "Kiểm tra trước họp",
        "ready": "Sẵn sàng",
        "reasons": "Lý do",
        "mean_mos": "MOS trung bình",
        "min_mos": "MOS thấp nhất",
        "poor_minutes": "Số phút kém",
        "mos_note": "Mỗi điểm cầu: khả dụng trong thời gian theo lịch của cuộc họp, kết quả "
        "kiểm tra sẵn sàng cuối cùng trước giờ họp, và chất lượng cuộc gọi (MOS âm thanh nhận "
        "được; kém: dưới 3,6) khi bản ghi chất lượng cuộc họp có điểm cầu trong cuộc gọi.",
        "yes": "có",
        "no": "không",
        "evidence": "Bằng chứng: mọi lần ngừng",
        "evidence_note": "Mỗi đoạn của một lần ngừng có một nguyên nhân, trong kỳ báo cáo. Đoạn "
        "được loại trừ không tính vào số liệu của điểm (kèm lý do); đoạn đánh dấu ↦ bị cắt ở "
        "biên của kỳ.",
        "start": "Bắt đầu",
        "end": "Kết thúc",
        "duration": "Thời lượng",
        "cause": "Nguyên nhân",
        "alert": "Cảnh báo",
        "excluded": "Loại trừ",
        "reason": "Lý do theo netmon",
        "split": "bị cắt ở biên của kỳ",
        "gaps": "Khi netmon không chạy",
        "gaps_note": "Không điểm nào được giám sát: thời gian này là không rõ với mọi điểm.",
        "policy": "Cách tính số liệu",
        "version": "Phiên bản",
        "timezone": "Múi giờ",
        "what_down": "Thế nào là ngừng",
        "unknown_handling": "Thời gian không có số liệu (không rõ)",
        "unknown_excluded": "loại khỏi mẫu số",
        "unknown_down": "tính là ngừng",
        "exclusions": "Không tính vào số liệu",
        "precedence": "Thứ tự ưu tiên (mỗi giây, mục đầu tiên áp dụng được)",
        "heartbeat": "Nhịp tim (heartbeat)",
        "office_days": "Ngày làm việc",
        "office_periods": "Giờ hành chính",
        "holidays": "Ngày lễ",
        "holidays_in_period": "Ngày lễ trong kỳ",
        "formulas": "Công thức",
        "english": "(tiếng Anh)",
        "seconds": "{value} giây",
        "d": "ngày",
        "h": "giờ",
        "min": "phút",
        "s": "giây",
    },
}

# The policy's fixed words and texts in Vietnamese, by their English text (policy.py).
POLICY_VI: dict[str, str] = {
    "down": "ngừng",
    "out of the denominator, shown on its own": "không tính vào mẫu số, thể hiện riêng",
    "counted as down": "tính là thời gian ngừng",
    "maintenance windows": "các khung giờ bảo trì",
    "a site's time behind a cut parent link": "thời gian một điểm nằm sau đường truyền cấp "
    "trên bị cắt",
    "outages crossing the period's bounds are split at them": "lần ngừng vắt qua biên của kỳ "
    "được cắt tại biên",
    "maintenance": "bảo trì",
    "unknown": "không rõ",
    "parent": "đường truyền cấp trên bị cắt",
    "up": "hoạt động",
    "unreachable: netmon's reach verdict (ICMP: lost echoes confirmed by the reach policy's "
    "down_after and confirmation echoes; targets watched by probes alone: their probes "
    "failing)": "không liên lạc được: kết luận của netmon (ICMP: gói echo bị mất, được xác "
    "nhận theo down_after của chính sách và các gói echo xác nhận; đối tượng chỉ giám sát "
    "bằng probe: các probe của nó thất bại)",
    "monday": "Thứ Hai",
    "tuesday": "Thứ Ba",
    "wednesday": "Thứ Tư",
    "thursday": "Thứ Năm",
    "friday": "Thứ Sáu",
    "saturday": "Thứ Bảy",
    "sunday": "Chủ Nhật",
    # FORMULAS: names, then texts
    "availability": "khả dụng",
    "site down": "thời gian ngừng của điểm",
    "link down": "thời gian ngừng của đường truyền",
    "office hours": "giờ hành chính",
    "meeting availability": "khả dụng trong cuộc họp",
    "MTTR": "MTTR",
    FORMULAS["availability"]: "hoạt động / (hoạt động + ngừng)",
    FORMULAS["site down"]: "số giây netmon kết luận đối tượng ngừng, trừ thời gian bảo trì, "
    "không rõ và thời gian đường truyền cấp trên bị cắt (tính cho đường truyền đó)",
    FORMULAS["link down"]: "số giây thiết bị tập trung của huyện (đối tượng cấp trên) bị cắt "
    "(chính nó ngừng, cổng uplink của nó ngừng, hoặc phần lớn đối tượng phía sau nó ngừng) "
    "và có đối tượng phía sau nó ngừng, như cảnh báo DistrictUnreachable",
    FORMULAS["unknown"]: "số giây không có kết luận: netmon không chạy (từ nhịp tim cuối cùng "
    "trước khi dừng đột ngột), hoặc đang chạy nhưng chưa có kết luận về đối tượng",
    FORMULAS["office hours"]: "như trên nhưng chỉ trong giờ hành chính, không tính ngày lễ",
    FORMULAS["meeting availability"]: "hoạt động / (hoạt động + ngừng) của một điểm cầu trong "
    "thời gian theo lịch của cuộc họp; đường truyền bị cắt được tính là ngừng (điểm cầu không "
    "thể tham gia)",
    FORMULAS["MTTR"]: "số giây ngừng được tính / số lần ngừng có thời gian được tính",
}

_MAINTENANCE = re.compile(r"maintenance (?P<id>\S+)(?:: (?P<comment>.*))?", re.DOTALL)
_CHARGED = re.compile(r"charged to the link of (?P<link>.*)", re.DOTALL)


def policy_text(text: str, lang: Lang) -> tuple[str, bool]:
    """`text` of the policy in `lang`, and whether it is (True) or stayed English (False)."""
    if lang == "en":
        return text, True
    translated = POLICY_VI.get(text)
    return (text, False) if translated is None else (translated, True)


def why_text(why: str, lang: Lang) -> str:
    """Why a piece of an outage is excluded (accounting.py's words) in `lang`."""
    if lang == "en":
        return why
    if found := _MAINTENANCE.fullmatch(why):
        comment = found["comment"]
        return f"bảo trì {found['id']}" + (f": {comment}" if comment else "")
    if found := _CHARGED.fullmatch(why):
        return f"tính cho đường truyền của {found['link']}"
    return why


def cause_text(cause: str, lang: Lang) -> str:
    """An alert's name stays as alerts name it; maintenance is a word."""
    if cause == "maintenance":
        return TEXTS[lang]["maintenance"]
    return cause


def decimal(text: str, lang: Lang) -> str:
    return text.replace(".", ",") if lang == "vi" else text


def percent(value: float | None, lang: Lang) -> str:
    """A ratio as a percentage with 3 decimals ("99.685 %", vi "99,685 %"), "—" for None."""
    return DASH if value is None else decimal(f"{value * 100:.3f}", lang) + " %"


def duration(seconds: float | None, lang: Lang) -> str:
    """Seconds as "1 h 15 min 20 s" (vi "1 giờ 15 phút 20 giây"), whole seconds."""
    if seconds is None:
        return DASH
    words = TEXTS[lang]
    left = round(seconds)
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60), ("s", 1)):
        count, left = divmod(left, size)
        if count:
            parts.append(f"{count} {words[unit]}")
    return " ".join(parts) or f"0 {words['s']}"


def mos_text(value: float | None, lang: Lang) -> str:
    """A MOS with 2 decimals, as the meeting quality report writes it; "—" for None."""
    return DASH if value is None else decimal(f"{value:.2f}", lang)


def grade(value: float | None) -> str:
    if value is None:
        return ""
    return "good" if value >= 0.999 else "fair" if value >= 0.99 else "poor"

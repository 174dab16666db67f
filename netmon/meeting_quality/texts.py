"""The post-meeting report's words, in English and Vietnamese."""

from __future__ import annotations

from typing import Literal

Lang = Literal["en", "vi"]
LANGS: tuple[Lang, ...] = ("en", "vi")

TEXTS: dict[Lang, dict[str, str]] = {
    "en": {
        "title": "Meeting quality report",
        "adhoc": "Ad hoc meeting",
        "in_progress": "In progress: the figures so far.",
        "open": "still going on",
        "rooms": "{count} rooms",
        "summary": "{poor} of {total} rooms had poor minutes (received audio MOS below 3.6). "
        "Worst rooms first.",
        "mean_mos": "mean MOS",
        "min_mos": "min MOS",
        "worst_loss": "worst loss",
        "poor_minutes": "poor minutes",
        "no_poor": "no poor minute",
        "poor_at": "Poor (MOS < 3.6)",
        "period": "{start}–{end} ({minutes} min, MOS down to {mos})",
        "not_scored": "No audio score: not in a call, or a codec the E-model cannot score.",
        "path_vs_call": "Loss while poor: the call {call}, netmon's own path to the site {path}.",
        "wan": "Likely the WAN path: netmon's own pings to the site lost about as much.",
        "room": "Likely the room's LAN or the endpoint: netmon's path to the site was clean.",
        "delay": "Delay and jitter, not loss: netmon's RTT to the site {rtt}.",
        "unknown_side": "WAN or the room's LAN: netmon's {sent} pings to the site over those "
        "minutes cannot tell.",
        "unknown": "unknown",
        "timeline": "Received audio MOS over the meeting; the dashed line is 3.6.",
        "about": "MOS is an estimate from ITU-T G.107's E-model (each stream's loss and jitter, "
        "netmon's RTT to the site): 4.4 is a clean narrowband call, users notice below 3.6, "
        "find it poor below 3.1. One sample per room every {interval} s; times in {tz}.",
        "other": "Tiếng Việt",
    },
    "vi": {
        "title": "Báo cáo chất lượng cuộc họp",
        "adhoc": "Cuộc họp đột xuất",
        "in_progress": "Đang diễn ra: số liệu tính đến hiện tại.",
        "open": "chưa kết thúc",
        "rooms": "{count} điểm cầu",
        "summary": "{poor}/{total} điểm cầu có phút chất lượng kém (MOS âm thanh nhận được "
        "dưới 3,6). Điểm cầu kém nhất xếp trước.",
        "mean_mos": "MOS trung bình",
        "min_mos": "MOS thấp nhất",
        "worst_loss": "mất gói cao nhất",
        "poor_minutes": "số phút kém",
        "no_poor": "không có phút nào kém",
        "poor_at": "Chất lượng kém (MOS < 3,6)",
        "period": "{start}–{end} ({minutes} phút, MOS thấp nhất {mos})",
        "not_scored": "Không có điểm âm thanh: không trong cuộc gọi, hoặc codec mà mô hình E "
        "không đánh giá được.",
        "path_vs_call": "Mất gói khi chất lượng kém: cuộc gọi {call}, đường truyền của netmon "
        "tới điểm cầu {path}.",
        "wan": "Nhiều khả năng do đường truyền WAN: ping của netmon tới điểm cầu cũng mất gói "
        "tương tự.",
        "room": "Nhiều khả năng do mạng LAN của phòng họp hoặc thiết bị đầu cuối: đường truyền "
        "của netmon tới điểm cầu không mất gói.",
        "delay": "Do độ trễ và jitter, không phải mất gói: RTT của netmon tới điểm cầu {rtt}.",
        "unknown_side": "Do WAN hay mạng LAN của phòng họp: {sent} gói ping của netmon tới điểm "
        "cầu trong những phút đó chưa đủ để phân biệt.",
        "unknown": "không rõ",
        "timeline": "MOS âm thanh nhận được trong suốt cuộc họp; đường nét đứt là mức 3,6.",
        "about": "MOS là giá trị ước lượng theo mô hình E của ITU-T G.107 (tỷ lệ mất gói và "
        "jitter của từng luồng, RTT netmon đo tới điểm cầu): 4,4 là cuộc gọi băng hẹp không "
        "lỗi, dưới 3,6 người dùng nhận thấy rõ, dưới 3,1 là kém. Mỗi điểm cầu lấy một mẫu "
        "mỗi {interval} giây; thời gian theo {tz}.",
        "other": "English",
    },
}

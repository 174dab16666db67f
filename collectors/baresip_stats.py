"""A baresip call's media statistics as its control socket (ctrl_tcp) tells them: pure parsing.

baresip 1.0 (Debian 12) has no command that answers RTP/RTCP counters: its menu's `callstat`
prints the call's SDP only, `listcalls` the calls. What it does give is an event on the
control connection each time RTCP arrives for a stream (every ~5 s per stream), captured here
(tests/data/baresip/):

    {"event": true, "type": "CALL_RTCP", "class": "call", "accountaor": "sip:alice@...",
     "direction": "outgoing", "peeruri": "sip:bob@...", "id": "27bac4f0beaf3b24",
     "param": "audio",
     "rtcp_stats": {"tx": {"sent": 500, "lost": 0, "jit": 1125},
                    "rx": {"sent": 500, "lost": 0, "jit": 1500}, "rtt": 107}}

(libre's `rtcp_stats`): `tx.sent` RTP packets this side sent; `tx.lost` and `tx.jit` what the
peer last reported about them in its RTCP receiver report (cumulative lost, interarrival
jitter); `rx.sent` RTP packets received, `rx.lost` packets missing by sequence number
(expected - received, cumulative; negative when duplicates outnumber losses), `rx.jit` the
interarrival jitter this side computes; jitters and `rtt` in microseconds. `param` is the
stream's media, `id` the call. A call's end is the event `CALL_CLOSED` with the same `id`.

The counters are cumulative since the call started: the loss of an interval is the difference
between two reports, `Δlost / (Δlost + Δpackets)` (`interval()`), as Cisco's LastIntervalLost.
Nor does baresip 1.0 give byte counts or the codec in use on this socket: the codec comes from
`callstat`'s SDP (`callstat_codecs()`: the first remote format of each media is what the
answer chose), and the bit rate is estimated only for constant-rate codecs (G.711, G.722: 64
kbit/s of payload, thinned by the interval's loss on the receiving side), None otherwise.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

Direction = Literal["rx", "tx"]
RTCP_EVENT = "CALL_RTCP"
CLOSED_EVENT = "CALL_CLOSED"
# Payload bit rate of constant-rate codecs (their RTP payload per second, headers excluded).
CONSTANT_RATE_BPS = {"PCMU": 64_000.0, "PCMA": 64_000.0, "G722": 64_000.0}


class BaresipStatsError(ValueError):
    """Not a statistics event baresip sends."""


@dataclass(frozen=True, slots=True)
class StreamStats:
    """One direction of one stream of one call, cumulative since the call started.

    `rx`: packets received, lost by sequence number, the jitter measured here. `tx`: packets
    sent, lost and jitter as the peer's last receiver report says."""

    call_id: str
    peer: str
    direction: Direction
    media: str  # "audio", "video"
    codec: str | None
    packets: int
    lost: int
    jitter: float  # seconds
    rtt: float  # seconds, the same for both directions of a stream

    @property
    def expected(self) -> int:
        """Packets that should have arrived (rx) or were sent (tx)."""
        if self.direction == "rx":
            return self.packets + max(self.lost, 0)
        return self.packets

    @property
    def loss_ratio(self) -> float:
        """Lost over expected since the call started; 0 before any packet."""
        expected = self.expected
        return min(max(self.lost, 0) / expected, 1.0) if expected else 0.0

    @property
    def key(self) -> tuple[str, str, Direction]:
        return (self.call_id, self.media, self.direction)


@dataclass(frozen=True, slots=True)
class IntervalStats:
    """What changed between two reports of the same stream and direction."""

    stream: StreamStats  # the later report
    seconds: float
    packets: int
    lost: int

    @property
    def expected(self) -> int:
        return self.packets + self.lost if self.stream.direction == "rx" else self.packets

    @property
    def loss_ratio(self) -> float:
        return min(self.lost / self.expected, 1.0) if self.expected > 0 else 0.0

    @property
    def packet_rate(self) -> float:
        return self.packets / self.seconds if self.seconds > 0 else 0.0

    @property
    def bitrate(self) -> float | None:
        """Bits per second of payload, for constant-rate codecs only (an estimate: baresip
        1.0 reports no bytes); None for the others."""
        nominal = CONSTANT_RATE_BPS.get((self.stream.codec or "").upper())
        if nominal is None or self.seconds <= 0:
            return None
        return nominal * (1.0 - self.loss_ratio) if self.stream.direction == "rx" else nominal


def _document(event: Mapping[str, Any] | str | bytes) -> Mapping[str, Any]:
    if isinstance(event, str | bytes):
        try:
            event = json.loads(event)
        except ValueError as exc:
            raise BaresipStatsError(f"not JSON: {exc}") from None
    if not isinstance(event, Mapping):
        raise BaresipStatsError("not a JSON object")
    return event


def _count(side: Mapping[str, Any], name: str, where: str) -> int:
    value = side.get(name)
    if isinstance(value, bool) or not isinstance(value, int):
        raise BaresipStatsError(f"{where}.{name}: {value!r} is not an integer")
    return value


def is_rtcp_event(event: Mapping[str, Any]) -> bool:
    return event.get("event") is True and event.get("type") == RTCP_EVENT


def closed_call(event: Mapping[str, Any]) -> str | None:
    """The id of the call a `CALL_CLOSED` event ends; None for any other event."""
    if event.get("event") is True and event.get("type") == CLOSED_EVENT:
        return str(event.get("id", ""))
    return None


def parse_rtcp_event(
    event: Mapping[str, Any] | str | bytes, codecs: Mapping[str, str] | None = None
) -> tuple[StreamStats, StreamStats]:
    """A `CALL_RTCP` event (the object, or its JSON) as its stream's (rx, tx) statistics;
    `codecs` (media -> codec name, from `callstat_codecs`) names the codec when known."""
    document = _document(event)
    if not is_rtcp_event(document):
        raise BaresipStatsError(f"not a {RTCP_EVENT} event: {document.get('type')!r}")
    stats = document.get("rtcp_stats")
    if not isinstance(stats, Mapping):
        raise BaresipStatsError("rtcp_stats: missing")
    media = str(document.get("param", ""))
    if not media:
        raise BaresipStatsError("param: no media named")
    rtt_us = stats.get("rtt", 0)
    rtt = rtt_us / 1e6 if isinstance(rtt_us, int) and not isinstance(rtt_us, bool) else 0.0
    codec = (codecs or {}).get(media)
    streams = []
    for direction in ("rx", "tx"):
        side = stats.get(direction)
        if not isinstance(side, Mapping):
            raise BaresipStatsError(f"rtcp_stats.{direction}: missing")
        where = f"rtcp_stats.{direction}"
        jitter = _count(side, "jit", where)
        streams.append(
            StreamStats(
                call_id=str(document.get("id", "")),
                peer=str(document.get("peeruri", "")),
                direction=direction,
                media=media,
                codec=codec,
                packets=max(_count(side, "sent", where), 0),
                lost=_count(side, "lost", where),
                jitter=max(jitter, 0) / 1e6,
                rtt=max(rtt, 0.0),
            )
        )
    return streams[0], streams[1]


def interval(previous: StreamStats | None, current: StreamStats, seconds: float) -> IntervalStats:
    """The interval between two reports of one stream and direction. A first report, another
    call's or counters that went back (a new RTP source) count from zero."""
    fresh = (
        previous is None
        or previous.key != current.key
        or current.packets < previous.packets
        or current.expected < previous.expected
    )
    if fresh or previous is None:
        return IntervalStats(current, seconds, current.packets, max(current.lost, 0))
    lost = max(current.lost, 0) - max(previous.lost, 0)
    packets = current.packets - previous.packets
    if current.direction == "rx":
        # A late packet counted as lost earlier lowers `lost` again: it did arrive.
        lost = max(lost, 0)
    return IntervalStats(current, seconds, packets, max(lost, 0))


_MEDIA_LINE = re.compile(r"(\w+) RTP/\S+")
_FORMAT_LINE = re.compile(r"\s+\d+ ([^/\s]+)/\d+")


def callstat_codecs(text: str) -> dict[str, str]:
    """media -> codec from `callstat`'s answer: the first remote format of each media (the
    answer lists the chosen codec first), telephone-event left aside. Empty before the peer's
    SDP is known."""
    codecs: dict[str, str] = {}
    media: str | None = None
    remote = False
    for line in text.splitlines():
        header = _MEDIA_LINE.fullmatch(line.strip())
        if header and not line.startswith(" "):
            media, remote = header.group(1), False
            continue
        stripped = line.strip()
        if stripped.endswith(":"):
            remote = stripped == "remote formats:"
            continue
        found = _FORMAT_LINE.match(line)
        if media and remote and found and media not in codecs:
            name = found.group(1)
            if name.lower() != "telephone-event":
                codecs[media] = name
    return codecs


# The menu's listings are text for a terminal, with colour codes.
_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_REGINFO_LINE = re.compile(r">?\s*(sips?:\S+)\s+(OK|ERR|zzz)\b", re.IGNORECASE)
_LISTCALLS_LINE = re.compile(r">?\s*\[line \d+\]\s+(\d+):(\d\d):(\d\d)\s+([A-Z]+)\s+(\S+)")
_CALLSTAT_ID = re.compile(r"\bid=([0-9A-Za-z]+)")
# baresip's call states in the words the other endpoints use (netmon.model.Call).
CALL_STATES = {
    "ESTABLISHED": "connected",
    "INCOMING": "ringing",
    "OUTGOING": "dialling",
    "RINGING": "dialling",
    "EARLY": "dialling",
}


@dataclass(frozen=True, slots=True)
class AgentRegistration:
    """One user agent of `reginfo`: its AoR and `OK` (registered), `ERR` (refused or
    unanswered) or `zzz` (not registered yet)."""

    aor: str
    state: str


@dataclass(frozen=True, slots=True)
class ListedCall:
    """One call of `listcalls`: its state (baresip's word), peer and age in seconds."""

    state: str
    peer: str
    seconds: float


def parse_reginfo(text: str) -> list[AgentRegistration]:
    """`reginfo`'s user agents (an empty list when it has none)."""
    found = []
    for line in _ANSI.sub("", text).splitlines():
        matched = _REGINFO_LINE.match(line.strip())
        if matched:
            found.append(AgentRegistration(matched.group(1), matched.group(2).upper()))
    return found


def parse_listcalls(text: str) -> list[ListedCall]:
    """`listcalls`' calls, terminated ones left out."""
    calls = []
    for line in _ANSI.sub("", text).splitlines():
        matched = _LISTCALLS_LINE.match(line.strip())
        if matched is None or matched.group(4) == "TERMINATED":
            continue
        hours, minutes, seconds = (int(matched.group(n)) for n in (1, 2, 3))
        calls.append(
            ListedCall(matched.group(4), matched.group(5), hours * 3600 + minutes * 60 + seconds)
        )
    return calls


def callstat_call_id(text: str) -> str | None:
    """The id of the call `callstat` describes (its current call); None without one."""
    matched = _CALLSTAT_ID.search(text)
    return matched.group(1) if matched else None

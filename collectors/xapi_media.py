"""A Cisco codec's media statistics (`Status/MediaChannels`) into `MediaStream`s.

Read only while the codec is in a call (its `Call` status says so), one more GET per poll.
Per channel: Direction (Incoming: what the room receives, `rx`), Type (Audio, Video),
Video/ChannelRole (Main, Presentation), the protocol, and Netstat: `LastIntervalLost` and
`LastIntervalReceived` give the loss of the codec's last statistics interval (`Loss`/`Packets`
count since the call began, which would hide a fault that starts late in a long meeting),
`Jitter` in milliseconds, `ChannelRate` in bit/s, Video/FrameRate. The element is `Netstat`
on RoomOS and CE; `NetStat` is accepted too.
"""

from __future__ import annotations

from xml.etree.ElementTree import Element

from netmon.model import MediaStream

DIRECTIONS = {"incoming": "rx", "outgoing": "tx"}
MEDIA = {"audio": "audio", "video": "video"}


def _number(node: Element | None, path: str) -> float | None:
    found = node.find(path) if node is not None else None
    if found is None or not found.text:
        return None
    try:
        value = float(found.text.strip())
    except ValueError:
        return None
    return value if 0 <= value < 1e12 else None


def _text(node: Element, path: str) -> str:
    found = node.find(path)
    return (found.text or "").strip()[:64] if found is not None else ""


def parse_media(root: Element) -> list[MediaStream]:
    streams = []
    for call in root.findall("MediaChannels/Call"):
        call_id = call.get("item", "")[:16]
        for channel in call.findall("Channel"):
            direction = DIRECTIONS.get(_text(channel, "Direction").lower())
            media = MEDIA.get(_text(channel, "Type").lower())
            if direction is None or media is None:
                continue  # a data channel, or a shape this reader does not know
            netstat = channel.find("Netstat")
            if netstat is None:
                netstat = channel.find("NetStat")
            lost = _number(netstat, "LastIntervalLost")
            received = _number(netstat, "LastIntervalReceived")
            loss = None
            if lost is not None and received is not None and lost + received > 0:
                loss = lost / (lost + received)
            jitter = _number(netstat, "Jitter")
            kind = "Audio" if media == "audio" else "Video"
            role = _text(channel, "Video/ChannelRole").lower() if media == "video" else "main"
            streams.append(
                MediaStream(
                    call=call_id,
                    direction=direction,
                    media=media,
                    role=role if role in ("main", "presentation") else "main",
                    codec=_text(channel, f"{kind}/Protocol"),
                    loss_ratio=loss,
                    jitter=None if jitter is None else jitter / 1000,
                    bitrate=_number(netstat, "ChannelRate"),
                    frame_rate=_number(channel, "Video/FrameRate") if media == "video" else None,
                    channel=channel.get("item", "")[:16],
                )
            )
    return streams

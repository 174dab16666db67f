"""rtpengine's "ng" control protocol, the part Kamailio's rtpengine module speaks: pure.

Kamailio sends `<cookie> <bencoded dictionary>` over UDP (`{"command": "offer", "call-id": ...,
"from-tag": ..., "sdp": ...}`, then `answer` with a `to-tag`, `delete`, and `ping` at start) and
expects `<cookie> <bencoded answer>` (`{"result": "ok", "sdp": <rewritten SDP>}`, `{"result":
"pong"}`, or `{"result": "error", "error-reason": ...}`). netmon_lab.media_relay answers it; this
module only encodes, decodes and rewrites SDP.

An SDP is rewritten the way a media relay does: every `c=` line names the relay's address and
each `m=` line's port becomes the relay's port for that stream (in order; a port 0 stream, a
refused one, stays 0). RTCP shares the RTP port (`a=rtcp-mux`: the lab's user agents are set up
for it), so one port per stream suffices.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

Bencoded = bytes | int | list["Bencoded"] | dict[bytes, "Bencoded"]


class NgError(ValueError):
    """A control message that is not the ng protocol."""


def bencode(value: object) -> bytes:
    """`value` (str, bytes, int, list, dict with str/bytes keys) bencoded."""
    if isinstance(value, str):
        value = value.encode()
    if isinstance(value, bytes):
        return b"%d:%s" % (len(value), value)
    if isinstance(value, bool) or not isinstance(value, int | list | tuple | dict):
        raise TypeError(f"cannot bencode {type(value).__name__}")
    if isinstance(value, int):
        return b"i%de" % value
    if isinstance(value, list | tuple):
        return b"l" + b"".join(bencode(item) for item in value) + b"e"
    items = sorted((k.encode() if isinstance(k, str) else k, v) for k, v in value.items())
    return b"d" + b"".join(bencode(k) + bencode(v) for k, v in items) + b"e"


def bdecode(data: bytes) -> Bencoded:
    """The one bencoded value `data` holds; NgError when it is not exactly that."""
    value, end = _decode(data, 0)
    if end != len(data):
        raise NgError("bytes after the bencoded value")
    return value


def _decode(data: bytes, at: int) -> tuple[Bencoded, int]:
    if at >= len(data):
        raise NgError("bencoded value cut short")
    head = data[at : at + 1]
    if head == b"i":
        end = data.find(b"e", at)
        if end < 0:
            raise NgError("an integer without its end")
        try:
            return int(data[at + 1 : end]), end + 1
        except ValueError:
            raise NgError("a malformed integer") from None
    if head in (b"l", b"d"):
        items: list[Bencoded] = []
        at += 1
        while data[at : at + 1] != b"e":
            item, at = _decode(data, at)
            items.append(item)
        if head == b"l":
            return items, at + 1
        if len(items) % 2 or not all(isinstance(k, bytes) for k in items[::2]):
            raise NgError("a dictionary whose keys are not strings")
        return {bytes(k): v for k, v in zip(items[::2], items[1::2], strict=True)}, at + 1  # type: ignore[arg-type]
    colon = data.find(b":", at)
    if colon < 0 or not data[at:colon].isdigit():
        raise NgError("a malformed string length")
    end = colon + 1 + int(data[at:colon])
    if end > len(data):
        raise NgError("a string cut short")
    return data[colon + 1 : end], end


@dataclass(frozen=True, slots=True)
class NgRequest:
    cookie: bytes
    command: str
    fields: Mapping[str, Bencoded]

    def text(self, key: str) -> str:
        value = self.fields.get(key, b"")
        return value.decode(errors="replace") if isinstance(value, bytes) else ""


def parse_request(datagram: bytes) -> NgRequest:
    """`<cookie> <bencoded dictionary with a command>` as a request; NgError otherwise."""
    cookie, space, body = datagram.partition(b" ")
    if not space or not cookie:
        raise NgError("no cookie")
    document = bdecode(body)
    if not isinstance(document, dict) or not isinstance(document.get(b"command"), bytes):
        raise NgError("no command")
    fields = {k.decode(errors="replace"): v for k, v in document.items()}
    command = fields.pop("command")
    assert isinstance(command, bytes)
    return NgRequest(cookie, command.decode(errors="replace"), fields)


def reply(cookie: bytes, answer: Mapping[str, object]) -> bytes:
    return cookie + b" " + bencode(dict(answer))


@dataclass(frozen=True, slots=True)
class SdpMedia:
    """One `m=` line: its media, where the SDP's owner receives it (port 0: refused)."""

    media: str
    host: str
    port: int


_MEDIA = re.compile(r"m=(\S+) (\d+)(/\d+)? (.*)")
_CONNECTION = re.compile(r"c=IN IP4 (\S+)")


def sdp_media(sdp: str) -> list[SdpMedia]:
    """The streams an SDP offers or answers, each with its connection address (the media's
    own `c=`, else the session's)."""
    session_host = ""
    streams: list[SdpMedia] = []
    for line in sdp.splitlines():
        connection = _CONNECTION.fullmatch(line.strip())
        if connection:
            if streams:
                streams[-1] = SdpMedia(streams[-1].media, connection.group(1), streams[-1].port)
            else:
                session_host = connection.group(1)
            continue
        media = _MEDIA.fullmatch(line.strip())
        if media:
            streams.append(SdpMedia(media.group(1), session_host, int(media.group(2))))
    return streams


def rewrite_sdp(sdp: str, host: str, ports: Sequence[int]) -> str:
    """The SDP with every connection address `host` and the n-th stream's port `ports[n]`
    (a refused stream, port 0, stays refused); line endings kept."""
    lines = sdp.split("\n")
    index = 0
    for number, line in enumerate(lines):
        ending = "\r" if line.endswith("\r") else ""
        bare = line.rstrip("\r")
        if _CONNECTION.fullmatch(bare):
            lines[number] = f"c=IN IP4 {host}{ending}"
        media = _MEDIA.fullmatch(bare)
        if media:
            if index >= len(ports):
                raise ValueError("more streams in the SDP than ports for them")
            port = ports[index] if int(media.group(2)) else 0
            count = media.group(3) or ""
            lines[number] = f"m={media.group(1)} {port}{count} {media.group(4)}{ending}"
            index += 1
    return "\n".join(lines)

"""SIP messages as the OPTIONS probe writes and reads them (RFC 3261): the request it sends,
the responses it accepts, and how a response is matched to its request.

Pure functions over bytes and text, table-tested; no sockets and no clock (`collectors/sip.py`
owns the transaction).
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from typing import Literal

SIP_PORT = 5060
MAGIC_COOKIE = "z9hG4bK"  # RFC 3261 8.1.1.7: marks a branch as globally unique

# RFC 3261 25.1, `user`: unreserved / escaped / user-unreserved characters.
SIP_USER = re.compile(r"^[A-Za-z0-9\-_.!~*'()&=+$,;?/%]+$")
_STATUS_LINE = re.compile(r"^SIP/2\.0 ([1-6][0-9][0-9])(?: (.*))?$")
_REQUEST_LINE = re.compile(r"^[A-Za-z]+ \S+ SIP/2\.0$")
_BRANCH = re.compile(r";\s*branch\s*=\s*([^;,\s]+)", re.IGNORECASE)
_HEAD_END = re.compile(rb"\r?\n\r?\n")
# RFC 3261 7.3.3: compact header names.
_COMPACT = {
    "v": "via",
    "i": "call-id",
    "f": "from",
    "t": "to",
    "l": "content-length",
    "m": "contact",
    "c": "content-type",
    "k": "supported",
    "s": "subject",
    "e": "content-encoding",
}


class MalformedResponseError(ValueError):
    """A message that is not a SIP response we can read; the text says why, shortly."""


class NotAResponseError(MalformedResponseError):
    """A well-formed SIP request: not for us to answer, nor a sign of a broken peer."""


@dataclass(frozen=True, slots=True)
class ParsedResponse:
    status_code: int
    reason_phrase: str
    headers: tuple[tuple[str, str], ...]  # full lower-case names, in message order

    def header(self, name: str) -> str | None:
        for key, value in self.headers:
            if key == name:
                return value
        return None

    @property
    def content_length(self) -> int:
        text = self.header("content-length")
        if text is None:
            return 0
        # str.isdigit() takes '²' and '٣', which int() refuses or reads: ASCII digits only.
        if not (text.isascii() and text.isdigit()):
            raise MalformedResponseError(f"bad Content-Length {text[:20]!r}")
        return int(text)


@dataclass(frozen=True, slots=True)
class OptionsRequest:
    """One OPTIONS request as sent, and the keys its responses must carry."""

    data: bytes
    call_id: str
    branch: str
    cseq: int


def _host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def hostport(host: str, port: int, *, always: bool = False) -> str:
    return _host(host) if port == SIP_PORT and not always else f"{_host(host)}:{port}"


def build_options(
    *,
    host: str,
    port: int,
    user: str | None,
    transport: Literal["udp", "tcp"],
    local_host: str,
    local_port: int,
    cseq: int,
    user_agent: str,
    branch: str | None = None,
    call_id: str | None = None,
    tag: str | None = None,
) -> OptionsRequest:
    """A well-formed OPTIONS request (RFC 3261 8.1.1, 11.1) from local_host:local_port."""
    branch = branch or MAGIC_COOKIE + secrets.token_hex(8)
    call_id = call_id or secrets.token_hex(12)
    tag = tag or secrets.token_hex(6)
    uri = f"sip:{user + '@' if user else ''}{hostport(host, port)}"
    contact = f"sip:netmon@{hostport(local_host, local_port, always=True)}"
    if transport == "tcp":
        contact += ";transport=tcp"
    lines = [
        f"OPTIONS {uri} SIP/2.0",
        # rport (RFC 3581): answer to the port we sent from, even behind a NAT.
        f"Via: SIP/2.0/{transport.upper()} {hostport(local_host, local_port, always=True)}"
        f";branch={branch};rport",
        "Max-Forwards: 70",
        f"From: <sip:netmon@{_host(local_host)}>;tag={tag}",
        f"To: <{uri}>",
        f"Call-ID: {call_id}",
        f"CSeq: {cseq} OPTIONS",
        f"Contact: <{contact}>",
        "Accept: application/sdp",
        f"User-Agent: {user_agent}",
        "Content-Length: 0",
    ]
    data = ("\r\n".join(lines) + "\r\n\r\n").encode()
    return OptionsRequest(data=data, call_id=call_id, branch=branch, cseq=cseq)


def printable(text: str, limit: int = 100) -> str:
    # Reason phrases and Server headers end up in logs and the API: keep them short and tame.
    cleaned = "".join(ch if ch.isprintable() else "?" for ch in text.strip())
    return cleaned[:limit]


def parse_response(data: bytes) -> ParsedResponse:
    """The status line and headers of a SIP response; the body, if any, is not looked at."""
    match = _HEAD_END.search(data)
    head_bytes = data[: match.start()] if match else data
    try:
        head = head_bytes.decode("utf-8")
    except UnicodeDecodeError:
        raise MalformedResponseError("not UTF-8 text") from None
    lines = head.lstrip("\r\n").replace("\r\n", "\n").split("\n")
    status = _STATUS_LINE.match(lines[0])
    if status is None:
        if _REQUEST_LINE.match(lines[0]):
            raise NotAResponseError("a SIP request, not a response")
        raise MalformedResponseError(f"no SIP/2.0 status line: {printable(lines[0], 40)!r}")
    # Each header's value as its parts: a continuation line adds one, joined once at the end
    # (joining at every line copies the value each time: quadratic in a datagram of them).
    headers: list[tuple[str, list[str]]] = []
    for line in lines[1:]:
        if line[:1] in (" ", "\t") and headers:
            # RFC 3261 7.3.1: a line starting with white space continues the previous header.
            headers[-1][1].append(line.strip())
            continue
        name, colon, value = line.partition(":")
        name = name.strip().lower()
        if not colon or not name or " " in name:
            raise MalformedResponseError(f"bad header line: {printable(line, 40)!r}")
        headers.append((_COMPACT.get(name, name), [value.strip()]))
    response = ParsedResponse(
        int(status.group(1)),
        printable(status.group(2) or ""),
        tuple((name, " ".join(parts)) for name, parts in headers),
    )
    for required in ("via", "call-id", "cseq"):
        if response.header(required) is None:
            raise MalformedResponseError(f"no {required.title()} header")
    return response


def matches(request: OptionsRequest, response: ParsedResponse) -> bool:
    """Whether `response` answers `request` (RFC 3261 17.1.3: top Via branch and CSeq method;
    the Call-ID too, since ours is unique)."""
    if response.header("call-id") != request.call_id:
        return False
    top_via = (response.header("via") or "").split(",", 1)[0]
    branch = _BRANCH.search(top_via)
    if branch is None or branch.group(1) != request.branch:
        return False
    number, _, method = (response.header("cseq") or "").partition(" ")
    return number.strip() == str(request.cseq) and method.strip().upper() == "OPTIONS"


def request_length(head: bytes) -> int:
    for line in head.decode("utf-8", "replace").split("\r\n")[1:]:
        name, _, value = line.partition(":")
        value = value.strip()
        if name.strip().lower() in ("content-length", "l") and value.isascii() and value.isdigit():
            return int(value)
    return 0

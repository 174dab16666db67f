"""A Cisco codec's xAPI status XML (`/getxml?location=/Status`) into EndpointStatus's parts.

Shapes as Cisco's CE 9.x and RoomOS xAPI reference guides give them (tests/data/cisco/ has
samples with their source). Nothing here does I/O: `StatusReader` is fed the answer chunk by
chunk as it arrives, refuses it past `max_body` and parses it with defusedxml (no DTD, so no
entity is ever declared, let alone expanded: an XML bomb is refused at its DOCTYPE), and
`parse_status` reads the tree.

What each part is read from, and the words mapped:
- SIP/Registration[n]: Status Registered → registered, Registering → registering, Failed →
  failed, Deregister → unregistered, Inactive (SIP not set up) → inactive (any other word:
  unregistered, the word kept as the reason); Reason; URI.
- H323/Gatekeeper: Registered; Discovering/Discovered/Authenticating/Authenticated/Registering
  → registering; Rejected → failed; Required (set up, not registered) → unregistered;
  Inactive → inactive; Address.
- Call[n]: Status, Protocol, Direction (lower-cased), RemoteNumber, Duration; no Call: idle.
- Standby/State: Standby and EnteringStandby → in standby; Off and Halfwake → awake.
- Cameras/Camera[n]/Connected True/False, named by Model (or "Camera n").
- Peripherals/ConnectedDevice[n]: Type Camera, TouchPanel, AudioMicrophone (others "other"),
  Name, Status Connected (anything else, as ResponseTimedOut, is disconnected).
- Video/Output/Connector[n]/Connected: each connected output is a display; a codec has more
  outputs than a room has screens, so an empty output is no fault: only when no output at all
  has a display is there one disconnected display ("no display on any output").
- Microphones, by firmware: Audio/Input/Connectors/Microphone[n]/ConnectionStatus (CE 9 analog
  inputs: Connected/NotConnected/Unknown; Unknown is left out, and as with displays unused
  inputs are no fault: none connected is one disconnected microphone), or
  Audio/Microphones/NumberOfMicrophones (or ConnectedMicrophones): a count, 0 is disconnected;
  and network microphones are ConnectedDevices of Type AudioMicrophone. A codec that gives none
  of these has microphones in `missing`.
- Diagnostics/Message[n]: Level Critical/Error/Warning/Info (anything else: info), Type,
  Description.
- SystemUnit/ProductId, SystemUnit/Software/Version (else the root's `version`),
  SystemUnit/Hardware/Module/SerialNumber.
A part the answer lacks is named in `missing`; an idle codec's absent Call is not missing.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from xml.etree.ElementTree import Element

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import DefusedXMLParser

from netmon.model import (
    Call,
    Diagnostic,
    DiagnosticLevel,
    MediaStream,
    Peripheral,
    PeripheralKind,
    Registration,
    RegistrationState,
)


class StatusError(Exception):
    """The answer is not an xAPI status: `reason` "parse" or "too_large", `detail` says why."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


SIP_STATES = {
    "registered": RegistrationState.REGISTERED,
    "registering": RegistrationState.REGISTERING,
    "failed": RegistrationState.FAILED,
    "deregister": RegistrationState.UNREGISTERED,
    "inactive": RegistrationState.INACTIVE,
}
H323_STATES = {
    "registered": RegistrationState.REGISTERED,
    "discovering": RegistrationState.REGISTERING,
    "discovered": RegistrationState.REGISTERING,
    "authenticating": RegistrationState.REGISTERING,
    "authenticated": RegistrationState.REGISTERING,
    "registering": RegistrationState.REGISTERING,
    "rejected": RegistrationState.FAILED,
    "required": RegistrationState.UNREGISTERED,
    "inactive": RegistrationState.INACTIVE,
}
DEVICE_KINDS = {
    "camera": PeripheralKind.CAMERA,
    "touchpanel": PeripheralKind.TOUCH_PANEL,
    "audiomicrophone": PeripheralKind.MICROPHONE,
}
LEVELS = {
    "critical": DiagnosticLevel.CRITICAL,
    "error": DiagnosticLevel.ERROR,
    "warning": DiagnosticLevel.WARNING,
    "info": DiagnosticLevel.INFO,
}
STANDBY = {"standby": True, "enteringstandby": True, "off": False, "halfwake": False}
MAX_TEXT = 200  # characters kept of any value that goes into a reason, name or description


class StatusReader:
    """Feeds an answer to a defused parser as it arrives; refuses it past `max_body` bytes."""

    def __init__(self, max_body: int) -> None:
        self._max_body = max_body
        self._size = 0
        self._first = b""
        self._parser = DefusedXMLParser(target=ET.TreeBuilder(), forbid_dtd=True)

    def feed(self, chunk: bytes) -> None:
        self._size += len(chunk)
        if self._size > self._max_body:
            raise StatusError("too_large", f"the answer is over {self._max_body} bytes")
        if len(self._first) < 64:
            self._first = (self._first + chunk)[:64]
            if _looks_like_html(self._first):
                raise StatusError("parse", "an HTML page instead of xAPI XML (a login page?)")
        try:
            self._parser.feed(chunk)
        except (ET.ParseError, DefusedXmlException, ValueError, LookupError) as exc:
            raise _refused(exc) from None

    def close(self) -> Element:
        if self._size == 0:
            raise StatusError("parse", "an empty answer")
        try:
            root = self._parser.close()
        except (ET.ParseError, DefusedXmlException, ValueError, LookupError) as exc:
            raise _refused(exc) from None
        if root.tag != "Status":
            raise StatusError("parse", f"not an xAPI status: <{_clip(root.tag, 40)}>")
        return root


def _looks_like_html(start: bytes) -> bool:
    lowered = start.lstrip().lower()
    return lowered.startswith((b"<!doctype html", b"<html"))


def _refused(exc: Exception) -> StatusError:
    if isinstance(exc, DefusedXmlException):
        # DTDForbidden, EntitiesForbidden: the answer declares what a codec never does.
        return StatusError("parse", f"refused XML with a DTD or entities ({type(exc).__name__})")
    if isinstance(exc, ET.ParseError):
        line, column = exc.position
        return StatusError("parse", f"malformed or truncated XML at line {line}, column {column}")
    if isinstance(exc, LookupError):
        return StatusError("parse", "XML in an encoding Python does not know")
    return StatusError("parse", f"unreadable XML ({type(exc).__name__})")


def parse_xml(data: bytes, max_body: int) -> Element:
    """A whole answer at once (tests and fixtures): the `<Status>` root, or StatusError."""
    reader = StatusReader(max_body)
    reader.feed(data)
    return reader.close()


def merge(roots: list[Element]) -> Element:
    """One `<Status>` holding the sections of several answers (one request per path)."""
    if len(roots) == 1:
        return roots[0]
    merged = Element("Status", roots[0].attrib if roots else {})
    for root in roots:
        merged.extend(list(root))
    return merged


@dataclass(slots=True)
class StatusParts:
    """What `EndpointStatus` gets from one status read."""

    model: str = ""
    software: str = ""
    serial: str = ""
    registrations: list[Registration] = field(default_factory=list)
    calls: list[Call] = field(default_factory=list)
    standby: bool | None = None
    peripherals: list[Peripheral] = field(default_factory=list)
    diagnostics: list[Diagnostic] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)


def _clip(value: str, limit: int = MAX_TEXT) -> str:
    value = "".join(ch if ch.isprintable() else " " for ch in value.strip())
    return value if len(value) <= limit else value[: limit - 1] + "…"


def _text(node: Element | None, path: str) -> str | None:
    """The stripped text at `path` under node; None when there is no such element."""
    if node is None:
        return None
    found = node.find(path)
    if found is None:
        return None
    return _clip(found.text or "")


def _number(value: str | None) -> float | None:
    try:
        number = float(value) if value else None
    except ValueError:
        return None
    return number if number is not None and 0 <= number < 1e12 else None


def parse_status(root: Element) -> StatusParts:
    parts = StatusParts()
    _system_unit(root, parts)
    _registrations(root, parts)
    for call in root.findall("Call"):
        status = (_text(call, "Status") or "").lower()
        if status in ("", "idle"):
            continue
        parts.calls.append(
            Call(
                status=status,
                protocol=(_text(call, "Protocol") or "").lower(),
                direction=(_text(call, "Direction") or "").lower(),
                remote=_text(call, "RemoteNumber") or "",
                duration=_number(_text(call, "Duration")),
            )
        )
    state = _text(root, "Standby/State")
    parts.standby = STANDBY.get((state or "").lower())
    if parts.standby is None:
        parts.missing.append("Standby/State")
    _cameras(root, parts)
    _devices(root, parts)
    _displays(root, parts)
    _microphones(root, parts)
    _diagnostics(root, parts)
    return parts


def _system_unit(root: Element, parts: StatusParts) -> None:
    for path, name in (
        ("SystemUnit/ProductId", "model"),
        ("SystemUnit/Software/Version", "software"),
        ("SystemUnit/Hardware/Module/SerialNumber", "serial"),
    ):
        value = _text(root, path)
        if name == "software" and not value:
            value = _clip(root.get("version", ""))
        if value:
            setattr(parts, name, value)
        else:
            parts.missing.append(path)


def _registrations(root: Element, parts: StatusParts) -> None:
    entries = root.findall("SIP/Registration")
    if not entries:
        parts.missing.append("SIP/Registration")
    for entry in entries:
        word = _text(entry, "Status") or ""
        state = SIP_STATES.get(word.lower(), RegistrationState.UNREGISTERED)
        reason = _text(entry, "Reason") or ("" if word.lower() in SIP_STATES else word)
        parts.registrations.append(
            Registration("sip", state, reason=reason, address=_text(entry, "URI") or "")
        )
    gatekeeper = root.find("H323/Gatekeeper")
    if gatekeeper is None:
        parts.missing.append("H323/Gatekeeper")
        return
    word = _text(gatekeeper, "Status") or ""
    state = H323_STATES.get(word.lower(), RegistrationState.UNREGISTERED)
    reason = _text(gatekeeper, "Reason") or ("" if word.lower() in H323_STATES else word)
    parts.registrations.append(
        Registration("h323", state, reason=reason, address=_text(gatekeeper, "Address") or "")
    )


def _cameras(root: Element, parts: StatusParts) -> None:
    cameras = root.findall("Cameras/Camera")
    if not cameras:
        parts.missing.append("Cameras/Camera")
    for camera in cameras:
        connected = _text(camera, "Connected")
        if connected is None:
            continue
        name = _text(camera, "Model") or f"Camera {_clip(camera.get('item', ''), 8)}".strip()
        parts.peripherals.append(
            Peripheral(PeripheralKind.CAMERA, name, connected.lower() == "true")
        )


def _devices(root: Element, parts: StatusParts) -> None:
    if root.find("Peripherals") is None:
        parts.missing.append("Peripherals/ConnectedDevice")
        return
    for device in root.findall("Peripherals/ConnectedDevice"):
        kind = DEVICE_KINDS.get((_text(device, "Type") or "").lower(), PeripheralKind.OTHER)
        name = _text(device, "Name") or _text(device, "Type") or "peripheral"
        status = (_text(device, "Status") or "").lower()
        parts.peripherals.append(Peripheral(kind, name, status == "connected"))


def _displays(root: Element, parts: StatusParts) -> None:
    connectors = root.findall("Video/Output/Connector")
    if not connectors:
        parts.missing.append("Video/Output/Connector")
        return
    shown = 0
    for connector in connectors:
        if (_text(connector, "Connected") or "").lower() != "true":
            continue
        shown += 1
        name = _text(connector, "ConnectedDevice/Name") or (
            f"Output {_clip(connector.get('item', ''), 8)}".strip()
        )
        parts.peripherals.append(Peripheral(PeripheralKind.DISPLAY, name, True))
    if not shown:
        parts.peripherals.append(
            Peripheral(PeripheralKind.DISPLAY, "no display on any output", False)
        )


def _microphones(root: Element, parts: StatusParts) -> None:
    networked = any(p.kind is PeripheralKind.MICROPHONE for p in parts.peripherals)
    inputs = root.findall("Audio/Input/Connectors/Microphone")
    known = [(i, (_text(i, "ConnectionStatus") or "").lower()) for i in inputs]
    known = [(i, status) for i, status in known if status in ("connected", "notconnected")]
    if known:
        connected = [i for i, status in known if status == "connected"]
        for entry in connected:
            name = f"Microphone input {_clip(entry.get('item', ''), 8)}".strip()
            parts.peripherals.append(Peripheral(PeripheralKind.MICROPHONE, name, True))
        if not connected and not networked:
            parts.peripherals.append(
                Peripheral(PeripheralKind.MICROPHONE, "no microphone on any input", False)
            )
        return
    count = _text(root, "Audio/Microphones/NumberOfMicrophones")
    if count is None:
        count = _text(root, "Audio/Microphones/ConnectedMicrophones")
    number = _number(count)
    if number is not None:
        parts.peripherals.append(
            Peripheral(PeripheralKind.MICROPHONE, f"{int(number)} microphones", number > 0)
        )
        return
    if not networked:
        parts.missing.append("Audio/Microphones")


def _diagnostics(root: Element, parts: StatusParts) -> None:
    if root.find("Diagnostics") is None:
        parts.missing.append("Diagnostics/Message")
        return
    for message in root.findall("Diagnostics/Message"):
        level = LEVELS.get((_text(message, "Level") or "").lower(), DiagnosticLevel.INFO)
        parts.diagnostics.append(
            Diagnostic(
                level,
                _text(message, "Type") or "",
                _text(message, "Description") or "",
            )
        )


# -- media statistics (Status/MediaChannels), read only while the codec is in a call --------
#
# Per channel: Direction (Incoming: what the room receives, `rx`), Type (Audio, Video),
# Video/ChannelRole (Main, Presentation), the protocol, and Netstat: `LastIntervalLost` and
# `LastIntervalReceived` give the loss of the codec's last statistics interval (`Loss`/`Packets`
# count since the call began, which would hide a fault that starts late in a long meeting),
# `Jitter` in milliseconds, `ChannelRate` in bit/s, Video/FrameRate. The element is `Netstat`
# on RoomOS and CE; `NetStat` is accepted too.

DIRECTIONS = {"incoming": "rx", "outgoing": "tx"}
MEDIA = {"audio": "audio", "video": "video"}


def parse_media(root: Element) -> list[MediaStream]:
    streams = []
    for call in root.findall("MediaChannels/Call"):
        call_id = call.get("item", "")[:16]
        for channel in call.findall("Channel"):
            direction = DIRECTIONS.get((_text(channel, "Direction") or "").lower())
            media = MEDIA.get((_text(channel, "Type") or "").lower())
            if direction is None or media is None:
                continue  # a data channel, or a shape this reader does not know
            netstat = channel.find("Netstat")
            if netstat is None:
                netstat = channel.find("NetStat")
            lost = _number(_text(netstat, "LastIntervalLost"))
            received = _number(_text(netstat, "LastIntervalReceived"))
            loss = None
            if lost is not None and received is not None and lost + received > 0:
                loss = lost / (lost + received)
            jitter = _number(_text(netstat, "Jitter"))
            kind = "Audio" if media == "audio" else "Video"
            role = (_text(channel, "Video/ChannelRole") or "").lower()
            streams.append(
                MediaStream(
                    call=call_id,
                    direction=direction,
                    media=media,
                    role=role if media == "video" and role == "presentation" else "main",
                    codec=_text(channel, f"{kind}/Protocol") or "",
                    loss_ratio=loss,
                    jitter=None if jitter is None else jitter / 1000,
                    bitrate=_number(_text(netstat, "ChannelRate")),
                    frame_rate=(
                        _number(_text(channel, "Video/FrameRate")) if media == "video" else None
                    ),
                    channel=channel.get("item", "")[:16],
                )
            )
    return streams

"""Poly (Polycom) REST answers into the vendor-neutral `EndpointStatus` fields.

Pure functions, no I/O: the collector (collectors/poly.py) fetches, this module reads. Every
input an outsider controls goes through `load_json` and the `parse_*` functions, which return
a result or raise `PolyParseError` (reason "parse"), never anything else (tests/fuzz/poly.py).

The shapes read, and where they are from (tests/data/poly/ keeps a sample of each):
- `GET /rest/system` (both APIs): `model`, `softwareVersion` (Group Series: "Release - 6.2.2.8-
  670021"), `serialNumber`, `state` ("ASLEEP" in standby, "READY" awake), `lanStatus`, `uptime`.
  Seen in a Group Series 500 6.2.2 capture and a Studio X30 3.12 capture (integrators' mocks).
- `GET /rest/system/status` (both): a list of `{"name": "system.status.<x>", "langtag": ...,
  "state": [...]}` (Group Series) or `"stateList": [...]` (VideoOS); words up, down, off,
  unknown, and all_up/all_down for VideoOS's multi-device entries (`system.status.mr.camera`,
  `system.status.mr.audio`).
- `GET /rest/system/sipservers`, `/rest/system/h323gatekeepers` (VideoOS): a list of
  `{"address", "model", "state": "UP"|"DOWN", "version"}`; empty when none is configured.
- `GET /rest/conferences` (both): a list of conferences, each with `connections`:
  `{"address", "callType": "SIP"|"H323"|..., "state": "CONNECTED"|"RINGING"|..., "incoming",
  "duration" (seconds), "startTime" (ms)}`; an idle codec lists one pending conference with no
  connections.

What Poly does not report, or not in a shape this reads faithfully, goes to `missing`:
- "display": neither status list has a monitor entry.
- "diagnostics": the status list's "down" entries (provisioning, calendar, directory servers)
  are service reachability, often down on healthy rooms; calling them Warning or Error
  diagnostics would not be what the codec says. So Poly rooms have no diagnostics.
- "camera"/"microphone" when the status list has no entry of that kind.
- "registration.sip"/"registration.h323" when neither list speaks of it, or only in words
  not known here.
Poly reports no registration reason ("403 Forbidden"): a registration's reason is "" unless a
firmware adds a `reason` field to a SIP server entry. Registration words: up → registered,
down → unregistered (set up, not registered), off/unknown or no server listed → inactive.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from netmon.model import (
    Call,
    MediaStream,
    Peripheral,
    PeripheralKind,
    Registration,
    RegistrationState,
)

VIDEOOS = "videoos"
GROUP_SERIES = "group_series"

# Paths each API is polled on; the collector GETs them and hands the answers here by path.
SYSTEM = "/rest/system"
STATUS = "/rest/system/status"
SIP_SERVERS = "/rest/system/sipservers"
GATEKEEPERS = "/rest/system/h323gatekeepers"
CONFERENCES = "/rest/conferences"
PATHS: dict[str, tuple[str, ...]] = {
    VIDEOOS: (SYSTEM, STATUS, SIP_SERVERS, GATEKEEPERS, CONFERENCES),
    GROUP_SERIES: (SYSTEM, STATUS, CONFERENCES),
}

# Status-list entries that speak of a peripheral, by kind.
_PERIPHERAL_ENTRIES: dict[str, tuple[PeripheralKind, str]] = {
    "system.status.camera": (PeripheralKind.CAMERA, "Camera"),
    "system.status.mr.camera": (PeripheralKind.CAMERA, "Cameras"),
    "system.status.trackablecamera": (PeripheralKind.CAMERA, "Tracking camera"),
    "system.status.microphones": (PeripheralKind.MICROPHONE, "Microphones"),
    "system.status.mr.audio": (PeripheralKind.MICROPHONE, "Microphones"),
}
_UP = frozenset({"up", "all_up", "on", "connected"})
_DOWN = frozenset({"down", "all_down", "some_down", "partial", "disconnected"})
# Registration words: UP/DOWN in the server lists, up/down/off/unknown in the status list.
# "down" is set up and not registered; "off" (and "unknown", which a Group Series says of a
# gatekeeper when H.323 is disabled) is not set up to register at all.
_REGISTRATION = {
    "up": RegistrationState.REGISTERED,
    "registered": RegistrationState.REGISTERED,
    "down": RegistrationState.UNREGISTERED,
    "failed": RegistrationState.FAILED,
    "registering": RegistrationState.REGISTERING,
    "off": RegistrationState.INACTIVE,
    "unknown": RegistrationState.INACTIVE,
    "inactive": RegistrationState.INACTIVE,
}
_ENDED = frozenset({"disconnected", "idle"})
_STANDBY = {"asleep": True, "sleeping": True, "ready": False, "awake": False}
MAX_TEXT = 256  # a field longer than this is cut: a codec's words are short


class PolyParseError(ValueError):
    """An answer that is not the JSON shape the Poly API documents."""


@dataclass(frozen=True, slots=True)
class PolyStatus:
    """The `EndpointStatus` fields one poll gives (the collector adds target and timing)."""

    model: str = ""
    software: str = ""
    serial: str = ""
    registrations: tuple[Registration, ...] = ()
    calls: tuple[Call, ...] = ()
    standby: bool | None = None
    peripherals: tuple[Peripheral, ...] = ()
    missing: tuple[str, ...] = ()


def load_json(body: bytes, path: str) -> Any:
    """The JSON of an answer to `path`; HTML, truncated or malformed JSON is a PolyParseError."""
    if body.lstrip()[:1] == b"<":
        raise PolyParseError(f"{path} answered HTML or XML, not JSON")
    try:
        return json.loads(body.decode("utf-8"))
    except UnicodeDecodeError:
        raise PolyParseError(f"{path} answered text that is not UTF-8") from None
    except RecursionError:
        raise PolyParseError(f"{path} answered JSON nested too deep") from None
    except ValueError as exc:
        message = exc.msg if isinstance(exc, json.JSONDecodeError) else "bad number"
        raise PolyParseError(f"{path} answered malformed JSON: {message}") from None


def parse(api: str, answers: Mapping[str, Any]) -> PolyStatus:
    """The status from the decoded answers of one poll, by path. A path absent from
    `answers` (the codec said 404) is a part not reported."""
    system = answers.get(SYSTEM)
    if not isinstance(system, dict):
        raise PolyParseError(f"{SYSTEM} is not a JSON object")
    entries = _status_entries(answers.get(STATUS))
    missing: list[str] = []
    if api == VIDEOOS:
        registrations = [
            _server_registration("sip", answers.get(SIP_SERVERS), SIP_SERVERS),
            _server_registration("h323", answers.get(GATEKEEPERS), GATEKEEPERS),
        ]
    else:
        registrations = [
            _entry_registration("sip", entries.get("system.status.sipserver")),
            _entry_registration("h323", entries.get("system.status.gatekeeper")),
        ]
    for protocol, registration in zip(("sip", "h323"), registrations, strict=True):
        if registration is None:
            missing.append(f"registration.{protocol}")
    calls = _calls(answers.get(CONFERENCES), entries.get("system.status.inacall"))
    if calls is None:
        missing.append("calls")
    peripherals = _peripherals(entries)
    for kind in (PeripheralKind.CAMERA, PeripheralKind.MICROPHONE):
        if not any(peripheral.kind is kind for peripheral in peripherals):
            missing.append(kind.value)
    missing += ["display", "diagnostics"]
    standby = _STANDBY.get(_text(system.get("state")).lower())
    if standby is None:
        missing.append("standby")
    return PolyStatus(
        model=_text(system.get("model")),
        software=_software(_text(system.get("softwareVersion"))),
        serial=_text(system.get("serialNumber")),
        registrations=tuple(r for r in registrations if r is not None),
        calls=calls or (),
        standby=standby,
        peripherals=tuple(peripherals),
        missing=tuple(missing),
    )


def _text(value: object) -> str:
    if isinstance(value, bool) or value is None:
        return ""
    if isinstance(value, str | int | float):
        return str(value).strip()[:MAX_TEXT]
    return ""


def _software(version: str) -> str:
    # Group Series says "Release - 6.2.2.8-670021"; the version is the part after the dash.
    head, sep, rest = version.partition(" - ")
    return rest.strip() if sep and head.lower() in ("release", "beta", "debug") else version


def _status_entries(value: Any) -> dict[str, list[str]]:
    """name → its state words (lower case), from the status list of either API."""
    if value is None:
        return {}
    if not isinstance(value, list):
        raise PolyParseError(f"{STATUS} is not a JSON list")
    entries: dict[str, list[str]] = {}
    for entry in value:
        if not isinstance(entry, dict):
            raise PolyParseError(f"{STATUS} holds an entry that is not an object")
        name = _text(entry.get("name"))
        states = entry.get("stateList", entry.get("state"))
        if isinstance(states, str):
            states = [states]
        if not name or not isinstance(states, list):
            continue
        entries[name] = [_text(state).lower() for state in states]
    return entries


def _server_registration(protocol: str, value: Any, path: str) -> Registration | None:
    if value is None:
        return None
    if not isinstance(value, list):
        raise PolyParseError(f"{path} is not a JSON list")
    servers = [server for server in value if isinstance(server, dict)]
    if not servers:
        return Registration(protocol, RegistrationState.INACTIVE, "not configured")
    states = [_REGISTRATION.get(_text(server.get("state")).lower()) for server in servers]
    # Registered when any server (primary or backup) is; else the first the words say.
    known = [index for index, state in enumerate(states) if state is not None]
    if not known:
        return None  # words this does not know: not reported, rather than guessed
    chosen = next((i for i in known if states[i] is RegistrationState.REGISTERED), known[0])
    server, state = servers[chosen], states[chosen]
    assert state is not None
    return Registration(protocol, state, _text(server.get("reason")), _text(server.get("address")))


def _entry_registration(protocol: str, states: list[str] | None) -> Registration | None:
    if not states:
        return None
    state = _REGISTRATION.get(states[0])
    return None if state is None else Registration(protocol, state)


def _calls(value: Any, in_a_call: list[str] | None) -> tuple[Call, ...] | None:
    if value is None:
        # No conferences resource: the status list's "in a call" says whether, not which.
        if not in_a_call:
            return None
        return (Call(status="connected"),) if in_a_call[0] == "up" else ()
    if not isinstance(value, list):
        raise PolyParseError(f"{CONFERENCES} is not a JSON list")
    calls: list[Call] = []
    for conference in value:
        if not isinstance(conference, dict):
            raise PolyParseError(f"{CONFERENCES} holds a conference that is not an object")
        connections = conference.get("connections") or []
        if not isinstance(connections, list):
            raise PolyParseError(f"{CONFERENCES}: connections is not a list")
        for connection in connections:
            if not isinstance(connection, dict):
                continue
            status = _text(connection.get("state")).lower()
            if not status or status in _ENDED:
                continue
            calls.append(
                Call(
                    status=status,
                    protocol=_protocol(_text(connection.get("callType"))),
                    direction=_direction(connection.get("incoming")),
                    remote=_text(connection.get("address")),
                    duration=_duration(connection.get("duration")),
                )
            )
    return tuple(calls)


def _direction(incoming: object) -> str:
    if incoming is True:
        return "incoming"
    return "outgoing" if incoming is False else ""


def _protocol(call_type: str) -> str:
    upper = call_type.upper()
    if "SIP" in upper:
        return "sip"
    if "H323" in upper:
        return "h323"
    return call_type.lower()


def _duration(value: object) -> float | None:
    if isinstance(value, int | float) and not isinstance(value, bool) and 0 <= value < 1e9:
        return float(value)
    return None


def _peripherals(entries: Mapping[str, list[str]]) -> list[Peripheral]:
    found: list[Peripheral] = []
    for name, (kind, label) in _PERIPHERAL_ENTRIES.items():
        states = entries.get(name)
        if not states:
            continue
        word = states[0]
        if word in _UP:
            found.append(Peripheral(kind, label, True))
        elif word in _DOWN:
            found.append(Peripheral(kind, label, False))
        # off / unknown: the codec does not watch it; nothing to say
    return found


MEDIASTATS = "/rest/conferences/{id}/mediastats"


def _float(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if 0 <= value < 1e12 else None


def parse_mediastats(value: Any, call: str) -> list[MediaStream]:
    """A conference's media statistics: per stream its direction (RX: what the room receives),
    media, algorithm, `percentPacketLoss` (Poly's current figure), jitter (ms), actual bit
    rate (kbit/s) and frame rate. An entry of another shape is skipped, not an error."""
    if not isinstance(value, list):
        raise PolyParseError("mediastats is not a JSON list")
    streams = []
    for index, entry in enumerate(value, start=1):
        if not isinstance(entry, dict):
            continue
        direction = {"RX": "rx", "TX": "tx"}.get(_text(entry.get("mediaDirection")).upper())
        media = {"AUDIO": "audio", "VIDEO": "video"}.get(_text(entry.get("mediaType")).upper())
        if direction is None or media is None:
            continue
        percent = _float(entry.get("percentPacketLoss"))
        jitter = _float(entry.get("jitter"))
        rate = _float(entry.get("actualBitRate"))
        role = "presentation" if _text(entry.get("streamType")).upper() == "CONTENT" else "main"
        streams.append(
            MediaStream(
                call=call,
                direction=direction,
                media=media,
                role=role if media == "video" else "main",
                codec=_text(entry.get("mediaAlgorithm")),
                loss_ratio=None if percent is None else min(percent, 100.0) / 100,
                jitter=None if jitter is None else jitter / 1000,
                bitrate=None if rate is None else rate * 1000,
                frame_rate=_float(entry.get("actualFrameRate")) if media == "video" else None,
                channel=str(index),
            )
        )
    return streams

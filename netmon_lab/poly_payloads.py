"""The JSON a Poly codec answers, rendered from a `CodecState`, for both REST APIs.

Shapes as in tests/data/poly/ (see its README for where each is from): VideoOS (Studio X,
G7500) and Group Series 6.x differ in the status list (`langtag` + `stateList` against
`languageTag` + `state`), the software version ("3.12.0" against "Release - 6.2.2.8-670021"),
the entries they list, and VideoOS's SIP server and gatekeeper lists. Plain data, no I/O.

What Poly has no words for is not rendered: a registration's reason, a display, a touch
panel, diagnostics. A registration in progress or failed is "down" (Poly says up or down);
a protocol with nowhere to register (no SIP URI, no gatekeeper) is not set up ("off", no
server listed).
"""

from __future__ import annotations

import time
from typing import Any

from netmon_lab.codec_state import CodecState

VIDEOOS = "videoos"
GROUP_SERIES = "group_series"
_BOOTED = time.time()


def system(state: CodecState, api: str) -> dict[str, Any]:
    now = time.time()
    software = state.software if api == VIDEOOS else f"Release - {state.software}"
    return {
        "build": "670021",
        "buildType": "Release",
        "hardwareVersion": "18",
        "lanStatus": {"duplex": "FULL", "speedMbps": 1000, "state": "LAN_UP"},
        "model": state.model,
        "rebootNeeded": False,
        "serialNumber": state.serial,
        "softwareVersion": software,
        "state": "ASLEEP" if state.standby else "READY",
        "systemName": f"{state.model} {state.serial}",
        "systemTime": int(now * 1000),
        "timeOffset": 0,
        "timeServerState": "TIMESERVER_UP",
        "uptime": round(now - _BOOTED, 2),
    }


def _configured(registration: str, address: str) -> bool:
    # "unregistered" with nowhere to register is a protocol not set up (as CodecState's
    # default H.323); with a registrar or gatekeeper it is one that dropped its registration.
    return registration not in ("inactive", "") and (
        registration != "unregistered" or bool(address)
    )


def _word(registration: str, address: str, unconfigured: str) -> str:
    if not _configured(registration, address):
        return unconfigured
    return "up" if registration == "registered" else "down"


def _peripheral_word(state: CodecState, kind: str, api: str) -> str | None:
    connected = [p.connected for p in state.peripherals if p.kind == kind]
    if not connected:
        return None
    if api == GROUP_SERIES:
        return "up" if all(connected) else "down"
    if all(connected):
        return "all_up"
    return "some_down" if any(connected) else "all_down"


def status(state: CodecState, api: str) -> list[dict[str, Any]]:
    in_call = any(call.status == "connected" for call in state.calls)
    if api == VIDEOOS:
        entries: list[tuple[str, str, str | None]] = [
            ("system.status.ipnetwork", "LAN_NETWORK_HEADING", "up"),
            ("system.status.autoanswerp2p", "AUTO_ANSWER_P2P_HEADING", "off"),
            (
                "system.status.sipserver",
                "SIP_SERVER_HEADING",
                _word(state.sip_state, state.sip_uri, "off"),
            ),
            (
                "system.status.gatekeeper",
                "GATEKEEPER_HEADING",
                _word(state.h323_state, state.h323_gatekeeper, "off"),
            ),
            ("system.status.mr.camera", "CAMERAS_HEADING", _peripheral_word(state, "camera", api)),
            ("system.status.provisioning", "PROVISIONING_SERVICE_HEADING", "off"),
            (
                "system.status.mr.audio",
                "MICROPHONES_HEADING",
                _peripheral_word(state, "microphone", api),
            ),
            ("system.status.remotecontrol", "REMOTE_CONTROL_HEADING", "off"),
            ("system.status.calendar", "CALENDAR_SERVICE_HEADING", "off"),
        ]
        return [
            {"langtag": tag, "name": name, "stateList": [word]}
            for name, tag, word in entries
            if word is not None
        ]
    entries = [
        ("system.status.inacall", "IN_A_CALL", "up" if in_call else "off"),
        ("system.status.autoanswerp2p", "AUTO_ANSWER_P2P", "off"),
        ("system.status.remotecontrol", "REMOTE_CONTROL", "up"),
        ("system.status.microphones", "MICROPHONES", _peripheral_word(state, "microphone", api)),
        ("system.status.camera", "CAMERA", _peripheral_word(state, "camera", api)),
        ("system.status.globaldirectory", "GLOBALDIRECTORY_SERVER", "off"),
        ("system.status.ipnetwork", "IP_NETWORK", "up"),
        (
            "system.status.gatekeeper",
            "GATEKEEPER",
            _word(state.h323_state, state.h323_gatekeeper, "unknown"),
        ),
        ("system.status.sipserver", "SIP_SERVER", _word(state.sip_state, state.sip_uri, "off")),
        ("system.status.provisioning", "PROVISIONING", "down"),
    ]
    return [
        {"name": name, "languageTag": tag, "state": [word]}
        for name, tag, word in entries
        if word is not None
    ]


def _servers(registration: str, configured: bool, address: str) -> list[dict[str, Any]]:
    if not configured:
        return []
    word = "UP" if registration == "registered" else "DOWN"
    return [{"address": address, "model": "Unknown", "state": word, "version": ""}]


def sip_servers(state: CodecState) -> list[dict[str, Any]]:
    registrar = state.sip_uri.rpartition("@")[2]
    configured = _configured(state.sip_state, state.sip_uri)
    return _servers(state.sip_state, configured, registrar)


def gatekeepers(state: CodecState) -> list[dict[str, Any]]:
    configured = _configured(state.h323_state, state.h323_gatekeeper)
    return _servers(state.h323_state, configured, state.h323_gatekeeper)


def _pending() -> dict[str, Any]:
    return {
        "capabilities": None,
        "connections": [],
        "terminals": [],
        "holdState": "NOTHELD",
        "id": "PENDING",
        "startTime": None,
        "isPendingConference": True,
        "isActive": False,
        "duration": 0,
    }


def conferences(state: CodecState) -> list[dict[str, Any]]:
    if not state.calls:
        return [_pending()]
    now = time.time()
    connections = []
    for index, call in enumerate(state.calls, start=1):
        call_type = "H323" if call.protocol == "h323" else "SIP"
        duration = max(0, int(now - call.started)) if call.started else 0
        connections.append(
            {
                "address": call.remote,
                "callInfo": call_type,
                "callType": call_type,
                "type": "ENDPOINT",
                "state": call.status.upper(),
                "id": str(index),
                "startTime": int(call.started * 1000) if call.started else None,
                "mediaType": "AUDIOVIDEO",
                "parentConfId": "0",
                "rate": 1920,
                "incoming": call.direction == "incoming",
                "encrypted": True,
                "duration": duration,
                "causeCode": 0,
                "answerable": call.status == "ringing",
            }
        )
    return [
        {
            "capabilities": None,
            "connections": connections,
            "terminals": [],
            "holdState": "NOTHELD",
            "id": "0",
            "startTime": connections[0]["startTime"],
            "isPendingConference": False,
            "isActive": True,
            "duration": connections[0]["duration"],
        }
    ]


def mediastats(state: CodecState) -> list[dict[str, Any]]:
    """`/rest/conferences/0/mediastats`: audio and main video, each way, per call; what the room
    receives carries its call's `rx_loss` and `jitter_ms` (the shape: Poly's VideoOS REST API
    guide, conferences mediastats; Group Series answers alike)."""
    streams: list[dict[str, Any]] = []
    for call in state.calls:
        for direction in ("RX", "TX"):
            loss = call.rx_loss if direction == "RX" else 0.0
            jitter = call.jitter_ms if direction == "RX" else 1.0
            for media, algorithm, rate, fps in (
                ("AUDIO", "G.711U", 64, 0),
                ("VIDEO", "H.264", 1500, 30),
            ):
                streams.append(
                    {
                        "mediaDirection": direction,
                        "mediaType": media,
                        "mediaAlgorithm": algorithm,
                        "actualBitRate": rate,
                        "actualFrameRate": fps,
                        "jitter": jitter,
                        "packetLoss": round(loss * 250),
                        "percentPacketLoss": round(loss * 100, 2),
                        "streamType": "PEOPLE",
                    }
                )
    return streams

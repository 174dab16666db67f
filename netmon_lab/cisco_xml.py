"""A `CodecState` as a Cisco codec's xAPI status XML (`/getxml?location=/Status[/path]`).

The shapes follow Cisco's CE 9.x / RoomOS xAPI reference guides as the getxml answer prints
them: one element per node, list entries with `item="n" maxOccurrence="n"`, values as element
text, the root `<Status product="Cisco Codec" version="..." apiVersion="4">`. Sections netmon
does not read (Network, UserInterface, Audio and Video inputs, Time, ...) are rendered once as
realistic filler, so a full status is about as big as a real Codec Pro's (~190 KB here).

Microphones come in one of three shapes, as firmware differs (`mic_shape`):
- "connectors": `Audio/Input/Connectors/Microphone[n]/ConnectionStatus` Connected/NotConnected
  (CE 9 codecs with analog microphone inputs: SX80, Codec Plus/Pro, MX);
- "count": `Audio/Microphones/NumberOfMicrophones` (a count, without per-input detail);
- "peripheral": `Peripherals/ConnectedDevice` of Type AudioMicrophone (RoomOS 11 Table/Ceiling
  Microphone Pro on the network).
"""

from __future__ import annotations

import functools
import time
import xml.etree.ElementTree as ET
from xml.sax.saxutils import escape

from netmon_lab.codec_state import CodecState

XML_HEAD = '<?xml version="1.0"?>\n'

# CodecState's words (netmon.model.RegistrationState's) as the codec says them.
SIP_STATUS = {
    "registered": "Registered",
    "registering": "Registering",
    "failed": "Failed",
    "unregistered": "Deregister",
    "inactive": "Inactive",
}
H323_STATUS = {
    "registered": "Registered",
    "registering": "Registering",
    "failed": "Rejected",
    "unregistered": "Required",  # set up for a gatekeeper, not registered
    "inactive": "Inactive",
}
LEVELS = {"info": "Info", "warning": "Warning", "error": "Error", "critical": "Critical"}
# Peripherals/ConnectedDevice Types. Cameras are reported under Cameras/Camera only here (a
# Room Kit's own camera); a Codec Pro's Quad Camera would be in both lists.
PERIPHERAL_TYPES = {"touch_panel": "TouchPanel", "microphone": "AudioMicrophone"}


def _leaf(name: str, value: object, indent: int) -> str:
    return f"{' ' * indent}<{name}>{escape(str(value))}</{name}>\n"


def _open(name: str, indent: int, item: int | None = None) -> str:
    attributes = f' item="{item}" maxOccurrence="n"' if item is not None else ""
    return f"{' ' * indent}<{name}{attributes}>\n"


def _close(name: str, indent: int) -> str:
    return f"{' ' * indent}</{name}>\n"


def root_open(state: CodecState) -> str:
    return f'<Status product="Cisco Codec" version="{escape(state.software)}" apiVersion="4">\n'


def sip(state: CodecState) -> str:
    status = SIP_STATUS.get(state.sip_state, "Inactive")
    reason = state.sip_reason if state.sip_state != "registered" else ""
    return (
        _open("SIP", 2)
        + _leaf("Authentication", "Off", 4)
        + _open("Proxy", 4, 1)
        + _leaf("Address", "192.0.2.10", 6)
        + _leaf("Status", "Active" if status == "Registered" else "Off", 6)
        + _close("Proxy", 4)
        + _open("Registration", 4, 1)
        + _leaf("Authentication", "Off", 6)
        + _leaf("Reason", reason, 6)
        + _leaf("Status", status, 6)
        + _leaf("URI", state.sip_uri, 6)
        + _close("Registration", 4)
        + _leaf("Secure", "False", 4)
        + _leaf("Verified", "False", 4)
        + _close("SIP", 2)
    )


def h323(state: CodecState) -> str:
    status = H323_STATUS.get(state.h323_state, "Inactive")
    if not state.h323_gatekeeper and status == "Required":
        status = "Inactive"  # no gatekeeper: H.323 is not set up (CodecState's default)
    return (
        _open("H323", 2)
        + _open("Gatekeeper", 4)
        + _leaf("Address", state.h323_gatekeeper, 6)
        + _leaf("Port", 1719 if state.h323_gatekeeper else 0, 6)
        + _leaf("Reason", "", 6)
        + _leaf("Status", status, 6)
        + _close("Gatekeeper", 4)
        + _open("Mode", 4)
        + _leaf("Reason", "", 6)
        + _leaf("Status", "Enabled" if state.h323_gatekeeper else "Disabled", 6)
        + _close("Mode", 4)
        + _close("H323", 2)
    )


def calls(state: CodecState, now: float | None = None) -> str:
    now = time.time() if now is None else now
    out = []
    for number, call in enumerate(state.calls, start=1):
        protocol = {"sip": "Sip", "h323": "H323"}.get(call.protocol, call.protocol)
        out.append(
            _open("Call", 2, number)
            + _leaf("AnswerState", "Answered" if call.status == "connected" else "Unanswered", 4)
            + _leaf("CallType", "Video", 4)
            + _leaf("CallbackNumber", f"{call.protocol}:{call.remote}", 4)
            + _leaf("DeviceType", "Endpoint", 4)
            + _leaf("Direction", call.direction.capitalize(), 4)
            + _leaf("DisplayName", call.remote, 4)
            + _leaf("Duration", max(0, int(now - call.started)) if call.started else 0, 4)
            + _open("Encryption", 4)
            + _leaf("Type", "None", 6)
            + _close("Encryption", 4)
            + _leaf("FacilityServiceId", 0, 4)
            + _leaf("HoldReason", "None", 4)
            + _leaf("Ice", "Disabled", 4)
            + _leaf("PlacedOnHold", "False", 4)
            + _leaf("Protocol", protocol, 4)
            + _leaf("ReceiveCallRate", 6000, 4)
            + _leaf("RemoteNumber", call.remote, 4)
            + _leaf("Status", call.status.capitalize(), 4)
            + _leaf("TransmitCallRate", 6000, 4)
            + _close("Call", 2)
        )
    return "".join(out)


# Packets in the codec's last statistics interval (5 s): audio at 50 packets a second, video
# at about 90 (720p30 H.264 at ~1.5 Mbit/s).
INTERVAL_PACKETS = {"Audio": 250, "Video": 450}


def _channel(number: int, direction: str, kind: str, role: str, loss: float,
             jitter_ms: float) -> str:  # fmt: skip
    packets = INTERVAL_PACKETS[kind]
    lost = round(packets * loss) if direction == "Incoming" else 0
    rate = 64000 if kind == "Audio" else (1_500_000 if role == "Main" else 800_000)
    media = (
        _open("Audio", 6) + _leaf("Protocol", "G711Mu", 8) + _leaf("Mute", "False", 8)
        + _close("Audio", 6)
        if kind == "Audio"
        else _open("Video", 6) + _leaf("ChannelRole", role, 8) + _leaf("FrameRate", 30, 8)
        + _leaf("Protocol", "H264", 8) + _leaf("ResolutionX", 1280, 8)
        + _leaf("ResolutionY", 720, 8) + _close("Video", 6)
    )  # fmt: skip
    return (
        _open("Channel", 4, number)
        + _leaf("Direction", direction, 6)
        + _leaf("Type", kind, 6)
        + media
        + _open("Netstat", 6)
        + _leaf("Bytes", packets * 160, 8)
        + _leaf("ChannelRate", rate, 8)
        + _leaf("Jitter", round(jitter_ms), 8)
        + _leaf("LastIntervalLost", lost, 8)
        + _leaf("LastIntervalReceived", packets - lost, 8)
        + _leaf("Loss", lost, 8)
        + _leaf("MaxJitter", round(jitter_ms * 2), 8)
        + _leaf("Packets", packets, 8)
        + _close("Netstat", 6)
        + _close("Channel", 4)
    )


def media_channels(state: CodecState) -> str:
    """Status/MediaChannels: per call, audio and main video each way (what the room receives
    carries its call's `rx_loss` and `jitter_ms`)."""
    out = []
    for number, call in enumerate(state.calls, start=1):
        channels = [
            _channel(index, direction, kind, "Main", call.rx_loss, call.jitter_ms)
            for index, (direction, kind) in enumerate(
                [("Incoming", "Audio"), ("Outgoing", "Audio"), ("Incoming", "Video"),
                 ("Outgoing", "Video")],
                start=1,
            )
        ]  # fmt: skip
        out.append(_open("Call", 4, number) + "".join(channels) + _close("Call", 4))
    return _open("MediaChannels", 2) + "".join(out) + _close("MediaChannels", 2) if out else ""


def cameras(state: CodecState) -> str:
    out = [_open("Cameras", 2)]
    number = 0
    for peripheral in state.peripherals:
        if peripheral.kind != "camera":
            continue
        number += 1
        out.append(
            _open("Camera", 4, number)
            + _open("Capabilities", 6)
            + _leaf("Options", "ptzf", 8)
            + _close("Capabilities", 6)
            + _leaf("Connected", "True" if peripheral.connected else "False", 6)
            + _leaf("Flip", "Off", 6)
            + _leaf("HardwareID", "52000000" if peripheral.connected else "", 6)
            + _leaf("MacAddress", "", 6)
            + _leaf("Manufacturer", "Cisco" if peripheral.connected else "", 6)
            + _leaf("Model", peripheral.name if peripheral.connected else "", 6)
            + _open("Position", 6)
            + "".join(_leaf(axis, 0, 8) for axis in ("Focus", "Lens", "Pan", "Tilt", "Zoom"))
            + _close("Position", 6)
            + _leaf("SerialNumber", f"FOC{number:08d}" if peripheral.connected else "", 6)
            + _leaf("SoftwareID", "HC8.2.1" if peripheral.connected else "", 6)
            + _close("Camera", 4)
        )
    out.append(
        _open("SpeakerTrack", 4)
        + _leaf("Availability", "Unavailable", 6)
        + _leaf("Status", "Inactive", 6)
        + _close("SpeakerTrack", 4)
        + _close("Cameras", 2)
    )
    return "".join(out)


def peripherals(state: CodecState, mic_shape: str) -> str:
    out = [_open("Peripherals", 2)]
    for number, peripheral in enumerate(state.peripherals, start=1001):
        kind = PERIPHERAL_TYPES.get(peripheral.kind)
        if kind is None or (peripheral.kind == "microphone" and mic_shape != "peripheral"):
            continue
        out.append(
            _open("ConnectedDevice", 4, number)
            + _leaf("HardwareInfo", "102091-0", 6)
            + _leaf("ID", f"00:50:60:{number // 256 % 256:02x}:{number % 256:02x}:01", 6)
            + _leaf("Name", peripheral.name, 6)
            + _leaf("SoftwareInfo", "ce9.15.3", 6)
            + _leaf("Status", "Connected" if peripheral.connected else "ResponseTimedOut", 6)
            + _leaf("Type", kind, 6)
            + _leaf("UpgradeStatus", "None", 6)
            + _close("ConnectedDevice", 4)
        )
    out.append(_close("Peripherals", 2))
    return "".join(out)


def video(state: CodecState) -> str:
    displays = [p for p in state.peripherals if p.kind == "display"]
    out = [_open("Video", 2), _filler_video_input(), _open("Output", 4)]
    # A codec has two or three output connectors whatever is plugged in: one per display
    # here, and an empty one after them, as in a one-screen room on a Room Kit.
    for number in range(1, max(2, len(displays) + 1) + 1):
        display = displays[number - 1] if number <= len(displays) else None
        connected = display is not None and display.connected
        out.append(
            _open("Connector", 6, number)
            + _leaf("Connected", "True" if connected else "False", 8)
            + _open("ConnectedDevice", 8)
            + _leaf("Name", display.name if connected and display else "", 10)
            + _leaf("PreferredFormat", "1920_1080_60" if connected else "", 10)
            + _leaf("ScreenSize", 0, 10)
            + _close("ConnectedDevice", 8)
            + _leaf("MonitorRole", "First" if number == 1 else "Second", 8)
            + _open("Resolution", 8)
            + _leaf("Height", 1080 if connected else 0, 10)
            + _leaf("RefreshRate", 60 if connected else 0, 10)
            + _leaf("Width", 1920 if connected else 0, 10)
            + _close("Resolution", 8)
            + _leaf("Type", "HDMI", 8)
            + _close("Connector", 6)
        )
    out += [_close("Output", 4), _leaf("Selfview", "Off", 4), _close("Video", 2)]
    return "".join(out)


def audio(state: CodecState, mic_shape: str) -> str:
    mics = [p for p in state.peripherals if p.kind == "microphone"]
    out = [_open("Audio", 2), _open("Input", 4), _open("Connectors", 6)]
    if mic_shape == "connectors":
        # Analog inputs: one per microphone the room has, and the unused ones after them.
        for number in range(1, 9):
            mic = mics[number - 1] if number <= len(mics) else None
            status = "Connected" if mic is not None and mic.connected else "NotConnected"
            out.append(
                _open("Microphone", 8, number)
                + _leaf("ConnectionStatus", status, 10)
                + _close("Microphone", 8)
            )
    out += [_close("Connectors", 6), _close("Input", 4), _filler_audio()]
    out.append(_open("Microphones", 4) + _leaf("Mute", "Off", 6))
    if mic_shape == "count":
        out.append(_leaf("NumberOfMicrophones", sum(mic.connected for mic in mics), 6))
    out += [_close("Microphones", 4), _leaf("Volume", 50, 4), _close("Audio", 2)]
    return "".join(out)


def diagnostics(state: CodecState) -> str:
    out = [_open("Diagnostics", 2)]
    for number, diagnostic in enumerate(state.diagnostics, start=1):
        out.append(
            _open("Message", 4, number)
            + _leaf("Description", diagnostic.description, 6)
            + _leaf("Level", LEVELS.get(diagnostic.level, diagnostic.level.capitalize()), 6)
            + _leaf("References", "", 6)
            + _leaf("Type", diagnostic.type, 6)
            + _close("Message", 4)
        )
    out.append(_close("Diagnostics", 2))
    return "".join(out)


def standby(state: CodecState) -> str:
    return (
        _open("Standby", 2)
        + _leaf("State", "Standby" if state.standby else "Off", 4)
        + _close("Standby", 2)
    )


def system_unit(state: CodecState) -> str:
    return (
        _open("SystemUnit", 2)
        + _open("Hardware", 4)
        + _open("Module", 6)
        + _leaf("CompatibilityLevel", 1, 8)
        + _leaf("SerialNumber", state.serial, 8)
        + _close("Module", 6)
        + _open("Temperature", 6)
        + _leaf("Status", "Normal", 8)
        + _close("Temperature", 6)
        + _close("Hardware", 4)
        + _leaf("ProductId", state.model, 4)
        + _leaf("ProductPlatform", state.model.removeprefix("Cisco Webex "), 4)
        + _leaf("ProductType", "Cisco Codec", 4)
        + _open("Software", 4)
        + _leaf("DisplayName", state.software, 6)
        + _leaf("Name", "s53200", 6)
        + _open("OptionKeys", 6)
        + _leaf("Encryption", "True", 8)
        + _leaf("MultiSite", "True", 8)
        + _leaf("RemoteMonitoring", "True", 8)
        + _close("OptionKeys", 6)
        + _leaf("ReleaseDate", "2022-11-22", 6)
        + _leaf("Version", state.software, 6)
        + _close("Software", 4)
        + _open("State", 4)
        + _leaf("NumberOfActiveCalls", len(state.calls), 6)
        + _leaf("NumberOfInProgressCalls", 0, 6)
        + _leaf("NumberOfSuspendedCalls", 0, 6)
        + _close("State", 4)
        + _leaf("Uptime", 864000, 4)
        + _close("SystemUnit", 2)
    )


# Top-level sections, in the alphabetical order the codec prints them: (name, renderer).
# Filler sections are constant: rendered once per process.
def sections(state: CodecState, mic_shape: str) -> list[tuple[str, str]]:
    return [
        ("Audio", audio(state, mic_shape)),
        ("Call", calls(state)),
        ("Cameras", cameras(state)),
        ("Diagnostics", diagnostics(state)),
        ("H323", h323(state)),
        ("MediaChannels", media_channels(state)),
        ("Network", _filler_network()),
        ("Peripherals", peripherals(state, mic_shape)),
        ("SIP", sip(state)),
        ("Standby", standby(state)),
        ("SystemUnit", system_unit(state)),
        ("UserInterface", _filler_user_interface()),
        ("Video", video(state)),
    ]


def render(
    state: CodecState,
    path: str = "",
    mic_shape: str = "connectors",
    absent: set[str] | frozenset[str] = frozenset(),
) -> str:
    """The getxml answer for `location=/Status[/path]`: the whole status, or the subtree at
    `path` with its ancestors (every item of a list: `Cameras/Camera` gives every camera), or
    an empty `<Status>` when the codec has nothing there (an idle codec's `Call`, a section
    in `absent`: the H323 of a codec without the option)."""
    steps = [step for step in path.strip("/").split("/") if step]
    present = [(name, text) for name, text in sections(state, mic_shape) if name not in absent]
    if not steps:
        body = "".join(text for _, text in present)
    else:
        section = next((text for name, text in present if name == steps[0]), "")
        body = _subtree(f"<Status>{section}</Status>", steps) if section else ""
    return XML_HEAD + root_open(state) + body + "</Status>\n"


def _subtree(text: str, steps: list[str]) -> str:
    # Our own rendering, not outside input: the standard parser is fine here.
    root = ET.fromstring(text)  # noqa: S314
    level = [root]
    for step in steps:
        for node in level:
            for child in list(node):
                if child.tag != step:
                    node.remove(child)
        level = [child for node in level for child in node]
    if not level:
        return ""
    out = []
    for child in root:
        ET.indent(child, space="  ", level=1)
        child.tail = None
        out.append("  " + ET.tostring(child, encoding="unicode", short_empty_elements=False))
    return "\n".join(out) + "\n"


# --- filler: what a real status also holds, so sizes and parse times are realistic ------------


@functools.cache
def _filler_network() -> str:
    out = [_open("Network", 2, 1)]
    out.append(
        _open("CDP", 4)
        + "".join(
            _leaf(name, value, 6)
            for name, value in (
                ("Address", "192.0.2.1"),
                ("Capabilities", "Router Switch IGMP"),
                ("DeviceId", "dist-sw-01.lab"),
                ("Duplex", "Full"),
                ("Platform", "cisco WS-C2960X-48FPD-L"),
                ("PortID", "GigabitEthernet1/0/12"),
                ("Version", "Cisco IOS Software, C2960X Software 15.2(7)E3"),
                ("VoIPApplianceVlanID", 20),
            )
        )
        + _close("CDP", 4)
    )
    out.append(_open("DNS", 4) + _leaf("Domain", "lab", 6))
    for number in range(1, 4):
        out.append(_open("Server", 6, number) + _leaf("Address", f"192.0.2.{52 + number}", 8))
        out.append(_close("Server", 6))
    out.append(_close("DNS", 4))
    out.append(
        _open("Ethernet", 4) + _leaf("MacAddress", "00:50:60:0A:0B:0C", 6)
        + _leaf("Speed", "1000full", 6) + _close("Ethernet", 4)
        + _open("IPv4", 4) + _leaf("Address", "192.0.2.50", 6) + _leaf("Gateway", "192.0.2.1", 6)
        + _leaf("SubnetMask", "255.255.255.0", 6) + _close("IPv4", 4)
        + _open("IPv6", 4) + _leaf("Address", "", 6) + _leaf("Gateway", "", 6)
        + _leaf("LinkLocalAddress", "fe80::250:60ff:fe0a:b0c", 6) + _close("IPv6", 4)
        + _open("VLAN", 4) + _open("Voice", 6) + _leaf("VlanId", "Off", 8) + _close("Voice", 6)
        + _close("VLAN", 4)
    )  # fmt: skip
    out.append(_close("Network", 2))
    return "".join(out)


@functools.cache
def _filler_user_interface() -> str:
    # In-room control panels: a real room with a few panels lists hundreds of widgets, which
    # make most of a full status's size.
    out = [_open("UserInterface", 2), _open("Extensions", 4)]
    for number in range(1, 1201):
        out.append(
            _open("Widget", 6, number)
            + _leaf("Value", "off" if number % 3 else "", 8)
            + _leaf("WidgetId", f"room_control_panel_widget_{number:04d}", 8)
            + _close("Widget", 6)
        )
    out += [_close("Extensions", 4), _open("ContactInfo", 4)]
    out.append(_leaf("ContactMethod", "", 6) + _leaf("Name", "Provincial hall", 6))
    out += [_close("ContactInfo", 4), _close("UserInterface", 2)]
    return "".join(out)


@functools.cache
def _filler_audio() -> str:
    out = [_open("Output", 4), _open("Connectors", 6)]
    for kind, count in (("HDMI", 3), ("Line", 6), ("InternalSpeaker", 1)):
        for number in range(1, count + 1):
            out.append(
                _open(kind, 8, number)
                + _leaf("DelayMs", 0, 10)
                + _leaf("Mode", "On", 10)
                + _leaf("VolumeLevel", 0, 10)
                + _close(kind, 8)
            )
    out += [_close("Connectors", 6), _close("Output", 4)]
    return "".join(out)


@functools.cache
def _filler_video_input() -> str:
    out = [_open("Input", 4)]
    for number in range(1, 6):
        out.append(
            _open("Connector", 6, number)
            + _leaf("Connected", "True" if number == 1 else "False", 8)
            + _leaf("SignalState", "OK" if number == 1 else "Unknown", 8)
            + _leaf("SourceId", number, 8)
            + _leaf("Type", "Camera" if number == 1 else "HDMI", 8)
            + _close("Connector", 6)
            + _open("Source", 6, number)
            + _leaf("ConnectorId", number, 8)
            + _leaf("FormatStatus", "Ok" if number == 1 else "NotFound", 8)
            + _leaf("FormatType", "Digital", 8)
            + _leaf("MediaChannelId", 2 + number, 8)
            + _open("Resolution", 8)
            + _leaf("Height", 1080, 10)
            + _leaf("RefreshRate", 60, 10)
            + _leaf("Width", 1920, 10)
            + _close("Resolution", 8)
            + _close("Source", 6)
        )
    out.append(_close("Input", 4))
    return "".join(out)

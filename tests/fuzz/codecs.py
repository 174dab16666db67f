"""Fuzz targets: what a video codec answers about its own status (Cisco xAPI XML)."""

from __future__ import annotations

from pathlib import Path

from hypothesis import strategies as st

from collectors.xapi_parse import StatusError, parse_status, parse_xml
from tests.fuzz.target import Target, plain

_SAMPLES = sorted((Path(__file__).parent.parent / "data" / "cisco").glob("*.xml"))
MAX_BODY = 64 * 1024

# Element names and values from the status shapes the parser reads, and some it must shrug off.
_NAMES = [
    "Status", "SIP", "Registration", "H323", "Gatekeeper", "Call", "Standby", "State",
    "Peripherals", "ConnectedDevice", "Cameras", "Camera", "Connected", "Video", "Output",
    "Connector", "Audio", "Input", "Connectors", "Microphone", "ConnectionStatus",
    "Microphones", "NumberOfMicrophones", "Diagnostics", "Message", "Level", "Type", "Name",
    "Description", "SystemUnit", "ProductId", "Software", "Version", "Hardware", "Module",
    "SerialNumber", "Reason", "URI", "Address", "Duration", "Protocol", "RemoteNumber",
    "Direction", "Model", "ConnectedDevice",
]  # fmt: skip
_VALUES = [
    "Registered", "Failed", "Inactive", "Deregister", "Rejected", "Connected", "True", "False",
    "ResponseTimedOut", "NotConnected", "Unknown", "Standby", "Halfwake", "Error", "Critical",
    "Warning", "Info", "TouchPanel", "AudioMicrophone", "Camera", "-1", "1e400", "nan", "inf",
    "99999999999999999999", "", "&amp;", "&#0;", "&#x110000;", "&undefined;", "\x00", "é",
    "<![CDATA[x]]>", "<!-- c -->",
]  # fmt: skip


def _element(name: str, inner: str, item: bool) -> str:
    attributes = ' item="1" maxOccurrence="n"' if item else ""
    return f"<{name}{attributes}>{inner}</{name}>"


_LEAF = st.builds(
    _element,
    st.sampled_from(_NAMES),
    st.one_of(st.sampled_from(_VALUES), st.text(max_size=8)),
    st.booleans(),
)
_TREE = st.recursive(
    _LEAF,
    lambda children: st.builds(
        _element,
        st.sampled_from(_NAMES),
        st.lists(children, max_size=4).map("".join),
        st.booleans(),
    ),
    max_leaves=25,
)
_HEADS = [
    '<?xml version="1.0"?>\n<Status product="Cisco Codec" version="ce9.15" apiVersion="4">',
    "<Status>",
    '<?xml version="1.0" encoding="utf-16"?><Status>',
    '<?xml version="1.0" encoding="nonsense"?><Status>',
    '<!DOCTYPE Status [<!ENTITY a "aaaa">]><Status>&a;',
    '<!DOCTYPE Status SYSTEM "file:///etc/passwd"><Status>',
    "<!DOCTYPE html><html><body>",
    "\ufeff<Status>",
    "<Configuration>",
]
_XAPI = st.one_of(
    st.binary(max_size=300),
    st.tuples(
        st.sampled_from(_HEADS),
        st.lists(_TREE, max_size=5).map("".join),
        st.sampled_from(["</Status>", "", "</Status>trailing", "</Status><Status></Status>"]),
    ).map(lambda r: "".join(r).encode("utf-8", "surrogatepass")),
    # A sample payload cut or with a byte changed: near-valid answers.
    st.tuples(
        st.sampled_from(_SAMPLES),
        st.integers(0, 4000),
        st.integers(0, 255),
        st.booleans(),
    ).map(
        lambda r: (
            r[0].read_bytes()[: r[1]]
            if r[3]
            else r[0].read_bytes()[: r[1]] + bytes((r[2],)) + r[0].read_bytes()[r[1] + 1 :]
        )
    ),
)


def _check_xapi(data: bytes) -> None:
    try:
        root = parse_xml(data, MAX_BODY)
    except StatusError as exc:
        reason = exc.reason
        assert reason in ("parse", "too_large")
        return
    parts = parse_status(root)
    assert all(len(p.name) <= 200 for p in parts.peripherals)
    assert all(call.duration is None or call.duration >= 0 for call in parts.calls)


def _xapi_sized(size: int) -> bytes:
    """Many diagnostics messages: every one a list entry the parser walks."""
    head = b'<?xml version="1.0"?><Status product="Cisco Codec"><Diagnostics>'
    entry = b"<Message><Level>Warning</Level><Type>T</Type><Description>d</Description></Message>"
    return head + entry * max(0, (size - len(head)) // len(entry)) + b"</Diagnostics></Status>"


TARGETS: tuple[Target, ...] = (Target("xapi status", _XAPI, plain(_check_xapi), sized=_xapi_sized),)

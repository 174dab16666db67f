"""Fuzz target: what a Poly codec's REST API answers, through the status probe's reading
(collectors/poly_parse.py): any bytes per path, and JSON of nearly the documented shapes."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import strategies as st

from collectors.poly_parse import (
    CONFERENCES,
    GATEKEEPERS,
    GROUP_SERIES,
    SIP_SERVERS,
    STATUS,
    SYSTEM,
    VIDEOOS,
    PolyParseError,
    PolyStatus,
    load_json,
    parse,
)
from tests.fuzz.target import Target, plain

_WORDS = st.sampled_from(
    [
        "up",
        "UP",
        "down",
        "off",
        "unknown",
        "all_up",
        "some_down",
        "ASLEEP",
        "READY",
        "CONNECTED",
        "RINGING",
        "DISCONNECTED",
        "SIP",
        "H323",
        "Release - 6.2.2.8-670021",
        "",
    ]
)
_NAMES = st.sampled_from(
    [
        "system.status.sipserver",
        "system.status.gatekeeper",
        "system.status.camera",
        "system.status.mr.camera",
        "system.status.microphones",
        "system.status.mr.audio",
        "system.status.inacall",
    ]
)
_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=20),
    _WORDS,
)
_ANY: st.SearchStrategy[Any] = st.recursive(
    _SCALARS,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(st.one_of(st.text(max_size=8), _WORDS), children, max_size=4),
    ),
    max_leaves=20,
)
_KEYS = st.sampled_from(
    [
        "model",
        "softwareVersion",
        "serialNumber",
        "state",
        "stateList",
        "name",
        "address",
        "reason",
        "connections",
        "callType",
        "incoming",
        "duration",
    ]
)
_ENTRY = st.dictionaries(
    _KEYS,
    st.one_of(_WORDS, _NAMES, st.lists(_WORDS, max_size=2), _ANY),
    max_size=6,
)
_NEAR = st.one_of(
    _ENTRY,
    st.lists(_ENTRY, max_size=4),
    st.lists(st.fixed_dictionaries({"connections": st.lists(_ENTRY, max_size=3)}), max_size=2),
)
_BODY = st.one_of(
    st.binary(max_size=120),
    _ANY.map(lambda value: json.dumps(value).encode()),
    _NEAR.map(lambda value: json.dumps(value).encode()),
    _NEAR.map(lambda value: json.dumps(value).encode()[: len(json.dumps(value)) // 2]),
)
_POLL = st.tuples(
    st.sampled_from([VIDEOOS, GROUP_SERIES]),
    st.fixed_dictionaries(
        {},
        optional=dict.fromkeys((SYSTEM, STATUS, SIP_SERVERS, GATEKEEPERS, CONFERENCES), _BODY),
    ),
)


def _check_poll(value: tuple[str, dict[str, bytes]]) -> None:
    api, bodies = value
    try:
        answers = {path: load_json(body, path) for path, body in bodies.items()}
        status = parse(api, answers)
    except PolyParseError:
        return
    assert isinstance(status, PolyStatus)
    assert all(len(text) <= 256 for text in (status.model, status.software, status.serial))
    assert all(call.duration is None or call.duration >= 0 for call in status.calls)


TARGETS: tuple[Target, ...] = (Target("poly rest answers", _POLL, plain(_check_poll)),)

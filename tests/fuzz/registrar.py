"""Fuzz targets: what a registrar answers (Kamailio's JSON-RPC: ul.dump and htable.dump).

The bytes of an answer go the collector's way: JSON decoding (whose failures the transport
turns into "parse"), then `rpc_result` and the parsers, which return contacts and refusals or
raise `KamailioAnswerError`, never anything else. What they return keeps its promises: an AoR
and a Contact URI on every contact, only live ones (an expiry after the answer's time), and
text that encodes as UTF-8.
"""

from __future__ import annotations

import json
from typing import Any

from hypothesis import strategies as st

from collectors.registrar.kamailio import (
    KamailioAnswerError,
    parse_htable_dump,
    parse_ul_dump,
    rpc_result,
)
from tests.fuzz.target import Target, plain

NOW = 1_800_000_000.0

_KEYS = st.sampled_from(
    [
        "Domains", "Domain", "AoRs", "Info", "AoR", "Contacts", "Contact", "Address",
        "Expires", "User-Agent", "Received", "result", "error", "message", "code", "entry",
        "slot", "name", "value", "type", "jsonrpc", "id",
    ]
)  # fmt: skip
_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(),
    st.text(max_size=20),
    st.sampled_from(["permanent", "expired", "deleted", "[not set]", "401 Unauthorized",
                     "1796443023 401 Unauthorized", "sip:a@127.0.0.1"]),
)  # fmt: skip
_JSON = st.recursive(
    _SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(_KEYS | st.text(max_size=5), inner, max_size=5)
    ),
    max_leaves=40,
)


def _contact(address: Any, expires: Any, user_agent: Any) -> dict[str, Any]:
    return {"Contact": {"Address": address, "Expires": expires, "User-Agent": user_agent}}


# Near-valid: Kamailio's own shapes with fuzzed leaves.
_UL_DUMP = st.builds(
    lambda aor, contacts: {
        "jsonrpc": "2.0",
        "result": {
            "Domains": [{"Domain": {"AoRs": [{"Info": {"AoR": aor, "Contacts": contacts}}]}}]
        },
    },
    _SCALARS,
    st.lists(st.builds(_contact, _SCALARS, _SCALARS, _SCALARS), max_size=3),
)
_HTABLE = st.builds(
    lambda slots: {"jsonrpc": "2.0", "result": [{"entry": 1, "size": len(slots), "slot": slots}]},
    st.lists(st.fixed_dictionaries({"name": _SCALARS, "value": _SCALARS}), max_size=3),
)
_ANSWER = st.tuples(
    st.sampled_from(["ul.dump", "htable.dump"]),
    st.one_of(
        st.binary(max_size=200),
        _JSON.map(lambda doc: json.dumps(doc).encode()),
        _UL_DUMP.map(lambda doc: json.dumps(doc).encode()),
        _HTABLE.map(lambda doc: json.dumps(doc).encode()),
        # a valid document cut short
        st.tuples(_UL_DUMP, st.integers(0, 400)).map(lambda p: json.dumps(p[0]).encode()[: p[1]]),
    ),
)


def _check(value: tuple[str, bytes]) -> None:
    method, raw = value
    try:
        document = json.loads(raw)
    except (UnicodeDecodeError, ValueError, RecursionError):
        return  # the transport's "parse": the answer is not JSON
    try:
        result = rpc_result(document, method)
        if method == "ul.dump":
            for contact in parse_ul_dump(result, NOW):
                assert contact.aor
                assert contact.contact
                assert contact.expires is None or contact.expires > NOW
                for text in (contact.aor, contact.contact, contact.user_agent, contact.received):
                    text.encode("utf-8")  # fit for metric labels and JSON
        else:
            for failure in parse_htable_dump(result, NOW):
                failure.aor.encode("utf-8")
                failure.reason.encode("utf-8")
                assert failure.at == failure.at  # never NaN
    except KamailioAnswerError as exc:
        message = str(exc)
        message.encode("utf-8")  # a detail goes to logs and JSON as it is
    else:
        return
    assert message.startswith(f"{method}: "), message  # says which answer was wrong


TARGETS: tuple[Target, ...] = (Target("kamailio rpc answer", _ANSWER, plain(_check)),)

"""Fuzz targets: files an operator imports (CSV, .ics, config YAML) and the API's bodies."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import tempfile
from collections.abc import Iterator
from pathlib import Path

import aiohttp
from hypothesis import strategies as st

from netmon.config.errors import ConfigError
from netmon.config.loader import load_data, parse_yaml
from netmon.inventory_import import CsvImportError, csv_to_config
from netmon.meetings_import import IcsImportError, ics_to_meetings
from tests.fuzz.target import Check, Target, plain

# --- CSV inventory, .ics calendar, config YAML --------------------------------------------------


def _check_csv(text: str) -> None:
    with contextlib.suppress(CsvImportError):
        csv_to_config(text)


_CSV_CELLS = st.one_of(
    st.sampled_from(["ep1", "192.0.2.1", "::1", "not an ip", "", '"', "D1", "x;y", "a,b", "∞"]),
    st.text(max_size=12),
)
_CSV = st.one_of(
    st.text(max_size=300),
    st.tuples(
        st.sampled_from(
            [
                "id,address",
                "id;address;district",
                "id\taddress\tname\tlevel",
                "ID,Address,Model",
                "\ufeffid,address",
            ]
        ),
        st.lists(st.lists(_CSV_CELLS, max_size=5), max_size=6),
        st.sampled_from([",", ";", "\t"]),
        st.sampled_from(["\n", "\r\n", "\r"]),
    ).map(lambda r: r[3].join([r[0], *(r[2].join(row) for row in r[1])])),
)

_NOW = dt.datetime(2026, 12, 1, tzinfo=dt.UTC)


def _check_ics(text: str) -> None:
    with contextlib.suppress(IcsImportError):
        ics_to_meetings(text, now=_NOW)


_ICS_LINES = st.one_of(
    st.sampled_from(
        [
            "SUMMARY:Weekly",
            "DTSTART:20261202T090000Z",
            "DTSTART;VALUE=DATE:20261202",
            "DTSTART;TZID=Asia/Ho_Chi_Minh:20261202T090000",
            "DTSTART;TZID=Nowhere/X:20261202T0900",
            "DTEND:20261202T100000Z",
            "DTEND:20261201T100000Z",
            "DURATION:PT1H",
            "DURATION:-PT1H",
            "DURATION:P1W",
            "DURATION:xyz",
            "RRULE:FREQ=DAILY;COUNT=3",
            "RRULE:FREQ=WEEKLY;BYDAY=MO",
            "RRULE:FREQ=SECONDLY",
            "RRULE:FREQ=YEARLY;BYMONTH=13",
            "RRULE:garbage",
            "RRULE:FREQ=DAILY;UNTIL=20261205",
            "EXDATE:20261203T090000Z",
            "RDATE:20261210T090000Z",
            "RDATE;VALUE=PERIOD:20261210T090000Z/PT1H",
            "EXDATE;VALUE=DATE:20261203",
            "RECURRENCE-ID:20261203T090000Z",
            "UID:a",
            "CATEGORIES:district,hall",
            "X-NETMON-DISTRICTS:D1",
            "X-NETMON-TARGETS:ep1,ep2",
            "DTSTART:99991231T235959Z",
            "DTSTART:00010101T000000",
            "DTSTART:garbage",
        ]
    ),
    st.text(max_size=30).map(lambda text: text.replace("\r", "").replace("\n", "")),
)
_ICS = st.one_of(
    st.text(max_size=300),
    st.lists(st.lists(_ICS_LINES, max_size=9), min_size=1, max_size=3).map(
        lambda events: "\r\n".join(
            [
                "BEGIN:VCALENDAR",
                "VERSION:2.0",
                *("\r\n".join(["BEGIN:VEVENT", *lines, "END:VEVENT"]) for lines in events),
                "END:VCALENDAR",
            ]
        )
    ),
)


def _check_yaml(text: str) -> None:
    with contextlib.suppress(ConfigError):
        load_data(parse_yaml(text, "config.yaml"))


_YAML_KEYS = st.sampled_from(
    [
        "instance",
        "targets",
        "http",
        "scheduler",
        "meetings",
        "alerting",
        "id",
        "address",
        "probes",
        "district",
        "parent",
        "interval",
        "credentials",
        "snmp",
        "x",
    ]
)
_YAML_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=False),
    st.text(max_size=10),
    st.sampled_from(["192.0.2.1", "10s", "icmp", "snmp", "sip", "http", "tcp", "ep1"]),
)
_YAML_DATA = st.recursive(
    _YAML_SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_YAML_KEYS, inner, max_size=4),
    max_leaves=25,
)
_YAML = st.one_of(
    st.text(max_size=200),
    _YAML_DATA.map(lambda data: json.dumps(data)),  # JSON is YAML
    st.sampled_from(
        [
            "a: &x [*x]",
            "a: !!python/object:os.system x",
            "? [a]\n: b",
            "a: 1\na: 2",
            "[" * 2000,
            "{a: " * 2000,
            "- " * 3000 + "x",
            "a: !!binary ===",
            "a: !!timestamp x",
            "&a [*a, *a]",
            "a: !!int 0x",
            "a: !!float .nan\nb: 1e400",
        ]
    ),
)


# --- the API's bodies ---------------------------------------------------------------------------

_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=20,
)
_SILENCE_FIELDS = st.fixed_dictionaries(
    {},
    optional={
        "matchers": _JSON | st.dictionaries(st.sampled_from(["target", "alertname", "x"]), _JSON),
        "duration": _JSON | st.floats() | st.integers(),
        "ends_at": _JSON
        | st.sampled_from(
            ["2026-12-06T00:00:00Z", "9999-12-31T23:59:59", "0001-01-01", "now", "2026-13-01"]
        ),
        "starts_at": _JSON,
        "comment": _JSON,
        "created_by": _JSON,
    },
)
_CHECK_FIELDS = st.fixed_dictionaries(
    {},
    optional={
        key: _JSON | st.just("D1") | st.just(["ep1"])
        for key in ("targets", "group", "district", "meeting", "x")
    },
)
_BODY = st.one_of(
    st.binary(max_size=100),
    _JSON.map(json.dumps),
    _SILENCE_FIELDS.map(json.dumps),
    _CHECK_FIELDS.map(json.dumps),
    st.integers(1, 200_000).map(lambda depth: "[" * depth + "]" * depth),
    st.integers(1, 200_000).map(lambda depth: '{"a":' * depth + "1" + "}" * depth),
)
_API = st.tuples(
    st.sampled_from(["/api/v1/silences", "/api/v1/checks"]),
    _BODY,
    st.sampled_from(
        [
            "application/json",
            "application/json; charset=latin-1",
            "application/json; charset=nonsense",
            "text/plain",
        ]
    ),
)


@contextlib.contextmanager
def open_api() -> Iterator[Check]:
    """A running netmon (API guard, silences, checks) and POSTs of arbitrary bodies to it."""
    from netmon.config.loader import load_file
    from netmon.service import Service
    from tests.helpers import write_config

    with tempfile.TemporaryDirectory() as directory:
        path = write_config(
            Path(directory) / "config.yaml",
            {
                "http": {"listen": "127.0.0.1:0"},
                "targets": [{"id": "ep1", "address": "192.0.2.10", "probes": [], "district": "D1"}],
            },
        )
        service = Service(
            inventory=load_file(path), config_path=path, alert_db=Path(directory) / "alerts.db"
        )
        loop = asyncio.new_event_loop()
        # run() without its signal handlers: the service's own start and shutdown
        loop.run_until_complete(service._start())

        async def open_session() -> aiohttp.ClientSession:
            return aiohttp.ClientSession(service.http_url)

        session = loop.run_until_complete(open_session())

        async def post(path: str, data: bytes, content_type: str) -> tuple[int, bytes]:
            headers = {"Content-Type": content_type}
            async with session.post(path, data=data, headers=headers) as response:
                return response.status, await response.read()

        def check(value: tuple[str, str | bytes, str]) -> None:
            path, body, content_type = value
            data = body.encode("utf-8", "surrogatepass") if isinstance(body, str) else body
            status, payload = loop.run_until_complete(post(path, data, content_type))
            assert status < 500, (status, payload[:200])
            json.loads(payload)  # every answer, refusals included, is JSON

        try:
            yield check
        finally:
            loop.run_until_complete(session.close())
            loop.run_until_complete(service._shutdown())
            loop.close()


TARGETS: tuple[Target, ...] = (
    Target("csv inventory", _CSV, plain(_check_csv)),
    Target("ics calendar", _ICS, plain(_check_ics)),
    Target("config yaml", _YAML, plain(_check_yaml)),
    Target("api body", _API, open_api, slow=True),
)

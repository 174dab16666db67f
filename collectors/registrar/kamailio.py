"""Kamailio as a registrar, read over its JSON-RPC interface (jsonrpcs over HTTP via xhttp).

One poll, within the probe's timeout, is two read-only calls on one kept-alive connection:
`ul.dump` (every AoR of the location table with its contacts) and, when `failures_table` is
set, `htable.dump <table>` (the recent refused REGISTERs that deploy/kamailio/
netmon-registrar.cfg records, since Kamailio keeps none by itself). The answer is a
`RegistrarContacts` with the live contacts only and those refusals.

`ul.dump` of Kamailio 5.6, as it answers (tests/data/kamailio/ul_dump.json):

    {"jsonrpc": "2.0", "id": 1, "result": {"Domains": [{"Domain": {
        "Domain": "location", "Size": 1024,
        "AoRs": [{"Info": {"AoR": "alice", "HashID": 1834153949, "Contacts": [{"Contact": {
            "Address": "sip:alice-0x5...@127.0.0.1:46000", "Expires": 4, "Q": -1,
            "User-Agent": "baresip v1.0.0 (x86_64/linux)", "Received": "[not set]", ...}}]}}],
        "Stats": {"Records": 1, "Max-Slots": 1}}}]}}

`Expires` is the seconds left at the registrar, "permanent" for a static contact, "expired" or
"deleted" for one the timer has not removed yet (not live: left out); "[not set]" marks an
empty field. `htable.dump regfail` answers `[{"entry": 24, "size": 1, "slot": [{"name":
"alice2", "value": "1796443023 401 Unauthorized", "type": "str"}]}]`; a value without the
leading unix time (a table filled by another config) is taken as the reason, dated at the poll.

The parsing (`parse_ul_dump`, `parse_htable_dump`) is pure and apart from the transport;
another registrar is another module beside this one (see collectors/registrar/__init__.py).

This module must not import anything from the exporter, alerting or MQTT.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from typing import Any, ClassVar

from collectors.base import CollectError, CollectorSettings
from collectors.codec_settings import KamailioSettings
from collectors.registrar.http_json import HttpJson, basic_auth
from netmon.credentials import ApiCredential
from netmon.model import Contact, ProbeTarget, RegistrarContacts, RegistrationFailure

NOT_SET = "[not set]"
# More seconds left than this (ten years) is no registration Kamailio gives: a broken answer.
MAX_EXPIRES = 10 * 365 * 86400
_GONE = ("expired", "deleted")
_FAILURE_VALUE = re.compile(r"([0-9]{9,11}) +([0-9]{3}\b.*)", re.DOTALL)
_MESSAGE = 200  # characters of a JSON-RPC error message shown in a detail


class KamailioAnswerError(ValueError):
    """A JSON-RPC answer that is not what Kamailio sends: the one error the parsers raise."""


def rpc_request(method: str, request_id: int, *params: str) -> bytes:
    """A JSON-RPC request exactly as netmon-registrar.cfg lets through (compact, key order)."""
    document: dict[str, Any] = {"jsonrpc": "2.0", "method": method}
    if params:
        document["params"] = list(params)
    document["id"] = request_id
    return json.dumps(document, separators=(",", ":")).encode()


def rpc_result(document: Any, method: str) -> Any:
    """The `result` of a JSON-RPC answer; an `error` object becomes KamailioAnswerError with
    Kamailio's message ("Method Not Found", "Not Found")."""
    if not isinstance(document, dict):
        raise KamailioAnswerError(f"{method}: the answer is not a JSON-RPC object")
    error = document.get("error")
    if error is not None:
        message = error.get("message") if isinstance(error, dict) else error
        code = error.get("code") if isinstance(error, dict) else None
        text = _utf8(message[:_MESSAGE]) if isinstance(message, str) else "no message"
        suffix = f" ({code})" if isinstance(code, int) and not isinstance(code, bool) else ""
        raise KamailioAnswerError(f"{method}: the registrar answered an error: {text}{suffix}")
    if "result" not in document:
        raise KamailioAnswerError(f"{method}: the answer has neither result nor error")
    return document["result"]


def _unwrap(item: Any, key: str) -> dict[str, Any]:
    """`{"Info": {...}}` or `{"Contact": {...}}` as 5.x wraps its records, or the bare record."""
    if isinstance(item, dict) and len(item) == 1 and isinstance(item.get(key), dict):
        item = item[key]
    if not isinstance(item, dict):
        raise KamailioAnswerError(f"ul.dump: a {key} record is not an object")
    return item


def _text(record: dict[str, Any], key: str) -> str:
    value = record.get(key)
    if value is None or value == NOT_SET:
        return ""
    if isinstance(value, str):
        return _utf8(value)
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    raise KamailioAnswerError(f"ul.dump: {key} is not a string")


def _utf8(value: str) -> str:
    """`value`, with lone surrogates (JSON's "\\udc80" escapes) as "?": whatever is read here
    ends up in metric labels and JSON, which must encode as UTF-8."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return value.encode("utf-8", errors="replace").decode("utf-8")
    return value


def _list(value: Any, what: str) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise KamailioAnswerError(f"ul.dump: {what} is not a list")
    return value


def parse_ul_dump(result: Any, now: float) -> tuple[Contact, ...]:
    """The live contacts in the `result` of `ul.dump`, expiry as unix seconds from `now` (the
    time of the answer: Kamailio says the seconds left)."""
    if not isinstance(result, dict):
        raise KamailioAnswerError("ul.dump: the result is not an object")
    contacts: list[Contact] = []
    for domain_item in _list(result.get("Domains"), "Domains"):
        domain = _unwrap(domain_item, "Domain")
        for aor_item in _list(domain.get("AoRs"), "AoRs"):
            info = _unwrap(aor_item, "Info")
            aor = _text(info, "AoR")
            if not aor:
                raise KamailioAnswerError("ul.dump: an AoR record without its AoR")
            for contact_item in _list(info.get("Contacts"), "Contacts"):
                contact = _contact(aor, _unwrap(contact_item, "Contact"), now)
                if contact is not None:
                    contacts.append(contact)
    return tuple(contacts)


def _contact(aor: str, record: dict[str, Any], now: float) -> Contact | None:
    address = _text(record, "Address")
    if not address:
        raise KamailioAnswerError(f"ul.dump: a contact of {aor} without its Address")
    expires = record.get("Expires")
    at: float | None
    if expires == "permanent":
        at = None
    elif expires in _GONE:
        return None
    elif isinstance(expires, int | float) and not isinstance(expires, bool):
        if expires >= MAX_EXPIRES:
            raise KamailioAnswerError(f"ul.dump: Expires of {aor} is beyond ten years")
        at = now + float(expires)
        if not at > now:  # 0 s left (or less, or NaN): it expires as we look
            return None
    else:
        raise KamailioAnswerError(f"ul.dump: Expires of {aor} is {str(expires)[:20]!r}")
    return Contact(
        aor=aor,
        contact=address,
        user_agent=_text(record, "User-Agent"),
        expires=at,
        received=_text(record, "Received"),
    )


def parse_htable_dump(result: Any, now: float) -> tuple[RegistrationFailure, ...]:
    """The refusals in the `result` of `htable.dump` of the failures table (see the module
    docstring for the values)."""
    if not isinstance(result, list):
        raise KamailioAnswerError("htable.dump: the result is not a list")
    failures: list[RegistrationFailure] = []
    for entry in result:
        if not isinstance(entry, dict):
            raise KamailioAnswerError("htable.dump: an entry is not an object")
        slots = entry.get("slot", [])
        if not isinstance(slots, list):
            raise KamailioAnswerError("htable.dump: a slot list is not a list")
        for slot in slots:
            if not isinstance(slot, dict) or not isinstance(slot.get("name"), str):
                raise KamailioAnswerError("htable.dump: an item without its name")
            value = slot.get("value")
            if isinstance(value, bool) or not isinstance(value, str | int):
                raise KamailioAnswerError(f"htable.dump: the value of {_utf8(slot['name'])} is odd")
            failures.append(_failure(_utf8(slot["name"]), _utf8(str(value)), now))
    return tuple(failures)


def _failure(aor: str, value: str, now: float) -> RegistrationFailure:
    matched = _FAILURE_VALUE.fullmatch(value.strip())
    if matched is None:
        return RegistrationFailure(aor=aor, reason=value.strip(), at=now)
    return RegistrationFailure(aor=aor, reason=matched.group(2).strip(), at=float(matched[1]))


class KamailioCollector:
    """Polls Kamailio registrars over JSON-RPC: one session for all, connections kept alive."""

    name: ClassVar[str] = "kamailio"
    settings_model: ClassVar[type[CollectorSettings]] = KamailioSettings

    def __init__(self) -> None:
        self._http = HttpJson()

    async def start(self) -> None:
        await self._http.start()

    async def close(self) -> None:
        await self._http.close()

    async def collect(self, target: ProbeTarget, settings: CollectorSettings) -> RegistrarContacts:
        assert isinstance(settings, KamailioSettings)
        authorization = None
        if settings.credential is not None:
            credential = target.credentials.get(settings.credential)
            if not isinstance(credential, ApiCredential):  # the config allows no other
                raise CollectError("config", f"no API credential {settings.credential!r}")
            authorization = basic_auth(credential)
        url = settings.url_for(target.address)
        started = time.monotonic()
        try:
            async with asyncio.timeout(settings.timeout):
                dump = await self._call(url, "ul.dump", 1, (), authorization, settings)
                now = time.time()
                contacts = parse_ul_dump(rpc_result(dump, "ul.dump"), now)
                failures: tuple[RegistrationFailure, ...] = ()
                if settings.failures_table is not None:
                    table = settings.failures_table
                    answer = await self._call(
                        url, "htable.dump", 2, (table,), authorization, settings
                    )
                    failures = parse_htable_dump(rpc_result(answer, f"htable.dump {table}"), now)
        except TimeoutError:
            raise CollectError("timeout", f"no answer within {settings.timeout:g}s") from None
        except KamailioAnswerError as exc:
            raise CollectError("parse", str(exc)) from None
        return RegistrarContacts(
            target=target.id,
            collector=self.name,
            ok=True,
            duration=time.monotonic() - started,
            registrar="kamailio",
            contacts=contacts,
            failures=failures,
        )

    async def _call(
        self,
        url: str,
        method: str,
        request_id: int,
        params: tuple[str, ...],
        authorization: str | None,
        settings: KamailioSettings,
    ) -> Any:
        return await self._http.request(
            "POST",
            url,
            body=rpc_request(method, request_id, *params),
            authorization=authorization,
            max_body=settings.max_body,
        )

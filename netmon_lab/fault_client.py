"""`netmon demo fault add|list|clear`: the command line of a running demo's fault API.

It only speaks HTTP to the demo (`--url`, the demo's default address unless told otherwise) and
prints what the demo answers; validation is the demo's, so the API and the command line can never
disagree on what a fault may be.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from typing import Any

import aiohttp

from netmon_lab.fault_api import MEETING_PATH, PATH
from netmon_lab.faults import FIELDS, FaultKind
from netmon_lab.oncall_lab import PAGES_PATH, PRESS_PATH

DEFAULT_URL = "http://127.0.0.1:9842"
TIMEOUT = 10.0
EXIT_OK, EXIT_PROBLEM = 0, 1

_ARGUMENTS: dict[str, tuple[str, str]] = {  # field -> (metavar, help)
    "target": ("TARGET", "endpoint id as in /api/v1/targets (or its address), e.g. ep-so-01"),
    "device": ("DEVICE", "simulated device id, e.g. sw-ba-thuoc, core-router, cpe-ep-so-01"),
    "interface": ("IF", "ifIndex or ifName of the device's interface, e.g. 3 or WAN"),
    "district": ("DISTRICT", "district name as in the inventory, or without accents: ba-thuoc"),
    "every": ("EVERY", "mean time between bursts, e.g. 120 or 2m"),
    "length": ("LENGTH", "pings lost in a row per burst, N or MIN-MAX, e.g. 5-10"),
    "level": ("LEVEL", "the diagnostic's level: warning, error or critical"),
}
_VALUES: dict[FaultKind, tuple[str, str]] = {
    FaultKind.LOSS: ("RATIO", "share of pings lost, e.g. 0.05 or 5%%"),
    FaultKind.DELAY: ("SECONDS", "extra round-trip delay, e.g. 0.2 or 200ms"),
    FaultKind.JITTER: ("SECONDS", "each reply up to this much earlier or later, e.g. 3ms"),
    FaultKind.INTERFACE_FLAP: ("PERIOD", "seconds per down+up cycle, e.g. 30 or 30s"),
}
_KIND_HELP: dict[FaultKind, str] = {
    FaultKind.ENDPOINT_DOWN: "an endpoint stops answering pings",
    FaultKind.LOSS: "an endpoint loses a share of pings",
    FaultKind.DELAY: "an endpoint answers pings later",
    FaultKind.JITTER: "an endpoint's replies vary in delay (uniform ± the value)",
    FaultKind.BURST: "an endpoint loses bursts of pings in a row (Gilbert-Elliott)",
    FaultKind.INTERFACE_DOWN: "a device reports an interface oper-down (SNMP)",
    FaultKind.INTERFACE_FLAP: "a device's interface goes down and up, periodically",
    FaultKind.UPLINK_CUT: "a district's uplink is cut: its endpoints and the uplink go down",
    FaultKind.CAMERA_UNPLUG: "a room's codec reports its camera disconnected",
    FaultKind.UNREGISTER: "a room is no longer registered to the SIP registrar",
    FaultKind.DIAGNOSTIC: "a room's codec raises a diagnostic at a level",
    FaultKind.BUSY: "a room is already in another call",
}


def add_parser(demo_commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add `fault` and its commands to the `demo` command's subparsers."""
    fault = demo_commands.add_parser(
        "fault", help="inject faults into a running demo", description=__doc__.splitlines()[0]
    )
    commands = fault.add_subparsers(dest="fault_command", required=True, metavar="COMMAND")

    def url_option(parser: argparse.ArgumentParser) -> None:
        parser.add_argument(
            "--url", default=DEFAULT_URL, help=f"the running demo (default {DEFAULT_URL})"
        )

    add = commands.add_parser("add", help="inject a fault")
    kinds = add.add_subparsers(dest="kind", required=True, metavar="KIND")
    for kind in FaultKind:
        parser = kinds.add_parser(kind.value, help=_KIND_HELP[kind])
        for name in FIELDS[kind]:
            metavar, text = _VALUES[kind] if name == "value" else _ARGUMENTS[name]
            parser.add_argument(name, metavar=metavar, help=text)
        url_option(parser)
    listing = commands.add_parser("list", help="the faults in force")
    url_option(listing)
    clear = commands.add_parser("clear", help="clear one fault, or all")
    which = clear.add_mutually_exclusive_group(required=True)
    which.add_argument("id", nargs="?", metavar="ID", help="the fault's id, e.g. f1")
    which.add_argument(
        "--all",
        action="store_true",
        help="clear every injected fault (the lab's standing ones stay)",
    )
    url_option(clear)
    meeting = demo_commands.add_parser(
        "meeting", help="put rooms of a running demo in a call, or end it"
    )
    steps = meeting.add_subparsers(dest="meeting_command", required=True, metavar="COMMAND")
    begin = steps.add_parser("start", help="rooms join a call to the province's bridge")
    begin.add_argument(
        "rooms", nargs="*", metavar="ROOM", help="room ids (default: every room that can join)"
    )
    url_option(begin)
    url_option(steps.add_parser("stop", help="end the meeting's calls"))
    pages = demo_commands.add_parser(
        "pages", help="what the demo's Telegram and mail catcher received from netmon"
    )
    url_option(pages)
    press = demo_commands.add_parser(
        "press", help="press a button of the last page in a Telegram chat, as an engineer"
    )
    press.add_argument("button", choices=("ack", "silence"), help="Acknowledge, or Silence 1 h")
    press.add_argument("--chat", help="the chat (default: the NOC group, districts' topics)")
    press.add_argument(
        "--alert", help="the alert's fingerprint or its beginning (default: the last page's)"
    )
    url_option(press)


class DemoUnreachableError(Exception):
    pass


async def _call(
    method: str, base: str, path: str, body: dict[str, Any] | None = None
) -> tuple[int, Any]:
    timeout = aiohttp.ClientTimeout(total=TIMEOUT)
    url = base + path
    try:
        async with (
            aiohttp.ClientSession(timeout=timeout) as session,
            session.request(method, url, json=body) as response,
        ):
            text = await response.text()
    except aiohttp.ClientConnectorError as exc:
        number = exc.os_error.errno
        why = os.strerror(number).lower() if number else str(exc.os_error)
        raise DemoUnreachableError(f"no netmon demo answers at {base} ({why})") from None
    except TimeoutError:
        raise DemoUnreachableError(f"{base} did not answer within {TIMEOUT:g} s") from None
    except aiohttp.ClientError as exc:
        raise DemoUnreachableError(f"{base}: {exc}") from None
    try:
        document = json.loads(text)
    except ValueError:
        document = None
    if not isinstance(document, dict):
        raise DemoUnreachableError(
            f"{base} does not serve a netmon demo's fault API (HTTP {response.status} for {path})"
        )
    return response.status, document


def _problem(message: str, command: str = "fault") -> int:
    print(f"netmon demo {command}: {message}", file=sys.stderr)
    return EXIT_PROBLEM


def _line(fault: dict[str, Any]) -> str:
    return f"{fault.get('id', '?'):<4} {fault.get('summary', '')}  (since {fault.get('created')})"


async def _meeting(args: argparse.Namespace, base: str) -> int:
    if args.meeting_command == "start":
        body = {"rooms": args.rooms} if args.rooms else {}
        status, document = await _call("POST", base, MEETING_PATH, body)
        if status != 201:
            return _problem(str(document.get("error", f"HTTP {status}")), "meeting")
        print(f"in the meeting: {', '.join(document['rooms'])}")
        return EXIT_OK
    status, document = await _call("DELETE", base, MEETING_PATH)
    if status != 200:
        return _problem(str(document.get("error", f"HTTP {status}")), "meeting")
    print(f"meeting ended: {len(document['ended'])} room(s) left the call")
    return EXIT_OK


async def _pages(base: str) -> int:
    status, document = await _call("GET", base, PAGES_PATH)
    if status != 200:
        return _problem(str(document.get("error", f"HTTP {status}")), "pages")
    for message in document["telegram"]:
        when = time.strftime("%H:%M:%S", time.localtime(message["at"]))
        where = message["chat"] + (f" topic {message['thread']}" if message["thread"] else "")
        print(f"{when}  Telegram {where}:")
        print("    " + message["text"].replace("\n", "\n    "))
        if message["buttons"]:
            print(f"    [{'] ['.join(message['buttons'])}]")
    for mail in document["mail"]:
        when = time.strftime("%H:%M:%S", time.localtime(mail["received"]))
        print(f"{when}  e-mail to {', '.join(mail['to'])}: {mail['subject']}")
    if not document["telegram"] and not document["mail"]:
        print("no pages yet")
    return EXIT_OK


async def _run(args: argparse.Namespace) -> int:
    base = args.url.rstrip("/")
    if getattr(args, "meeting_command", None) is not None:
        return await _meeting(args, base)
    if args.demo_command == "pages":
        return await _pages(base)
    if args.demo_command == "press":
        body = {"button": args.button, "chat": args.chat, "alert": args.alert}
        status, document = await _call("POST", base, PRESS_PATH, body)
        if status != 200:
            return _problem(str(document.get("error", f"HTTP {status}")), "press")
        print(f"pressed {document['pressed']} on: {document['on']}")
        print(f"netmon answered: {document['answer']}")
        return EXIT_OK
    if args.fault_command == "add":
        kind = FaultKind(args.kind)
        body = {"kind": kind.value, **{name: getattr(args, name) for name in FIELDS[kind]}}
        status, document = await _call("POST", base, PATH, body)
        if status != 201:
            return _problem(str(document.get("error", f"HTTP {status}")))
        print(f"{document['id']}  {document['summary']}")
        return EXIT_OK
    if args.fault_command == "list":
        status, document = await _call("GET", base, PATH)
        if status != 200:
            return _problem(str(document.get("error", f"HTTP {status}")))
        faults = document.get("faults", [])
        injected = [fault for fault in faults if not fault.get("standing")]
        standing = [fault for fault in faults if fault.get("standing")]
        for fault in injected:
            print(_line(fault))
        if not injected:
            print("no faults injected")
        if standing:
            print("standing faults of the lab (clear one by its id to see the site healthy):")
            for fault in standing:
                print(_line(fault))
        by_reason: dict[str, list[str]] = {}
        for kind, reason in document.get("unavailable", {}).items():
            by_reason.setdefault(reason, []).append(kind)
        for reason, kinds in by_reason.items():
            print(f"unavailable in this demo: {', '.join(kinds)}: {reason}")
        return EXIT_OK
    if args.all:
        status, document = await _call("DELETE", base, PATH)
        if status != 200:
            return _problem(str(document.get("error", f"HTTP {status}")))
        cleared = document.get("cleared", [])
        for fault in cleared:
            print(f"cleared {fault.get('id')}  {fault.get('summary')}")
        print(f"{len(cleared)} fault(s) cleared")
        kept = [str(fault.get("id")) for fault in document.get("standing", [])]
        if kept:
            print(f"standing faults stay: {', '.join(kept)} (clear them by id)")
        return EXIT_OK
    status, document = await _call("DELETE", base, f"{PATH}/{args.id}")
    if status != 200:
        return _problem(str(document.get("error", f"HTTP {status}")))
    print(f"cleared {document['id']}  {document['summary']}")
    return EXIT_OK


def run(args: argparse.Namespace) -> int:
    """Carry out `netmon demo fault ...`; the exit code."""
    try:
        return asyncio.run(_run(args))
    except DemoUnreachableError as exc:
        return _problem(f"{exc}; start one with `netmon demo`, or pass --url")

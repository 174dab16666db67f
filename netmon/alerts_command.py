"""`netmon alerts list|ack|unack`: the alerts of a running netmon, from a terminal.

It speaks HTTP to netmon (`--url`, default http://127.0.0.1:9842) and prints what netmon
answers; the API decides what is valid. Changes need the API token when netmon has one: from
`--token-file` or $NETMON_API_TOKEN (never an argument: it would show in `ps` and the shell's
history). An alert is named by its fingerprint as `netmon alerts list` shows it, or by an
unambiguous beginning of it (at least 4 characters).
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
import os
import socket
import sys
from pathlib import Path
from typing import Any

import aiohttp

DEFAULT_URL = "http://127.0.0.1:9842"
TIMEOUT = 10.0
TOKEN_ENV = "NETMON_API_TOKEN"  # noqa: S105 - the variable that holds it, not a token
EXIT_OK, EXIT_PROBLEM = 0, 1
MIN_PREFIX = 4


class NetmonUnreachableError(Exception):
    pass


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    alerts = commands.add_parser("alerts", help="list and acknowledge the alerts of a netmon")
    sub = alerts.add_subparsers(dest="alerts_command", required=True, metavar="COMMAND")

    def common(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--url", default=DEFAULT_URL, help=f"netmon (default {DEFAULT_URL})")
        parser.add_argument(
            "--token-file",
            type=Path,
            metavar="FILE",
            help=f"the API token (else ${TOKEN_ENV}; none: netmon takes changes from loopback)",
        )

    listing = sub.add_parser("list", help="the alerts firing, held or pending")
    common(listing)
    ack = sub.add_parser("ack", help="say you are on an alert: escalation stops")
    ack.add_argument("id", metavar="ID", help="the alert's fingerprint (or its beginning)")
    ack.add_argument("--by", help="who is on it (default: your user name on this machine)")
    ack.add_argument("--comment", default="", help="what you are doing about it")
    common(ack)
    unack = sub.add_parser("unack", help="take an acknowledgement back: escalation resumes")
    unack.add_argument("id", metavar="ID", help="the alert's fingerprint (or its beginning)")
    common(unack)


def run(args: argparse.Namespace) -> int:
    try:
        return asyncio.run(_run(args))
    except NetmonUnreachableError as exc:
        return _problem(str(exc))


def _problem(message: str) -> int:
    print(f"netmon alerts: {message}", file=sys.stderr)
    return EXIT_PROBLEM


def _token(args: argparse.Namespace) -> str | None:
    if args.token_file is not None:
        try:
            return str(args.token_file.read_text(encoding="utf-8")).strip() or None
        except OSError as exc:
            raise NetmonUnreachableError(f"--token-file: {exc.strerror}") from None
    return os.environ.get(TOKEN_ENV) or None


def _default_by() -> str:
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "unknown"
    return f"{user}@{socket.gethostname()}"


async def _run(args: argparse.Namespace) -> int:
    base = str(args.url).rstrip("/")
    token = _token(args)
    status, document = await _call("GET", base, "/api/v1/alerts", token)
    if status != 200:
        return _problem(str(document.get("error", f"HTTP {status}")))
    alerts: list[dict[str, Any]] = list(document.get("alerts", []))
    if args.alerts_command == "list":
        _print_listing(alerts)
        return EXIT_OK
    fingerprint = _resolve(args.id, alerts)
    if isinstance(fingerprint, int):
        return fingerprint
    path = f"/api/v1/alerts/{fingerprint}/ack"
    if args.alerts_command == "ack":
        body = {"by": args.by or _default_by(), "comment": args.comment}
        status, document = await _call("POST", base, path, token, body)
    else:
        status, document = await _call("DELETE", base, path, token)
    if status != 200:
        return _problem(str(document.get("error", f"HTTP {status}")))
    if args.alerts_command == "ack":
        print(f"acknowledged by {document['acknowledged_by']}: {document['summary']}")
    else:
        print(f"acknowledgement withdrawn: {document['summary']}")
    return EXIT_OK


def _resolve(wanted: str, alerts: list[dict[str, Any]]) -> str | int:
    """The fingerprint `wanted` names (whole, or its beginning), else the exit code."""
    wanted = wanted.strip().lower()
    firing = [a for a in alerts if a.get("state") == "firing"]
    exact = [a for a in firing if a.get("fingerprint") == wanted]
    if exact:
        return wanted
    if len(wanted) < MIN_PREFIX:
        return _problem(f"{wanted!r}: give at least {MIN_PREFIX} characters of the fingerprint")
    matches = [a for a in firing if str(a.get("fingerprint", "")).startswith(wanted)]
    if not matches:
        return _problem(f"no firing alert's fingerprint begins with {wanted!r}")
    if len(matches) > 1:
        names = ", ".join(f"{a['fingerprint']} ({a['alertname']} {a['target']})" for a in matches)
        return _problem(f"{wanted!r} names several alerts: {names}")
    return str(matches[0]["fingerprint"])


def _print_listing(alerts: list[dict[str, Any]]) -> None:
    if not alerts:
        print("no alerts")
        return
    for alert in alerts:
        taken = f"acked by {alert['acknowledged_by']}" if alert.get("acknowledged") else ""
        fields = (
            str(alert.get("fingerprint", "")),
            str(alert.get("state", "")),
            str(alert.get("severity", "")),
            str(alert.get("alertname", "")),
            str(alert.get("target", "")),
            taken,
            str(alert.get("summary", "")),
        )
        print("\t".join(fields))


async def _call(
    method: str, base: str, path: str, token: str | None, body: dict[str, Any] | None = None
) -> tuple[int, dict[str, Any]]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    timeout = aiohttp.ClientTimeout(total=TIMEOUT)
    try:
        async with (
            aiohttp.ClientSession(timeout=timeout) as session,
            session.request(method, base + path, json=body, headers=headers) as response,
        ):
            text = await response.text()
    except aiohttp.ClientConnectorError as exc:
        number = exc.os_error.errno
        why = os.strerror(number).lower() if number else str(exc.os_error)
        raise NetmonUnreachableError(f"no netmon answers at {base} ({why})") from None
    except TimeoutError:
        raise NetmonUnreachableError(f"{base} did not answer within {TIMEOUT:g} s") from None
    except aiohttp.ClientError as exc:
        raise NetmonUnreachableError(f"{base}: {type(exc).__name__}") from None
    try:
        document = json.loads(text)
    except ValueError:
        document = None
    if not isinstance(document, dict):
        raise NetmonUnreachableError(
            f"{base} does not serve netmon's API (HTTP {response.status} for {path})"
        )
    return response.status, document

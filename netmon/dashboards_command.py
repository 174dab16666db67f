"""`netmon dashboards build | push`: write the Grafana dashboards' JSON, or upload it.

`push` talks to Grafana's HTTP API through grafana-client, which is synchronous (niquests): a
CLI does a handful of requests one after another, so the command stays synchronous rather
than running a client in a thread of an event loop it does not need. Every request has a
timeout. grafana-client is the optional extra `netmon[grafana]`: it brings urllib3-future,
which takes over the `urllib3` import of the whole environment, for a command a few
operators run now and then. The API token is read from a file or the environment, never
from the command line (where `ps` shows it), and never printed: errors name the dashboard and
Grafana's reason.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import Any

EXIT_OK, EXIT_PROBLEM, EXIT_USAGE = 0, 1, 2
NOT_GRAFANA = "not a Grafana API answer: check --url and its sub-path"


class NotGrafanaError(Exception):
    """An answer that is not Grafana's JSON: an SSO login page, another app at that path."""

    def __init__(self) -> None:
        super().__init__(NOT_GRAFANA)


def add_parser(commands: Any) -> None:
    dashboards = commands.add_parser("dashboards", help="Grafana dashboards: build, push")
    actions = dashboards.add_subparsers(dest="dashboards_command", required=True, metavar="COMMAND")
    build = actions.add_parser("build", help="regenerate the dashboards' JSON from dashboards/")
    build.add_argument(
        "--output", type=Path, metavar="DIR", help="default: dashboards/json beside the code"
    )
    push = actions.add_parser("push", help="upload the dashboards to a Grafana")
    push.add_argument("--url", required=True, metavar="URL", help="e.g. http://grafana:3000")
    token = push.add_mutually_exclusive_group(required=True)
    token.add_argument("--token-file", type=Path, metavar="FILE", help="file holding the token")
    token.add_argument("--token-env", metavar="VAR", help="environment variable holding it")
    push.add_argument("--folder", default="netmon", metavar="NAME", help="default: netmon")
    push.add_argument(
        "--timeout", type=float, default=10.0, metavar="SECONDS", help="per request; default 10"
    )


def run(args: argparse.Namespace) -> int:
    from dashboards import JSON_DIR

    if args.dashboards_command == "build":
        from dashboards.build import write

        output = args.output or JSON_DIR
        # Beside the code means a checkout; an installed netmon's is site-packages, often
        # read-only (the container image) and never the place for edited dashboards.
        if args.output is None and not _writable(output):
            print(
                f"netmon dashboards build: {output} is not writable (an installed netmon?): "
                "pass --output DIR",
                file=sys.stderr,
            )
            return EXIT_USAGE
        written = write(output)
        print(f"{output}: {len(written)} dashboards written", file=sys.stderr)
        return EXIT_OK
    token = _token(args)
    if token is None:
        return EXIT_USAGE
    parsed = urllib.parse.urlsplit(args.url)
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        print(f"netmon dashboards push: --url: not an http(s) URL: {args.url}", file=sys.stderr)
        return EXIT_USAGE
    files = sorted(JSON_DIR.glob("*.json"))
    if not files:
        print(f"netmon dashboards push: no dashboards in {JSON_DIR}", file=sys.stderr)
        return EXIT_PROBLEM
    # grafana-client glues "api" to the URL's path: a sub-path needs its trailing slash.
    path = parsed.path.strip("/")
    url = urllib.parse.urlunsplit(parsed._replace(path=f"/{path}/" if path else ""))
    return push(url, token, args.folder, args.timeout, files)


def _writable(directory: Path) -> bool:
    existing = next(path for path in (directory, *directory.parents) if path.exists())
    return os.access(existing, os.W_OK | os.X_OK) and all(
        os.access(path, os.W_OK) for path in directory.glob("*.json")
    )


def _token(args: argparse.Namespace) -> str | None:
    if args.token_file is not None:
        try:
            token: str = args.token_file.read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as exc:
            print(f"netmon dashboards push: {args.token_file}: cannot read: {exc}", file=sys.stderr)
            return None
        where = str(args.token_file)
    else:
        token = os.environ.get(args.token_env, "").strip()
        where = f"${args.token_env}"
    if not token:
        print(f"netmon dashboards push: {where}: no token there", file=sys.stderr)
        return None
    return token


@dataclass(frozen=True)
class PushResult:
    title: str
    uid: str
    version: int | None
    status: str

    @property
    def ok(self) -> bool:
        return self.status == "success"


def push(url: str, token: str, folder: str, timeout: float, files: list[Path]) -> int:
    """Uploads every dashboard file into `folder` (created when missing), overwriting."""
    try:
        import niquests
        from grafana_client.api import GrafanaApi
        from grafana_client.client import GrafanaException, TokenAuth
    except ImportError:
        print(
            "netmon dashboards push needs grafana-client: pip install 'netmon[grafana]'",
            file=sys.stderr,
        )
        return EXIT_USAGE

    failures = (GrafanaException, niquests.exceptions.RequestException, NotGrafanaError)
    api = GrafanaApi.from_url(url, credential=TokenAuth(token), timeout=timeout)
    where = _without_credentials(url)
    try:
        folder_uid = _folder_uid(api, folder)
    except failures as exc:
        reason = _reason(exc, token)
        print(f"netmon dashboards push: folder {folder!r} at {where}: {reason}", file=sys.stderr)
        return EXIT_PROBLEM
    results = []
    for path in files:
        dashboard = json.loads(path.read_text(encoding="utf-8"))
        title, uid = str(dashboard.get("title", path.stem)), str(dashboard.get("uid", ""))
        try:
            answer = _grafana_answer(
                api.dashboard.update_dashboard(
                    {"dashboard": dashboard, "folderUid": folder_uid, "overwrite": True}
                )
            )
        except failures as exc:
            results.append(PushResult(title, uid, None, f"failed: {_reason(exc, token)}"))
            continue
        version = answer.get("version")
        status = str(answer.get("status", "success"))
        results.append(
            PushResult(title, uid, version if isinstance(version, int) else None, status)
        )
    _report(results, folder, where)
    return EXIT_OK if all(result.ok for result in results) else EXIT_PROBLEM


def _folder_uid(api: Any, title: str) -> str:
    folders = api.folder.get_all_folders()
    if not isinstance(folders, list):
        raise NotGrafanaError
    for existing in map(_grafana_answer, folders):
        if existing.get("title") == title:
            return str(existing["uid"])
    return str(_grafana_answer(api.folder.create_folder(title))["uid"])


def _grafana_answer(answer: object) -> dict[str, Any]:
    """A folder or a saved dashboard as Grafana describes it, which always has a uid; anything
    else (an HTML page, which grafana-client returns as text) was never saved."""
    if not isinstance(answer, dict) or not isinstance(answer.get("uid"), str):
        raise NotGrafanaError
    return answer


def _reason(exc: Exception, token: str) -> str:
    """Grafana's own words (status code, `status` and message), with the token blanked out in
    case a proxy echoes a header back."""
    if isinstance(exc, json.JSONDecodeError):  # niquests' too: a body that is not JSON
        return NOT_GRAFANA
    cause = _root_cause(exc)
    if isinstance(cause, OSError) and cause is not exc:
        # Under niquests' ConnectionError and urllib3's retry wrappers, what a person can act
        # on: refused, timed out, a name that does not resolve.
        return f"unreachable: {cause.strerror or cause}"
    status_code = getattr(exc, "status_code", 0)
    response = getattr(exc, "response", None)
    message = str(getattr(exc, "message", "") or exc)
    if isinstance(response, dict):
        message = str(response.get("message", message))
        if response.get("status"):
            message = f"{response['status']}: {message}"
    if status_code:
        message = f"HTTP {status_code} {message}"
    return message.replace(token, "<secret>")


def _root_cause(exc: BaseException) -> BaseException:
    while (inner := exc.__cause__ or exc.__context__) is not None:
        exc = inner
    return exc


def _without_credentials(url: str) -> str:
    parts = urllib.parse.urlsplit(url)
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urllib.parse.urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def _report(results: list[PushResult], folder: str, where: str) -> None:
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    table = Table(title=f"Dashboards pushed to folder {folder!r} at {where}")
    for column in ("dashboard", "uid", "version", "status"):
        table.add_column(column)
    for result in results:
        version = "" if result.version is None else str(result.version)
        colour = "green" if result.ok else "bold red"
        table.add_row(result.title, result.uid, version, Text(result.status, style=colour))
    Console().print(table)  # as wide as the terminal, or $COLUMNS
    failed = sum(not result.ok for result in results)
    if failed:
        print(f"netmon dashboards push: {failed} of {len(results)} failed", file=sys.stderr)

"""`netmon check`: a readiness check from the command line.

Exit 0 when nothing is NO-GO, 1 when something is, 2 on usage or config errors. In a terminal
a progress bar runs on stderr while the check does; the report goes to stdout or `--output`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from netmon.checks.html import render_html
from netmon.checks.model import CheckReport, Verdict
from netmon.checks.runner import CheckRunner, ScopeError, select
from netmon.config.errors import ConfigError
from netmon.config.loader import load_file
from netmon.config.schema import MeetingConfig
from netmon.config.thresholds import Thresholds
from netmon.meetings import meeting_thresholds

EXIT_GO, EXIT_NO_GO, EXIT_USAGE = 0, 1, 2
COLOURS = {Verdict.GO: "green", Verdict.WARN: "yellow", Verdict.NO_GO: "bold red"}


def add_parser(commands: Any) -> None:
    check = commands.add_parser("check", help="pre-meeting readiness check of endpoints")
    check.add_argument("--config", required=True, type=Path, metavar="FILE")
    scope = check.add_mutually_exclusive_group()
    scope.add_argument("--meeting", metavar="NAME", help="the endpoints of this meeting")
    scope.add_argument("--group", metavar="G", help="the endpoints of this group")
    scope.add_argument("--district", metavar="D", help="the endpoints of this district")
    scope.add_argument(
        "--target", action="append", metavar="ID", help="these endpoints (repeatable)"
    )
    check.add_argument("--format", choices=["table", "json", "html"], default="table")
    check.add_argument("--output", type=Path, metavar="FILE", help="write the report here")
    check.add_argument(
        "--deadline", type=float, default=10.0, metavar="SECONDS", help="default: 10"
    )


def run(args: argparse.Namespace) -> int:
    try:
        inventory = load_file(args.config)
    except ConfigError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        return EXIT_USAGE
    try:
        targets = select(
            inventory,
            targets=args.target or (),
            group=args.group,
            district=args.district,
            meeting=args.meeting,
        )
    except ScopeError as exc:
        print(f"netmon check: {exc}", file=sys.stderr)
        return EXIT_USAGE
    scope = {
        key: value
        for key, value in (
            ("targets", args.target),
            ("group", args.group),
            ("district", args.district),
            ("meeting", args.meeting),
        )
        if value
    } or {"all": True}
    thresholds = None
    meeting = None
    if args.meeting:
        meeting = next(m for m in inventory.config.meetings if m.name == args.meeting)
        thresholds = meeting_thresholds(inventory.config, meeting)
    report = asyncio.run(_check(inventory, targets, scope, args.deadline, thresholds, meeting))
    text: str | None = None
    if args.format == "json":
        text = json.dumps(report.to_json(), ensure_ascii=False, indent=2) + "\n"
    elif args.format == "html":
        text = render_html(report)
    if args.output is not None:
        if text is None:
            console = Console(file=None, record=True, width=160)
            with console.capture():
                console.print(render_table(report))
            text = console.export_text()
        args.output.write_text(text, encoding="utf-8")
        print(f"{args.output}: {report.summary()}", file=sys.stderr)
    elif text is not None:
        sys.stdout.write(text)
    else:
        Console().print(render_table(report))
    return EXIT_NO_GO if report.counts()["NO-GO"] else EXIT_GO


async def _check(
    inventory: Any,
    targets: list[Any],
    scope: dict[str, Any],
    deadline: float,
    thresholds: Thresholds | None,
    meeting: MeetingConfig | None,
) -> CheckReport:
    runner = CheckRunner(inventory)
    await runner.start()
    probes = sum(len(t.service_probes()) + (t.status_probe() is not None) for t in targets)
    probes += len({t.registrar for t in targets if t.registrar is not None})
    steps = len(targets) + probes + 2  # the burst, each probe, SNMP before and after
    try:
        with Progress(
            TextColumn("[bold]checking[/] {task.description}"),
            BarColumn(),
            TextColumn("{task.completed}/{task.total}"),
            TimeElapsedColumn(),
            console=Console(stderr=True),
            transient=True,
        ) as progress:
            task = progress.add_task(f"{len(targets)} endpoints", total=steps)

            def advance(_what: str, count: int) -> None:
                progress.advance(task, count)

            return await runner.run(
                targets,
                scope=scope,
                deadline=deadline,
                progress=advance,
                thresholds=thresholds,
                meeting=meeting,
            )
    finally:
        await runner.close()


def render_table(report: CheckReport) -> Table:
    table = Table(title="Readiness check", caption=report.summary(), caption_justify="left")
    for column in ("verdict", "endpoint", "district", "RTT p95", "loss", "jitter", "reasons"):
        table.add_column(column, overflow="fold")
    for endpoint in report.worst_first():
        verdict = endpoint.verdict
        table.add_row(
            f"[{COLOURS[verdict]}]{verdict.value}[/]",
            f"{endpoint.name} ({endpoint.target})",
            endpoint.district,
            *endpoint.quality_cells(),
            "; ".join(endpoint.reasons) or f"[dim]{'; '.join(endpoint.notes)}[/]",
        )
    return table

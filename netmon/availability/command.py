"""`netmon report`: an availability report from the outage journal, offline.

    netmon report --config F --month 2026-11 [--district D | --group G | --target T]
                  --format html|pdf|csv|json [--output F] [--lang vi|en]
                  [--database FILE | --from-prometheus URL [--step SECONDS]]

It reads the journal's SQLite file where `netmon run` keeps it (WAL lets it read while netmon
writes), or `--database FILE`; or, with `--from-prometheus URL [--step SECONDS]`, the recorded
series `netmon:target_up` from a Prometheus (netmon/availability/prometheus.py). The targets,
rules and policy come from the config.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from zoneinfo import ZoneInfo

from netmon.availability.period import FORMATS, period_of
from netmon.availability.quality import CallQuality, call_quality, meetings_between

EXIT_OK, EXIT_PROBLEM = 0, 1


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    report = commands.add_parser("report", help="an availability report from the outage journal")
    report.add_argument("--config", required=True, type=Path, metavar="FILE")
    source = report.add_mutually_exclusive_group()
    source.add_argument("--database", type=Path, metavar="FILE", help="the journal's file")
    source.add_argument(
        "--from-prometheus",
        metavar="URL",
        help="compute the report from Prometheus' netmon:target_up instead of the journal",
    )
    report.add_argument(
        "--step",
        type=float,
        default=None,
        metavar="SECONDS",
        help="with --from-prometheus: the resolution asked of Prometheus (default 15)",
    )
    period = report.add_mutually_exclusive_group(required=True)
    period.add_argument("--month", metavar="YYYY-MM", help="a calendar month, local time")
    period.add_argument(
        "--from",
        dest="since",
        metavar="DATE",
        help="from this local date (YYYY-MM-DD, or 'today') until --to or now",
    )
    report.add_argument("--to", dest="until", metavar="DATE", help="until this local date (excl.)")
    scope = report.add_mutually_exclusive_group()
    scope.add_argument("--district")
    scope.add_argument("--group")
    scope.add_argument("--target")
    report.add_argument("--format", choices=FORMATS, default="html")
    report.add_argument("--table", choices=("sites", "outages"), default="sites", help="csv")
    report.add_argument("--lang", choices=("vi", "en"), default=None)
    report.add_argument("-o", "--output", type=Path, metavar="FILE")


def journal_path(config_path: Path, database: str) -> Path:
    from netmon.service import alert_database_path

    return alert_database_path(database, config_path, os.environ)


def _call_quality(
    path: Path, meetings: list[tuple[str, float]]
) -> dict[tuple[str, str], CallQuality]:
    """From the meeting quality record, when there is one and there are meetings."""
    from netmon.meeting_quality.db import MeetingDB

    if not meetings or not path.is_file():
        return {}
    db = MeetingDB(path)
    try:
        db.open(create=False)
        return call_quality(db, meetings)
    finally:
        db.shutdown()


def run(args: argparse.Namespace) -> int:
    from netmon.availability.db import JournalDB
    from netmon.availability.render import render
    from netmon.availability.report import build_report, scope_problem
    from netmon.config.errors import ConfigError
    from netmon.config.loader import load_file

    try:
        inventory = load_file(args.config)
    except ConfigError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        return EXIT_PROBLEM
    config = inventory.config.availability
    lang = args.lang or config.report_lang
    path = args.database or journal_path(args.config, config.database)
    try:
        start, end = period_of(
            args.month, args.since, args.until, ZoneInfo(config.timezone), time.time()
        )
    except ValueError as exc:
        print(f"netmon report: {exc}", file=sys.stderr)
        return EXIT_PROBLEM
    scope = {"district": args.district, "group": args.group, "target": args.target}
    nothing = scope_problem(inventory, scope)
    if nothing is not None:
        print(f"netmon report: {nothing}", file=sys.stderr)
        return EXIT_PROBLEM
    if args.from_prometheus is not None:
        from netmon.availability.prometheus import (
            DEFAULT_STEP,
            PrometheusError,
            PrometheusSource,
            read_prometheus,
        )

        try:
            prometheus = PrometheusSource(args.from_prometheus, args.step or DEFAULT_STEP)
            journal = read_prometheus(prometheus, inventory, config, start, end, scope=scope)
        except (PrometheusError, ValueError) as exc:
            print(f"netmon report: {exc}", file=sys.stderr)
            return EXIT_PROBLEM
        source = prometheus.describe()
        # The quality figure needs the link-quality alerts the journal keeps; Prometheus'
        # netmon:target_up has none, so it would only repeat availability: left out.
        config = config.model_copy(update={"degraded": False})
    else:
        if args.step is not None:
            print("netmon report: --step goes with --from-prometheus", file=sys.stderr)
            return EXIT_PROBLEM
        db = JournalDB(path)
        try:
            db.open(create=False)
            journal = db.read(start, end)
        except FileNotFoundError as exc:
            print(f"netmon report: {exc}", file=sys.stderr)
            return EXIT_PROBLEM
        finally:
            db.shutdown()
        source = "journal"
    record = (
        path.parent / Path(inventory.config.meeting_record.database).name
        if args.database
        else journal_path(args.config, inventory.config.meeting_record.database)
    )
    quality = _call_quality(record, meetings_between(inventory, start, end))
    report = build_report(
        journal, inventory, config, scope=scope, lang=lang, call_quality=quality, source=source
    )
    try:
        body = render(report, args.format, lang=lang, table=args.table)
    except RuntimeError as exc:  # PDF without its library
        print(f"netmon report: {exc}", file=sys.stderr)
        return EXIT_PROBLEM
    if args.output is None:
        if isinstance(body, bytes):
            sys.stdout.buffer.write(body)
        else:
            sys.stdout.write(body)
    else:
        data = body if isinstance(body, bytes) else body.encode()
        args.output.write_bytes(data)
        print(f"wrote {args.output} ({len(data)} bytes)", file=sys.stderr)
    return EXIT_OK

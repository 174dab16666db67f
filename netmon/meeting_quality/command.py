"""`netmon meetings list` and `netmon meetings report ID`: the record read offline.

They open the record's SQLite file read-only in intent (WAL lets them read while netmon
writes): `--database FILE`, or `--config FILE` to find it where netmon keeps it
(`meeting_record.database`, relative to $STATE_DIRECTORY or the config's directory).
"""

from __future__ import annotations

import argparse
import itertools
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import cast
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from netmon.meeting_quality.db import MeetingDB
from netmon.meeting_quality.report import DEFAULT_TZ, render_report
from netmon.meeting_quality.summary import RoomSummary, summarize
from netmon.meeting_quality.texts import LANGS, Lang

EXIT_OK, EXIT_PROBLEM = 0, 1


def add_parsers(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    def where(sub: argparse.ArgumentParser) -> None:
        source = sub.add_mutually_exclusive_group(required=True)
        source.add_argument("--database", type=Path, metavar="FILE", help="the record's file")
        source.add_argument(
            "--config", type=Path, metavar="FILE", help="find the record as netmon run does"
        )

    listing = commands.add_parser("list", help="the recorded meetings")
    where(listing)
    report = commands.add_parser("report", help="a recorded meeting's HTML report")
    report.add_argument("id", metavar="ID", help="the meeting's id (see `netmon meetings list`)")
    report.add_argument("--lang", choices=LANGS, default="en")
    report.add_argument("--tz", default=DEFAULT_TZ, help="time zone of the times shown")
    report.add_argument("-o", "--output", type=Path, metavar="FILE.html")
    where(report)


def _database(args: argparse.Namespace) -> Path:
    if args.database is not None:
        return Path(args.database)
    from netmon.config.loader import load_file
    from netmon.service import alert_database_path

    config = Path(args.config)
    inventory = load_file(config)
    return alert_database_path(inventory.config.meeting_record.database, config, os.environ)


def run(args: argparse.Namespace) -> int:
    from netmon.config.errors import ConfigError

    try:
        path = _database(args)
    except ConfigError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        return EXIT_PROBLEM
    db = MeetingDB(path)
    try:
        db.open(create=False)
        if args.meetings_command == "list":
            return _list(db)
        return _report(db, args)
    finally:
        db.shutdown()


def _list(db: MeetingDB) -> int:
    now = time.time()
    for meeting in db.meetings():
        end = "in progress" if meeting.in_progress(now) else ""
        rooms = f"{len(meeting.rooms)} rooms"
        print("\t".join(filter(None, (meeting.id, meeting.name, rooms, end))))
    return EXIT_OK


def _report(db: MeetingDB, args: argparse.Namespace) -> int:
    try:
        ZoneInfo(args.tz)
    except (ZoneInfoNotFoundError, ValueError):
        print(f"--tz: no time zone {args.tz!r}", file=sys.stderr)
        return EXIT_PROBLEM
    meeting = db.meeting(args.id)
    if meeting is None:
        print(f"no recorded meeting {args.id!r} (see `netmon meetings list`)", file=sys.stderr)
        return EXIT_PROBLEM
    rooms = summarize(meeting, db.samples(meeting.id))
    interval = _interval(rooms)
    page = render_report(
        meeting, rooms, lang=cast(Lang, args.lang), now=time.time(), interval=interval, tz=args.tz
    )
    if args.output is None:
        sys.stdout.write(page)
    else:
        args.output.write_text(page, encoding="utf-8")
        print(f"{args.output}: report of {meeting.id} written", file=sys.stderr)
    return EXIT_OK


def _interval(rooms: Sequence[RoomSummary]) -> float:
    """The sampling interval as the record shows it: the commonest step of a room's samples
    (10 s when there is none)."""
    steps: dict[float, int] = {}
    for room in rooms:
        timeline = room.timeline
        for a, b in itertools.pairwise(timeline):
            step = round(b.t - a.t)
            steps[step] = steps.get(step, 0) + 1
    return float(max(steps, key=lambda s: steps[s])) if steps else 10.0

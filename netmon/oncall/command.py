"""`netmon oncall --config F [--at TIME]`: who is on call now and who is next, per rota.

Read from the config alone (no running netmon needed), in the rota's time zone, overrides
counted.
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
import time

from netmon.oncall.rota import Shift, next_on_call, on_call

EXIT_OK, EXIT_PROBLEM = 0, 1


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    oncall = commands.add_parser("oncall", help="who is on call now and next, per rota")
    oncall.add_argument("--config", required=True, metavar="FILE")
    oncall.add_argument(
        "--at", metavar="TIME", help="another moment, ISO 8601 (local to oncall.timezone)"
    )


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from netmon.config.errors import ConfigError
    from netmon.config.loader import load_file

    try:
        config = load_file(Path(args.config)).config.oncall
    except ConfigError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        return EXIT_PROBLEM
    if config is None or not config.rotas:
        print("netmon oncall: the config has no oncall.rotas", file=sys.stderr)
        return EXIT_PROBLEM
    zone = config.zone
    when = time.time()
    if args.at:
        try:
            moment = dt.datetime.fromisoformat(args.at)
        except ValueError:
            print(f"netmon oncall: --at: not an ISO 8601 time: {args.at!r}", file=sys.stderr)
            return EXIT_PROBLEM
        when = (moment if moment.tzinfo else moment.replace(tzinfo=zone)).timestamp()

    def shown(shift: Shift) -> str:
        person = config.people[shift.person]
        name = f"{person.name} ({shift.person})" if person.name else shift.person
        start = dt.datetime.fromtimestamp(shift.start, zone).strftime("%a %d/%m %H:%M")
        end = dt.datetime.fromtimestamp(shift.end, zone).strftime("%a %d/%m %H:%M")
        override = ", override" if shift.override else ""
        return f"{name}, {start} - {end}{override}"

    print(f"at {dt.datetime.fromtimestamp(when, zone):%Y-%m-%d %H:%M} ({config.timezone})")
    for name, rota in config.rotas.items():
        print(f"{name}: now {shown(on_call(rota, when, zone))}")
        print(f"{' ' * len(name)}  next {shown(next_on_call(rota, when, zone))}")
    return EXIT_OK

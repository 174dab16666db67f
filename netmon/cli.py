"""The `netmon` command line: run, validate, inventory import, demo."""

from __future__ import annotations

import argparse
import asyncio
import functools
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Literal, cast

from netmon import __version__, logsetup
from netmon.config.errors import ConfigError
from netmon.config.loader import load_file
from netmon.config.schema import parse_listen
from netmon.inventory_import import CsvImportError, csv_to_config, to_yaml
from netmon.sharding import ShardSpecError, parse_shard

EXIT_OK, EXIT_PROBLEM, EXIT_USAGE = 0, 1, 2


def _listen(value: str) -> str:
    try:
        parse_listen(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return value


def _optional_listen(value: str) -> str:
    return _listen(value) if value else value


def _parser(*, with_lab: bool) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="netmon", description="Monitor a telecom network and its conference endpoints."
    )
    parser.add_argument("--version", action="version", version=f"netmon {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def logging_options(sub: argparse.ArgumentParser) -> None:
        sub.add_argument("--log-format", choices=["text", "json"], default="text")
        sub.add_argument(
            "--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"]
        )

    run = commands.add_parser("run", help="run the service")
    run.add_argument("--config", required=True, type=Path, metavar="FILE")
    run.add_argument("--listen", type=_listen, metavar="HOST:PORT", help="overrides http.listen")
    run.add_argument(
        "--shard",
        type=_shard,
        metavar="K/N",
        help="run shard K of N (overrides sharding.shard and sharding.of)",
    )
    logging_options(run)

    validate = commands.add_parser("validate", help="check a config file")
    validate.add_argument("--config", required=True, type=Path, metavar="FILE")

    inventory = commands.add_parser("inventory", help="inventory tools")
    inventory_commands = inventory.add_subparsers(dest="inventory_command", required=True)
    importer = inventory_commands.add_parser("import", help="turn a CSV export into a config")
    importer.add_argument("csv", type=Path, metavar="FILE.csv")
    importer.add_argument("-o", "--output", type=Path, metavar="FILE.yaml")
    importer.add_argument("--instance", default="netmon", help="instance name for the config")
    importer.add_argument(
        "--api-credential",
        metavar="NAME",
        help="read Cisco and Poly rooms' status over their API with this credential "
        "(its password from NETMON_API_PASSWORD)",
    )
    importer.add_argument(
        "--registrar",
        metavar="ADDRESS",
        help="the Kamailio SIP registrar every room registers to (AoR: the aor or sip_uri column)",
    )

    meetings = commands.add_parser("meetings", help="meeting tools")
    meeting_commands = meetings.add_subparsers(dest="meetings_command", required=True)
    ics = meeting_commands.add_parser("import", help="turn an .ics calendar into meetings")
    ics.add_argument("ics", type=Path, metavar="FILE.ics")
    ics.add_argument("-o", "--output", type=Path, metavar="FILE.yaml")
    ics.add_argument(
        "--timezone", default="Asia/Ho_Chi_Minh", help="for events without one (IANA name)"
    )
    ics.add_argument(
        "--days", type=float, default=60.0, help="recurring events: occurrences this far ahead"
    )

    from netmon.meeting_quality import command as record_command

    record_command.add_parsers(meeting_commands)

    from netmon.availability import command as report_command

    report_command.add_parser(commands)

    demo = commands.add_parser("demo", help="run netmon on the built-in lab")
    demo.add_argument("--listen", type=_listen, default="127.0.0.1:9842", metavar="HOST:PORT")
    demo.add_argument("--duration", type=float, metavar="SECONDS", help="stop after this long")
    demo.add_argument(
        "--mqtt",
        type=_optional_listen,
        default="127.0.0.1:1883",
        metavar="HOST:PORT",
        help="publish to the MQTT broker there when one answers ('' for never)",
    )
    demo.add_argument(
        "--alertmanager",
        default="http://127.0.0.1:9093",
        metavar="URL",
        help="send alerts to the Alertmanager there when one answers ('' for never)",
    )
    logging_options(demo)
    if with_lab:
        # The lab is imported only for `netmon demo`: the service itself never loads it.
        from netmon_lab import fault_client

        fault_client.add_parser(demo.add_subparsers(dest="demo_command", metavar="COMMAND"))
    from netmon.checks import command as check_command

    check_command.add_parser(commands)
    from netmon import dashboards_command

    dashboards_command.add_parser(commands)
    from netmon import alerts_command

    alerts_command.add_parser(commands)
    from netmon.oncall import command as oncall_command

    oncall_command.add_parser(commands)
    return parser


def _print_problems(problems: Sequence[object]) -> None:
    for problem in problems:
        print(problem, file=sys.stderr)


def cmd_validate(config: Path) -> int:
    try:
        inventory = load_file(config)
    except ConfigError as exc:
        _print_problems(exc.problems)
        print(f"{config}: {len(exc.problems)} problem(s)", file=sys.stderr)
        return EXIT_PROBLEM
    print(f"{config}: OK, {inventory.summary()}")
    return EXIT_OK


def cmd_import(
    csv_path: Path,
    output: Path | None,
    instance: str,
    api_credential: str | None = None,
    registrar: str | None = None,
) -> int:
    try:
        text = csv_path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        print(f"{csv_path}: cannot read: {exc}", file=sys.stderr)
        return EXIT_PROBLEM
    try:
        data = csv_to_config(
            text, instance=instance, api_credential=api_credential, registrar=registrar
        )
    except CsvImportError as exc:
        for problem in exc.problems:
            print(f"{csv_path}: {problem}", file=sys.stderr)
        print(f"{csv_path}: {len(exc.problems)} bad row(s), nothing written", file=sys.stderr)
        return EXIT_PROBLEM
    return _emit(to_yaml(data), output, f"{len(data['targets'])} targets")


def _emit(document: str, output: Path | None, what: str) -> int:
    """A generated YAML document to stdout, or to `output` with a line saying what went in."""
    if output is None:
        sys.stdout.write(document)
    else:
        output.write_text(document, encoding="utf-8")
        print(f"{output}: {what} written", file=sys.stderr)
    return EXIT_OK


def cmd_meetings_import(ics: Path, output: Path | None, timezone: str, days: float) -> int:
    from netmon.meetings_import import IcsImportError, ics_to_meetings, to_yaml

    try:
        meetings = ics_to_meetings(ics.read_text(encoding="utf-8"), timezone=timezone, days=days)
    except (OSError, UnicodeDecodeError) as exc:
        print(f"{ics}: cannot read: {exc}", file=sys.stderr)
        return EXIT_PROBLEM
    except IcsImportError as exc:
        for problem in exc.problems:
            print(f"{ics}: {problem}", file=sys.stderr)
        return EXIT_PROBLEM
    return _emit(to_yaml(meetings), output, f"{len(meetings)} meetings")


def _shard(text: str) -> tuple[int, int]:
    try:
        return parse_shard(text)
    except ShardSpecError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def cmd_run(config: Path, listen: str | None, shard: tuple[int, int] | None = None) -> int:
    from netmon.service import Service

    try:
        inventory = load_file(config, shard=shard)
    except ConfigError as exc:
        _print_problems(exc.problems)
        return EXIT_PROBLEM
    # A reload (SIGHUP) keeps the shard given on the command line.
    service = Service(
        inventory=inventory,
        config_path=config,
        listen=listen,
        load=functools.partial(load_file, shard=shard),
    )
    asyncio.run(service.run())
    return EXIT_OK


def cmd_demo(listen: str, duration: float | None, mqtt: str, alertmanager: str) -> int:
    from netmon_lab.demo import run_demo

    asyncio.run(run_demo(listen=listen, duration=duration, mqtt=mqtt, alertmanager=alertmanager))
    return EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    arguments = sys.argv[1:] if argv is None else list(argv)
    args = _parser(with_lab="demo" in arguments).parse_args(arguments)
    if hasattr(args, "log_format"):
        logsetup.configure(cast(Literal["text", "json"], args.log_format), args.log_level)
    try:
        if args.command == "validate":
            return cmd_validate(args.config)
        if args.command == "inventory":
            return cmd_import(
                args.csv, args.output, args.instance, args.api_credential, args.registrar
            )
        if args.command == "run":
            return cmd_run(args.config, args.listen, args.shard)
        if args.command == "meetings" and args.meetings_command in ("list", "report"):
            from netmon.meeting_quality import command as record_command

            return record_command.run(args)
        if args.command == "meetings":
            return cmd_meetings_import(args.ics, args.output, args.timezone, args.days)
        if args.command == "check":
            from netmon.checks import command as check_command

            return check_command.run(args)
        if args.command == "dashboards":
            from netmon import dashboards_command

            return dashboards_command.run(args)
        if args.command == "alerts":
            from netmon import alerts_command

            return alerts_command.run(args)
        if args.command == "report":
            from netmon.availability import command as report_command

            return report_command.run(args)
        if args.command == "oncall":
            from netmon.oncall import command as oncall_command

            return oncall_command.run(args)
        demo_commands = ("fault", "meeting", "pages", "press")
        if args.command == "demo" and getattr(args, "demo_command", None) in demo_commands:
            from netmon_lab import fault_client

            return fault_client.run(args)
        if args.command == "demo":
            return cmd_demo(args.listen, args.duration, args.mqtt, args.alertmanager)
    except PermissionError as exc:
        print(f"netmon: {exc}", file=sys.stderr)
        return EXIT_PROBLEM
    except OSError as exc:
        print(f"netmon: {exc}", file=sys.stderr)
        return EXIT_PROBLEM
    return EXIT_USAGE

"""`netmon dashboards build`: write the Grafana dashboards' JSON."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

EXIT_OK = 0


def add_parser(commands: Any) -> None:
    dashboards = commands.add_parser("dashboards", help="Grafana dashboards: build")
    actions = dashboards.add_subparsers(dest="dashboards_command", required=True, metavar="COMMAND")
    build = actions.add_parser("build", help="regenerate the dashboards' JSON from dashboards/")
    build.add_argument(
        "--output", type=Path, metavar="DIR", help="default: dashboards/json beside the code"
    )


def run(args: argparse.Namespace) -> int:
    from dashboards import JSON_DIR
    from dashboards.build import write

    output = args.output or JSON_DIR
    written = write(output)
    print(f"{output}: {len(written)} dashboards written", file=sys.stderr)
    return EXIT_OK

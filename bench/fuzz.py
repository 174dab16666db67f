"""Issue 14's fuzz campaign, large budget: every parser an outsider can feed, under hypothesis.

The targets and their contracts are tests/fuzz/'s, the same that `make test` runs
with ~200 inputs each (tests/test_fuzz.py); here each gets `--examples` inputs (a tenth of that
for the two that make a round trip per input: the HTTP probe against a server, the API), and
no exception stops the run: each one that escapes a parser's contract is counted and its input
kept. For the datagram parsers (ICMP, SNMP BER, trap decode, SIP), the time to decode a
datagram of 100 B, 1 KB, 10 KB and 64 KB, and per KB: flat per KB is linear.

Run with `make fuzz` (`make fuzz ARGS="--examples 2000"` for a quick one). Prints a table and
writes bench/results/fuzz-<UTC>.json. Exit status 1 when anything escaped.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import sys
import time
import traceback
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, Phase, given, settings
from rich.console import Console
from rich.table import Table

from tests.fuzz import TARGETS, Check, Target

console = Console(width=150)  # the table has nine columns
SIZES = (100, 1024, 10 * 1024, 64 * 1024)


@dataclass
class Outcome:
    parser: str
    inputs: int = 0
    escaped: int = 0
    seconds: float = 0.0
    worst_input_seconds: float = 0.0  # the slowest input, re-timed (best of three)
    worst_input_bytes: int = 0
    examples: list[str] = field(default_factory=list)  # the first few escapes, with input
    scaling: dict[str, dict[str, float]] = field(default_factory=dict)  # size → us, us/KB


def _size(value: Any) -> int:
    """An input's size in bytes or characters: of its longest part when it has several."""
    parts = value if isinstance(value, tuple) else (value,)
    return max((len(part) for part in parts if isinstance(part, bytes | str)), default=0)


def _timed(check: Check, value: Any) -> float:
    began = time.perf_counter()
    with contextlib.suppress(Exception):  # counted on the first run
        check(value)
    return time.perf_counter() - began


def fuzz(target: Target, examples: int) -> Outcome:
    outcome = Outcome(target.name)
    budget = max(1, examples // 10) if target.slow else examples
    started = time.perf_counter()
    with target.open() as check:

        @settings(
            max_examples=budget,
            deadline=None,
            database=None,
            phases=[Phase.generate],  # nothing fails here (escapes are counted): no shrinking
            suppress_health_check=list(HealthCheck),
        )
        @given(target.strategy)
        def run(value: Any) -> None:
            outcome.inputs += 1
            began = time.perf_counter()
            try:
                check(value)
            except Exception as exc:
                outcome.escaped += 1
                if len(outcome.examples) < 3:
                    shown = repr(value)[:300]
                    last = traceback.format_exception(exc)[-1].strip()
                    outcome.examples.append(f"{last} <- {shown}")
            finally:
                took = time.perf_counter() - began
                if took > outcome.worst_input_seconds:
                    outcome.worst_input_seconds, worst[0] = took, value

        worst: list[Any] = [None]
        run()
        # The slowest input once more, best of three: on a shared machine one slow run may be
        # a pause (another process, the garbage collector), not what the input costs.
        if worst[0] is not None:
            outcome.worst_input_seconds = min(_timed(check, worst[0]) for _ in range(3))
            outcome.worst_input_bytes = _size(worst[0])
        outcome.seconds = time.perf_counter() - started
        if target.sized is not None:
            for size in SIZES:
                value = target.sized(size)
                check(value)  # warm: caches, first-use imports
                repeat = max(3, 2_000_000 // size // 10)
                best = float("inf")
                for _ in range(3):  # best of three: the machine is shared
                    began = time.perf_counter()
                    for _ in range(repeat):
                        check(value)
                    best = min(best, (time.perf_counter() - began) / repeat)
                actual = _size(value)
                outcome.scaling[str(size)] = {
                    "bytes": actual,
                    "us": best * 1e6,
                    "us_per_kb": best * 1e6 / actual * 1024,
                }
    return outcome


def report(outcomes: list[Outcome], examples: int) -> dict[str, Any]:
    table = Table(title=f"fuzz campaign: up to {examples} inputs per parser")
    for column in ("parser", "inputs", "escaped", "worst input", "run"):
        table.add_column(column, justify="left" if column == "parser" else "right")
    for size in SIZES:
        table.add_column(f"{_label(size)}: us (us/KB)", justify="right")
    for outcome in outcomes:
        scaled = [outcome.scaling.get(str(size)) for size in SIZES]
        cells = [f"{s['us']:.0f} ({s['us_per_kb']:.0f})" if s else "-" for s in scaled]
        table.add_row(
            outcome.parser,
            str(outcome.inputs),
            f"[red]{outcome.escaped}[/red]" if outcome.escaped else "0",
            f"{outcome.worst_input_seconds * 1e3:.1f} ms ({outcome.worst_input_bytes} B)",
            f"{outcome.seconds:.0f} s",
            *cells,
        )
    console.print(table)
    for outcome in outcomes:
        for example in outcome.examples:
            console.print(f"[red]{outcome.parser}[/red]: {example}")
    return {
        "utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "examples": examples,
        "escaped_total": sum(outcome.escaped for outcome in outcomes),
        "parsers": [asdict(outcome) for outcome in outcomes],
    }


def _label(size: int) -> str:
    return f"{size} B" if size < 1024 else f"{size // 1024} KB"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=20_000, help="inputs per parser")
    parser.add_argument("--only", action="append", help="a parser's name (repeatable)")
    args = parser.parse_args()
    # Refusals are logged by the parsers' callers (the trap receiver, aiohttp): not here.
    logging.disable(logging.CRITICAL)
    targets = [t for t in TARGETS if not args.only or t.name in args.only]
    outcomes = []
    for target in targets:
        console.print(f"fuzzing {target.name} ...")
        outcomes.append(fuzz(target, args.examples))
    result = report(outcomes, args.examples)
    out = Path("bench/results")
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"fuzz-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}.json"
    path.write_text(json.dumps(result, indent=2))
    console.print(f"written {path}")
    sys.exit(1 if result["escaped_total"] else 0)


if __name__ == "__main__":
    main()

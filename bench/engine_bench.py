"""The alert engine's cost per observation, in process: echo rounds into a state store with and
without the engine listening (issue 17, "the alert engine pays for what changed").

N ICMP targets (half of them endpoints, half switches, so the kind-scoped default rules apply
as in a province), default rules, one echo round per target per simulated second, a tick per
second as the runtime does. The windows are filled first (`--warmup` rounds: the 60 s RTT
window and the 60 echoes loss needs), then `--rounds` rounds are timed with
`time.process_time`: the store alone, then the store with the engine listening as
`netmon.alerting.runtime` wires it. Prints CPU µs per observation and the ratio.

    python -m bench.engine_bench --targets 2000 5000
    python -m bench.engine_bench --targets 2000 --profile   # cProfile of the engine-on pass

No peers, no root, no sockets; absolute figures depend on the machine, the ratio is what to
compare (with `uptime`: another process on the machine shows in both passes alike).

`--service` measures the same in the real service path instead (root, raw sockets): netmon's
scheduler, ICMP collector and store probing loopback addresses once a second
(bench/netmon_load.py), with alerting off and on (the runtime, default rules), each after
`--warmup` seconds that fill the windows, then `--seconds` measured; and fping over the same
addresses for `--seconds`. CPU as a share of one core, and netmon's per probe against fping's:

    python -m bench.engine_bench --service --targets 5000 10000
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import gc
import inspect
import json
import os
import pstats
import random
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from netmon.alerting.engine import AlertEngine
from netmon.alerting.store import AlertDB
from netmon.config.loader import load_data
from netmon.inventory import Inventory
from netmon.model import EchoRound, Observation
from netmon.state import Clock, StateStore, TargetState


class SimClock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def wall(self) -> float:
        return self.now

    def monotonic(self) -> float:
        return self.now - 1_799_000_000.0


def inventory(targets: int) -> Inventory:
    return load_data(
        {
            "targets": [
                {
                    "id": f"t{i}",
                    "address": f"127.10.{i // 250}.{1 + i % 250}",
                    "kind": "endpoint" if i % 2 else "switch",
                    "district": f"D{i % 27}",
                }
                for i in range(targets)
            ]
        }
    )


def rounds(inv: Inventory, count: int, rng: random.Random) -> list[list[EchoRound]]:
    """`count` rounds of one echo per target: ~5 ms with a few ms of jitter."""
    ids = list(inv.targets)
    return [
        [
            EchoRound(
                target=tid,
                collector="icmp",
                ok=True,
                duration=0.005,
                address=inv.targets[tid].address,
                rtts=(0.005 + rng.random() * 0.003,),
            )
            for tid in ids
        ]
        for _ in range(count)
    ]


def feed(
    store: StateStore, clock: SimClock, batches: list[list[EchoRound]], tick: Callable[[], None]
) -> None:
    for batch in batches:
        clock.now += 1.0
        for echo in batch:
            store.record(echo)
        tick()


def run(targets: int, warmup: int, measured: int, *, engine_on: bool, profile: bool) -> float:
    """CPU seconds per observation over the measured rounds."""
    rng = random.Random(17)
    inv = inventory(targets)
    clock = SimClock()
    store = StateStore(clock=Clock(wall=clock.wall, monotonic=clock.monotonic))
    store.apply_inventory(inv)
    tick: Callable[[], None] = lambda: None  # noqa: E731
    with tempfile.TemporaryDirectory() as tmp:
        db = AlertDB(Path(tmp) / "alerts.db")
        asyncio.run(db.call(db.open))
        if engine_on:
            engine = AlertEngine(
                store=store,
                config=inv.config.alerting,
                rules=inv.rules,
                db=db,
                queues=list,
                on_queued=lambda: None,
                clock=clock.wall,
            )
            engine.apply_inventory(inv)
            # As netmon.alerting.runtime feeds it (older engines took the state alone).
            if len(inspect.signature(engine.observe).parameters) > 1:

                def listener(state: TargetState, observation: Observation) -> None:
                    engine.observe(state, observation)  # type: ignore[call-arg,unused-ignore]
            else:

                def listener(state: TargetState, observation: Observation) -> None:
                    engine.observe(state)

            store.on_record(listener)
            tick = engine.tick
        feed(store, clock, rounds(inv, warmup, rng), tick)
        timed = rounds(inv, measured, rng)
        gc.collect()
        profiler = cProfile.Profile() if profile else None
        started = time.process_time()
        if profiler is not None:
            profiler.enable()
        feed(store, clock, timed, tick)
        if profiler is not None:
            profiler.disable()
        spent = time.process_time() - started
        if profiler is not None:
            pstats.Stats(profiler).sort_stats("tottime").print_stats(25)
        asyncio.run(asyncio.to_thread(db.shutdown))
    return spent / (targets * measured)


def service(targets: int, seconds: int, warmup: int) -> None:
    """Alerting off and on in the real service path, and fping, at `targets` addresses."""
    from bench.icmp_bench import loopback_set, run_fping

    addresses = loopback_set(targets)
    with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as handle:
        handle.write("\n".join(addresses))
    figures: dict[str, tuple[float, float, int]] = {}  # share of a core, CPU s per probe, lost
    for name, flags in (("alerting off", []), ("alerting on", ["--alerting"])):
        output = subprocess.run(
            [sys.executable, "-m", "bench.netmon_load", handle.name, str(seconds),
             "--warmup", str(warmup), *flags],
            check=True, capture_output=True, text=True,
        ).stdout  # fmt: skip
        data = json.loads(output)
        lost = int(data["sent"] - data["received"])
        figures[name] = (data["cpu_seconds"] / seconds, data["cpu_seconds"] / data["sent"], lost)
    fping = run_fping(addresses, seconds)
    figures["fping"] = (fping.cpu_seconds / seconds, fping.cpu_seconds / fping.probes, fping.lost)
    Path(handle.name).unlink()
    off, on, peer = figures["alerting off"], figures["alerting on"], figures["fping"]
    for name, (share, per_probe, lost) in figures.items():
        print(f"{targets:>6} {name:>13}: {share * 100:5.1f} % of a core, "
              f"{per_probe * 1e6:5.1f} µs CPU / probe, {lost} lost")  # fmt: skip
    print(f"{targets:>6} alerting on / off {on[1] / off[1]:.2f}x, "
          f"on / fping {on[1] / peer[1]:.2f}x, off / fping {off[1] / peer[1]:.2f}x")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--targets", type=int, nargs="+", default=[2000, 5000])
    parser.add_argument("--rounds-before", type=int, default=62, help="rounds before timing")
    parser.add_argument("--rounds", type=int, default=10, help="rounds timed")
    parser.add_argument("--repeat", type=int, default=2, help="best of this many passes")
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--service", action="store_true", help="the real service path (root)")
    parser.add_argument("--seconds", type=int, default=20, help="--service: measured seconds")
    parser.add_argument("--warmup", type=int, default=65, help="--service: seconds before")
    args = parser.parse_args()
    print(f"uptime: {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} (1 and 5 min load)")
    if args.service:
        for targets in args.targets:
            service(targets, args.seconds, args.warmup)
        return
    print(f"{'targets':>8} {'engine off µs/obs':>18} {'engine on µs/obs':>17} {'on/off':>7}")
    for targets in args.targets:
        off = min(
            run(targets, args.rounds_before, args.rounds, engine_on=False, profile=False)
            for _ in range(args.repeat)
        )
        on = min(
            run(targets, args.rounds_before, args.rounds, engine_on=True, profile=args.profile)
            for _ in range(1 if args.profile else args.repeat)
        )
        print(f"{targets:>8} {off * 1e6:>18.1f} {on * 1e6:>17.1f} {on / off:>6.2f}x")


if __name__ == "__main__":
    main()

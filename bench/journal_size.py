"""How big a year of the outage journal gets, and how long a month's report takes (issue 19).

A synthetic province: 215 endpoints behind 27 district links, each endpoint with a SIP service
probe, for `--days` days. Outages come as a Poisson process per site: most sites are good
(0.1 outage a day), a quarter average (1 a day), a tenth flapping rural links (20 a day, 1-3
minutes each); links fail 0.05 times a day; netmon restarts once a week. Each outage is two
rows (down, up) per subject it touches. Written through `JournalDB` as `netmon run` writes it,
then the file's size after a VACUUM, and the CPU time of one month's report (`build_report`
over the last 30 days, JSON and HTML where available).

    python -m bench.journal_size [--days 365] [--seed 1]
"""

from __future__ import annotations

import argparse
import random
import tempfile
import time
from pathlib import Path

from netmon.availability.db import Change, JournalDB
from netmon.availability.render import render
from netmon.availability.report import build_report
from netmon.config.loader import load_data

DAY = 86400.0


def province() -> dict[str, object]:
    targets: list[dict[str, object]] = []
    for d in range(27):
        targets.append(
            {"id": f"sw-{d:02}", "address": f"10.{d}.0.1", "kind": "switch", "district": f"D{d:02}"}
        )
    for n in range(215):
        d = n % 27
        targets.append({
            "id": f"ep-{n:03}", "address": f"10.{d}.1.{n % 250 + 1}", "district": f"D{d:02}",
            "parent": f"sw-{d:02}", "probes": {"icmp": {}, "sip": {}},
        })  # fmt: skip
    return {"targets": targets}


def outages(
    rate: float, span: float, length: tuple[float, float], rng: random.Random
) -> list[tuple[float, float]]:
    found, at = [], rng.expovariate(rate / DAY)
    while at < span:
        found.append((at, at + rng.uniform(*length)))
        at += rng.expovariate(rate / DAY)
    return found


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--days", type=float, default=365)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    inventory = load_data(province())
    start = time.time() - args.days * DAY
    span = args.days * DAY
    with tempfile.TemporaryDirectory() as workdir:
        path = Path(workdir) / "journal.sqlite"
        db = JournalDB(path)
        db.open()
        for week in range(int(args.days // 7) + 1):
            started = start + week * 7 * DAY
            db.start_run(started)
            db.stop_run(started, min(started + 7 * DAY - 60, start + span))
        changes: list[Change] = []
        for target in inventory.targets.values():
            subjects = [target.id]
            if target.kind == "switch":
                subjects.append("link:" + target.id)
                plan = outages(0.05, span, (60, 3600), rng)
            else:
                subjects.append(target.id + "/sip")
                kind = rng.random()
                if kind < 0.1:
                    plan = outages(20, span, (60, 180), rng)
                elif kind < 0.35:
                    plan = outages(1, span, (60, 1800), rng)
                else:
                    plan = outages(0.1, span, (60, 7200), rng)
            for subject in subjects:
                changes.append(Change(subject, start + 1, "up"))
                for down, up in plan:
                    changes.append(Change(subject, start + down, "down", "timeout"))
                    changes.append(Change(subject, start + up, "up"))
        for index in range(0, len(changes), 10_000):
            db.record(changes[index : index + 10_000])
        db.close()
        db.open()
        rows = db.size()
        db._db.execute("VACUUM")
        size = path.stat().st_size
        cpu = time.process_time()
        month = db.read(start + span - 30 * DAY, start + span)
        report = build_report(month, inventory, inventory.config.availability)
        render(report, "json")
        report_cpu = time.process_time() - cpu
        html_cpu = None
        try:
            cpu = time.process_time()
            render(report, "html")
            html_cpu = time.process_time() - cpu
        except ValueError:
            pass
        db.shutdown()
    print(f"{args.days:g} days, {len(inventory.targets)} targets: {rows['changes']:,} changes, "
          f"{rows['runs']} runs; file {size / 1e6:.1f} MB ({size / max(rows['changes'], 1):.0f} "
          f"bytes a change)")  # fmt: skip
    print(
        f"a 30-day report: read + accounting + JSON {report_cpu:.2f} CPU-s"
        + ("" if html_cpu is None else f", HTML {html_cpu:.2f} CPU-s")
    )


if __name__ == "__main__":
    main()

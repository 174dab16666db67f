"""The outage journal's SQLite file (WAL), on one thread of its own.

What a monthly report is computed from, kept as evidence rather than as figures:

- `changes`: a row per change of a subject's state (a target's reach, a district link, a
  service probe), with netmon's reason; never a row per probe.
- `runs`: when netmon ran. A run notes it is alive every `heartbeat`; after a crash the time
  since its last note is unknown, and so is everything between two runs. A subject's state is
  unknown at the start of every run until netmon has a verdict on it.
- `windows`: the maintenance windows as they were configured, kept after they leave the config,
  so that a report on a past month still excludes what was excluded then.
- `checks`: the verdict of every pre-meeting readiness check per room.

Size: a change is ~40 bytes with its key. A year of 215 endpoints with realistic flapping
(README, Availability reports: measured) stays a few MB.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from netmon.config.availability import MaintenanceWindow
from netmon.sqlite_file import SQLiteFile

SCHEMA = """
CREATE TABLE IF NOT EXISTS changes (
    subject TEXT NOT NULL,       -- a target id, 'link:' + a parent's id, target + '/' + probe
    at REAL NOT NULL,            -- unix seconds
    state TEXT NOT NULL,         -- up | down | unknown
    reason TEXT,                 -- netmon's word: timeout, send, uplink Gi0/1 down, ...
    PRIMARY KEY (subject, at)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS runs (
    started REAL PRIMARY KEY,
    seen REAL NOT NULL,          -- the last heartbeat
    stopped REAL                 -- NULL: still running, or it crashed after `seen`
);
CREATE TABLE IF NOT EXISTS windows (
    id TEXT PRIMARY KEY,
    starts REAL NOT NULL,
    ends REAL NOT NULL,
    matchers TEXT NOT NULL,      -- JSON {label: glob}
    comment TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS checks (
    meeting TEXT NOT NULL,
    at REAL NOT NULL,
    target TEXT NOT NULL,
    verdict TEXT NOT NULL,       -- GO | WARN | NO-GO
    reasons TEXT NOT NULL,       -- JSON list
    PRIMARY KEY (meeting, at, target)
) WITHOUT ROWID;
"""


@dataclass(frozen=True, slots=True)
class Change:
    subject: str
    at: float
    state: str  # up | down | unknown
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class Run:
    started: float
    seen: float
    stopped: float | None

    @property
    def ended(self) -> float:
        """Until when netmon is known to have watched: its stop, else its last heartbeat."""
        return self.stopped if self.stopped is not None else self.seen


@dataclass(frozen=True, slots=True)
class Window:
    id: str
    starts: float
    ends: float
    matchers: dict[str, str]
    comment: str

    @classmethod
    def configured(cls, window: MaintenanceWindow) -> Window:
        return cls(
            window.id,
            window.starts_at.timestamp(),
            window.ends_at.timestamp(),
            {str(k): v for k, v in window.matchers.items()},
            window.comment,
        )


@dataclass(frozen=True, slots=True)
class CheckVerdict:
    meeting: str
    at: float
    target: str
    verdict: str
    reasons: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class JournalSlice:
    """What a report over [start, end) reads: the runs that touch it, every subject's changes in
    it with the last change before it (the state it began in), the windows and checks."""

    start: float
    end: float
    runs: list[Run]
    changes: list[Change]
    windows: list[Window]
    checks: list[CheckVerdict]


class JournalDB(SQLiteFile):
    SCHEMA = SCHEMA
    WHAT = "availability journal"
    THREAD = "journal-db"

    # --- writes ----------------------------------------------------------------------------

    def start_run(self, now: float) -> None:
        self._db.execute("INSERT OR REPLACE INTO runs VALUES (?, ?, NULL)", (now, now))

    def heartbeat(self, started: float, now: float) -> None:
        self._db.execute("UPDATE runs SET seen = ? WHERE started = ?", (now, started))

    def stop_run(self, started: float, now: float) -> None:
        self._db.execute(
            "UPDATE runs SET seen = ?, stopped = ? WHERE started = ?", (now, now, started)
        )

    def record(self, changes: Sequence[Change], checks: Sequence[CheckVerdict] = ()) -> None:
        """Add changes and check verdicts in one transaction (a repeated key replaces)."""
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        try:
            db.executemany(
                "INSERT OR REPLACE INTO changes VALUES (?, ?, ?, ?)",
                [(c.subject, c.at, c.state, c.reason) for c in changes],
            )
            db.executemany(
                "INSERT OR REPLACE INTO checks VALUES (?, ?, ?, ?, ?)",
                [
                    (c.meeting, c.at, c.target, c.verdict, json.dumps(list(c.reasons)))
                    for c in checks
                ],
            )
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise

    def keep_windows(self, windows: Iterable[Window]) -> None:
        """The configured maintenance windows, as configured now (a window edited since is
        replaced; one removed from the config stays, as evidence)."""
        self._db.executemany(
            "INSERT OR REPLACE INTO windows VALUES (?, ?, ?, ?, ?)",
            [
                (w.id, w.starts, w.ends, json.dumps(w.matchers, sort_keys=True), w.comment)
                for w in windows
            ],
        )

    def prune(self, before: float) -> int:
        """Forget what ended before `before`, keeping each subject's last change before it (the
        state the kept history begins in); return how many rows went."""
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        try:
            gone = db.execute(
                "DELETE FROM changes WHERE at < ? AND at < (SELECT max(c.at) FROM changes c"
                " WHERE c.subject = changes.subject AND c.at < ?)",
                (before, before),
            ).rowcount
            gone += db.execute("DELETE FROM runs WHERE seen < ?", (before,)).rowcount
            gone += db.execute("DELETE FROM windows WHERE ends < ?", (before,)).rowcount
            gone += db.execute("DELETE FROM checks WHERE at < ?", (before,)).rowcount
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        return gone

    # --- reads -----------------------------------------------------------------------------

    def read(self, start: float, end: float) -> JournalSlice:
        db = self._db
        runs = [
            Run(float(a), float(b), None if c is None else float(c))
            for a, b, c in db.execute(
                # And the last run begun before the period, whatever its last heartbeat: a
                # crashed run's changes after that heartbeat extend it (accounting.coverage).
                "SELECT started, seen, stopped FROM runs WHERE started < ? AND"
                " (coalesce(stopped, seen) > ? OR started ="
                " (SELECT max(started) FROM runs WHERE started <= ?)) ORDER BY started",
                (end, start, start),
            )
        ]
        rows = db.execute(
            "SELECT subject, at, state, reason FROM changes WHERE at >= ? AND at < ?"
            " UNION ALL SELECT subject, at, state, reason FROM changes c WHERE at ="
            " (SELECT max(at) FROM changes WHERE subject = c.subject AND at < ?)"
            " ORDER BY subject, at",
            (start, end, start),
        ).fetchall()
        windows = [
            Window(i, float(s), float(e), json.loads(m), comment)
            for i, s, e, m, comment in db.execute(
                "SELECT id, starts, ends, matchers, comment FROM windows"
                " WHERE starts < ? AND ends > ? ORDER BY starts, id",
                (end, start),
            )
        ]
        checks = [
            CheckVerdict(m, float(at), t, v, tuple(json.loads(r)))
            for m, at, t, v, r in db.execute(
                "SELECT meeting, at, target, verdict, reasons FROM checks"
                " WHERE at >= ? AND at < ? ORDER BY meeting, at, target",
                (start - 86400.0, end),
            )
        ]
        return JournalSlice(
            start=start,
            end=end,
            runs=runs,
            changes=[Change(s, float(at), state, reason) for s, at, state, reason in rows],
            windows=windows,
            checks=checks,
        )

    def size(self) -> dict[str, int]:
        """Rows per table (bench/journal_size.py, the README's size figure)."""
        queries = {
            "changes": "SELECT count(*) FROM changes",
            "runs": "SELECT count(*) FROM runs",
            "windows": "SELECT count(*) FROM windows",
            "checks": "SELECT count(*) FROM checks",
        }
        return {name: int(self._db.execute(q).fetchone()[0]) for name, q in queries.items()}

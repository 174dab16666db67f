"""Alert state and the delivery outbox, in one SQLite file (WAL) that survives restarts.

Every call runs on one dedicated thread, so the event loop never waits on the disk and writes
happen in the order they were asked for. An alert transition is written together with its
outbox rows in one transaction: after a crash, what was decided is either entirely recorded
or not at all.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import sqlite3
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from netmon.alerting.model import AlertEvent
from netmon.sqlite_file import SQLiteFile

log = logging.getLogger(__name__)

SCHEMA = """
CREATE TABLE IF NOT EXISTS alerts (
    fingerprint TEXT PRIMARY KEY,
    event TEXT NOT NULL,       -- the last AlertEvent JSON of a firing alert
    level INTEGER NOT NULL,
    announced INTEGER NOT NULL -- 0 while silenced or held back: the sinks never heard of it
);
CREATE TABLE IF NOT EXISTS outbox (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    queue TEXT NOT NULL,
    event TEXT NOT NULL,
    created REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS outbox_queue ON outbox (queue, seq);
CREATE TABLE IF NOT EXISTS silences (
    id TEXT PRIMARY KEY,
    silence TEXT NOT NULL,
    ends REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS quarantine (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    source TEXT NOT NULL,      -- the table the row came from
    row TEXT NOT NULL,         -- the row's JSON as it was
    reason TEXT NOT NULL,
    at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS escalations (  -- the on-call loop's, one per alert it escalates
    fingerprint TEXT PRIMARY KEY,
    state TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS pages (        -- messages to people, per channel queue
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    queue TEXT NOT NULL,
    page TEXT NOT NULL,
    created REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS pages_queue ON pages (queue, seq);
CREATE TABLE IF NOT EXISTS engine_ids (
    target TEXT NOT NULL,
    engine_id TEXT NOT NULL,
    learned REAL NOT NULL,
    PRIMARY KEY (target, engine_id)
);
"""


@dataclass(frozen=True, slots=True)
class StoredAlert:
    event: AlertEvent
    level: int
    announced: bool


@dataclass(frozen=True, slots=True)
class OutboxEntry:
    seq: int
    event: AlertEvent


class AlertDB(SQLiteFile):
    """The SQLite file. Use `await db.call(db.method, ...)` from the loop, or the async helpers."""

    SCHEMA = SCHEMA
    WHAT = "alert database"
    THREAD = "alert-db"

    def __init__(self, path: str | Path, *, max_queue: int = 50_000) -> None:
        super().__init__(path)
        self.max_queue = max_queue
        self.quarantined = 0  # rows set aside since start: damaged, or from another version

    # --- the blocking side, run on the db thread -------------------------------------------

    def load_alerts(self) -> list[StoredAlert]:
        """The alerts firing when netmon stopped; a row that does not decode is quarantined,
        so that one damaged row (or one of a newer version) never stops netmon starting."""
        rows = self._db.execute(
            "SELECT fingerprint, event, level, announced FROM alerts"
        ).fetchall()
        alerts = []
        for fingerprint, text, level, announced in rows:
            try:
                alerts.append(StoredAlert(_decode(text), int(level), bool(announced)))
            except Exception as exc:  # whatever is wrong with it, it must not stop the start
                self.quarantine("alerts", text, exc)
                self._db.execute("DELETE FROM alerts WHERE fingerprint = ?", (fingerprint,))
        return alerts

    def quarantine(self, source: str, text: object, exc: BaseException) -> None:
        """Set a row that does not decode aside (kept for a person to look at), and count it."""
        reason = f"{type(exc).__name__}: {exc}"[:200]
        log.error("alert database row quarantined", extra={"table": source, "reason": reason})
        self._db.execute(
            "INSERT INTO quarantine (source, row, reason, at) VALUES (?, ?, ?, ?)",
            (source, str(text), reason, time.time()),
        )
        self.quarantined += 1

    def record(
        self, event: AlertEvent, level: int, announced: bool, queues: Sequence[str]
    ) -> dict[str, int]:
        """Store one transition and queue it for `queues`; return rows dropped per queue when a
        queue was full (its oldest events go: the newest state matters most)."""
        payload = json.dumps(event.to_json(), ensure_ascii=False)
        dropped: dict[str, int] = {}
        with self._transaction() as db:
            if event.firing:
                db.execute(
                    "INSERT OR REPLACE INTO alerts (fingerprint, event, level, announced)"
                    " VALUES (?, ?, ?, ?)",
                    (event.fingerprint, payload, level, int(announced)),
                )
            else:
                db.execute("DELETE FROM alerts WHERE fingerprint = ?", (event.fingerprint,))
            now = time.time()
            for queue in queues:
                db.execute(
                    "INSERT INTO outbox (queue, event, created) VALUES (?, ?, ?)",
                    (queue, payload, now),
                )
                (count,) = db.execute(
                    "SELECT count(*) FROM outbox WHERE queue = ?", (queue,)
                ).fetchone()
                if count > self.max_queue:
                    excess = count - self.max_queue
                    db.execute(
                        "DELETE FROM outbox WHERE seq IN (SELECT seq FROM outbox WHERE queue = ?"
                        " ORDER BY seq LIMIT ?)",
                        (queue, excess),
                    )
                    dropped[queue] = excess
        return dropped

    def pending(self, queue: str, limit: int) -> list[OutboxEntry]:
        """The oldest events of a queue; a row that no longer decodes (written by another
        version, damaged) is quarantined instead of blocking the queue for ever."""
        rows = self._db.execute(
            "SELECT seq, event FROM outbox WHERE queue = ? ORDER BY seq LIMIT ?", (queue, limit)
        ).fetchall()
        entries = []
        for seq, text in rows:
            try:
                entries.append(OutboxEntry(seq, _decode(text)))
            except Exception as exc:  # whatever is wrong with it, it must not block the queue
                self.quarantine("outbox", text, exc)
                self._db.execute("DELETE FROM outbox WHERE seq = ?", (seq,))
        return entries

    def pending_counts(self) -> dict[str, int]:
        rows = self._db.execute("SELECT queue, count(*) FROM outbox GROUP BY queue").fetchall()
        return dict(rows)

    def ack(self, seq: int) -> None:
        self._db.execute("DELETE FROM outbox WHERE seq = ?", (seq,))

    def forget_queues(self, keep: Iterable[str]) -> int:
        """Drop the outbox of sinks no longer configured; return how many events went."""
        kept = list(keep)
        marks = ",".join("?" * len(kept)) or "''"
        cursor = self._db.execute(f"DELETE FROM outbox WHERE queue NOT IN ({marks})", kept)  # noqa: S608 - only placeholders are formatted in
        return cursor.rowcount

    def save_silence(self, silence_id: str, silence: dict[str, Any], ends: float) -> None:
        self._db.execute(
            "INSERT OR REPLACE INTO silences (id, silence, ends) VALUES (?, ?, ?)",
            (silence_id, json.dumps(silence, ensure_ascii=False), ends),
        )

    def delete_silence(self, silence_id: str) -> None:
        self._db.execute("DELETE FROM silences WHERE id = ?", (silence_id,))

    def load_silences(self, now: float) -> list[dict[str, Any]]:
        self._db.execute("DELETE FROM silences WHERE ends <= ?", (now,))
        rows = self._db.execute("SELECT silence FROM silences").fetchall()
        return [json.loads(text) for (text,) in rows]

    def save_engine_id(self, target: str, engine_id: bytes) -> None:
        self._db.execute(
            "INSERT OR IGNORE INTO engine_ids (target, engine_id, learned) VALUES (?, ?, ?)",
            (target, engine_id.hex(), time.time()),
        )

    def load_engine_ids(self) -> dict[str, list[bytes]]:
        learned: dict[str, list[bytes]] = {}
        for target, engine_id in self._db.execute("SELECT target, engine_id FROM engine_ids"):
            learned.setdefault(target, []).append(bytes.fromhex(engine_id))
        return learned

    # --- the on-call loop: escalations and the pages they send ------------------------------

    def save_escalations(
        self,
        saved: Sequence[tuple[str, dict[str, Any]]],
        ended: Sequence[str],
        pages: Sequence[tuple[str, dict[str, Any]]],
    ) -> None:
        """What one decision of the escalator changed, at once: after a crash, a step is
        either recorded with its pages or not at all."""
        now = time.time()
        with self._transaction() as db:
            for fingerprint, state in saved:
                db.execute(
                    "INSERT OR REPLACE INTO escalations (fingerprint, state) VALUES (?, ?)",
                    (fingerprint, json.dumps(state, ensure_ascii=False)),
                )
            for fingerprint in ended:
                db.execute("DELETE FROM escalations WHERE fingerprint = ?", (fingerprint,))
            for queue, page in pages:
                db.execute(
                    "INSERT INTO pages (queue, page, created) VALUES (?, ?, ?)",
                    (queue, json.dumps(page, ensure_ascii=False), now),
                )

    def load_escalations(self) -> list[dict[str, Any]]:
        """Every escalation's state; a row that does not decode is quarantined, so that one
        damaged row never stops netmon starting."""
        states = []
        for fingerprint, text in self._db.execute("SELECT fingerprint, state FROM escalations"):
            try:
                states.append(dict(json.loads(text)))
            except (ValueError, TypeError) as exc:
                self.quarantine("escalations", text, exc)
                self._db.execute("DELETE FROM escalations WHERE fingerprint = ?", (fingerprint,))
        return states

    def pending_pages(self, queue: str, limit: int) -> list[tuple[int, dict[str, Any]]]:
        """The oldest pages of a channel's queue; one that does not decode is quarantined."""
        rows = self._db.execute(
            "SELECT seq, page FROM pages WHERE queue = ? ORDER BY seq LIMIT ?", (queue, limit)
        ).fetchall()
        pages = []
        for seq, text in rows:
            try:
                pages.append((int(seq), dict(json.loads(text))))
            except (ValueError, TypeError) as exc:
                self.quarantine("pages", text, exc)
                self._db.execute("DELETE FROM pages WHERE seq = ?", (seq,))
        return pages

    def done_pages(self, seqs: Sequence[int]) -> None:
        self._db.executemany("DELETE FROM pages WHERE seq = ?", [(seq,) for seq in seqs])

    def page_counts(self) -> dict[str, int]:
        rows = self._db.execute("SELECT queue, count(*) FROM pages GROUP BY queue").fetchall()
        return dict(rows)

    def _transaction(self) -> _Transaction:
        return _Transaction(self._db)


def _decode(text: str) -> AlertEvent:
    """A stored event. One stored before events had ids gets one derived from its stored text:
    as stable across re-sends as a given one, and the same in every sink's queue."""
    event = AlertEvent.from_json(json.loads(text))
    if event.event_id:
        return event
    derived = hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:32]
    return dataclasses.replace(event, event_id=derived)


class _Transaction:
    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db

    def __enter__(self) -> sqlite3.Connection:
        self._db.execute("BEGIN IMMEDIATE")
        return self._db

    def __exit__(self, exc_type: object, exc: object, traceback: object) -> None:
        if exc_type is None:
            try:
                self._db.execute("COMMIT")
                return
            except sqlite3.Error:
                self._db.execute("ROLLBACK")
                raise
        self._db.execute("ROLLBACK")


class EngineIdTable:
    """The database's table of learned SNMPv3 engine IDs, for the service's trap intake."""

    def __init__(self, db: AlertDB) -> None:
        self._db = db

    async def load_engine_ids(self) -> dict[str, list[bytes]]:
        return await self._db.call(self._db.load_engine_ids)

    async def save_engine_id(self, target: str, engine_id: bytes) -> None:
        await self._db.call(self._db.save_engine_id, target, engine_id)

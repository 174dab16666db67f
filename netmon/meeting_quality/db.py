"""The meeting record's SQLite file (WAL), on one thread of its own.

A file of its own beside the alert database (same state directory): a long meeting's samples
and the retention's deletes never hold up the alert outbox's transactions, the record works
with alerting disabled, and the file can be copied or read offline (`netmon meetings report`)
without touching alert state.

Size: a sample row is ~48 bytes with its key (room id, time, nine figures as scaled
integers), so a 2-hour meeting of 215 rooms at one sample per 10 s (154,800 rows) takes
7.4 MB (measured with every figure present). Meetings older than the retention go, and beyond
`max_samples` (20 million by default, ~0.9 GB, some 130 such meetings) the oldest ended
meetings go first.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import Any

from netmon.meeting_quality.model import Meeting, Room, RoomSample
from netmon.sqlite_file import SQLiteFile

SCHEMA = """
CREATE TABLE IF NOT EXISTS meetings (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL,
    kind TEXT NOT NULL,          -- scheduled | adhoc
    start REAL NOT NULL,
    end REAL,                    -- NULL: an ad hoc meeting still going on
    rooms TEXT NOT NULL,         -- JSON [{id, name, district}]
    samples INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS samples (
    meeting INTEGER NOT NULL,    -- meetings.seq
    room TEXT NOT NULL,
    t INTEGER NOT NULL,          -- unix seconds
    in_call INTEGER NOT NULL,
    -- scaled integers (_SCALES): MOS x 1000, ratios x 100000, seconds x 1000000
    mos_rx INTEGER, mos_tx INTEGER, loss INTEGER, jitter INTEGER, video INTEGER,
    path_rtt INTEGER, path_loss INTEGER,
    path_sent INTEGER, path_lost INTEGER,  -- netmon's echoes since the previous sample
    PRIMARY KEY (meeting, room, t)
) WITHOUT ROWID;
"""

# Figures are kept as scaled integers (SQLite stores small integers in 1-3 bytes, a REAL in 8):
# MOS to 0.001, ratios to 0.00001, seconds to the microsecond. This halves the file.
_SCALES = {
    "mos_rx": 1000,
    "mos_tx": 1000,
    "loss": 100_000,
    "jitter": 1_000_000,
    "video": 1000,
    "path_rtt": 1_000_000,
    "path_loss": 100_000,
    "path_sent": 1,
    "path_lost": 1,
}


def _scaled(sample: RoomSample) -> list[int | None]:
    values: list[int | None] = []
    for name, scale in _SCALES.items():
        value: float | None = getattr(sample, name)
        values.append(None if value is None else round(value * scale))
    return values


def _unscaled(values: Sequence[int | None]) -> list[Any]:
    return [
        value if value is None or scale == 1 else value / scale
        for value, scale in zip(values, _SCALES.values(), strict=True)
    ]


class MeetingDB(SQLiteFile):
    SCHEMA = SCHEMA
    WHAT = "meeting record"
    THREAD = "meeting-db"

    # --- writes ----------------------------------------------------------------------------

    def write(self, meetings: Sequence[Meeting], samples: Sequence[tuple[str, RoomSample]]) -> None:
        """Insert or update `meetings` (name, end, rooms), then add `samples` (meeting id,
        sample), in one transaction."""
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        try:
            for meeting in meetings:
                db.execute(
                    "INSERT INTO meetings (id, name, kind, start, end, rooms)"
                    " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET"
                    " name = excluded.name, end = excluded.end, rooms = excluded.rooms",
                    (
                        meeting.id,
                        meeting.name,
                        meeting.kind,
                        meeting.start,
                        meeting.end,
                        json.dumps([r.to_json() for r in meeting.rooms], ensure_ascii=False),
                    ),
                )
            counts: dict[str, int] = {}
            seqs: dict[str, int] = {}
            for meeting_id, sample in samples:
                seq = seqs.get(meeting_id)
                if seq is None:
                    row = db.execute("SELECT seq FROM meetings WHERE id = ?", (meeting_id,))
                    seq = seqs[meeting_id] = int(row.fetchone()[0])
                cursor = db.execute(
                    "INSERT OR REPLACE INTO samples (meeting, room, t, in_call, mos_rx, mos_tx,"
                    " loss, jitter, video, path_rtt, path_loss, path_sent, path_lost)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        seq,
                        sample.room,
                        round(sample.t),
                        int(sample.in_call),
                        *_scaled(sample),
                    ),
                )
                counts[meeting_id] = counts.get(meeting_id, 0) + cursor.rowcount
            for meeting_id, count in counts.items():
                db.execute(
                    "UPDATE meetings SET samples = samples + ? WHERE id = ?", (count, meeting_id)
                )
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise

    def prune(self, now: float, retention: float, max_samples: int) -> int:
        """Drop meetings ended more than `retention` seconds ago, then the oldest ended ones
        while more than `max_samples` samples are kept; return how many meetings went."""
        db = self._db
        old = [
            seq
            for (seq,) in db.execute(
                "SELECT seq FROM meetings WHERE coalesce(end, start) < ? AND"
                " NOT (kind = 'adhoc' AND end IS NULL)",
                (now - retention,),
            )
        ]
        (total,) = db.execute("SELECT coalesce(sum(samples), 0) FROM meetings").fetchone()
        total -= sum(self._samples_of(seq) for seq in old)
        for seq, count in db.execute(
            "SELECT seq, samples FROM meetings WHERE end IS NOT NULL AND end < ? ORDER BY start",
            (now,),
        ).fetchall():
            if total <= max_samples:
                break
            if seq not in old:
                old.append(seq)
                total -= count
        for seq in old:
            db.execute("BEGIN IMMEDIATE")
            db.execute("DELETE FROM samples WHERE meeting = ?", (seq,))
            db.execute("DELETE FROM meetings WHERE seq = ?", (seq,))
            db.execute("COMMIT")
        return len(old)

    def _samples_of(self, seq: int) -> int:
        row = self._db.execute("SELECT samples FROM meetings WHERE seq = ?", (seq,)).fetchone()
        return int(row[0]) if row else 0

    # --- reads -----------------------------------------------------------------------------

    def meetings(self) -> list[Meeting]:
        """Every recorded meeting, the newest first."""
        rows = self._db.execute(
            "SELECT id, name, kind, start, end, rooms, samples FROM meetings"
            " ORDER BY start DESC, id"
        ).fetchall()
        return [_meeting(row) for row in rows]

    def meeting(self, meeting_id: str) -> Meeting | None:
        row = self._db.execute(
            "SELECT id, name, kind, start, end, rooms, samples FROM meetings WHERE id = ?",
            (meeting_id,),
        ).fetchone()
        return None if row is None else _meeting(row)

    def open_adhoc(self) -> tuple[Meeting, float] | None:
        """The ad hoc meeting still open (netmon stopped during it) and its last sample's
        time (its start without one)."""
        row = self._db.execute(
            "SELECT id, name, kind, start, end, rooms, samples, seq FROM meetings"
            " WHERE kind = 'adhoc' AND end IS NULL ORDER BY start DESC LIMIT 1"
        ).fetchone()
        if row is None:
            return None
        (last,) = self._db.execute(
            "SELECT max(t) FROM samples WHERE meeting = ?", (row[7],)
        ).fetchone()
        meeting = _meeting(row[:7])
        return meeting, float(last) if last is not None else meeting.start

    def samples(self, meeting_id: str, rooms: Iterable[str] = ()) -> list[RoomSample]:
        """A meeting's samples by room and time (only `rooms` when given)."""
        wanted = list(rooms)
        query = (
            "SELECT room, t, in_call, mos_rx, mos_tx, loss, jitter, video, path_rtt, path_loss,"
            " path_sent, path_lost"
            " FROM samples WHERE meeting = (SELECT seq FROM meetings WHERE id = ?)"
        )
        if wanted:
            query += f" AND room IN ({','.join('?' * len(wanted))})"
        rows = self._db.execute(query + " ORDER BY room, t", (meeting_id, *wanted)).fetchall()
        return [
            RoomSample(room, float(t), bool(in_call), *_unscaled(figures))
            for room, t, in_call, *figures in rows
        ]


def _meeting(row: Sequence[Any]) -> Meeting:
    meeting_id, name, kind, start, end, rooms, samples = row
    return Meeting(
        id=meeting_id,
        name=name,
        kind=kind,
        start=float(start),
        end=None if end is None else float(end),
        rooms=tuple(
            Room(r["id"], r.get("name", ""), r.get("district", "")) for r in json.loads(rooms)
        ),
        samples=int(samples),
    )

"""A SQLite file (WAL) used from one thread of its own: the alert database, the meeting
quality record and the outage journal are each one.

From the event loop: `await db.call(db.method, ...)` runs the method on the file's thread, so
the loop never waits on the disk. The methods block; a command-line tool may call them
directly. `synchronous=NORMAL` in WAL mode: a power cut may lose the last transactions, a
crash of netmon loses nothing; the fsync per transaction FULL would cost is not worth it here.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar, TypeVar

T = TypeVar("T")


class SQLiteFile:
    SCHEMA: ClassVar[str] = ""
    WHAT: ClassVar[str] = "database"  # what a missing file is said to lack
    THREAD: ClassVar[str] = "sqlite"

    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        self._executor = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix=self.THREAD)
        self._connection: sqlite3.Connection | None = None

    async def call(self, function: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._executor, function, *args)

    def open(self, *, create: bool = True) -> None:
        """`create=False`: only an existing file (a reader never makes an empty one)."""
        if self.path != ":memory:" and create:
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        if not create and not Path(self.path).is_file():
            raise FileNotFoundError(f"{self.path}: no {self.WHAT} here")
        connection = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        connection.execute("PRAGMA journal_mode=WAL")
        connection.execute("PRAGMA synchronous=NORMAL")
        connection.executescript(self.SCHEMA)
        self._connection = connection

    @property
    def _db(self) -> sqlite3.Connection:
        assert self._connection is not None, f"{type(self).__name__}.open() first"
        return self._connection

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None

    def shutdown(self) -> None:
        self._executor.submit(self.close).result()
        self._executor.shutdown(wait=True)

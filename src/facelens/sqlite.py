"""One SQLite file shared by threads (and processes): the pattern every embedded store uses.

The outbox, the MQTT spool, the profile store and the recognizer's ledger
each keep a small table in SQLite. They share the same needs: connect on
first use (nothing at construction), WAL so readers never wait for the
writer, ``BEGIN IMMEDIATE`` so two processes cannot interleave a
read-then-write, one lock per connection for threads, and every
``sqlite3.Error`` reported as a ``StorageError`` naming the file.

Deleted rows are overwritten with zeros (``secure_delete``) rather than left
in free pages: these files hold identifications, profiles and messages that
name people, and a forgotten person must not be readable from them; after a
deletion that matters, :meth:`SqliteDatabase.checkpoint` also empties the
write-ahead log, which still holds the pages as they were before.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from facelens.errors import StorageError


class SqliteDatabase:
    """A lazily opened SQLite connection with ``schema`` applied once.

    ``what`` names the store in error messages ("the event outbox").
    ``fsync``: ``synchronous=FULL`` (a commit survives power loss) rather than
    NORMAL (survives a process crash, may lose the last commits on power loss).
    """

    def __init__(self, path: Path | str, *, schema: str, what: str, fsync: bool = False) -> None:
        self.path = str(path)
        self._schema = schema
        self._what = what
        self._fsync = fsync
        self._lock = threading.RLock()
        self._conn: sqlite3.Connection | None = None
        self._closed = False

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One write transaction under the lock; a nested call joins the outer one."""
        with self._lock:
            try:
                conn = self._connect()
                if conn.in_transaction:
                    yield conn
                    return
                conn.execute("BEGIN IMMEDIATE")
                try:
                    yield conn
                except BaseException:
                    conn.rollback()
                    raise
                conn.commit()
            except sqlite3.Error as exc:
                raise StorageError(f"{self._what} {self.path} failed: {exc}") from exc

    def checkpoint(self) -> bool:
        """Copies the write-ahead log into the file and truncates it to zero bytes, so pages
        as they were before a deletion are nowhere in the files. False when another
        connection's open read kept part of the log (it stays until a later checkpoint)."""
        with self._lock:
            try:
                busy, _, _ = self._connect().execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
            except sqlite3.Error as exc:
                raise StorageError(f"Checkpointing {self._what} {self.path} failed: {exc}") from exc
        return not busy

    def close(self) -> None:
        with self._lock:
            self._closed = True
            conn, self._conn = self._conn, None
            if conn is not None:
                try:
                    conn.close()
                except sqlite3.Error as exc:
                    raise StorageError(f"Closing {self._what} {self.path} failed: {exc}") from exc

    def _connect(self) -> sqlite3.Connection:
        if self._closed:
            raise StorageError(f"{self._what} {self.path} is closed")
        if self._conn is None:
            if self.path != ":memory:":
                Path(self.path).parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(
                self.path, isolation_level=None, check_same_thread=False, timeout=30
            )
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute(f"PRAGMA synchronous={'FULL' if self._fsync else 'NORMAL'}")
            conn.execute("PRAGMA secure_delete=ON")
            conn.executescript(self._schema)
            self._conn = conn
        return self._conn


COUNTERS_SCHEMA = """
CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
INSERT OR IGNORE INTO counters VALUES ('dropped', 0);
"""
"""A ``counters`` table with a ``dropped`` row, for the bounded queues (spool, crop buffer)."""


def add_to_counter(conn: sqlite3.Connection, name: str, amount: int) -> None:
    conn.execute("UPDATE counters SET value = value + ? WHERE name = ?", (amount, name))


def read_counter(conn: sqlite3.Connection, name: str) -> int:
    (value,) = conn.execute("SELECT value FROM counters WHERE name = ?", (name,)).fetchone()
    return int(value)


# ``table`` below is always one of our own constant names, never input: formatting it in is safe.


def count_rows(conn: sqlite3.Connection, table: str) -> int:
    (count,) = conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()
    return int(count)


def drop_oldest(conn: sqlite3.Connection, table: str, *, keep: int) -> int:
    """Deletes the lowest-id rows of ``table`` beyond ``keep`` and counts them in ``dropped``;
    how many went. Ids must grow with age (``AUTOINCREMENT``)."""
    excess = count_rows(conn, table) - keep
    if excess <= 0:
        return 0
    conn.execute(
        f"DELETE FROM {table} WHERE id IN (SELECT id FROM {table} ORDER BY id LIMIT ?)",
        (excess,),
    )
    add_to_counter(conn, "dropped", excess)
    return excess

"""The history in SQLite files under the host's home: ``recognizer.db`` and ``audit.db``.

``recognizer.db`` holds the ledger and the visits (:mod:`facelens.history.visits`).

The default (collections in SQLite, or in AWS Rekognition): no server to run.
Several processes on one host share each file (WAL, ``BEGIN IMMEDIATE``:
:mod:`facelens.sqlite`); hosts do not share them, so each keeps its own
history, its own idempotency and its own trail. This module is SQLite's
dialect of the shared ledger and audit log
(:mod:`facelens.history.sql_dialect`) and their schemas, which files made by
earlier versions already have.

* Times in the ledger are :func:`~facelens.history.ledger.stamp` text, whose
  text order is time order; a claim's lease is timed by this host's clock
  (every process sharing the file is on this host).
* A list of ids is one bound JSON array read with ``json_each``.
* The audit log is written with ``synchronous=FULL`` (an entry survives
  power loss, not only a crash). Both files use ``secure_delete``: deleted
  records and the ids a redaction replaced are zeroed in the file, and a
  checkpoint empties the write-ahead log that still held them.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from contextlib import AbstractContextManager
from datetime import datetime
from pathlib import Path
from typing import Any

from facelens.history.ledger import stamp
from facelens.history.sql_audit import SqlAuditLog
from facelens.history.sql_dialect import Moment, Tables
from facelens.history.sql_ledger import SqlLedger
from facelens.history.sql_visits import SqlVisitLedger
from facelens.sql import Connection
from facelens.sqlite import SqliteDatabase

LEDGER_SCHEMA = """
CREATE TABLE IF NOT EXISTS recognitions (
    recognition_id TEXT PRIMARY KEY,
    status TEXT NOT NULL,
    bucket TEXT,
    key TEXT,
    etag TEXT,
    topic TEXT NOT NULL,
    message TEXT NOT NULL,
    reason TEXT,
    recognized_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS recognitions_time ON recognitions (recognized_at);
CREATE INDEX IF NOT EXISTS recognitions_stranger
    ON recognitions (json_extract(message, '$.StrangerId'));
CREATE INDEX IF NOT EXISTS recognitions_crops ON recognitions (recognized_at)
    WHERE key IS NOT NULL;
CREATE INDEX IF NOT EXISTS recognitions_keys ON recognitions (key) WHERE key IS NOT NULL;
CREATE TABLE IF NOT EXISTS claims (
    recognition_id TEXT PRIMARY KEY,
    owner TEXT NOT NULL,
    until REAL NOT NULL
);
"""
"""``claims.until``: Unix seconds when the claim's lease ends (a row goes when its outcome is
recorded, or when retention drops it, abandoned). A file of an older facelens gets the table on
first open."""

VISITS_SCHEMA = """
CREATE TABLE IF NOT EXISTS visits (
    visit_id TEXT PRIMARY KEY,
    revision INTEGER NOT NULL,
    recognition_id TEXT NOT NULL,
    status TEXT NOT NULL,
    message TEXT NOT NULL,
    camera TEXT,
    looks INTEGER NOT NULL,
    first_seen TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS visits_updated ON visits (updated_at, visit_id);
CREATE INDEX IF NOT EXISTS visits_answer ON visits (recognition_id);
CREATE TABLE IF NOT EXISTS visit_looks (
    recognition_id TEXT PRIMARY KEY,
    visit_id TEXT NOT NULL,
    seen_at TEXT NOT NULL,
    weight REAL NOT NULL,
    embedding BLOB,
    subject TEXT,
    similarity REAL
);
CREATE INDEX IF NOT EXISTS visit_looks_visit ON visit_looks (visit_id, weight);
"""
"""The visits' tables (:mod:`facelens.history.sql_visits`), in the ledger's file
(``recognizer.db``): a file of an older facelens gets them on first open, its other tables
untouched. ``visit_looks.embedding``: the look's float32 vector, bytes as given."""

AUDIT_SCHEMA = """
CREATE TABLE IF NOT EXISTS audit (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    at REAL NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    target TEXT NOT NULL,
    collection_id TEXT,
    details TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS audit_actor ON audit (actor, id);
CREATE INDEX IF NOT EXISTS audit_target ON audit (target, id);
CREATE INDEX IF NOT EXISTS audit_action ON audit (action, id);
"""


class SqliteDialect:
    """:class:`~facelens.history.sql_dialect.Dialect` of one SQLite file, made by
    ``schema``; ``what`` names it in errors, ``fsync`` as :class:`SqliteDatabase`."""

    tables = Tables(
        recognitions="recognitions",
        claims="claims",
        audit="audit",
        visits="visits",
        looks="visit_looks",
    )
    in_list = "IN (SELECT value FROM json_each(?))"
    row_lock = ""  # BEGIN IMMEDIATE holds the file's write lock already
    byte_order = ""  # SQLite's default collation (BINARY) is byte order
    json_value = "?"
    nulls_last = ""  # NULL is below every value, so a descending order puts it last
    last_id = "SELECT last_insert_rowid()"

    def __init__(self, path: Path | str, *, schema: str, what: str, fsync: bool = False) -> None:
        self._db = SqliteDatabase(path, schema=schema, what=what, fsync=fsync)

    def id_list(self, ids: Sequence[str]) -> str:
        return json.dumps(list(ids))

    def field(self, name: str) -> str:
        return f"json_extract(message, '$.{name}')"

    def text(self, *path: str) -> str:
        return f"json_extract(message, '$.{'.'.join(path)}')"

    def number(self, *path: str) -> str:
        return f"json_extract(message, '$.{'.'.join(path)}')"

    def contains(self, column: str) -> str:
        return f"instr({column}, ?) > 0"

    def time(self, moment: datetime) -> str:
        return stamp(moment)

    def read_time(self, value: Any) -> datetime:
        return datetime.fromisoformat(value)

    def from_now(self, seconds: float) -> Moment:
        return Moment("?", (time.time() + seconds,))  # claims.until: Unix seconds

    def transaction(self) -> AbstractContextManager[Connection]:
        return self._db.transaction()

    def after_rewrite(self) -> None:
        # The rows as they were are still in the write-ahead log until a checkpoint;
        # secure_delete (facelens.sqlite) zeroes what the update freed in the file.
        self._db.checkpoint()

    def erase_deleted(self) -> bool:
        """Empties the write-ahead log; False when another connection's read kept part."""
        return self._db.checkpoint()

    def close(self) -> None:
        self._db.close()


class SqliteLedger(SqlLedger):
    """The ledger in one SQLite file (``<home>/recognizer.db``): one host's history."""

    def __init__(self, path: Path | str) -> None:
        super().__init__(SqliteDialect(path, schema=LEDGER_SCHEMA, what="The recognizer ledger"))


class SqliteVisitLedger(SqlVisitLedger):
    """The visits in the ledger's SQLite file (``<home>/recognizer.db``), on a connection of
    their own: one host's visits, shared by its processes."""

    def __init__(self, path: Path | str) -> None:
        super().__init__(SqliteDialect(path, schema=VISITS_SCHEMA, what="The visit ledger"))


class SqliteAuditLog(SqlAuditLog):
    """The audit log in one SQLite file (``<home>/audit.db``): one host's trail."""

    def __init__(self, path: Path | str) -> None:
        super().__init__(SqliteDialect(path, schema=AUDIT_SCHEMA, what="The audit log", fsync=True))

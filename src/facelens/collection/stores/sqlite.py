"""The collection store on one SQLite file, shared safely by threads and processes.

The store's logic is :class:`~facelens.collection.stores.sql.SqlCollectionStore`,
shared with PostgreSQL; this module is SQLite's dialect of it (see
:mod:`facelens.collection.stores.sql_dialect`): what the file holds and how it is
migrated, how the one connection is opened and its transactions run, and the
little SQL that SQLite says its own way.

* Writers take the file's write lock when they begin (``BEGIN IMMEDIATE``),
  so the writers of every collection, in every process, take turns.
* A list of ids is one bound JSON array read with ``json_each``: no limit on
  the number of SQL variables, one statement for any count.
* Times are ISO text; embeddings little-endian float32 blobs with their
  dimension beside them, so a truncated or foreign blob is caught on read.
* A purge ends with a WAL checkpoint, since the log still holds pages as they
  were before a deletion.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import closing, contextmanager, suppress
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import numpy as np
import numpy.typing as npt

from facelens.collection.index.collection_index import ANN_THRESHOLD
from facelens.collection.stores.rows import BLOB_DTYPE
from facelens.collection.stores.sql import SqlCollectionStore
from facelens.collection.stores.sql_dialect import Batches, Tables
from facelens.errors import StorageError
from facelens.sqlite import connect

SCHEMA_VERSION = 3
"""Kept in ``PRAGMA user_version``; a file written by a newer schema is refused.

2: ``faces.generation``, ``face_deletions`` and ``collections.deletions_floor``, so a
search index can catch up with the changes after its generation (a migration from 1).
3: ``face_sources``, the crop each face can be embedded again from
(:mod:`facelens.collection.sources`); faces stored before have none."""

_SCHEMA = """
CREATE TABLE IF NOT EXISTS collections (
    collection_id TEXT PRIMARY KEY, face_model_version TEXT NOT NULL,
    created_at TEXT NOT NULL, generation INTEGER NOT NULL DEFAULT 0);
CREATE TABLE IF NOT EXISTS faces (
    collection_id TEXT NOT NULL REFERENCES collections(collection_id) ON DELETE CASCADE,
    face_id TEXT NOT NULL, image_id TEXT NOT NULL, external_image_id TEXT,
    box_width REAL NOT NULL, box_height REAL NOT NULL, box_left REAL NOT NULL,
    box_top REAL NOT NULL, confidence REAL NOT NULL, user_id TEXT, indexed_at TEXT NOT NULL,
    embedding_dim INTEGER NOT NULL, embedding BLOB NOT NULL,
    PRIMARY KEY (collection_id, face_id));
CREATE INDEX IF NOT EXISTS faces_by_user ON faces(collection_id, user_id);
CREATE TABLE IF NOT EXISTS users (
    collection_id TEXT NOT NULL REFERENCES collections(collection_id) ON DELETE CASCADE,
    user_id TEXT NOT NULL, created_at TEXT NOT NULL,
    PRIMARY KEY (collection_id, user_id))
"""
_MIGRATIONS = {
    2: """
ALTER TABLE faces ADD COLUMN generation INTEGER NOT NULL DEFAULT 0;
CREATE INDEX IF NOT EXISTS faces_by_generation ON faces(collection_id, generation);
CREATE TABLE IF NOT EXISTS face_deletions (
    collection_id TEXT NOT NULL REFERENCES collections(collection_id) ON DELETE CASCADE,
    face_id TEXT NOT NULL, generation INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS face_deletions_by_generation
    ON face_deletions(collection_id, generation);
ALTER TABLE collections ADD COLUMN deletions_floor INTEGER NOT NULL DEFAULT 0
""",
    # A face's source goes with it (the cascade), and so with its collection's faces.
    3: """
CREATE TABLE IF NOT EXISTS face_sources (
    collection_id TEXT NOT NULL, face_id TEXT NOT NULL,
    width INTEGER NOT NULL, height INTEGER NOT NULL, geometry TEXT NOT NULL, jpeg BLOB NOT NULL,
    PRIMARY KEY (collection_id, face_id),
    FOREIGN KEY (collection_id, face_id) REFERENCES faces(collection_id, face_id)
        ON DELETE CASCADE)
""",
}
"""Statements that take a file from the version before to the key's version."""


class SQLiteCollectionStore(SqlCollectionStore[sqlite3.Connection]):
    """:class:`~facelens.collection.stores.store.CollectionStore` on SQLite in WAL mode.

    ``path_or_uri`` is a file path, ``":memory:"`` (private to this instance,
    for tests) or a ``file:`` URI. The connection opens on first use.

    Search indexes of ``ann_threshold`` faces or more are saved beside the
    file, in ``<file>-faceindex/`` (``index_directory`` to put them
    elsewhere; ``save_indexes=False`` or an in-memory database: never), so a
    restart loads them instead of rebuilding (see
    :mod:`facelens.collection.stores.index_cache`). ``close()`` saves the ones
    with unsaved changes.
    """

    def __init__(
        self,
        path_or_uri: str,
        *,
        ann_threshold: int = ANN_THRESHOLD,
        index_directory: Path | None = None,
        save_indexes: bool = True,
    ) -> None:
        directory = index_directory or index_folder(path_or_uri)
        super().__init__(
            SQLiteDialect(path_or_uri),
            index_directory=directory if save_indexes else None,
            ann_threshold=ann_threshold,
        )


class SQLiteDialect:
    """:class:`~facelens.collection.stores.sql_dialect.Dialect` of one SQLite file (or memory)."""

    tables = Tables.prefixed("")
    in_list = "IN (SELECT value FROM json_each(?))"  # one JSON array: no variable-count limit
    row_lock = ""  # BEGIN IMMEDIATE holds the file's write lock already

    def __init__(self, target: str) -> None:
        self._target = target
        self._conn: sqlite3.Connection | None = None
        self._closed = False

    def id_list(self, ids: Sequence[str]) -> str:
        return json.dumps(list(ids))

    def timestamp(self, when: datetime) -> str:
        return when.isoformat()

    @contextmanager
    def transaction(self, *, write: bool) -> Iterator[sqlite3.Connection]:
        """A write begins IMMEDIATE, taking the file's write lock before it reads."""
        try:
            conn = self._connection()
            conn.execute("BEGIN IMMEDIATE" if write else "BEGIN")
        except sqlite3.Error as exc:
            raise StorageError(f"SQLite failed: {exc}") from exc
        try:
            yield conn
            conn.execute("COMMIT")
        except BaseException as exc:
            if conn.in_transaction:
                with suppress(sqlite3.Error):
                    conn.execute("ROLLBACK")
            if isinstance(exc, sqlite3.Error):
                raise StorageError(f"SQLite failed: {exc}") from exc
            raise

    def insert(
        self, conn: sqlite3.Connection, table: str, columns: str, rows: Sequence[tuple[Any, ...]]
    ) -> None:
        marks = ", ".join("?" * (columns.count(",") + 1))
        conn.executemany(f"INSERT INTO {table} ({columns}) VALUES ({marks})", rows)

    @contextmanager
    def stream(
        self, conn: sqlite3.Connection, name: str, sql: str, parameters: Sequence[Any]
    ) -> Iterator[Batches]:
        """SQLite steps through the result as it is fetched: a plain cursor streams."""
        with closing(conn.execute(sql, parameters)) as cursor:
            yield cursor

    def set_embeddings(
        self,
        conn: sqlite3.Connection,
        collection_id: str,
        face_ids: Sequence[str],
        vectors: Sequence[npt.NDArray[np.float32]],
        generation: int,
    ) -> None:
        conn.executemany(
            f"UPDATE {self.tables.faces} SET embedding_dim = ?, embedding = ?, generation = ?"
            " WHERE collection_id = ? AND face_id = ?",
            [
                (len(v), v.astype(BLOB_DTYPE).tobytes(), generation, collection_id, i)
                for i, v in zip(face_ids, vectors, strict=True)
            ],
        )

    def erase_deleted(self) -> bool:
        """A WAL checkpoint (TRUNCATE) empties the log, which still holds pages as they
        were before a deletion (``secure_delete`` zeroes the file's own). False when
        another connection's read kept part of it."""
        try:
            busy: int = self._connection().execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()[0]
        except sqlite3.Error as exc:
            raise StorageError(f"SQLite checkpoint failed: {exc}") from exc
        return not busy

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                conn.close()
            except sqlite3.Error as exc:
                raise StorageError(f"Closing the SQLite store failed: {exc}") from exc

    def _connection(self) -> sqlite3.Connection:
        if self._closed:
            raise StorageError("The collection store is closed")
        if self._conn is None:
            self._conn = open_database(self._target)
        return self._conn


def open_database(target: str) -> sqlite3.Connection:
    """A connection to ``target`` (a path, ``":memory:"`` or a ``file:`` URI), the schema
    current. :func:`facelens.sqlite.connect` creates the file 0600 and retries the first
    statements while another process opening it holds a lock SQLite does not wait for.
    A missing folder is an error (StorageError), not made: it is most likely a typo."""
    return connect(target, setup=_set_up, uri=target.startswith("file:"), make_folder=False)


def _set_up(conn: sqlite3.Connection) -> None:
    conn.execute("PRAGMA foreign_keys = ON")
    # Deleted faces (embeddings: biometric data) are zeroed, not left in free pages.
    conn.execute("PRAGMA secure_delete = ON")
    if conn.execute("PRAGMA journal_mode").fetchone()[0].lower() not in ("wal", "memory"):
        conn.execute("PRAGMA journal_mode = WAL")
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    if version > SCHEMA_VERSION:
        raise StorageError(f"Store schema version {version} is newer than {SCHEMA_VERSION}")
    if version < SCHEMA_VERSION:
        _upgrade(conn)


def _upgrade(conn: sqlite3.Connection) -> None:
    """Creates the schema, or migrates it version by version, in one write transaction.

    Two processes opening an old file together wait in turn on BEGIN
    IMMEDIATE; the second then finds the version already current.
    """
    conn.execute("BEGIN IMMEDIATE")
    try:
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        if version >= SCHEMA_VERSION:  # another process got here first
            conn.execute("COMMIT")
            if version > SCHEMA_VERSION:
                raise StorageError(f"Store schema version {version} is newer than {SCHEMA_VERSION}")
            return
        if version < 1:
            for statement in _SCHEMA.split(";"):
                conn.execute(statement)
        for target in range(max(version, 1) + 1, SCHEMA_VERSION + 1):
            for statement in _MIGRATIONS[target].split(";"):
                conn.execute(statement)
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise


def index_folder(target: str) -> Path | None:
    """``<database file>-faceindex``, or None for a database that lives only in memory."""
    if target == ":memory:" or not target:
        return None
    if target.startswith("file:"):
        uri = urlparse(target)
        if "memory" in parse_qs(uri.query).get("mode", []) or not uri.path:
            return None
        target = uri.path
    return Path(f"{target}-faceindex")

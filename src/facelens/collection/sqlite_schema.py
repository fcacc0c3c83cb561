"""The SQLite file format of the collection store: schema, connections, SQL.

Why a module of its own: :mod:`facelens.collection.sqlite_store` is about
transactions and cache coherence; this is what the file holds and how it is
read. How one row becomes a model (and back) is shared with the other SQL
back ends in :mod:`facelens.collection.rows`; the names re-exported from
there keep ``sqlite_store``'s imports where they were.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

from facelens.collection.index import CollectionIndex
from facelens.collection.index_cache import Changes
from facelens.collection.models import NewFace, StoredFace
from facelens.collection.rows import (
    DELETION_LOG_GENERATIONS,
    INSERT_COLUMNS,
    SOURCE_COLUMNS,
    face_values,
    read_index,
    source_from_row,
)
from facelens.collection.rows import FACE_COLUMNS as FACE_COLUMNS
from facelens.collection.rows import READ_ROWS as READ_ROWS
from facelens.collection.rows import decode_embeddings as decode_embeddings
from facelens.collection.rows import face_from_row as face_from_row
from facelens.collection.rows import source_values as source_values
from facelens.collection.rows import stored_face as stored_face
from facelens.collection.rows import user_from_row as user_from_row
from facelens.collection.sources import FaceSource
from facelens.engine.types import Embedding
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
INSERT_FACES = f"INSERT INTO faces ({INSERT_COLUMNS}) VALUES ({', '.join('?' * 13)})"
INSERT_SOURCES = f"INSERT INTO face_sources ({SOURCE_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?)"
IDS = "(SELECT value FROM json_each(?))"  # one bound JSON array: no variable-count limit
IN_IDS = f"collection_id = ? AND face_id IN {IDS}"
USERS = (
    "SELECT u.user_id, (SELECT COUNT(*) FROM faces f"
    " WHERE f.collection_id = u.collection_id AND f.user_id = u.user_id)"
    " FROM users u WHERE u.collection_id = ?"
)


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


def face_row(
    collection_id: str, face: NewFace, vector: Embedding, now: datetime, generation: int
) -> tuple[Any, ...]:
    """One new face in ``rows.INSERT_COLUMNS`` order, its time as ISO text."""
    return face_values(collection_id, face, vector, now.isoformat(), generation)


def load_index(
    conn: sqlite3.Connection, collection_id: str, *, ann_threshold: int
) -> CollectionIndex:
    """Every face of the collection, read ``READ_ROWS`` at a time into a new search index.

    Only the columns the index needs are read, with the recorded dimension
    to check each blob against (see :func:`facelens.collection.rows.read_index`).
    """
    count, dim = conn.execute(
        "SELECT COUNT(*), (SELECT embedding_dim FROM faces WHERE collection_id = ?1 LIMIT 1)"
        " FROM faces WHERE collection_id = ?1",
        (collection_id,),
    ).fetchone()
    if count == 0:
        return CollectionIndex(ann_threshold=ann_threshold)
    cursor = conn.execute(
        "SELECT face_id, user_id, embedding_dim, embedding FROM faces WHERE collection_id = ?",
        (collection_id,),
    )
    batches = iter(lambda: cursor.fetchmany(READ_ROWS), [])
    return read_index(count, dim, batches, ann_threshold=ann_threshold)


@dataclass(frozen=True, slots=True)
class IndexRows:
    """:class:`~facelens.collection.index_cache.IndexSource` on an open read transaction."""

    conn: sqlite3.Connection
    collection_id: str

    def read_all(self, *, ann_threshold: int) -> CollectionIndex:
        return load_index(self.conn, self.collection_id, ann_threshold=ann_threshold)

    def face_count(self) -> int:
        sql = "SELECT COUNT(*) FROM faces WHERE collection_id = ?"
        count: int = self.conn.execute(sql, (self.collection_id,)).fetchone()[0]
        return count

    def changes_since(self, generation: int, *, limit: int) -> Changes | None:
        key = (self.collection_id, generation)
        floor, changed, deleted = self.conn.execute(
            "SELECT deletions_floor,"
            " (SELECT COUNT(*) FROM faces WHERE collection_id = ?1 AND generation > ?2),"
            " (SELECT COUNT(*) FROM face_deletions WHERE collection_id = ?1 AND generation > ?2)"
            " FROM collections WHERE collection_id = ?1",
            key,
        ).fetchone()
        if generation < floor or changed + deleted > limit:
            return None
        gone = self.conn.execute(
            "SELECT face_id FROM face_deletions WHERE collection_id = ? AND generation > ?", key
        )
        return Changes([r[0] for r in gone], self._rows(generation) if changed else [])

    def _rows(self, generation: int) -> Iterator[list[Any]]:
        cursor = self.conn.execute(
            "SELECT face_id, user_id, embedding_dim, embedding FROM faces"
            " WHERE collection_id = ? AND generation > ?",
            (self.collection_id, generation),
        )
        yield from iter(lambda: cursor.fetchmany(READ_ROWS), [])


def log_deletions(
    conn: sqlite3.Connection, collection_id: str, face_ids: Sequence[str], generation: int
) -> None:
    """Records deleted faces for catching-up indexes, and forgets entries too old to matter."""
    conn.executemany(
        "INSERT INTO face_deletions VALUES (?, ?, ?)",
        [(collection_id, face_id, generation) for face_id in face_ids],
    )
    cutoff = generation - DELETION_LOG_GENERATIONS
    if cutoff > 0:
        conn.execute(
            "DELETE FROM face_deletions WHERE collection_id = ? AND generation <= ?",
            (collection_id, cutoff),
        )
        conn.execute(
            "UPDATE collections SET deletions_floor = MAX(deletions_floor, ?)"
            " WHERE collection_id = ?",
            (cutoff, collection_id),
        )


def purge_deletion_log(conn: sqlite3.Connection, collection_ids: Sequence[str]) -> None:
    """Forgets the ids of deleted faces, so no row names a forgotten person's faces.

    The deletion log is only there for indexes catching up; raising the floor
    to the current generation makes an index that is behind rebuild instead.
    """
    ids = json.dumps(list(collection_ids))
    conn.execute(f"DELETE FROM face_deletions WHERE collection_id IN {IDS}", (ids,))
    conn.execute(
        f"UPDATE collections SET deletions_floor = generation WHERE collection_id IN {IDS}",
        (ids,),
    )


def checkpoint(conn: sqlite3.Connection) -> bool:
    """WAL checkpoint (TRUNCATE): the log, which still holds pages as they were before a
    deletion, is emptied. False when another connection's read kept part of it."""
    busy: int = conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()[0]
    return not busy


def select_faces(
    conn: sqlite3.Connection, collection_id: str, face_ids: Sequence[str]
) -> dict[str, StoredFace]:
    params = (collection_id, json.dumps(list(face_ids)))
    return {
        r[0]: face_from_row(r)
        for r in conn.execute(f"SELECT {FACE_COLUMNS} FROM faces WHERE {IN_IDS}", params)
    }


def select_sources(
    conn: sqlite3.Connection, collection_id: str, face_ids: Sequence[str]
) -> dict[str, FaceSource]:
    params = (collection_id, json.dumps(list(face_ids)))
    sql = f"SELECT face_id, width, height, geometry, jpeg FROM face_sources WHERE {IN_IDS}"
    return {r[0]: source_from_row(r[1:]) for r in conn.execute(sql, params)}


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

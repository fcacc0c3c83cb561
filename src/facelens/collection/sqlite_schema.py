"""The SQLite file format of the collection store: schema, connections, rows.

Why a module of its own: :mod:`facelens.collection.sqlite_store` is about
transactions and cache coherence; this is what the file holds and how one
row becomes a model (and back). Embeddings are little-endian float32 blobs
with their dimension stored beside them, so a truncated or foreign blob is
caught on read rather than searched.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import numpy as np

from facelens.collection.index import CollectionIndex
from facelens.collection.models import NewFace, StoredFace, UserInfo, UserStatus
from facelens.engine.types import BoundingBox, Embedding
from facelens.errors import StorageError

SCHEMA_VERSION = 1
"""Kept in ``PRAGMA user_version``; a file written by a newer schema is refused."""

BUSY_TIMEOUT_S = 30.0
BLOB_DTYPE = np.dtype("<f4")
READ_ROWS = 8192
"""Rows per fetch when a search index is rebuilt (4 MB of 128-d blobs): enough that the
per-fetch overhead vanishes, few enough that row objects never pile up."""
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
FACE_COLUMNS = (
    "face_id, image_id, external_image_id, box_width, box_height, box_left, box_top,"
    " confidence, user_id, indexed_at"
)
IDS = "(SELECT value FROM json_each(?))"  # one bound JSON array: no variable-count limit
IN_IDS = f"collection_id = ? AND face_id IN {IDS}"
USERS = (
    "SELECT u.user_id, (SELECT COUNT(*) FROM faces f"
    " WHERE f.collection_id = u.collection_id AND f.user_id = u.user_id)"
    " FROM users u WHERE u.collection_id = ?"
)


def open_database(target: str) -> sqlite3.Connection:
    conn = sqlite3.connect(
        target,
        timeout=BUSY_TIMEOUT_S,
        isolation_level=None,  # autocommit: we issue BEGIN/COMMIT ourselves
        check_same_thread=False,  # the store's lock serialises all use
        uri=target.startswith("file:"),
    )
    try:
        conn.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
        conn.execute("PRAGMA foreign_keys = ON")
        if conn.execute("PRAGMA journal_mode").fetchone()[0].lower() not in ("wal", "memory"):
            conn.execute("PRAGMA journal_mode = WAL")
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise StorageError(f"Store schema version {version} is newer than {SCHEMA_VERSION}")
        if version < SCHEMA_VERSION:
            conn.execute("BEGIN IMMEDIATE")  # two processes creating the file wait in turn
            for statement in _SCHEMA.split(";"):
                conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            conn.execute("COMMIT")
    except BaseException:
        conn.close()
        raise
    return conn


def face_row(
    collection_id: str, face: NewFace, vector: Embedding, now: datetime
) -> tuple[Any, ...]:
    box = face.bounding_box
    return (
        *(collection_id, face.face_id, face.image_id, face.external_image_id),
        *(box.width, box.height, box.left, box.top, face.confidence, now.isoformat()),
        *(vector.shape[0], vector.astype(BLOB_DTYPE).tobytes()),
    )


def stored_face(face: NewFace, now: datetime) -> StoredFace:
    return StoredFace(
        face.face_id, face.image_id, face.external_image_id, face.bounding_box, face.confidence,
        None, now,
    )  # fmt: skip


def face_from_row(row: Sequence[Any]) -> StoredFace:
    box = BoundingBox(width=row[3], height=row[4], left=row[5], top=row[6])
    return StoredFace(row[0], row[1], row[2], box, row[7], row[8], datetime.fromisoformat(row[9]))


def user_from_row(row: Sequence[Any]) -> UserInfo:
    return UserInfo(row[0], UserStatus.ACTIVE if row[1] else UserStatus.CREATED, row[1])


def load_index(conn: sqlite3.Connection, collection_id: str) -> CollectionIndex:
    """Every face of the collection, read into a new search index (a cold start).

    Why this shape: at 1M faces, a fetchall holds about 0.6 GB of row
    objects at once and joining every blob copies 512 MB more. Reading
    ``READ_ROWS`` rows at a time into one preallocated float32 matrix keeps
    the row objects small and short-lived, and the index adopts that matrix
    without a further copy. Only the columns the index needs are read, with
    the recorded dimension to check each blob against.
    """
    count, dim = conn.execute(
        "SELECT COUNT(*), (SELECT embedding_dim FROM faces WHERE collection_id = ?1 LIMIT 1)"
        " FROM faces WHERE collection_id = ?1",
        (collection_id,),
    ).fetchone()
    if count == 0:
        return CollectionIndex()
    if not isinstance(dim, int) or dim <= 0:
        raise bad_embeddings()
    matrix = np.empty((count, dim), dtype=np.float32)
    face_ids: list[str] = []
    user_ids: list[str | None] = []
    cursor = conn.execute(
        "SELECT face_id, user_id, embedding_dim, embedding FROM faces WHERE collection_id = ?",
        (collection_id,),
    )
    while rows := cursor.fetchmany(READ_ROWS):
        start, stop = len(face_ids), len(face_ids) + len(rows)
        if stop > count:  # cannot happen within one read transaction
            raise StorageError("The faces changed while the search index was being read")
        matrix[start:stop] = decode_embeddings([r[2] for r in rows], [r[3] for r in rows], dim)
        face_ids += [r[0] for r in rows]
        user_ids += [r[1] for r in rows]
    if len(face_ids) != count:
        raise StorageError("The faces changed while the search index was being read")
    return CollectionIndex.build(face_ids, matrix, user_ids, copy=False)


def decode_embeddings(dims: Sequence[int], blobs: Sequence[bytes], dim: int) -> Embedding:
    """Blobs recorded as ``dim``-dimensional, as a read-only len(blobs) x dim matrix.

    One join and no per-blob numpy call; every blob is checked first, so a
    truncated or foreign one raises StorageError instead of being searched.
    """
    valid = isinstance(dim, int) and dim > 0 and set(dims) == {dim}
    if not valid or set(map(len, blobs)) != {4 * dim}:
        raise bad_embeddings()
    try:
        joined = b"".join(blobs)
    except TypeError as exc:  # a TEXT value of the right length, written by someone else
        raise bad_embeddings() from exc
    return np.frombuffer(joined, dtype=BLOB_DTYPE).reshape(len(blobs), dim)


def bad_embeddings() -> StorageError:
    return StorageError("Stored embeddings do not match their recorded dimension")


def select_faces(
    conn: sqlite3.Connection, collection_id: str, face_ids: Sequence[str]
) -> dict[str, StoredFace]:
    params = (collection_id, json.dumps(list(face_ids)))
    return {
        r[0]: face_from_row(r)
        for r in conn.execute(f"SELECT {FACE_COLUMNS} FROM faces WHERE {IN_IDS}", params)
    }

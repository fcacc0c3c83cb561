"""The collection store on one SQLite file, shared safely by threads and processes.

SQLite is the source of truth; searches run on in-process
:class:`~facelens.collection.index.CollectionIndex` caches. Every write to a
collection's faces or users bumps ``collections.generation`` in the same
transaction, so one cheap query before a search tells whether any process
changed the collection since its cache was built. Embeddings are
little-endian float32 blobs with their dimension stored beside them, so a
truncated or foreign blob is caught on read rather than searched.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np

from facelens.collection.index import CollectionIndex, ExactIndex, Neighbor
from facelens.collection.models import (
    CollectionInfo,
    CollectionPage,
    FaceNeighbor,
    FacePage,
    NewFace,
    StoredFace,
    UserInfo,
    UserNeighbor,
    UserPage,
    UserStatus,
)
from facelens.collection.pagination import keyset_page
from facelens.engine.types import BoundingBox, Embedding
from facelens.errors import (
    ConflictException,
    InvalidParameterException,
    ResourceAlreadyExistsException,
    ResourceNotFoundException,
    StorageError,
)

SCHEMA_VERSION = 1
"""Kept in ``PRAGMA user_version``; a file written by a newer schema is refused."""

_BUSY_TIMEOUT_S = 30.0
_BLOB_DTYPE = np.dtype("<f4")
_READ_ROWS = 8192
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
_FACE_COLUMNS = (
    "face_id, image_id, external_image_id, box_width, box_height, box_left, box_top,"
    " confidence, user_id, indexed_at"
)
_IDS = "(SELECT value FROM json_each(?))"  # one bound JSON array: no variable-count limit
_IN_IDS = f"collection_id = ? AND face_id IN {_IDS}"
_USERS = (
    "SELECT u.user_id, (SELECT COUNT(*) FROM faces f"
    " WHERE f.collection_id = u.collection_id AND f.user_id = u.user_id)"
    " FROM users u WHERE u.collection_id = ?"
)

_Token = tuple[str, int]
"""(created_at, generation): created_at tells a re-created collection from the old one."""


@dataclass
class _Tx:
    """A write transaction on one collection, and the cache updates it implies."""

    conn: sqlite3.Connection
    token: _Token
    updates: list[Callable[[CollectionIndex], None]] = field(default_factory=list)


class SQLiteCollectionStore:
    """:class:`~facelens.collection.store.CollectionStore` on SQLite in WAL mode.

    ``path_or_uri`` is a file path, ``":memory:"`` (private to this instance,
    for tests) or a ``file:`` URI. The connection opens on first use.
    """

    def __init__(self, path_or_uri: str) -> None:
        self._target = path_or_uri
        self._lock = threading.RLock()
        self._conn: sqlite3.Connection | None = None
        self._closed = False
        self._caches: dict[str, tuple[_Token, CollectionIndex]] = {}

    def close(self) -> None:
        with self._lock:
            self._closed = True
            self._caches.clear()
            conn, self._conn = self._conn, None
            if conn is not None:
                try:
                    conn.close()
                except sqlite3.Error as exc:
                    raise StorageError(f"Closing the SQLite store failed: {exc}") from exc

    # -- collections --
    def create_collection(self, collection_id: str, *, face_model_version: str) -> CollectionInfo:
        now = datetime.now(UTC)
        with self._transaction("BEGIN IMMEDIATE") as conn:
            try:
                conn.execute(
                    "INSERT INTO collections VALUES (?, ?, ?, 0)",
                    (collection_id, face_model_version, now.isoformat()),
                )
            except sqlite3.IntegrityError as exc:
                message = f"The collection id: {collection_id} already exists"
                raise ResourceAlreadyExistsException(message) from exc
        return CollectionInfo(collection_id, face_model_version, now, 0, 0)

    def describe_collection(self, collection_id: str) -> CollectionInfo:
        with self._transaction("BEGIN") as conn:
            row = conn.execute(
                "SELECT face_model_version, created_at,"
                " (SELECT COUNT(*) FROM faces WHERE collection_id = ?1),"
                " (SELECT COUNT(*) FROM users WHERE collection_id = ?1)"
                " FROM collections WHERE collection_id = ?1",
                (collection_id,),
            ).fetchone()
        if row is None:
            raise _no_collection(collection_id)
        return CollectionInfo(collection_id, row[0], datetime.fromisoformat(row[1]), row[2], row[3])

    def list_collections(
        self, *, max_results: int, next_token: str | None = None
    ) -> CollectionPage:
        sql = "SELECT collection_id, face_model_version FROM collections WHERE 1"
        with self._transaction("BEGIN") as conn:
            rows, token = keyset_page(conn, sql, [], "collection_id", max_results, next_token, "")
        return CollectionPage([r[0] for r in rows], [r[1] for r in rows], token)

    def delete_collection(self, collection_id: str) -> None:
        with self._lock:
            with self._transaction("BEGIN IMMEDIATE") as conn:
                cursor = conn.execute(
                    "DELETE FROM collections WHERE collection_id = ?", (collection_id,)
                )
            self._caches.pop(collection_id, None)
        if cursor.rowcount == 0:
            raise _no_collection(collection_id)

    # -- faces --
    def add_faces(self, collection_id: str, faces: Sequence[NewFace]) -> list[StoredFace]:
        ids = [face.face_id for face in faces]
        if len(set(ids)) != len(ids):
            raise InvalidParameterException("The same face id appears twice in one request")
        vectors = [np.asarray(face.embedding, dtype=np.float32) for face in faces]
        if any(v.ndim != 1 or v.shape != vectors[0].shape for v in vectors):
            raise InvalidParameterException("Embeddings must be 1-D and of one dimension")
        now = datetime.now(UTC)
        with self._write(collection_id) as tx:
            if not faces:
                return []
            dim = vectors[0].shape[0]
            row = tx.conn.execute(
                "SELECT embedding_dim FROM faces WHERE collection_id = ? LIMIT 1", (collection_id,)
            ).fetchone()
            if row is not None and row[0] != dim:
                message = f"Embedding dimension {dim} does not match the collection's {row[0]}"
                raise InvalidParameterException(message)
            taken = tx.conn.execute(
                f"SELECT face_id FROM faces WHERE {_IN_IDS} LIMIT 1",
                (collection_id, json.dumps(ids)),
            ).fetchone()
            if taken is not None:
                raise ResourceAlreadyExistsException(f"The face id: {taken[0]} already exists")
            tx.conn.executemany(
                "INSERT INTO faces VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, NULL, ?, ?, ?)",
                [_face_row(collection_id, f, v, now) for f, v in zip(faces, vectors, strict=True)],
            )
            matrix = np.stack(vectors)
            tx.updates.append(lambda index: index.add_faces(ids, matrix))
        return [_stored(face, now) for face in faces]

    def get_faces(self, collection_id: str, face_ids: Sequence[str]) -> dict[str, StoredFace]:
        with self._transaction("BEGIN") as conn:
            _collection_token(conn, collection_id)
            return _select_faces(conn, collection_id, face_ids)

    def get_embeddings(self, collection_id: str, face_ids: Sequence[str]) -> dict[str, Embedding]:
        with self._transaction("BEGIN") as conn:
            _collection_token(conn, collection_id)
            rows = conn.execute(
                f"SELECT face_id, embedding_dim, embedding FROM faces WHERE {_IN_IDS}",
                (collection_id, json.dumps(list(face_ids))),
            ).fetchall()
        return {r[0]: _decode([r[1]], [r[2]], r[1])[0].astype(np.float32) for r in rows}

    def list_faces(
        self,
        collection_id: str,
        *,
        max_results: int,
        next_token: str | None = None,
        user_id: str | None = None,
        face_ids: Sequence[str] | None = None,
    ) -> FacePage:
        sql = f"SELECT {_FACE_COLUMNS} FROM faces WHERE collection_id = ?"
        params: list[Any] = [collection_id]
        if user_id is not None:
            sql, params = sql + " AND user_id = ?", [*params, user_id]
        if face_ids is not None:
            sql, params = sql + f" AND face_id IN {_IDS}", [*params, json.dumps(list(face_ids))]
        with self._transaction("BEGIN") as conn:
            _collection_token(conn, collection_id)
            rows, token = keyset_page(
                conn, sql, params, "face_id", max_results, next_token, collection_id
            )
        return FacePage([_face(r) for r in rows], token)

    def delete_faces(self, collection_id: str, face_ids: Sequence[str]) -> list[str]:
        params = (collection_id, json.dumps(list(face_ids)))
        with self._write(collection_id) as tx:
            found = {
                r[0] for r in tx.conn.execute(f"SELECT face_id FROM faces WHERE {_IN_IDS}", params)
            }
            if found:
                tx.conn.execute(f"DELETE FROM faces WHERE {_IN_IDS}", params)
                gone = sorted(found)
                tx.updates.append(lambda index: index.remove_faces(gone))
        return [face_id for face_id in dict.fromkeys(face_ids) if face_id in found]

    def search_faces(
        self, collection_id: str, query: Embedding, *, limit: int, max_distance: float
    ) -> list[FaceNeighbor]:
        with self._transaction("BEGIN") as conn:
            index = self._fresh_index(conn, collection_id)
            hits = _search(index.faces, query, limit, max_distance)
            faces = _select_faces(conn, collection_id, [h.id for h in hits]) if hits else {}
        return [FaceNeighbor(faces[h.id], h.distance) for h in hits if h.id in faces]

    # -- users --
    def create_user(self, collection_id: str, user_id: str) -> UserInfo:
        with self._write(collection_id) as tx:
            try:
                tx.conn.execute(
                    "INSERT INTO users VALUES (?, ?, ?)",
                    (collection_id, user_id, datetime.now(UTC).isoformat()),
                )
            except sqlite3.IntegrityError as exc:
                message = f"The user id: {user_id} already exists in the collection {collection_id}"
                raise ConflictException(message) from exc
            tx.updates.append(lambda index: None)  # no template until a face is associated
        return UserInfo(user_id, UserStatus.CREATED, 0)

    def get_user(self, collection_id: str, user_id: str) -> UserInfo:
        with self._transaction("BEGIN") as conn:
            _collection_token(conn, collection_id)
            row = conn.execute(_USERS + " AND u.user_id = ?", (collection_id, user_id)).fetchone()
        if row is None:
            raise _no_user(collection_id, user_id)
        return _user(row)

    def list_users(
        self, collection_id: str, *, max_results: int, next_token: str | None = None
    ) -> UserPage:
        with self._transaction("BEGIN") as conn:
            _collection_token(conn, collection_id)
            rows, token = keyset_page(
                conn, _USERS, [collection_id], "u.user_id", max_results, next_token, collection_id
            )
        return UserPage([_user(r) for r in rows], token)

    def delete_user(self, collection_id: str, user_id: str) -> None:
        key = (collection_id, user_id)
        where = "WHERE collection_id = ? AND user_id = ?"
        with self._write(collection_id) as tx:
            _require_user(tx.conn, collection_id, user_id)
            members = [r[0] for r in tx.conn.execute(f"SELECT face_id FROM faces {where}", key)]
            tx.conn.execute(f"UPDATE faces SET user_id = NULL {where}", key)
            tx.conn.execute(f"DELETE FROM users {where}", key)
            tx.updates.append(lambda index: index.assign(members, None))

    def associate_faces(self, collection_id: str, user_id: str, face_ids: Sequence[str]) -> None:
        self._set_user(collection_id, user_id, face_ids, associate=True)

    def disassociate_faces(self, collection_id: str, user_id: str, face_ids: Sequence[str]) -> None:
        self._set_user(collection_id, user_id, face_ids, associate=False)

    def search_users(
        self, collection_id: str, query: Embedding, *, limit: int, max_distance: float
    ) -> list[UserNeighbor]:
        with self._transaction("BEGIN") as conn:
            index = self._fresh_index(conn, collection_id)
            hits = _search(index.users, query, limit, max_distance)
            return [UserNeighbor(_user((h.id, index.face_count(h.id))), h.distance) for h in hits]

    # -- internals --
    def _set_user(
        self, collection_id: str, user_id: str, face_ids: Sequence[str], *, associate: bool
    ) -> None:
        where = _IN_IDS
        params: tuple[str, ...] = (collection_id, json.dumps(list(face_ids)))
        if not associate:  # only the faces this user holds
            where, params = where + " AND user_id = ?", (*params, user_id)
        target = user_id if associate else None
        with self._write(collection_id) as tx:
            _require_user(tx.conn, collection_id, user_id)
            found = [
                r[0] for r in tx.conn.execute(f"SELECT face_id FROM faces WHERE {where}", params)
            ]
            if found:
                tx.conn.execute(f"UPDATE faces SET user_id = ? WHERE {where}", (target, *params))
                tx.updates.append(lambda index: index.assign(found, target))

    def _connection(self) -> sqlite3.Connection:
        if self._closed:
            raise StorageError("The collection store is closed")
        if self._conn is None:
            self._conn = _open(self._target)
        return self._conn

    @contextmanager
    def _transaction(self, begin: str) -> Iterator[sqlite3.Connection]:
        """One transaction under the lock; any sqlite3 error surfaces as StorageError."""
        with self._lock:
            try:
                conn = self._connection()
                conn.execute(begin)
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

    @contextmanager
    def _write(self, collection_id: str) -> Iterator[_Tx]:
        """A write that bumps the generation if it changed anything.

        The cache is patched after the commit only if it was current when the
        transaction began (so nobody else wrote since it was built); otherwise
        it is dropped and the next search rebuilds it from the database.
        """
        with self._lock:
            with self._transaction("BEGIN IMMEDIATE") as conn:
                tx = _Tx(conn, _collection_token(conn, collection_id))
                yield tx
                if tx.updates:
                    conn.execute(
                        "UPDATE collections SET generation = generation + 1"
                        " WHERE collection_id = ?",
                        (collection_id,),
                    )
            cached = self._caches.get(collection_id)
            if tx.updates and cached is not None:
                del self._caches[collection_id]
                if cached[0] == tx.token:
                    for update in tx.updates:
                        update(cached[1])
                    self._caches[collection_id] = ((tx.token[0], tx.token[1] + 1), cached[1])

    def _fresh_index(self, conn: sqlite3.Connection, collection_id: str) -> CollectionIndex:
        """The collection's search index, rebuilt first if any process wrote since."""
        token = _collection_token(conn, collection_id)
        cached = self._caches.pop(collection_id, None)  # a stale one is freed before rebuilding
        index = cached[1] if cached is not None and cached[0] == token else None
        if index is None:
            index = _load_index(conn, collection_id)
        self._caches[collection_id] = (token, index)
        return index


def _open(target: str) -> sqlite3.Connection:
    conn = sqlite3.connect(
        target,
        timeout=_BUSY_TIMEOUT_S,
        isolation_level=None,  # autocommit: we issue BEGIN/COMMIT ourselves
        check_same_thread=False,  # the store's lock serialises all use
        uri=target.startswith("file:"),
    )
    try:
        conn.execute(f"PRAGMA busy_timeout = {int(_BUSY_TIMEOUT_S * 1000)}")
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


def _collection_token(conn: sqlite3.Connection, collection_id: str) -> _Token:
    row = conn.execute(
        "SELECT created_at, generation FROM collections WHERE collection_id = ?", (collection_id,)
    ).fetchone()
    if row is None:
        raise _no_collection(collection_id)
    return (row[0], row[1])


def _require_user(conn: sqlite3.Connection, collection_id: str, user_id: str) -> None:
    sql = "SELECT 1 FROM users WHERE collection_id = ? AND user_id = ?"
    if conn.execute(sql, (collection_id, user_id)).fetchone() is None:
        raise _no_user(collection_id, user_id)


def _no_collection(collection_id: str) -> ResourceNotFoundException:
    return ResourceNotFoundException(f"The collection id: {collection_id} does not exist")


def _no_user(collection_id: str, user_id: str) -> ResourceNotFoundException:
    message = f"The user id: {user_id} does not exist in the collection {collection_id}"
    return ResourceNotFoundException(message)


def _select_faces(
    conn: sqlite3.Connection, collection_id: str, face_ids: Sequence[str]
) -> dict[str, StoredFace]:
    params = (collection_id, json.dumps(list(face_ids)))
    return {
        r[0]: _face(r)
        for r in conn.execute(f"SELECT {_FACE_COLUMNS} FROM faces WHERE {_IN_IDS}", params)
    }


def _face_row(
    collection_id: str, face: NewFace, vector: Embedding, now: datetime
) -> tuple[Any, ...]:
    box = face.bounding_box
    return (
        *(collection_id, face.face_id, face.image_id, face.external_image_id),
        *(box.width, box.height, box.left, box.top, face.confidence, now.isoformat()),
        *(vector.shape[0], vector.astype(_BLOB_DTYPE).tobytes()),
    )


def _stored(face: NewFace, now: datetime) -> StoredFace:
    return StoredFace(
        face.face_id, face.image_id, face.external_image_id, face.bounding_box, face.confidence,
        None, now,
    )  # fmt: skip


def _face(row: Sequence[Any]) -> StoredFace:
    box = BoundingBox(width=row[3], height=row[4], left=row[5], top=row[6])
    return StoredFace(row[0], row[1], row[2], box, row[7], row[8], datetime.fromisoformat(row[9]))


def _user(row: Sequence[Any]) -> UserInfo:
    return UserInfo(row[0], UserStatus.ACTIVE if row[1] else UserStatus.CREATED, row[1])


def _load_index(conn: sqlite3.Connection, collection_id: str) -> CollectionIndex:
    """Every face of the collection, read into a new search index (a cold start).

    Why this shape: at 1M faces, a fetchall holds about 0.6 GB of row
    objects at once and joining every blob copies 512 MB more. Reading
    ``_READ_ROWS`` rows at a time into one preallocated float32 matrix keeps
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
        raise _bad_embeddings()
    matrix = np.empty((count, dim), dtype=np.float32)
    face_ids: list[str] = []
    user_ids: list[str | None] = []
    cursor = conn.execute(
        "SELECT face_id, user_id, embedding_dim, embedding FROM faces WHERE collection_id = ?",
        (collection_id,),
    )
    while rows := cursor.fetchmany(_READ_ROWS):
        start, stop = len(face_ids), len(face_ids) + len(rows)
        if stop > count:  # cannot happen within one read transaction
            raise StorageError("The faces changed while the search index was being read")
        matrix[start:stop] = _decode([r[2] for r in rows], [r[3] for r in rows], dim)
        face_ids += [r[0] for r in rows]
        user_ids += [r[1] for r in rows]
    if len(face_ids) != count:
        raise StorageError("The faces changed while the search index was being read")
    return CollectionIndex.build(face_ids, matrix, user_ids, copy=False)


def _decode(dims: Sequence[int], blobs: Sequence[bytes], dim: int) -> Embedding:
    """Blobs recorded as ``dim``-dimensional, as a read-only len(blobs) x dim matrix.

    One join and no per-blob numpy call; every blob is checked first, so a
    truncated or foreign one raises StorageError instead of being searched.
    """
    valid = isinstance(dim, int) and dim > 0 and set(dims) == {dim}
    if not valid or set(map(len, blobs)) != {4 * dim}:
        raise _bad_embeddings()
    try:
        joined = b"".join(blobs)
    except TypeError as exc:  # a TEXT value of the right length, written by someone else
        raise _bad_embeddings() from exc
    return np.frombuffer(joined, dtype=_BLOB_DTYPE).reshape(len(blobs), dim)


def _bad_embeddings() -> StorageError:
    return StorageError("Stored embeddings do not match their recorded dimension")


def _search(index: ExactIndex, query: Embedding, limit: int, max_distance: float) -> list[Neighbor]:
    q = np.asarray(query, dtype=np.float32)
    if q.ndim != 1 or (len(index) and q.shape[0] != index.dim):
        message = f"The query has shape {q.shape}; the collection holds dimension {index.dim}"
        raise InvalidParameterException(message)
    return index.search(q, limit=limit, max_distance=max_distance)

"""The collection store on one SQLite file, shared safely by threads and processes.

SQLite is the source of truth; searches run on in-process
:class:`~facelens.collection.index.CollectionIndex` caches. Every write to a
collection's faces or users bumps ``collections.generation`` in the same
transaction, so one cheap query before a search tells whether any process
changed the collection since its cache was built; a cache that is behind
catches up with just those changes, and large ones are saved beside the file
so a restart loads them (see :mod:`facelens.collection.index_cache`).
Embeddings are little-endian float32 blobs with their dimension stored
beside them, so a truncated or foreign blob is caught on read rather than
searched.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from facelens.collection.index import ANN_THRESHOLD, CollectionIndex
from facelens.collection.index_cache import IndexCache, Token, WriteTx, search
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
from facelens.collection.rows import (
    BLOB_DTYPE,
    no_collection,
    no_user,
    not_re_embedded,
    other_model,
    replacement_vectors,
)
from facelens.collection.sources import FaceSource
from facelens.collection.sqlite_schema import (
    FACE_COLUMNS,
    IDS,
    IN_IDS,
    INSERT_FACES,
    INSERT_SOURCES,
    USERS,
    IndexRows,
    checkpoint,
    decode_embeddings,
    face_from_row,
    face_row,
    index_folder,
    log_deletions,
    open_database,
    purge_deletion_log,
    select_faces,
    select_sources,
    source_values,
    stored_face,
    user_from_row,
)
from facelens.collection.sqlite_schema import SCHEMA_VERSION as SCHEMA_VERSION
from facelens.engine.types import Embedding
from facelens.errors import (
    ConflictException,
    FacelensError,
    InvalidParameterException,
    ResourceAlreadyExistsException,
    StorageError,
)
from facelens.pagination import keyset_page


class SQLiteCollectionStore:
    """:class:`~facelens.collection.store.CollectionStore` on SQLite in WAL mode.

    ``path_or_uri`` is a file path, ``":memory:"`` (private to this instance,
    for tests) or a ``file:`` URI. The connection opens on first use.

    Search indexes of ``ann_threshold`` faces or more are saved beside the
    file, in ``<file>-faceindex/`` (``index_directory`` to put them
    elsewhere; ``save_indexes=False`` or an in-memory database: never), so a
    restart loads them instead of rebuilding (see
    :mod:`facelens.collection.index_cache`). ``close()`` saves the ones
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
        self._target = path_or_uri
        self._lock = threading.RLock()
        self._conn: sqlite3.Connection | None = None
        self._closed = False
        directory = index_directory or index_folder(path_or_uri)
        self._indexes = IndexCache(directory if save_indexes else None, ann_threshold)

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._indexes.close(current=self._current_token)
            self._closed = True
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
                    "INSERT INTO collections (collection_id, face_model_version, created_at)"
                    " VALUES (?, ?, ?)",
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
            raise no_collection(collection_id)
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
            if cursor.rowcount:
                self._indexes.forget(collection_id)
        if cursor.rowcount == 0:
            raise no_collection(collection_id)

    # -- faces --
    def add_faces(
        self,
        collection_id: str,
        faces: Sequence[NewFace],
        *,
        face_model_version: str | None = None,
    ) -> list[StoredFace]:
        ids = [face.face_id for face in faces]
        if len(set(ids)) != len(ids):
            raise InvalidParameterException("The same face id appears twice in one request")
        vectors = [np.asarray(face.embedding, dtype=np.float32) for face in faces]
        if any(v.ndim != 1 or v.shape != vectors[0].shape for v in vectors):
            raise InvalidParameterException("Embeddings must be 1-D and of one dimension")
        now = datetime.now(UTC)
        with self._write(collection_id) as tx:
            if face_model_version is not None:
                _require_model(tx.conn, collection_id, face_model_version)
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
                f"SELECT face_id FROM faces WHERE {IN_IDS} LIMIT 1",
                (collection_id, json.dumps(ids)),
            ).fetchone()
            if taken is not None:
                raise ResourceAlreadyExistsException(f"The face id: {taken[0]} already exists")
            tx.conn.executemany(
                INSERT_FACES,
                [
                    face_row(collection_id, f, v, now, tx.generation)
                    for f, v in zip(faces, vectors, strict=True)
                ],
            )
            tx.conn.executemany(
                INSERT_SOURCES,
                [source_values(collection_id, f.face_id, f.source) for f in faces if f.source],
            )
            matrix = np.stack(vectors)
            tx.updates.append(lambda index: index.add_faces(ids, matrix))
            tx.changes += len(ids)
        return [stored_face(face, now) for face in faces]

    def get_faces(self, collection_id: str, face_ids: Sequence[str]) -> dict[str, StoredFace]:
        with self._transaction("BEGIN") as conn:
            _collection_token(conn, collection_id)
            return select_faces(conn, collection_id, face_ids)

    def get_embeddings(self, collection_id: str, face_ids: Sequence[str]) -> dict[str, Embedding]:
        with self._transaction("BEGIN") as conn:
            _collection_token(conn, collection_id)
            rows = conn.execute(
                f"SELECT face_id, embedding_dim, embedding FROM faces WHERE {IN_IDS}",
                (collection_id, json.dumps(list(face_ids))),
            ).fetchall()
        return {r[0]: decode_embeddings([r[1]], [r[2]], r[1])[0].astype(np.float32) for r in rows}

    def get_sources(self, collection_id: str, face_ids: Sequence[str]) -> dict[str, FaceSource]:
        with self._transaction("BEGIN") as conn:
            _collection_token(conn, collection_id)
            return select_sources(conn, collection_id, face_ids)

    def replace_embeddings(
        self,
        collection_id: str,
        embeddings: Mapping[str, Embedding],
        *,
        face_model_version: str,
        delete: Sequence[str] = (),
    ) -> None:
        """As the protocol says. Every process's search index of the collection is rebuilt
        afterwards: the deletion floor rises to this write's generation, so none catches up
        (the dimension may have changed), and this instance drops its own."""
        ids, vectors = replacement_vectors(embeddings)
        with self._lock:
            with self._write(collection_id) as tx:
                doomed = (collection_id, json.dumps(list(delete)))
                gone = tx.conn.execute(f"DELETE FROM faces WHERE {IN_IDS}", doomed).rowcount
                tx.conn.executemany(
                    "UPDATE faces SET embedding_dim = ?, embedding = ?, generation = ?"
                    " WHERE collection_id = ? AND face_id = ?",
                    [
                        (len(v), v.astype(BLOB_DTYPE).tobytes(), tx.generation, collection_id, i)
                        for i, v in zip(ids, vectors, strict=True)
                    ],
                )
                left = tx.conn.execute(
                    "SELECT COUNT(*) FROM faces WHERE collection_id = ? AND generation <> ?",
                    (collection_id, tx.generation),
                ).fetchone()[0]
                if left:
                    raise not_re_embedded(collection_id, left)
                tx.conn.execute(
                    "UPDATE collections SET face_model_version = ?, deletions_floor = ?"
                    " WHERE collection_id = ?",
                    (face_model_version, tx.generation, collection_id),
                )
                # Below the floor the log is never read again; the dropped ids go with it.
                tx.conn.execute(
                    "DELETE FROM face_deletions WHERE collection_id = ?", (collection_id,)
                )
                tx.updates.append(lambda index: None)  # bumps the generation; dropped below
                tx.changes += len(ids) + gone
            self._indexes.forget(collection_id)

    def list_faces(
        self,
        collection_id: str,
        *,
        max_results: int,
        next_token: str | None = None,
        user_id: str | None = None,
        face_ids: Sequence[str] | None = None,
    ) -> FacePage:
        sql = f"SELECT {FACE_COLUMNS} FROM faces WHERE collection_id = ?"
        params: list[Any] = [collection_id]
        if user_id is not None:
            sql, params = sql + " AND user_id = ?", [*params, user_id]
        if face_ids is not None:
            sql, params = sql + f" AND face_id IN {IDS}", [*params, json.dumps(list(face_ids))]
        with self._transaction("BEGIN") as conn:
            _collection_token(conn, collection_id)
            rows, token = keyset_page(
                conn, sql, params, "face_id", max_results, next_token, collection_id
            )
        return FacePage([face_from_row(r) for r in rows], token)

    def delete_faces(self, collection_id: str, face_ids: Sequence[str]) -> list[str]:
        params = (collection_id, json.dumps(list(face_ids)))
        with self._write(collection_id) as tx:
            found = {
                r[0] for r in tx.conn.execute(f"SELECT face_id FROM faces WHERE {IN_IDS}", params)
            }
            if found:
                tx.conn.execute(f"DELETE FROM faces WHERE {IN_IDS}", params)
                gone = sorted(found)
                log_deletions(tx.conn, collection_id, gone, tx.generation)
                tx.updates.append(lambda index: index.remove_faces(gone))
                tx.changes += len(gone)
        return [face_id for face_id in dict.fromkeys(face_ids) if face_id in found]

    def search_faces(
        self, collection_id: str, query: Embedding, *, limit: int, max_distance: float
    ) -> list[FaceNeighbor]:
        with self._transaction("BEGIN") as conn:
            index = self._fresh_index(conn, collection_id)
            hits = search(index.faces, query, limit, max_distance)
            faces = select_faces(conn, collection_id, [h.id for h in hits]) if hits else {}
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
            row = conn.execute(USERS + " AND u.user_id = ?", (collection_id, user_id)).fetchone()
        if row is None:
            raise no_user(collection_id, user_id)
        return user_from_row(row)

    def list_users(
        self, collection_id: str, *, max_results: int, next_token: str | None = None
    ) -> UserPage:
        with self._transaction("BEGIN") as conn:
            _collection_token(conn, collection_id)
            rows, token = keyset_page(
                conn, USERS, [collection_id], "u.user_id", max_results, next_token, collection_id
            )
        return UserPage([user_from_row(r) for r in rows], token)

    def delete_user(self, collection_id: str, user_id: str) -> None:
        key = (collection_id, user_id)
        where = "WHERE collection_id = ? AND user_id = ?"
        with self._write(collection_id) as tx:
            _require_user(tx.conn, collection_id, user_id)
            members = [r[0] for r in tx.conn.execute(f"SELECT face_id FROM faces {where}", key)]
            tx.conn.execute(
                f"UPDATE faces SET user_id = NULL, generation = ? {where}", (tx.generation, *key)
            )
            tx.conn.execute(f"DELETE FROM users {where}", key)
            tx.updates.append(lambda index: index.assign(members, None))
            tx.changes += len(members)

    def associate_faces(self, collection_id: str, user_id: str, face_ids: Sequence[str]) -> None:
        self._set_user(collection_id, user_id, face_ids, associate=True)

    def disassociate_faces(self, collection_id: str, user_id: str, face_ids: Sequence[str]) -> None:
        self._set_user(collection_id, user_id, face_ids, associate=False)

    def search_users(
        self, collection_id: str, query: Embedding, *, limit: int, max_distance: float
    ) -> list[UserNeighbor]:
        with self._transaction("BEGIN") as conn:
            index = self._fresh_index(conn, collection_id)
            hits = search(index.users, query, limit, max_distance)
            return [
                UserNeighbor(user_from_row((h.id, index.face_count(h.id))), h.distance)
                for h in hits
            ]

    def purge_deleted(self, collection_ids: Sequence[str]) -> bool:
        """No trace of deleted faces in the files: see :mod:`facelens.people.forget`.
        False when another connection's read kept part of the WAL."""
        with self._lock:
            with self._transaction("BEGIN IMMEDIATE") as conn:
                purge_deletion_log(conn, collection_ids)
            for collection_id in collection_ids:
                self._indexes.forget(collection_id)
            try:
                return checkpoint(self._connection())
            except sqlite3.Error as exc:
                raise StorageError(f"SQLite checkpoint failed: {exc}") from exc

    # -- internals --
    def _set_user(
        self, collection_id: str, user_id: str, face_ids: Sequence[str], *, associate: bool
    ) -> None:
        where = IN_IDS
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
                tx.conn.execute(
                    f"UPDATE faces SET user_id = ?, generation = ? WHERE {where}",
                    (target, tx.generation, *params),
                )
                tx.updates.append(lambda index: index.assign(found, target))
                tx.changes += len(found)

    def _current_token(self, collection_id: str) -> Token | None:
        try:
            return _collection_token(self._connection(), collection_id)
        except (FacelensError, sqlite3.Error):
            return None

    def _connection(self) -> sqlite3.Connection:
        if self._closed:
            raise StorageError("The collection store is closed")
        if self._conn is None:
            self._conn = open_database(self._target)
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
    def _write(self, collection_id: str) -> Iterator[WriteTx[sqlite3.Connection]]:
        """A write that bumps the generation if it changed anything.

        The cache is patched after the commit only if it was current when the
        transaction began (so nobody else wrote since it was built); otherwise
        the next search catches it up from the database.
        """
        with self._lock:
            with self._transaction("BEGIN IMMEDIATE") as conn:
                tx = WriteTx(conn, _collection_token(conn, collection_id))
                yield tx
                if tx.updates:
                    conn.execute(
                        "UPDATE collections SET generation = generation + 1"
                        " WHERE collection_id = ?",
                        (collection_id,),
                    )
            self._indexes.patch(collection_id, tx.token, tx.updates, tx.changes)

    def _fresh_index(self, conn: sqlite3.Connection, collection_id: str) -> CollectionIndex:
        """The collection's search index, caught up first if any process wrote since."""
        token = _collection_token(conn, collection_id)
        return self._indexes.fresh(collection_id, token, IndexRows(conn, collection_id))


def _collection_token(conn: sqlite3.Connection, collection_id: str) -> Token:
    row = conn.execute(
        "SELECT created_at, generation FROM collections WHERE collection_id = ?", (collection_id,)
    ).fetchone()
    if row is None:
        raise no_collection(collection_id)
    return (row[0], row[1])


def _require_model(conn: sqlite3.Connection, collection_id: str, face_model_version: str) -> None:
    sql = "SELECT face_model_version FROM collections WHERE collection_id = ?"
    stored: str = conn.execute(sql, (collection_id,)).fetchone()[0]
    if stored != face_model_version:
        raise other_model(collection_id, stored, face_model_version)


def _require_user(conn: sqlite3.Connection, collection_id: str, user_id: str) -> None:
    sql = "SELECT 1 FROM users WHERE collection_id = ? AND user_id = ?"
    if conn.execute(sql, (collection_id, user_id)).fetchone() is None:
        raise no_user(collection_id, user_id)

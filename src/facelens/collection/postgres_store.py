"""The collection store on PostgreSQL, shared by every process and host that reaches it.

Same semantics as :mod:`facelens.collection.sqlite_store`, so a deployment
moves from one machine to many by changing a URL. PostgreSQL is the source
of truth; searches run on in-process
:class:`~facelens.collection.index.CollectionIndex` caches kept coherent by
a per-collection generation (see :mod:`facelens.collection.index_cache`).

Transactions: reads run in ``REPEATABLE READ READ ONLY``, so a search index
is rebuilt from one snapshot and a read never fails on a serialisation
conflict; writes run in ``READ COMMITTED`` after locking the collection's
row (``FOR NO KEY UPDATE``), which serialises writers of one collection
across all processes, as SQLite's ``BEGIN IMMEDIATE`` does for one file,
while writers of other collections proceed.

One connection per store, used under a lock: the store's cache and its
transactions are serialised anyway, and a process that needs more
throughput runs more workers (each with its own store). A connection that
died while idle (a server restart, a failover) is replaced once, silently;
losing it mid-transaction raises ServiceUnavailableException and the next
call reconnects.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
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
from facelens.collection.postgres_schema import (
    IN_IDS,
    TOKEN,
    USERS,
    Connection,
    IndexRows,
    QmarkAdapter,
    Session,
    copy_faces,
    copy_sources,
    log_deletions,
    purge_deletion_log,
    select_faces,
    select_sources,
)
from facelens.collection.rows import (
    BLOB_DTYPE,
    FACE_COLUMNS,
    decode_embeddings,
    face_from_row,
    face_values,
    instant,
    no_collection,
    no_user,
    not_re_embedded,
    other_model,
    replacement_vectors,
    source_values,
    stored_face,
    user_from_row,
)
from facelens.collection.sources import FaceSource
from facelens.engine.types import Embedding
from facelens.errors import (
    ConflictException,
    FacelensError,
    InvalidParameterException,
    ResourceAlreadyExistsException,
)
from facelens.pagination import keyset_page

READ = "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY"
WRITE = "BEGIN ISOLATION LEVEL READ COMMITTED"
REPLACE_ROWS = 10_000
"""Vectors per UPDATE when a collection is re-embedded (5 MB of 128-d blobs a statement)."""


class PostgresCollectionStore:
    """:class:`~facelens.collection.store.CollectionStore` on PostgreSQL.

    ``url`` is a libpq URL (``postgresql://user@host:5432/db``); the
    connection opens on first use, and the tables are created then if
    missing. ``connect_timeout_s`` bounds each connection attempt (libpq
    counts whole seconds, at least 2).

    Search indexes of ``ann_threshold`` faces or more are saved in
    ``index_directory`` (a local cache: one per database, see
    :func:`facelens.collection.registry.open_store`; None: never saved), so
    a restart loads them and catches up from the database instead of
    rebuilding (see :mod:`facelens.collection.index_cache`). ``close()``
    saves the ones with unsaved changes.
    """

    def __init__(
        self,
        url: str,
        *,
        connect_timeout_s: int = 10,
        ann_threshold: int = ANN_THRESHOLD,
        index_directory: Path | None = None,
    ) -> None:
        self._session = Session(url, connect_timeout_s=connect_timeout_s)
        self._lock = threading.RLock()
        self._indexes = IndexCache(index_directory, ann_threshold)

    def close(self) -> None:
        with self._lock:
            self._indexes.close(current=self._current_token)
            self._session.close()

    # -- collections --
    def create_collection(self, collection_id: str, *, face_model_version: str) -> CollectionInfo:
        now = datetime.now(UTC)
        with self._transaction(WRITE) as conn:
            cursor = conn.execute(
                "INSERT INTO facelens_collections (collection_id, face_model_version, created_at)"
                " VALUES (%s, %s, %s) ON CONFLICT DO NOTHING",
                (collection_id, face_model_version, now),
            )
            if cursor.rowcount == 0:
                message = f"The collection id: {collection_id} already exists"
                raise ResourceAlreadyExistsException(message)
        return CollectionInfo(collection_id, face_model_version, now, 0, 0)

    def describe_collection(self, collection_id: str) -> CollectionInfo:
        with self._transaction(READ) as conn:
            row = conn.execute(
                "SELECT c.face_model_version, c.created_at,"
                " (SELECT COUNT(*) FROM facelens_faces f WHERE f.collection_id = c.collection_id),"
                " (SELECT COUNT(*) FROM facelens_users u WHERE u.collection_id = c.collection_id)"
                " FROM facelens_collections c WHERE c.collection_id = %s",
                (collection_id,),
            ).fetchone()
        if row is None:
            raise no_collection(collection_id)
        return CollectionInfo(collection_id, row[0], instant(row[1]), row[2], row[3])

    def list_collections(
        self, *, max_results: int, next_token: str | None = None
    ) -> CollectionPage:
        sql = "SELECT collection_id, face_model_version FROM facelens_collections WHERE TRUE"
        with self._transaction(READ) as conn:
            rows, token = keyset_page(
                QmarkAdapter(conn), sql, [], "collection_id", max_results, next_token, ""
            )
        return CollectionPage([r[0] for r in rows], [r[1] for r in rows], token)

    def delete_collection(self, collection_id: str) -> None:
        with self._lock:
            with self._transaction(WRITE) as conn:
                cursor = conn.execute(
                    "DELETE FROM facelens_collections WHERE collection_id = %s", (collection_id,)
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
                "SELECT embedding_dim FROM facelens_faces WHERE collection_id = %s LIMIT 1",
                (collection_id,),
            ).fetchone()
            if row is not None and row[0] != dim:
                message = f"Embedding dimension {dim} does not match the collection's {row[0]}"
                raise InvalidParameterException(message)
            taken = tx.conn.execute(
                f"SELECT face_id FROM facelens_faces WHERE {IN_IDS} LIMIT 1", (collection_id, ids)
            ).fetchone()
            if taken is not None:
                raise ResourceAlreadyExistsException(f"The face id: {taken[0]} already exists")
            copy_faces(
                tx.conn,
                [
                    face_values(collection_id, f, v, now, tx.generation)
                    for f, v in zip(faces, vectors, strict=True)
                ],
            )
            sources = [source_values(collection_id, f.face_id, f.source) for f in faces if f.source]
            if sources:
                copy_sources(tx.conn, sources)
            matrix = np.stack(vectors)
            tx.updates.append(lambda index: index.add_faces(ids, matrix))
            tx.changes += len(ids)
        return [stored_face(face, now) for face in faces]

    def get_faces(self, collection_id: str, face_ids: Sequence[str]) -> dict[str, StoredFace]:
        with self._transaction(READ) as conn:
            _collection_token(conn, collection_id)
            return select_faces(conn, collection_id, face_ids)

    def get_embeddings(self, collection_id: str, face_ids: Sequence[str]) -> dict[str, Embedding]:
        with self._transaction(READ) as conn:
            _collection_token(conn, collection_id)
            rows = conn.execute(
                f"SELECT face_id, embedding_dim, embedding FROM facelens_faces WHERE {IN_IDS}",
                (collection_id, list(face_ids)),
            ).fetchall()
        return {r[0]: decode_embeddings([r[1]], [r[2]], r[1])[0].astype(np.float32) for r in rows}

    def get_sources(self, collection_id: str, face_ids: Sequence[str]) -> dict[str, FaceSource]:
        with self._transaction(READ) as conn:
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
        """As SQLite's: every process's search index of the collection is rebuilt after."""
        ids, vectors = replacement_vectors(embeddings)
        with self._lock:
            with self._write(collection_id) as tx:
                gone = tx.conn.execute(
                    f"DELETE FROM facelens_faces WHERE {IN_IDS}", (collection_id, list(delete))
                ).rowcount
                for start in range(0, len(ids), REPLACE_ROWS):
                    chunk = slice(start, start + REPLACE_ROWS)
                    tx.conn.execute(
                        "UPDATE facelens_faces AS f SET embedding_dim = %s, embedding = v.e,"
                        " generation = %s FROM unnest(%s::text[], %s::bytea[]) AS v(id, e)"
                        " WHERE f.collection_id = %s AND f.face_id = v.id",
                        (
                            vectors[0].shape[0] if vectors else 0,
                            tx.generation,
                            ids[chunk],
                            [v.astype(BLOB_DTYPE).tobytes() for v in vectors[chunk]],
                            collection_id,
                        ),
                    )
                left = tx.conn.execute(
                    "SELECT COUNT(*) FROM facelens_faces"
                    " WHERE collection_id = %s AND generation <> %s",
                    (collection_id, tx.generation),
                ).fetchone()
                if left is not None and left[0]:
                    raise not_re_embedded(collection_id, left[0])
                tx.conn.execute(
                    "UPDATE facelens_collections SET face_model_version = %s, deletions_floor = %s"
                    " WHERE collection_id = %s",
                    (face_model_version, tx.generation, collection_id),
                )
                tx.conn.execute(
                    "DELETE FROM facelens_face_deletions WHERE collection_id = %s",
                    (collection_id,),
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
        sql = f"SELECT {FACE_COLUMNS} FROM facelens_faces WHERE collection_id = %s"
        params: list[Any] = [collection_id]
        if user_id is not None:
            sql, params = sql + " AND user_id = %s", [*params, user_id]
        if face_ids is not None:
            sql, params = sql + " AND face_id = ANY(%s)", [*params, list(face_ids)]
        with self._transaction(READ) as conn:
            _collection_token(conn, collection_id)
            rows, token = keyset_page(
                QmarkAdapter(conn),
                sql,
                params,
                "face_id",
                max_results,
                next_token,
                collection_id,
            )
        return FacePage([face_from_row(r) for r in rows], token)

    def delete_faces(self, collection_id: str, face_ids: Sequence[str]) -> list[str]:
        params = (collection_id, list(face_ids))
        with self._write(collection_id) as tx:
            deleted = tx.conn.execute(
                f"DELETE FROM facelens_faces WHERE {IN_IDS} RETURNING face_id", params
            ).fetchall()
            found = {r[0] for r in deleted}
            if found:
                gone = sorted(found)
                log_deletions(tx.conn, collection_id, gone, tx.generation)
                tx.updates.append(lambda index: index.remove_faces(gone))
                tx.changes += len(gone)
        return [face_id for face_id in dict.fromkeys(face_ids) if face_id in found]

    def search_faces(
        self, collection_id: str, query: Embedding, *, limit: int, max_distance: float
    ) -> list[FaceNeighbor]:
        with self._transaction(READ) as conn:
            index = self._fresh_index(conn, collection_id)
            hits = search(index.faces, query, limit, max_distance)
            faces = select_faces(conn, collection_id, [h.id for h in hits]) if hits else {}
        return [FaceNeighbor(faces[h.id], h.distance) for h in hits if h.id in faces]

    # -- users --
    def create_user(self, collection_id: str, user_id: str) -> UserInfo:
        with self._write(collection_id) as tx:
            cursor = tx.conn.execute(
                "INSERT INTO facelens_users VALUES (%s, %s, %s) ON CONFLICT DO NOTHING",
                (collection_id, user_id, datetime.now(UTC)),
            )
            if cursor.rowcount == 0:
                message = f"The user id: {user_id} already exists in the collection {collection_id}"
                raise ConflictException(message)
            tx.updates.append(lambda index: None)  # no template until a face is associated
        return UserInfo(user_id, UserStatus.CREATED, 0)

    def get_user(self, collection_id: str, user_id: str) -> UserInfo:
        with self._transaction(READ) as conn:
            _collection_token(conn, collection_id)
            row = conn.execute(USERS + " AND u.user_id = %s", (collection_id, user_id)).fetchone()
        if row is None:
            raise no_user(collection_id, user_id)
        return user_from_row(row)

    def list_users(
        self, collection_id: str, *, max_results: int, next_token: str | None = None
    ) -> UserPage:
        with self._transaction(READ) as conn:
            _collection_token(conn, collection_id)
            rows, token = keyset_page(
                QmarkAdapter(conn),
                *(USERS, [collection_id], "u.user_id", max_results, next_token, collection_id),
            )
        return UserPage([user_from_row(r) for r in rows], token)

    def delete_user(self, collection_id: str, user_id: str) -> None:
        key = (collection_id, user_id)
        where = "WHERE collection_id = %s AND user_id = %s"
        with self._write(collection_id) as tx:
            _require_user(tx.conn, collection_id, user_id)
            members = [
                r[0]
                for r in tx.conn.execute(
                    f"UPDATE facelens_faces SET user_id = NULL, generation = %s {where}"
                    " RETURNING face_id",
                    (tx.generation, *key),
                )
            ]
            tx.conn.execute(f"DELETE FROM facelens_users {where}", key)
            tx.updates.append(lambda index: index.assign(members, None))
            tx.changes += len(members)

    def associate_faces(self, collection_id: str, user_id: str, face_ids: Sequence[str]) -> None:
        self._set_user(collection_id, user_id, face_ids, associate=True)

    def disassociate_faces(self, collection_id: str, user_id: str, face_ids: Sequence[str]) -> None:
        self._set_user(collection_id, user_id, face_ids, associate=False)

    def search_users(
        self, collection_id: str, query: Embedding, *, limit: int, max_distance: float
    ) -> list[UserNeighbor]:
        with self._transaction(READ) as conn:
            index = self._fresh_index(conn, collection_id)
            hits = search(index.users, query, limit, max_distance)
            return [
                UserNeighbor(user_from_row((h.id, index.face_count(h.id))), h.distance)
                for h in hits
            ]

    def purge_deleted(self, collection_ids: Sequence[str]) -> bool:
        """As SQLite's, with a plain VACUUM; False: until a VACUUM FULL the files may still
        hold deleted rows (see :mod:`facelens.people.forget`)."""
        with self._lock:
            with self._transaction(WRITE) as conn:
                purge_deletion_log(conn, collection_ids)
            for collection_id in collection_ids:
                self._indexes.forget(collection_id)
            self._session.vacuum(
                [
                    "facelens_faces",
                    "facelens_face_sources",
                    "facelens_users",
                    "facelens_face_deletions",
                ]
            )
        return False

    # -- internals --
    def _set_user(
        self, collection_id: str, user_id: str, face_ids: Sequence[str], *, associate: bool
    ) -> None:
        where = IN_IDS
        params: tuple[Any, ...] = (collection_id, list(face_ids))
        if not associate:  # only the faces this user holds
            where, params = where + " AND user_id = %s", (*params, user_id)
        target = user_id if associate else None
        with self._write(collection_id) as tx:
            _require_user(tx.conn, collection_id, user_id)
            changed = tx.conn.execute(
                f"UPDATE facelens_faces SET user_id = %s, generation = %s WHERE {where}"
                " RETURNING face_id",
                (target, tx.generation, *params),
            ).fetchall()
            found = [r[0] for r in changed]
            if found:
                tx.updates.append(lambda index: index.assign(found, target))
                tx.changes += len(found)

    @contextmanager
    def _transaction(self, begin: str) -> Iterator[Connection]:
        with self._lock, self._session.transaction(begin) as conn:
            yield conn

    @contextmanager
    def _write(self, collection_id: str) -> Iterator[WriteTx[Connection]]:
        """A write that bumps the generation if it changed anything, then patches the cache."""
        with self._lock:
            with self._transaction(WRITE) as conn:
                tx = WriteTx(conn, _collection_token(conn, collection_id, lock=True))
                yield tx
                if tx.updates:
                    conn.execute(
                        "UPDATE facelens_collections SET generation = generation + 1"
                        " WHERE collection_id = %s",
                        (collection_id,),
                    )
            self._indexes.patch(collection_id, tx.token, tx.updates, tx.changes)

    def _current_token(self, collection_id: str) -> Token | None:
        try:
            with self._transaction(READ) as conn:
                return _collection_token(conn, collection_id)
        except FacelensError:
            return None

    def _fresh_index(self, conn: Connection, collection_id: str) -> CollectionIndex:
        """The collection's search index, caught up first if anyone wrote since."""
        token = _collection_token(conn, collection_id)
        return self._indexes.fresh(collection_id, token, IndexRows(conn, collection_id))


def _collection_token(conn: Connection, collection_id: str, *, lock: bool = False) -> Token:
    """The collection's (created_at, generation); ``lock`` holds off its other writers."""
    sql = TOKEN + " FOR NO KEY UPDATE" if lock else TOKEN
    row = conn.execute(sql, (collection_id,)).fetchone()
    if row is None:
        raise no_collection(collection_id)
    return (row[0], row[1])


def _require_model(conn: Connection, collection_id: str, face_model_version: str) -> None:
    sql = "SELECT face_model_version FROM facelens_collections WHERE collection_id = %s"
    row = conn.execute(sql, (collection_id,)).fetchone()
    if row is not None and row[0] != face_model_version:
        raise other_model(collection_id, row[0], face_model_version)


def _require_user(conn: Connection, collection_id: str, user_id: str) -> None:
    sql = "SELECT 1 FROM facelens_users WHERE collection_id = %s AND user_id = %s"
    if conn.execute(sql, (collection_id, user_id)).fetchone() is None:
        raise no_user(collection_id, user_id)

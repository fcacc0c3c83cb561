"""The collection store on a SQL database, written once for every dialect.

The database is the source of truth; searches run on in-process
:class:`~facelens.collection.index.collection_index.CollectionIndex` caches. Every write to a
collection's faces or users bumps ``collections.generation`` in the same
transaction, so one cheap query before a search tells whether any process
changed the collection since its cache was built; a cache that is behind
catches up with just those changes, and large ones are saved so a restart
loads them (see :mod:`facelens.collection.stores.index_cache`).

Writers of one collection are serialised across processes: a write
transaction first reads the collection's row with the dialect's row lock
(SQLite's ``BEGIN IMMEDIATE`` already holds the file; PostgreSQL locks the
row), so a read-then-write (is the face id taken? which faces does this user
hold?) sees no other writer's change in between.

What differs between databases (placeholders, id lists, timestamps, bulk
reads and writes, the connection and its errors, the schema) is the
dialect's: see :mod:`facelens.collection.stores.sql_dialect`.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Generic

import numpy as np

from facelens.collection.index.collection_index import ANN_THRESHOLD, CollectionIndex
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
from facelens.collection.sources import FaceSource
from facelens.collection.stores.index_cache import Changes, IndexCache, Token, WriteTx, search
from facelens.collection.stores.rows import (
    FACE_COLUMNS,
    INSERT_COLUMNS,
    SOURCE_COLUMNS,
    decode_embeddings,
    face_from_row,
    face_values,
    instant,
    no_collection,
    no_user,
    not_re_embedded,
    other_model,
    read_index,
    replacement_vectors,
    source_from_row,
    source_values,
    stored_face,
    user_from_row,
)
from facelens.collection.stores.sql_dialect import C, Dialect, Tables, one
from facelens.engine.types import Embedding
from facelens.errors import (
    ConflictException,
    FacelensError,
    InvalidParameterException,
    ResourceAlreadyExistsException,
)
from facelens.pagination import keyset_page

READ_ROWS = 8192
"""Rows per fetch when a search index is rebuilt or caught up (4 MB of 128-d blobs): enough
that the per-fetch overhead vanishes, few enough that row objects never pile up."""
DELETION_LOG_GENERATIONS = 1_000_000
"""Generations a face deletion stays in the log: an index further behind than that is
rebuilt rather than caught up. Bounds the log by the deletions of the last million writes."""


class SqlCollectionStore(Generic[C]):
    """:class:`~facelens.collection.stores.store.CollectionStore` on one ``dialect``'s database.

    Search indexes of ``ann_threshold`` faces or more are saved in
    ``index_directory`` (None: never saved), so a restart loads them and
    catches up from the database instead of rebuilding. ``close()`` saves the
    ones with unsaved changes.
    """

    def __init__(
        self,
        dialect: Dialect[C],
        *,
        index_directory: Path | None,
        ann_threshold: int = ANN_THRESHOLD,
    ) -> None:
        self._dialect = dialect
        self._t = t = dialect.tables
        self._in_ids = f"collection_id = ? AND face_id {dialect.in_list}"
        """The faces of one collection (first parameter) among a list of ids (second)."""
        self._users = (
            f"SELECT u.user_id, (SELECT COUNT(*) FROM {t.faces} f"
            " WHERE f.collection_id = u.collection_id AND f.user_id = u.user_id)"
            f" FROM {t.users} u WHERE u.collection_id = ?"
        )
        """A collection's users with their face counts; ends in a WHERE clause to extend."""
        self._lock = threading.RLock()
        self._indexes = IndexCache(index_directory, ann_threshold)

    def close(self) -> None:
        with self._lock:
            self._indexes.close(current=self._current_token)
            self._dialect.close()

    # -- collections --
    def create_collection(self, collection_id: str, *, face_model_version: str) -> CollectionInfo:
        now = datetime.now(UTC)
        with self._transaction(write=True) as conn:
            cursor = conn.execute(
                f"INSERT INTO {self._t.collections}"
                " (collection_id, face_model_version, created_at) VALUES (?, ?, ?)"
                " ON CONFLICT DO NOTHING",
                (collection_id, face_model_version, self._dialect.timestamp(now)),
            )
            if cursor.rowcount == 0:
                message = f"The collection id: {collection_id} already exists"
                raise ResourceAlreadyExistsException(message)
        return CollectionInfo(collection_id, face_model_version, now, 0, 0)

    def describe_collection(self, collection_id: str) -> CollectionInfo:
        t = self._t
        with self._transaction(write=False) as conn:
            row = conn.execute(
                "SELECT c.face_model_version, c.created_at,"
                f" (SELECT COUNT(*) FROM {t.faces} f WHERE f.collection_id = c.collection_id),"
                f" (SELECT COUNT(*) FROM {t.users} u WHERE u.collection_id = c.collection_id)"
                f" FROM {t.collections} c WHERE c.collection_id = ?",
                (collection_id,),
            ).fetchone()
        if row is None:
            raise no_collection(collection_id)
        return CollectionInfo(collection_id, row[0], instant(row[1]), row[2], row[3])

    def list_collections(
        self, *, max_results: int, next_token: str | None = None
    ) -> CollectionPage:
        sql = f"SELECT collection_id, face_model_version FROM {self._t.collections} WHERE 1 = 1"
        with self._transaction(write=False) as conn:
            rows, token = keyset_page(conn, sql, [], "collection_id", max_results, next_token, "")
        return CollectionPage([r[0] for r in rows], [r[1] for r in rows], token)

    def delete_collection(self, collection_id: str) -> None:
        with self._lock:
            with self._transaction(write=True) as conn:
                cursor = conn.execute(
                    f"DELETE FROM {self._t.collections} WHERE collection_id = ?", (collection_id,)
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
        t, dialect = self._t, self._dialect
        with self._write(collection_id) as tx:
            if face_model_version is not None:
                self._require_model(tx.conn, collection_id, face_model_version)
            if not faces:
                return []
            dim = vectors[0].shape[0]
            row = tx.conn.execute(
                f"SELECT embedding_dim FROM {t.faces} WHERE collection_id = ? LIMIT 1",
                (collection_id,),
            ).fetchone()
            if row is not None and row[0] != dim:
                message = f"Embedding dimension {dim} does not match the collection's {row[0]}"
                raise InvalidParameterException(message)
            taken = tx.conn.execute(
                f"SELECT face_id FROM {t.faces} WHERE {self._in_ids} LIMIT 1",
                (collection_id, dialect.id_list(ids)),
            ).fetchone()
            if taken is not None:
                raise ResourceAlreadyExistsException(f"The face id: {taken[0]} already exists")
            indexed_at = dialect.timestamp(now)
            dialect.insert(
                tx.conn,
                t.faces,
                INSERT_COLUMNS,
                [
                    face_values(collection_id, f, v, indexed_at, tx.generation)
                    for f, v in zip(faces, vectors, strict=True)
                ],
            )
            sources = [source_values(collection_id, f.face_id, f.source) for f in faces if f.source]
            if sources:
                dialect.insert(tx.conn, t.face_sources, SOURCE_COLUMNS, sources)
            matrix = np.stack(vectors)
            tx.updates.append(lambda index: index.add_faces(ids, matrix))
            tx.changes += len(ids)
        return [stored_face(face, now) for face in faces]

    def get_faces(self, collection_id: str, face_ids: Sequence[str]) -> dict[str, StoredFace]:
        with self._transaction(write=False) as conn:
            self._token(conn, collection_id)
            return self._select_faces(conn, collection_id, face_ids)

    def get_embeddings(self, collection_id: str, face_ids: Sequence[str]) -> dict[str, Embedding]:
        with self._transaction(write=False) as conn:
            self._token(conn, collection_id)
            rows = conn.execute(
                f"SELECT face_id, embedding_dim, embedding FROM {self._t.faces}"
                f" WHERE {self._in_ids}",
                (collection_id, self._dialect.id_list(face_ids)),
            ).fetchall()
        return {r[0]: decode_embeddings([r[1]], [r[2]], r[1])[0].astype(np.float32) for r in rows}

    def get_sources(self, collection_id: str, face_ids: Sequence[str]) -> dict[str, FaceSource]:
        with self._transaction(write=False) as conn:
            self._token(conn, collection_id)
            rows = conn.execute(
                "SELECT face_id, width, height, geometry, jpeg"
                f" FROM {self._t.face_sources} WHERE {self._in_ids}",
                (collection_id, self._dialect.id_list(face_ids)),
            )
            return {r[0]: source_from_row(r[1:]) for r in rows}

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
        t, dialect = self._t, self._dialect
        with self._lock:
            with self._write(collection_id) as tx:
                gone = tx.conn.execute(
                    f"DELETE FROM {t.faces} WHERE {self._in_ids}",
                    (collection_id, dialect.id_list(delete)),
                ).rowcount
                dialect.set_embeddings(tx.conn, collection_id, ids, vectors, tx.generation)
                (left,) = one(
                    tx.conn.execute(
                        f"SELECT COUNT(*) FROM {t.faces}"
                        " WHERE collection_id = ? AND generation <> ?",
                        (collection_id, tx.generation),
                    )
                )
                if left:
                    raise not_re_embedded(collection_id, left)
                tx.conn.execute(
                    f"UPDATE {t.collections} SET face_model_version = ?, deletions_floor = ?"
                    " WHERE collection_id = ?",
                    (face_model_version, tx.generation, collection_id),
                )
                # Below the floor the log is never read again; the dropped ids go with it.
                tx.conn.execute(
                    f"DELETE FROM {t.face_deletions} WHERE collection_id = ?", (collection_id,)
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
        sql = f"SELECT {FACE_COLUMNS} FROM {self._t.faces} WHERE collection_id = ?"
        params: list[Any] = [collection_id]
        if user_id is not None:
            sql, params = sql + " AND user_id = ?", [*params, user_id]
        if face_ids is not None:
            sql += f" AND face_id {self._dialect.in_list}"
            params = [*params, self._dialect.id_list(face_ids)]
        with self._transaction(write=False) as conn:
            self._token(conn, collection_id)
            rows, token = keyset_page(
                conn, sql, params, "face_id", max_results, next_token, collection_id
            )
        return FacePage([face_from_row(r) for r in rows], token)

    def delete_faces(self, collection_id: str, face_ids: Sequence[str]) -> list[str]:
        params = (collection_id, self._dialect.id_list(face_ids))
        faces = self._t.faces
        with self._write(collection_id) as tx:
            sql = f"SELECT face_id FROM {faces} WHERE {self._in_ids}"
            found = {r[0] for r in tx.conn.execute(sql, params)}
            if found:
                self._log_deletions(tx.conn, collection_id, params, tx.generation)
                tx.conn.execute(f"DELETE FROM {faces} WHERE {self._in_ids}", params)
                gone = sorted(found)
                tx.updates.append(lambda index: index.remove_faces(gone))
                tx.changes += len(gone)
        return [face_id for face_id in dict.fromkeys(face_ids) if face_id in found]

    def search_faces(
        self, collection_id: str, query: Embedding, *, limit: int, max_distance: float
    ) -> list[FaceNeighbor]:
        with self._transaction(write=False) as conn:
            index = self._fresh_index(conn, collection_id)
            hits = search(index.faces, query, limit, max_distance)
            faces = self._select_faces(conn, collection_id, [h.id for h in hits]) if hits else {}
        return [FaceNeighbor(faces[h.id], h.distance) for h in hits if h.id in faces]

    # -- users --
    def create_user(self, collection_id: str, user_id: str) -> UserInfo:
        with self._write(collection_id) as tx:
            cursor = tx.conn.execute(
                f"INSERT INTO {self._t.users} VALUES (?, ?, ?) ON CONFLICT DO NOTHING",
                (collection_id, user_id, self._dialect.timestamp(datetime.now(UTC))),
            )
            if cursor.rowcount == 0:
                message = f"The user id: {user_id} already exists in the collection {collection_id}"
                raise ConflictException(message)
            tx.updates.append(lambda index: None)  # no template until a face is associated
        return UserInfo(user_id, UserStatus.CREATED, 0)

    def get_user(self, collection_id: str, user_id: str) -> UserInfo:
        with self._transaction(write=False) as conn:
            self._token(conn, collection_id)
            row = conn.execute(
                self._users + " AND u.user_id = ?", (collection_id, user_id)
            ).fetchone()
        if row is None:
            raise no_user(collection_id, user_id)
        return user_from_row(row)

    def list_users(
        self, collection_id: str, *, max_results: int, next_token: str | None = None
    ) -> UserPage:
        with self._transaction(write=False) as conn:
            self._token(conn, collection_id)
            rows, token = keyset_page(
                conn,
                *(
                    self._users,
                    [collection_id],
                    "u.user_id",
                    max_results,
                    next_token,
                    collection_id,
                ),
            )
        return UserPage([user_from_row(r) for r in rows], token)

    def delete_user(self, collection_id: str, user_id: str) -> None:
        key = (collection_id, user_id)
        where = "WHERE collection_id = ? AND user_id = ?"
        t = self._t
        with self._write(collection_id) as tx:
            self._require_user(tx.conn, collection_id, user_id)
            members = [r[0] for r in tx.conn.execute(f"SELECT face_id FROM {t.faces} {where}", key)]
            tx.conn.execute(
                f"UPDATE {t.faces} SET user_id = NULL, generation = ? {where}",
                (tx.generation, *key),
            )
            tx.conn.execute(f"DELETE FROM {t.users} {where}", key)
            tx.updates.append(lambda index: index.assign(members, None))
            tx.changes += len(members)

    def associate_faces(self, collection_id: str, user_id: str, face_ids: Sequence[str]) -> None:
        self._set_user(collection_id, user_id, face_ids, associate=True)

    def disassociate_faces(self, collection_id: str, user_id: str, face_ids: Sequence[str]) -> None:
        self._set_user(collection_id, user_id, face_ids, associate=False)

    def search_users(
        self, collection_id: str, query: Embedding, *, limit: int, max_distance: float
    ) -> list[UserNeighbor]:
        with self._transaction(write=False) as conn:
            index = self._fresh_index(conn, collection_id)
            hits = search(index.users, query, limit, max_distance)
            return [
                UserNeighbor(user_from_row((h.id, index.face_count(h.id))), h.distance)
                for h in hits
            ]

    def purge_deleted(self, collection_ids: Sequence[str]) -> bool:
        """No trace of deleted faces in the database: see :mod:`facelens.people.forget`.

        The deletion log names deleted faces and exists only for indexes
        catching up: it is emptied, and each collection's floor raised to its
        generation, so an index that is behind rebuilds instead. False when
        the dialect cannot promise the files hold no deleted row any longer
        (see its :meth:`~facelens.collection.stores.sql_dialect.Dialect.erase_deleted`).
        """
        ids = self._dialect.id_list(collection_ids)
        t = self._t
        with self._lock:
            with self._transaction(write=True) as conn:
                conn.execute(
                    f"DELETE FROM {t.face_deletions} WHERE collection_id {self._dialect.in_list}",
                    (ids,),
                )
                conn.execute(
                    f"UPDATE {t.collections} SET deletions_floor = generation"
                    f" WHERE collection_id {self._dialect.in_list}",
                    (ids,),
                )
            for collection_id in collection_ids:
                self._indexes.forget(collection_id)
            return self._dialect.erase_deleted()

    # -- internals --
    def _set_user(
        self, collection_id: str, user_id: str, face_ids: Sequence[str], *, associate: bool
    ) -> None:
        where = self._in_ids
        params: tuple[Any, ...] = (collection_id, self._dialect.id_list(face_ids))
        if not associate:  # only the faces this user holds
            where, params = where + " AND user_id = ?", (*params, user_id)
        target = user_id if associate else None
        with self._write(collection_id) as tx:
            self._require_user(tx.conn, collection_id, user_id)
            found = [
                r[0]
                for r in tx.conn.execute(
                    f"SELECT face_id FROM {self._t.faces} WHERE {where}", params
                )
            ]
            if found:
                tx.conn.execute(
                    f"UPDATE {self._t.faces} SET user_id = ?, generation = ? WHERE {where}",
                    (target, tx.generation, *params),
                )
                tx.updates.append(lambda index: index.assign(found, target))
                tx.changes += len(found)

    def _select_faces(
        self, conn: C, collection_id: str, face_ids: Sequence[str]
    ) -> dict[str, StoredFace]:
        rows = conn.execute(
            f"SELECT {FACE_COLUMNS} FROM {self._t.faces} WHERE {self._in_ids}",
            (collection_id, self._dialect.id_list(face_ids)),
        )
        return {r[0]: face_from_row(r) for r in rows}

    def _log_deletions(
        self, conn: C, collection_id: str, in_ids: tuple[str, object], generation: int
    ) -> None:
        """Records the faces ``in_ids`` (the parameters of :attr:`_in_ids`), about to be
        deleted, for catching-up indexes, and forgets entries too old to matter.

        Copied from the faces' own rows in the database: one statement for any count.
        """
        t = self._t
        conn.execute(
            f"INSERT INTO {t.face_deletions} (collection_id, face_id, generation)"
            f" SELECT collection_id, face_id, ? FROM {t.faces} WHERE {self._in_ids}",
            (generation, *in_ids),
        )
        cutoff = generation - DELETION_LOG_GENERATIONS
        if cutoff > 0:
            conn.execute(
                f"DELETE FROM {t.face_deletions} WHERE collection_id = ? AND generation <= ?",
                (collection_id, cutoff),
            )
            conn.execute(
                f"UPDATE {t.collections} SET deletions_floor = ?"
                " WHERE collection_id = ? AND deletions_floor < ?",
                (cutoff, collection_id, cutoff),
            )

    def _token(self, conn: C, collection_id: str, *, lock: bool = False) -> Token:
        """The collection's (created_at, generation); ``lock`` holds off its other writers."""
        sql = f"SELECT created_at, generation FROM {self._t.collections} WHERE collection_id = ?"
        row = conn.execute(
            sql + self._dialect.row_lock if lock else sql, (collection_id,)
        ).fetchone()
        if row is None:
            raise no_collection(collection_id)
        return (row[0], row[1])

    def _require_model(self, conn: C, collection_id: str, face_model_version: str) -> None:
        sql = f"SELECT face_model_version FROM {self._t.collections} WHERE collection_id = ?"
        (stored,) = one(conn.execute(sql, (collection_id,)))
        if stored != face_model_version:
            raise other_model(collection_id, stored, face_model_version)

    def _require_user(self, conn: C, collection_id: str, user_id: str) -> None:
        sql = f"SELECT 1 FROM {self._t.users} WHERE collection_id = ? AND user_id = ?"
        if conn.execute(sql, (collection_id, user_id)).fetchone() is None:
            raise no_user(collection_id, user_id)

    def _current_token(self, collection_id: str) -> Token | None:
        try:
            with self._transaction(write=False) as conn:
                return self._token(conn, collection_id)
        except FacelensError:
            return None

    @contextmanager
    def _transaction(self, *, write: bool) -> Iterator[C]:
        """One transaction under the store's lock."""
        with self._lock, self._dialect.transaction(write=write) as conn:
            yield conn

    @contextmanager
    def _write(self, collection_id: str) -> Iterator[WriteTx[C]]:
        """A write that bumps the generation if it changed anything.

        The cache is patched after the commit only if it was current when the
        transaction began (so nobody else wrote since it was built); otherwise
        the next search catches it up from the database.
        """
        with self._lock:
            with self._transaction(write=True) as conn:
                tx = WriteTx(conn, self._token(conn, collection_id, lock=True))
                yield tx
                if tx.updates:
                    conn.execute(
                        f"UPDATE {self._t.collections} SET generation = generation + 1"
                        " WHERE collection_id = ?",
                        (collection_id,),
                    )
            self._indexes.patch(collection_id, tx.token, tx.updates, tx.changes)

    def _fresh_index(self, conn: C, collection_id: str) -> CollectionIndex:
        """The collection's search index, caught up first if any process wrote since."""
        token = self._token(conn, collection_id)
        rows = IndexRows(self._dialect, conn, collection_id)
        return self._indexes.fresh(collection_id, token, rows)


@dataclass(frozen=True, slots=True)
class IndexRows(Generic[C]):
    """:class:`~facelens.collection.stores.index_cache.IndexSource` on an open read transaction."""

    dialect: Dialect[C]
    conn: C
    collection_id: str

    def read_all(self, *, ann_threshold: int) -> CollectionIndex:
        """Every face of the collection, read ``READ_ROWS`` at a time into a new search index.

        Only the columns the index needs are read, with the recorded dimension to
        check each blob against (see :func:`facelens.collection.stores.rows.read_index`).
        """
        faces = self.dialect.tables.faces
        key = self.collection_id
        count, dim = one(
            self.conn.execute(
                f"SELECT COUNT(*), (SELECT embedding_dim FROM {faces} WHERE collection_id = ?"
                f" LIMIT 1) FROM {faces} WHERE collection_id = ?",
                (key, key),
            )
        )
        if count == 0:
            return CollectionIndex(ann_threshold=ann_threshold)
        sql = (
            "SELECT face_id, user_id, embedding_dim, embedding"
            f" FROM {faces} WHERE collection_id = ?"
        )
        with self.dialect.stream(self.conn, "load_index", sql, (key,)) as cursor:
            batches = iter(lambda: cursor.fetchmany(READ_ROWS), [])
            return read_index(count, dim, batches, ann_threshold=ann_threshold)

    def face_count(self) -> int:
        sql = f"SELECT COUNT(*) FROM {self.dialect.tables.faces} WHERE collection_id = ?"
        (count,) = one(self.conn.execute(sql, (self.collection_id,)))
        return int(count)

    def changes_since(self, generation: int, *, limit: int) -> Changes | None:
        t: Tables = self.dialect.tables
        key = (self.collection_id, generation)
        floor, changed, deleted = one(
            self.conn.execute(
                "SELECT deletions_floor,"
                f" (SELECT COUNT(*) FROM {t.faces} WHERE collection_id = ? AND generation > ?),"
                f" (SELECT COUNT(*) FROM {t.face_deletions}"
                "  WHERE collection_id = ? AND generation > ?)"
                f" FROM {t.collections} WHERE collection_id = ?",
                (*key, *key, self.collection_id),
            )
        )
        if generation < floor or changed + deleted > limit:
            return None
        gone = self.conn.execute(
            f"SELECT face_id FROM {t.face_deletions} WHERE collection_id = ? AND generation > ?",
            key,
        )
        return Changes([r[0] for r in gone], self._rows(generation) if changed else [])

    def _rows(self, generation: int) -> Iterator[list[Any]]:
        sql = (
            "SELECT face_id, user_id, embedding_dim, embedding"
            f" FROM {self.dialect.tables.faces} WHERE collection_id = ? AND generation > ?"
        )
        key = (self.collection_id, generation)
        with self.dialect.stream(self.conn, "index_changes", sql, key) as cursor:
            yield from iter(lambda: cursor.fetchmany(READ_ROWS), [])

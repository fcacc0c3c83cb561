"""The collection store on PostgreSQL, shared by every process and host that reaches it.

The store's logic is :class:`~facelens.collection.stores.sql.SqlCollectionStore`,
shared with SQLite, so a deployment moves from one machine to many by
changing a URL; this module is PostgreSQL's dialect of it (see
:mod:`facelens.collection.stores.sql_dialect`): the schema, the one connection and
how it lives and fails, and the SQL PostgreSQL says its own way.

Transactions: reads run in ``REPEATABLE READ READ ONLY``, so a search index
is rebuilt from one snapshot and a read never fails on a serialisation
conflict; writes run in ``READ COMMITTED`` after locking the collection's
row (``FOR NO KEY UPDATE``), which serialises writers of one collection
across all processes, as SQLite's ``BEGIN IMMEDIATE`` does for one file,
while writers of other collections proceed.

One connection per store, used under the store's lock: the store's cache
and its transactions are serialised anyway, and a process that needs more
throughput runs more workers (each with its own store). A connection that
died while idle (a server restart, a failover) is replaced once, silently;
losing it mid-transaction raises ServiceUnavailableException and the next
call reconnects.

Choices that keep PostgreSQL's answers identical to SQLite's:

* ids are ``TEXT COLLATE "C"``: byte order, as SQLite compares, whatever
  locale the database was created with, so pages come in the same order and
  a page token means the same on both;
* embeddings are little-endian float32 ``bytea`` with their dimension beside
  them, checked on read like SQLite's blobs;
* tables carry a ``facelens_`` prefix, since a PostgreSQL database is often
  shared with other applications (and with our own profile tables).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from facelens.collection.index.collection_index import ANN_THRESHOLD
from facelens.collection.stores.rows import BLOB_DTYPE
from facelens.collection.stores.sql import SqlCollectionStore
from facelens.collection.stores.sql_dialect import Batches, Tables, one
from facelens.errors import StorageError
from facelens.postgres import PostgresConnection, Psycopg, QmarkConnection, qmark_to_psycopg

READ = "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY"
WRITE = "BEGIN ISOLATION LEVEL READ COMMITTED"
REPLACE_ROWS = 10_000
"""Vectors per UPDATE when a collection is re-embedded (5 MB of 128-d blobs a statement)."""


SCHEMA_VERSION = 3
"""Kept in ``facelens_collection_schema``; a database written by a newer schema is refused.

2: ``facelens_faces.generation``, ``facelens_face_deletions`` and
``facelens_collections.deletions_floor``, so a search index can catch up with the
changes after its generation. 3: ``facelens_face_sources``, the crop each face can be
embedded again from (:mod:`facelens.collection.sources`). Every statement is idempotent
(``IF NOT EXISTS``), so the same list creates a new database and migrates an older one."""
SCHEMA_LOCK = 0x66_6C_63_6F_6C_6C_73_31
"""``pg_advisory_xact_lock`` key ("flcolls1") held while the tables are created, so two
processes starting on an empty database do not race on ``CREATE TABLE IF NOT EXISTS``."""

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS facelens_collection_schema (version INTEGER NOT NULL)",
    """CREATE TABLE IF NOT EXISTS facelens_collections (
    collection_id TEXT COLLATE "C" PRIMARY KEY, face_model_version TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL, generation BIGINT NOT NULL DEFAULT 0)""",
    """CREATE TABLE IF NOT EXISTS facelens_faces (
    collection_id TEXT COLLATE "C" NOT NULL
        REFERENCES facelens_collections(collection_id) ON DELETE CASCADE,
    face_id TEXT COLLATE "C" NOT NULL, image_id TEXT NOT NULL, external_image_id TEXT,
    box_width DOUBLE PRECISION NOT NULL, box_height DOUBLE PRECISION NOT NULL,
    box_left DOUBLE PRECISION NOT NULL, box_top DOUBLE PRECISION NOT NULL,
    confidence DOUBLE PRECISION NOT NULL, user_id TEXT COLLATE "C",
    indexed_at TIMESTAMPTZ NOT NULL, embedding_dim INTEGER NOT NULL, embedding BYTEA NOT NULL,
    PRIMARY KEY (collection_id, face_id))""",
    "CREATE INDEX IF NOT EXISTS facelens_faces_by_user ON facelens_faces(collection_id, user_id)",
    """CREATE TABLE IF NOT EXISTS facelens_users (
    collection_id TEXT COLLATE "C" NOT NULL
        REFERENCES facelens_collections(collection_id) ON DELETE CASCADE,
    user_id TEXT COLLATE "C" NOT NULL, created_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (collection_id, user_id))""",
    # version 2
    "ALTER TABLE facelens_faces ADD COLUMN IF NOT EXISTS generation BIGINT NOT NULL DEFAULT 0",
    "CREATE INDEX IF NOT EXISTS facelens_faces_by_generation"
    " ON facelens_faces(collection_id, generation)",
    """CREATE TABLE IF NOT EXISTS facelens_face_deletions (
    collection_id TEXT COLLATE "C" NOT NULL
        REFERENCES facelens_collections(collection_id) ON DELETE CASCADE,
    face_id TEXT COLLATE "C" NOT NULL, generation BIGINT NOT NULL)""",
    "CREATE INDEX IF NOT EXISTS facelens_face_deletions_by_generation"
    " ON facelens_face_deletions(collection_id, generation)",
    "ALTER TABLE facelens_collections"
    " ADD COLUMN IF NOT EXISTS deletions_floor BIGINT NOT NULL DEFAULT 0",
    # version 3: a face's source goes with it (the cascade), and so with its collection
    """CREATE TABLE IF NOT EXISTS facelens_face_sources (
    collection_id TEXT COLLATE "C" NOT NULL, face_id TEXT COLLATE "C" NOT NULL,
    width INTEGER NOT NULL, height INTEGER NOT NULL, geometry TEXT NOT NULL, jpeg BYTEA NOT NULL,
    PRIMARY KEY (collection_id, face_id),
    FOREIGN KEY (collection_id, face_id) REFERENCES facelens_faces(collection_id, face_id)
        ON DELETE CASCADE)""",
)


class PostgresCollectionStore(SqlCollectionStore[QmarkConnection]):
    """:class:`~facelens.collection.stores.store.CollectionStore` on PostgreSQL.

    ``url`` is a libpq URL (``postgresql://user@host:5432/db``); the
    connection opens on first use, and the tables are created then if
    missing. ``connect_timeout_s`` bounds each connection attempt (libpq
    counts whole seconds, at least 2).

    Search indexes of ``ann_threshold`` faces or more are saved in
    ``index_directory`` (a local cache: one per database, see
    :func:`facelens.collection.stores.registry.open_store`; None: never saved), so
    a restart loads them and catches up from the database instead of
    rebuilding (see :mod:`facelens.collection.stores.index_cache`). ``close()``
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
        super().__init__(
            PostgresDialect(url, connect_timeout_s=connect_timeout_s),
            index_directory=index_directory,
            ann_threshold=ann_threshold,
        )


class PostgresDialect:
    """:class:`~facelens.collection.stores.sql_dialect.Dialect` of one PostgreSQL database.

    Holds one lazily opened connection. Any psycopg error surfaces as
    StorageError; a lost connection as ServiceUnavailableException (see the
    module's docstring for when it is replaced).
    """

    tables = Tables.prefixed("facelens_")
    in_list = "= ANY(?)"  # one bound text array: no limit on how many, one plan for any count
    row_lock = " FOR NO KEY UPDATE"

    def __init__(self, url: str, *, connect_timeout_s: int) -> None:
        self._db = PostgresConnection(
            url,
            prepare=ensure_schema,
            what="The collection store",
            connect_timeout_s=connect_timeout_s,
        )

    def id_list(self, ids: Sequence[str]) -> list[str]:
        return list(ids)

    def timestamp(self, when: datetime) -> datetime:
        return when

    @contextmanager
    def transaction(self, *, write: bool) -> Iterator[QmarkConnection]:
        with self._db.transaction(WRITE if write else READ) as conn:
            yield QmarkConnection(conn)

    def insert(
        self, conn: QmarkConnection, table: str, columns: str, rows: Sequence[tuple[Any, ...]]
    ) -> None:
        """COPY: one round trip for any number of rows."""
        with (
            conn.raw.cursor() as cursor,
            cursor.copy(f"COPY {table} ({columns}) FROM STDIN") as copy,
        ):
            for row in rows:
                copy.write_row(row)

    @contextmanager
    def stream(
        self, conn: QmarkConnection, name: str, sql: str, parameters: Sequence[Any]
    ) -> Iterator[Batches]:
        """A server-side cursor, because a plain one would have libpq hold the whole result
        (about 0.6 GB at 1M faces) before the first row is seen; binary, so the embeddings
        arrive as raw bytes rather than hex text. Lives within the transaction."""
        with conn.raw.cursor(name=f"facelens_{name}", binary=True) as cursor:
            cursor.execute(qmark_to_psycopg(sql), parameters)
            yield cursor

    def set_embeddings(
        self,
        conn: QmarkConnection,
        collection_id: str,
        face_ids: Sequence[str],
        vectors: Sequence[npt.NDArray[np.float32]],
        generation: int,
    ) -> None:
        """One UPDATE per :data:`REPLACE_ROWS` faces, from two bound arrays."""
        dim = vectors[0].shape[0] if vectors else 0
        for start in range(0, len(face_ids), REPLACE_ROWS):
            chunk = slice(start, start + REPLACE_ROWS)
            conn.execute(
                f"UPDATE {self.tables.faces} AS f SET embedding_dim = ?, embedding = v.e,"
                " generation = ? FROM unnest(?::text[], ?::bytea[]) AS v(id, e)"
                " WHERE f.collection_id = ? AND f.face_id = v.id",
                (
                    dim,
                    generation,
                    face_ids[chunk],
                    [v.astype(BLOB_DTYPE).tobytes() for v in vectors[chunk]],
                    collection_id,
                ),
            )

    def erase_deleted(self) -> bool:
        """A plain VACUUM of the tables that held the deleted rows; False: until a VACUUM
        FULL (the operator's call: an exclusive lock) the files may still hold them."""
        t = self.tables
        self._db.run(f"VACUUM {t.faces}, {t.face_sources}, {t.users}, {t.face_deletions}")
        return False

    def close(self) -> None:
        self._db.close()


def ensure_schema(conn: Psycopg) -> None:
    """Creates the tables on first use; refuses a database of a newer schema.

    The usual case (already current) costs two small queries and needs no
    CREATE privilege, so a role limited to reading and writing rows works
    once the tables exist.
    """
    version = _schema_version(conn)
    if version == SCHEMA_VERSION:
        return
    _refuse_newer(version)
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (SCHEMA_LOCK,))
        version = _schema_version(conn)  # another process may have finished meanwhile
        _refuse_newer(version)
        if version < SCHEMA_VERSION:
            for statement in _SCHEMA:
                conn.execute(statement)
            conn.execute("DELETE FROM facelens_collection_schema")
            conn.execute("INSERT INTO facelens_collection_schema VALUES (%s)", (SCHEMA_VERSION,))


def _schema_version(conn: Psycopg) -> int:
    """The schema version, 0 before any. Looks the table up in ``pg_tables`` (a snapshot
    read) rather than with ``to_regclass``, whose catalog cache can miss a table another
    session committed while this one waited for the schema lock: the waiter then ran the
    whole migration again, and its ALTER TABLEs deadlocked with the first one's writers."""
    exists = one(
        conn.execute(
            "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_tables"
            " WHERE tablename = 'facelens_collection_schema'"
            " AND schemaname = ANY (current_schemas(false)))"
        )
    )
    if not exists[0]:
        return 0
    row = one(conn.execute("SELECT COALESCE(MAX(version), 0) FROM facelens_collection_schema"))
    version: int = row[0]
    return version


def _refuse_newer(version: int) -> None:
    if version > SCHEMA_VERSION:
        raise StorageError(f"Store schema version {version} is newer than {SCHEMA_VERSION}")

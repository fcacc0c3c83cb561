"""The PostgreSQL side of the collection store: schema, the connection, SQL.

Why a module of its own: :mod:`facelens.collection.postgres_store` is about
Rekognition's semantics and cache coherence; this is what the database
holds, how the one connection lives and fails, and how rows are read and
written. Rows become models through
:mod:`facelens.collection.rows`, shared with SQLite, so both back ends
answer alike.

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
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg.pq import TransactionStatus

from facelens.collection.index import CollectionIndex
from facelens.collection.index_cache import Changes
from facelens.collection.models import StoredFace
from facelens.collection.rows import (
    DELETION_LOG_GENERATIONS,
    FACE_COLUMNS,
    INSERT_COLUMNS,
    READ_ROWS,
    SOURCE_COLUMNS,
    face_from_row,
    read_index,
    source_from_row,
)
from facelens.collection.sources import FaceSource
from facelens.errors import ServiceUnavailableException, StorageError

Connection = psycopg.Connection[tuple[Any, ...]]

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
IN_IDS = "collection_id = %s AND face_id = ANY(%s)"
"""One bound text array: no limit on how many ids, one plan for any count."""
USERS = (
    "SELECT u.user_id, (SELECT COUNT(*) FROM facelens_faces f"
    " WHERE f.collection_id = u.collection_id AND f.user_id = u.user_id)"
    " FROM facelens_users u WHERE u.collection_id = %s"
)
TOKEN = "SELECT created_at, generation FROM facelens_collections WHERE collection_id = %s"


def open_connection(url: str, *, connect_timeout_s: int) -> Connection:
    """An autocommit connection (we issue BEGIN/COMMIT ourselves) on an up-to-date schema.

    Any failure to connect is ServiceUnavailableException: libpq reports an
    unreachable server, a server still starting and a missing database alike
    (no SQLSTATE), and all may heal without a change on our side. Its message
    names the host and the reason, never the password.
    """
    try:
        conn = psycopg.connect(url, autocommit=True, connect_timeout=connect_timeout_s)
    except psycopg.OperationalError as exc:
        raise ServiceUnavailableException(f"PostgreSQL is unavailable: {exc}") from exc
    except psycopg.Error as exc:  # a malformed URL
        raise StorageError(f"Connecting to PostgreSQL failed: {exc}") from exc
    try:
        ensure_schema(conn)
    except BaseException as exc:
        conn.close()
        if isinstance(exc, psycopg.Error):
            raise StorageError(f"Preparing the PostgreSQL schema failed: {exc}") from exc
        raise
    return conn


class Session:
    """One lazily opened connection and its transactions; the store serialises all use.

    A connection that died while idle (a server restart, a failover) is
    replaced once, silently, when the next transaction begins; one lost
    mid-transaction raises ServiceUnavailableException, and the call after
    reconnects. Any other psycopg error surfaces as StorageError.
    """

    def __init__(self, url: str, *, connect_timeout_s: int) -> None:
        self._url = url
        self._connect_timeout_s = connect_timeout_s
        self._conn: Connection | None = None
        self._closed = False

    def close(self) -> None:
        self._closed = True
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                conn.close()
            except psycopg.Error as exc:
                raise StorageError(f"Closing the PostgreSQL store failed: {exc}") from exc

    @contextmanager
    def transaction(self, begin: str) -> Iterator[Connection]:
        """``begin`` ... COMMIT, rolled back on any exception."""
        conn = self._begin(begin)
        try:
            yield conn
            conn.execute("COMMIT")
        except BaseException as exc:
            if not conn.broken and conn.info.transaction_status != TransactionStatus.IDLE:
                with suppress(psycopg.Error):
                    conn.execute("ROLLBACK")
            if isinstance(exc, psycopg.Error):
                raise self._failure(exc) from exc
            raise

    def vacuum(self, tables: Sequence[str]) -> None:
        """``VACUUM`` of our own ``tables`` (constant names), outside any transaction."""
        try:
            self._connection().execute(f"VACUUM {', '.join(tables)}")
        except psycopg.Error as exc:
            raise self._failure(exc) from exc

    def _connection(self) -> Connection:
        if self._closed:
            raise StorageError("The collection store is closed")
        if self._conn is None:
            self._conn = open_connection(self._url, connect_timeout_s=self._connect_timeout_s)
        return self._conn

    def _begin(self, begin: str) -> Connection:
        conn = self._connection()
        try:
            conn.execute(begin)
            return conn
        except psycopg.Error as exc:
            failure = self._failure(exc)
            if not isinstance(failure, ServiceUnavailableException):
                raise failure from exc
        conn = self._connection()  # the old one died idle: nothing was lost, so try anew
        try:
            conn.execute(begin)
        except psycopg.Error as exc:
            raise self._failure(exc) from exc
        return conn

    def _failure(self, exc: psycopg.Error) -> StorageError:
        """The error to raise for ``exc``; a lost connection is dropped for the next call."""
        conn = self._conn
        if conn is not None and conn.broken:
            self._conn = None
            with suppress(psycopg.Error):
                conn.close()
            return ServiceUnavailableException(f"Lost the PostgreSQL connection: {exc}")
        return StorageError(f"PostgreSQL failed: {exc}")


def ensure_schema(conn: Connection) -> None:
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


def _schema_version(conn: Connection) -> int:
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


def one(cursor: psycopg.Cursor[tuple[Any, ...]]) -> tuple[Any, ...]:
    """The single row of a query that always returns one (an aggregate)."""
    row = cursor.fetchone()
    if row is None:
        raise StorageError("PostgreSQL returned no row where one was certain")
    return row


def load_index(conn: Connection, collection_id: str, *, ann_threshold: int) -> CollectionIndex:
    """Every face of the collection, read ``READ_ROWS`` at a time into a new search index.

    A server-side cursor, because a plain one would have libpq hold the
    whole result (about 0.6 GB at 1M faces) before the first row is seen;
    binary, so the embeddings arrive as raw bytes rather than hex text.
    Must run inside the transaction that read the collection's token.
    """
    count, dim = one(
        conn.execute(
            "SELECT COUNT(*), (SELECT embedding_dim FROM facelens_faces"
            " WHERE collection_id = %(c)s LIMIT 1) FROM facelens_faces WHERE collection_id = %(c)s",
            {"c": collection_id},
        )
    )
    if count == 0:
        return CollectionIndex(ann_threshold=ann_threshold)
    with conn.cursor(name="facelens_load_index", binary=True) as cursor:
        cursor.execute(
            "SELECT face_id, user_id, embedding_dim, embedding FROM facelens_faces"
            " WHERE collection_id = %s",
            (collection_id,),
        )
        batches = iter(lambda: cursor.fetchmany(READ_ROWS), [])
        return read_index(count, dim, batches, ann_threshold=ann_threshold)


@dataclass(frozen=True, slots=True)
class IndexRows:
    """:class:`~facelens.collection.index_cache.IndexSource` on an open read transaction."""

    conn: Connection
    collection_id: str

    def read_all(self, *, ann_threshold: int) -> CollectionIndex:
        return load_index(self.conn, self.collection_id, ann_threshold=ann_threshold)

    def face_count(self) -> int:
        sql = "SELECT COUNT(*) FROM facelens_faces WHERE collection_id = %s"
        count: int = one(self.conn.execute(sql, (self.collection_id,)))[0]
        return count

    def changes_since(self, generation: int, *, limit: int) -> Changes | None:
        key = {"c": self.collection_id, "g": generation}
        floor, changed, deleted = one(
            self.conn.execute(
                "SELECT deletions_floor,"
                " (SELECT COUNT(*) FROM facelens_faces"
                "  WHERE collection_id = %(c)s AND generation > %(g)s),"
                " (SELECT COUNT(*) FROM facelens_face_deletions"
                "  WHERE collection_id = %(c)s AND generation > %(g)s)"
                " FROM facelens_collections WHERE collection_id = %(c)s",
                key,
            )
        )
        if generation < floor or changed + deleted > limit:
            return None
        gone = self.conn.execute(
            "SELECT face_id FROM facelens_face_deletions"
            " WHERE collection_id = %(c)s AND generation > %(g)s",
            key,
        )
        return Changes([r[0] for r in gone], self._rows(generation) if changed else [])

    def _rows(self, generation: int) -> Iterator[list[tuple[Any, ...]]]:
        with self.conn.cursor(name="facelens_index_changes", binary=True) as cursor:
            cursor.execute(
                "SELECT face_id, user_id, embedding_dim, embedding FROM facelens_faces"
                " WHERE collection_id = %s AND generation > %s",
                (self.collection_id, generation),
            )
            yield from iter(lambda: cursor.fetchmany(READ_ROWS), [])


def purge_deletion_log(conn: Connection, collection_ids: Sequence[str]) -> None:
    """Forgets the ids of deleted faces; an index behind the new floor rebuilds instead."""
    ids = list(collection_ids)
    conn.execute("DELETE FROM facelens_face_deletions WHERE collection_id = ANY(%s)", (ids,))
    conn.execute(
        "UPDATE facelens_collections SET deletions_floor = generation"
        " WHERE collection_id = ANY(%s)",
        (ids,),
    )


def log_deletions(
    conn: Connection, collection_id: str, face_ids: Sequence[str], generation: int
) -> None:
    """Records deleted faces for catching-up indexes, and forgets entries too old to matter."""
    conn.execute(
        "INSERT INTO facelens_face_deletions"
        " SELECT %s, face_id, %s FROM unnest(%s::text[]) AS face_id",
        (collection_id, generation, list(face_ids)),
    )
    cutoff = generation - DELETION_LOG_GENERATIONS
    if cutoff > 0:
        conn.execute(
            "DELETE FROM facelens_face_deletions WHERE collection_id = %s AND generation <= %s",
            (collection_id, cutoff),
        )
        conn.execute(
            "UPDATE facelens_collections SET deletions_floor = GREATEST(deletions_floor, %s)"
            " WHERE collection_id = %s",
            (cutoff, collection_id),
        )


def select_faces(
    conn: Connection, collection_id: str, face_ids: Sequence[str]
) -> dict[str, StoredFace]:
    rows = conn.execute(
        f"SELECT {FACE_COLUMNS} FROM facelens_faces WHERE {IN_IDS}",
        (collection_id, list(face_ids)),
    )
    return {r[0]: face_from_row(r) for r in rows}


def select_sources(
    conn: Connection, collection_id: str, face_ids: Sequence[str]
) -> dict[str, FaceSource]:
    rows = conn.execute(
        f"SELECT face_id, width, height, geometry, jpeg FROM facelens_face_sources WHERE {IN_IDS}",
        (collection_id, list(face_ids)),
    )
    return {r[0]: source_from_row(r[1:]) for r in rows}


def copy_sources(conn: Connection, rows: Sequence[tuple[Any, ...]]) -> None:
    """Inserts sources in ``rows.SOURCE_COLUMNS`` order with COPY."""
    sql = f"COPY facelens_face_sources ({SOURCE_COLUMNS}) FROM STDIN"
    with conn.cursor() as cursor, cursor.copy(sql) as copy:
        for row in rows:
            copy.write_row(row)


def copy_faces(conn: Connection, rows: Sequence[tuple[Any, ...]]) -> None:
    """Inserts rows in ``rows.INSERT_COLUMNS`` order with COPY: one round trip for any count."""
    sql = f"COPY facelens_faces ({INSERT_COLUMNS}) FROM STDIN"
    with conn.cursor() as cursor, cursor.copy(sql) as copy:
        for row in rows:
            copy.write_row(row)


@dataclass(frozen=True, slots=True)
class QmarkAdapter:
    """Lets :func:`facelens.pagination.keyset_page` (qmark style) run on psycopg.

    Every ``?`` becomes psycopg's ``%s``, so the SQL handed through must hold
    no literal question mark (ours never does: ids are always bound).
    """

    conn: Connection

    def execute(self, sql: str, parameters: Sequence[Any], /) -> psycopg.Cursor[tuple[Any, ...]]:
        return self.conn.execute(sql.replace("?", "%s"), list(parameters))

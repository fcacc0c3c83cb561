"""The one PostgreSQL connection a history adapter keeps, its tables and its failures.

Why apart from the adapters: the ledger and the audit log live, connect and
fail alike; only their tables differ. Each adapter holds one connection
(opened on first use, serialised by a lock: a ledger serves the worker and
the HTTP threads of one process), runs each call in one transaction, and
reports psycopg's errors as facelens errors, so callers see what SQLite's
adapters raise: ServiceUnavailableException when the server cannot be
reached (it may heal: the worker retries the event), StorageError for
anything else.

The tables carry a ``facelens_`` prefix (a database is often shared with
other applications) and are created on first use under an advisory lock,
so two hosts starting on an empty database do not race on ``CREATE TABLE
IF NOT EXISTS``. A database whose tables exist needs no CREATE privilege.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager, suppress
from typing import Any

import psycopg
from psycopg.pq import TransactionStatus

from facelens.errors import ServiceUnavailableException, StorageError
from facelens.history.nul import NUL

Connection = psycopg.Connection[tuple[Any, ...]]

SCHEMA_LOCK = 0x66_6C_68_69_73_74_72_31
"""``pg_advisory_xact_lock`` key ("flhistr1") held while history tables are created."""
CONNECT_TIMEOUT_S = 5
"""Seconds libpq waits for the server before the call fails as unavailable."""


class PostgresTables:
    """One lazily opened connection to ``url`` on which ``tables`` exist (made by ``schema``,
    idempotent statements, when one is missing). ``what`` names the store in errors.

    A connection that died while idle (a server restart, a failover) is
    replaced once, silently, when the next transaction begins; one lost
    mid-transaction raises ServiceUnavailableException, and the call after
    reconnects.
    """

    def __init__(
        self,
        url: str,
        *,
        tables: Sequence[str],
        schema: Sequence[str],
        what: str,
        connect_timeout_s: int = CONNECT_TIMEOUT_S,
    ) -> None:
        self._url = url
        self._tables = list(tables)
        self._schema = list(schema)
        self._what = what
        self._connect_timeout_s = connect_timeout_s
        self._lock = threading.Lock()
        self._conn: Connection | None = None
        self._closed = False

    @contextmanager
    def transaction(self) -> Iterator[Connection]:
        """BEGIN ... COMMIT (READ COMMITTED) under the lock, rolled back on any exception.
        Not re-entrant: an adapter's method opens one and calls nothing that opens another."""
        with self._lock:
            conn = self._begin()
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

    def vacuum(self) -> None:
        """``VACUUM`` of this store's tables (outside any transaction): the space of deleted
        and updated rows is reused, though their bytes may stay on disk until it is."""
        with self._lock:
            try:
                self._connection().execute(f"VACUUM {', '.join(self._tables)}")
            except psycopg.Error as exc:
                raise self._failure(exc) from exc

    def close(self) -> None:
        with self._lock:
            self._closed = True
            conn, self._conn = self._conn, None
            if conn is not None:
                with suppress(psycopg.Error):  # closing a dead connection has nothing to lose
                    conn.close()

    def _begin(self) -> Connection:
        conn = self._connection()
        try:
            conn.execute("BEGIN")
            return conn
        except psycopg.Error as exc:
            failure = self._failure(exc)
            if not isinstance(failure, ServiceUnavailableException):
                raise failure from exc
        conn = self._connection()  # the old one died idle: nothing was lost, so try anew
        try:
            conn.execute("BEGIN")
        except psycopg.Error as exc:
            raise self._failure(exc) from exc
        return conn

    def _connection(self) -> Connection:
        if self._closed:
            raise StorageError(f"{self._what} is closed")
        if self._conn is None:
            self._conn = self._open()
        return self._conn

    def _open(self) -> Connection:
        """An autocommit connection (we issue BEGIN/COMMIT ourselves) on which the tables
        exist. libpq reports an unreachable server, one still starting and a missing
        database alike (no SQLSTATE), and all may heal: ServiceUnavailableException."""
        try:
            conn = psycopg.connect(
                self._url, autocommit=True, connect_timeout=self._connect_timeout_s
            )
        except psycopg.OperationalError as exc:
            raise ServiceUnavailableException(f"PostgreSQL is unavailable: {exc}") from exc
        except psycopg.Error as exc:  # a malformed URL
            raise StorageError(f"Connecting to PostgreSQL failed: {exc}") from exc
        try:
            self._ensure_tables(conn)
        except BaseException as exc:
            conn.close()
            if isinstance(exc, psycopg.Error):
                raise StorageError(f"Preparing {self._what} in PostgreSQL failed: {exc}") from exc
            raise
        return conn

    def _ensure_tables(self, conn: Connection) -> None:
        if self._missing(conn):
            with conn.transaction():
                conn.execute("SELECT pg_advisory_xact_lock(%s)", (SCHEMA_LOCK,))
                for statement in self._schema:
                    conn.execute(statement)

    def _missing(self, conn: Connection) -> bool:
        """Whether one of the tables is missing (then every statement runs again, under the
        lock: they are all ``IF NOT EXISTS``)."""
        row = conn.execute(
            "SELECT COUNT(*) FROM pg_catalog.pg_tables"
            " WHERE tablename = ANY(%s) AND schemaname = ANY (current_schemas(false))",
            (self._tables,),
        ).fetchone()
        return row is None or int(row[0]) < len(self._tables)

    def _failure(self, exc: psycopg.Error) -> StorageError:
        """The error to raise for ``exc``; a lost connection is dropped for the next call."""
        conn = self._conn
        if conn is not None and conn.broken:
            self._conn = None
            with suppress(psycopg.Error):
                conn.close()
            return ServiceUnavailableException(f"Lost the PostgreSQL connection: {exc}")
        return StorageError(f"{self._what} in PostgreSQL failed: {exc}")


def holds_nul(value: str | None) -> bool:
    """Whether ``value`` holds NUL, which PostgreSQL refuses as a parameter and no stored
    text holds (:mod:`facelens.history.nul`): a filter on it matches nothing."""
    return value is not None and NUL in value


def matchable(values: Iterable[str]) -> list[str]:
    """``values`` without those holding NUL: for ``= ANY(...)``, where they match nothing."""
    return [value for value in values if NUL not in value]


def before_nul(value: str) -> str:
    """What to bind for ``column > value`` (byte order, ``COLLATE "C"``): ``value`` up to its
    first NUL. No stored text holds NUL, so for each one ``x``, ``x > value`` exactly when
    ``x > value[:i]`` (where ``x`` starts with ``value[:i]`` and goes on, its next
    character is above NUL), as SQLite, which binds NUL, answers."""
    return value.split(NUL, 1)[0]

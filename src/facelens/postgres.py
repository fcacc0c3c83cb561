"""The stores' one PostgreSQL connection: how it opens, lives and fails, and takes qmark SQL.

Why at the bottom: the collection store and the history both write their SQL
once, with ``?`` placeholders (:mod:`facelens.sql`), and run it on PostgreSQL
through :class:`QmarkConnection`, on a :class:`PostgresConnection` each.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg.pq import TransactionStatus

from facelens.errors import ServiceUnavailableException, StorageError

Psycopg = psycopg.Connection[tuple[Any, ...]]


@dataclass(frozen=True, slots=True)
class QmarkConnection:
    """A psycopg connection that takes qmark-style SQL.

    Every ``?`` becomes psycopg's ``%s``, so the SQL handed through must hold
    no literal question mark and no ``%`` (ours never does: values are always
    bound).
    """

    raw: Psycopg

    def execute(
        self, sql: str, parameters: Sequence[Any] = (), /
    ) -> psycopg.Cursor[tuple[Any, ...]]:
        return self.raw.execute(qmark_to_psycopg(sql), parameters)


def qmark_to_psycopg(sql: str) -> str:
    """``sql``'s ``?`` placeholders as psycopg's ``%s``."""
    return sql.replace("?", "%s")


def create_missing_tables(
    conn: Psycopg, *, tables: Sequence[str], schema: Sequence[str], lock: int
) -> None:
    """Runs ``schema`` (idempotent statements: ``IF NOT EXISTS``) when one of ``tables`` is
    missing, holding the advisory lock ``lock`` (a ``pg_advisory_xact_lock`` key).

    Why: two hosts starting on an empty database would race on ``CREATE TABLE
    IF NOT EXISTS`` (one fails on the catalog's unique index); under the lock
    the second finds the tables made. A database whose tables exist costs one
    small query and needs no CREATE privilege, so a role limited to reading
    and writing rows works once they exist. The check is made again under the
    lock (each statement sees what committed before it): a host that waited
    there while another created the tables must not run the schema again,
    whose ``CREATE INDEX IF NOT EXISTS`` takes share locks on the tables in
    an order that deadlocks with the first host's writes to them.
    """
    if _missing(conn, tables):
        with conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (lock,))
            if not _missing(conn, tables):
                return
            for statement in schema:
                conn.execute(statement)


def _missing(conn: Psycopg, tables: Sequence[str]) -> bool:
    """Whether one of ``tables`` is missing from the schemas on the search path (looked up in
    ``pg_tables``, a snapshot read, not ``to_regclass``'s catalog cache)."""
    row = conn.execute(
        "SELECT COUNT(*) FROM pg_catalog.pg_tables"
        " WHERE tablename = ANY(%s) AND schemaname = ANY (current_schemas(false))",
        (list(tables),),
    ).fetchone()
    return row is None or int(row[0]) < len(tables)


class PostgresConnection:
    """One lazily opened autocommit connection to ``url`` (we issue BEGIN/COMMIT ourselves),
    given to ``prepare`` (its schema) when opened; ``what`` names the store in errors.

    Why one class: the collection store and the history live, connect and
    fail alike; only their schemas and isolation levels differ. psycopg's
    errors come out as facelens errors, so callers see what the SQLite stores
    raise: ServiceUnavailableException when the server cannot be reached (it
    may heal: a worker retries), StorageError for anything else. A connection
    that died while idle (a server restart, a failover) is replaced once,
    silently, when the next transaction begins; one lost mid-transaction
    raises ServiceUnavailableException, and the call after reconnects.

    Not safe for concurrent use: its owner serialises its calls.
    """

    def __init__(
        self,
        url: str,
        *,
        prepare: Callable[[Psycopg], object],
        what: str,
        connect_timeout_s: int,
    ) -> None:
        self._url = url
        self._prepare = prepare
        self._what = what
        self._connect_timeout_s = connect_timeout_s
        self._conn: Psycopg | None = None
        self._closed = False

    @contextmanager
    def transaction(self, begin: str = "BEGIN") -> Iterator[Psycopg]:
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

    def run(self, sql: str) -> None:
        """``sql`` outside any transaction (``VACUUM`` cannot run in one)."""
        try:
            self._connection().execute(sql)
        except psycopg.Error as exc:
            raise self._failure(exc) from exc

    def close(self) -> None:
        self._closed = True
        conn, self._conn = self._conn, None
        if conn is not None:
            with suppress(psycopg.Error):  # closing a dead connection has nothing to lose
                conn.close()

    def _begin(self, begin: str) -> Psycopg:
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

    def _connection(self) -> Psycopg:
        if self._closed:
            raise StorageError(f"{self._what} is closed")
        if self._conn is None:
            self._conn = self._open()
        return self._conn

    def _open(self) -> Psycopg:
        """The connection, prepared. libpq reports an unreachable server, one still starting
        and a missing database alike (no SQLSTATE), and all may heal without a change on our
        side: ServiceUnavailableException, whose message names the host and the reason,
        never the password."""
        try:
            conn = psycopg.connect(
                self._url, autocommit=True, connect_timeout=self._connect_timeout_s
            )
        except psycopg.OperationalError as exc:
            raise ServiceUnavailableException(f"PostgreSQL is unavailable: {exc}") from exc
        except psycopg.Error as exc:  # a malformed URL
            raise StorageError(f"Connecting to PostgreSQL failed: {exc}") from exc
        try:
            self._prepare(conn)
        except BaseException as exc:
            conn.close()
            if isinstance(exc, psycopg.Error):
                raise StorageError(f"Preparing {self._what} in PostgreSQL failed: {exc}") from exc
            raise
        return conn

    def _failure(self, exc: psycopg.Error) -> StorageError:
        """The error to raise for ``exc``; a lost connection is dropped for the next call."""
        conn = self._conn
        if conn is not None and conn.broken:
            self._conn = None
            with suppress(psycopg.Error):
                conn.close()
            return ServiceUnavailableException(f"Lost the PostgreSQL connection: {exc}")
        return StorageError(f"{self._what} in PostgreSQL failed: {exc}")

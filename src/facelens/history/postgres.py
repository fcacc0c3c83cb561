"""The history in PostgreSQL (psycopg 3): one for every host on the database.

Hosts that share the collections database share the ledger and the audit
log kept there: an event delivered to two of them is published by one, each
host's dashboard shows every host's identifications, strangers' sightings
count across hosts, an action is found whichever host took it, and
forgetting a person redacts their id in every host's entries. This module is
PostgreSQL's dialect of the shared ledger and audit log
(:mod:`facelens.history.sql_dialect`) and their schemas.

Choices that keep its answers identical to :mod:`facelens.history.sqlite`:

* the ledger's ``message`` is ``json``, not ``jsonb``: it keeps the text as
  written, so a message comes back with its keys in the order it was
  recorded (``jsonb`` sorts them) and the ``->>`` operators still filter on
  it;
* ``recognition_id`` is ``COLLATE "C"``: ties in time order by id in byte
  order, as SQLite compares, whatever locale the database was made with;
* ``recognized_at`` is ``timestamptz`` (microseconds, like the SQLite text)
  and is read back in UTC whatever the session's time zone;
* a claim's lease is timed by the database's clock, the one clock every
  host sees;
* the audit log's ``at`` is a double of Unix seconds and ``details`` the same
  JSON text as SQLite's, ids from an identity column.

One connection per adapter (:class:`facelens.postgres.PostgresConnection`,
which says how it opens, lives and fails), serialised by a lock: a ledger
serves the worker and the HTTP threads of one process; each call runs in
one transaction.

The tables carry a ``facelens_`` prefix (a database is often shared with
other applications) and are created on first use under an advisory lock,
so two hosts starting on an empty database do not race on ``CREATE TABLE
IF NOT EXISTS``. A database whose tables exist needs no CREATE privilege.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from facelens.history.sql_audit import SqlAuditLog
from facelens.history.sql_dialect import Moment, Tables
from facelens.history.sql_ledger import SqlLedger
from facelens.history.sql_visits import SqlVisitLedger
from facelens.postgres import (
    PostgresConnection,
    Psycopg,
    QmarkConnection,
    create_missing_tables,
)

SCHEMA_LOCK = 0x66_6C_68_69_73_74_72_31
"""``pg_advisory_xact_lock`` key ("flhistr1") held while history tables are created."""
CONNECT_TIMEOUT_S = 5
"""Seconds libpq waits for the server before the call fails as unavailable."""


_TABLES = Tables(
    recognitions="facelens_recognitions",
    claims="facelens_recognition_claims",
    audit="facelens_audit",
    visits="facelens_visits",
    looks="facelens_visit_looks",
)
_R, _C, _A = _TABLES.recognitions, _TABLES.claims, _TABLES.audit
_V, _L = _TABLES.visits, _TABLES.looks
LEDGER_SCHEMA = (
    f"""CREATE TABLE IF NOT EXISTS {_R} (
    recognition_id TEXT COLLATE "C" PRIMARY KEY, status TEXT NOT NULL,
    bucket TEXT, key TEXT, etag TEXT, topic TEXT NOT NULL, message JSON NOT NULL,
    reason TEXT, recognized_at TIMESTAMPTZ NOT NULL)""",
    f"CREATE INDEX IF NOT EXISTS {_R}_time ON {_R} (recognized_at)",
    f"CREATE INDEX IF NOT EXISTS {_R}_stranger ON {_R} ((message ->> 'StrangerId'))",
    f"CREATE INDEX IF NOT EXISTS {_R}_user ON {_R} ((message ->> 'UserId'))",
    f"CREATE INDEX IF NOT EXISTS {_R}_crops ON {_R} (recognized_at) WHERE key IS NOT NULL",
    f"CREATE INDEX IF NOT EXISTS {_R}_keys ON {_R} (key) WHERE key IS NOT NULL",
    f"""CREATE TABLE IF NOT EXISTS {_C} (
    recognition_id TEXT COLLATE "C" PRIMARY KEY, owner TEXT NOT NULL,
    until TIMESTAMPTZ NOT NULL)""",
)
VISITS_SCHEMA = (
    f"""CREATE TABLE IF NOT EXISTS {_V} (
    visit_id TEXT COLLATE "C" PRIMARY KEY, revision INTEGER NOT NULL,
    recognition_id TEXT COLLATE "C" NOT NULL, status TEXT NOT NULL, message JSON NOT NULL,
    camera TEXT, looks INTEGER NOT NULL, first_seen TIMESTAMPTZ NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL)""",
    f"CREATE INDEX IF NOT EXISTS {_V}_updated ON {_V} (updated_at, visit_id)",
    f"CREATE INDEX IF NOT EXISTS {_V}_answer ON {_V} (recognition_id)",
    f"""CREATE TABLE IF NOT EXISTS {_L} (
    recognition_id TEXT COLLATE "C" PRIMARY KEY, visit_id TEXT COLLATE "C" NOT NULL,
    seen_at TIMESTAMPTZ NOT NULL, weight DOUBLE PRECISION NOT NULL, embedding BYTEA,
    subject TEXT, similarity DOUBLE PRECISION)""",
    f"CREATE INDEX IF NOT EXISTS {_L}_visit ON {_L} (visit_id, weight)",
)
"""The visits' tables (:mod:`facelens.history.sql_visits`), beside the ledger's; a database of
an older facelens gets them on first use. Weights and similarities are doubles, as SQLite's
REAL, so both give back the float they were given."""
AUDIT_SCHEMA = (
    f"""CREATE TABLE IF NOT EXISTS {_A} (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY, at DOUBLE PRECISION NOT NULL,
    actor TEXT NOT NULL, action TEXT NOT NULL, target TEXT NOT NULL, collection_id TEXT,
    details TEXT NOT NULL)""",
    f"CREATE INDEX IF NOT EXISTS {_A}_actor ON {_A} (actor, id)",
    f"CREATE INDEX IF NOT EXISTS {_A}_target ON {_A} (target, id)",
    f"CREATE INDEX IF NOT EXISTS {_A}_action ON {_A} (action, id)",
)


class PostgresDialect:
    """:class:`~facelens.history.sql_dialect.Dialect` of one PostgreSQL database: one lazily
    opened connection to ``url`` on which ``tables`` exist (made by ``schema``, idempotent
    statements, when one is missing). ``what`` names the store in errors.

    A connection that died while idle (a server restart, a failover) is
    replaced once, silently, when the next transaction begins; one lost
    mid-transaction raises ServiceUnavailableException, and the call after
    reconnects.
    """

    tables = _TABLES
    in_list = "= ANY(?)"  # one bound text array: no limit on how many, one plan for any count
    row_lock = " FOR UPDATE"
    byte_order = ' COLLATE "C"'
    json_value = "?::json"
    nulls_last = " NULLS LAST"  # NULL is above every value in PostgreSQL's order
    last_id = "SELECT lastval()"  # the identity's sequence, as this session last used it

    def __init__(
        self,
        url: str,
        *,
        tables: Sequence[str],
        schema: Sequence[str],
        what: str,
        connect_timeout_s: int = CONNECT_TIMEOUT_S,
    ) -> None:
        self._tables = list(tables)
        self._schema = list(schema)
        self._lock = threading.Lock()  # a ledger serves the worker and the HTTP threads
        self._db = PostgresConnection(
            url, prepare=self._ensure_tables, what=what, connect_timeout_s=connect_timeout_s
        )

    def id_list(self, ids: Sequence[str]) -> list[str]:
        return list(ids)

    def field(self, name: str) -> str:
        return f"(message ->> '{name}')"  # parenthesised: COLLATE binds tighter than ->>

    def text(self, *path: str) -> str:
        return f"(message #>> '{{{','.join(path)}}}')"

    def number(self, *path: str) -> str:
        return f"(message #>> '{{{','.join(path)}}}')::float8"

    def contains(self, column: str) -> str:
        return f"strpos({column}, ?) > 0"

    def time(self, moment: datetime) -> datetime:
        return moment.astimezone(UTC)

    def read_time(self, value: Any) -> datetime:
        moment: datetime = value
        return moment.astimezone(UTC)

    def from_now(self, seconds: float) -> Moment:
        return Moment("clock_timestamp() + make_interval(secs => ?)", (seconds,))

    @contextmanager
    def transaction(self) -> Iterator[QmarkConnection]:
        """BEGIN ... COMMIT (READ COMMITTED) under the lock, rolled back on any exception."""
        with self._lock, self._db.transaction() as conn:
            yield QmarkConnection(conn)

    def after_rewrite(self) -> None:
        """Nothing: the old row versions stay until :meth:`erase_deleted`'s VACUUM."""

    def erase_deleted(self) -> bool:
        """A plain ``VACUUM`` of this store's tables (outside any transaction): the space of
        deleted and updated rows is reused, though their bytes may stay on disk until it is;
        so False, until a VACUUM FULL (the operator's call: an exclusive lock)."""
        with self._lock:
            self._db.run(f"VACUUM {', '.join(self._tables)}")
        return False

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def _ensure_tables(self, conn: Psycopg) -> None:
        create_missing_tables(conn, tables=self._tables, schema=self._schema, lock=SCHEMA_LOCK)


class PostgresLedger(SqlLedger):
    """The ledger in PostgreSQL; connects on first use (``url`` goes to libpq unchanged)."""

    def __init__(self, url: str) -> None:
        super().__init__(
            PostgresDialect(
                url, tables=(_R, _C), schema=LEDGER_SCHEMA, what="The recognizer ledger"
            )
        )


class PostgresVisitLedger(SqlVisitLedger):
    """The visits in PostgreSQL, every host's; connects on first use (``url`` goes to libpq
    unchanged)."""

    def __init__(self, url: str) -> None:
        super().__init__(
            PostgresDialect(url, tables=(_V, _L), schema=VISITS_SCHEMA, what="The visit ledger")
        )


class PostgresAuditLog(SqlAuditLog):
    """The audit log in PostgreSQL; connects on first use (``url`` goes to libpq unchanged)."""

    def __init__(self, url: str) -> None:
        super().__init__(
            PostgresDialect(url, tables=(_A,), schema=AUDIT_SCHEMA, what="The audit log")
        )

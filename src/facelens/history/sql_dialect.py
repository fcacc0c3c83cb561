"""What the history needs from a SQL database: the small part that differs.

Why a module of its own: the ledger (:mod:`facelens.history.sql_ledger`), the
visits (:mod:`facelens.history.sql_visits`) and the audit log
(:mod:`facelens.history.sql_audit`) are written once, in
qmark-style SQL (:mod:`facelens.sql`), against this interface; each database
is one module that implements it (:mod:`facelens.history.sqlite`,
:mod:`facelens.history.postgres`) with its schema, so a behaviour is fixed
in one place and the two cannot drift apart. What differs is here: the
tables' names, how a list of ids is bound, how a message's JSON fields are
read, how a time is stored and read back, which clock times a claim's lease,
how a row is locked for a read-then-write, how the connection is held and
its errors reported, and how the files are rid of deleted rows.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from facelens.sql import Connection


@dataclass(frozen=True, slots=True)
class Tables:
    """The history's tables, by the names one database gives them."""

    recognitions: str
    claims: str
    audit: str
    visits: str
    """A visit's current answer, one row per visit (:mod:`facelens.history.visits`)."""
    looks: str
    """A visit's looks (embeddings), one row per look's recognition id."""


@dataclass(frozen=True, slots=True)
class Moment:
    """A time in SQL, by the clock claims' leases are timed by: ``sql`` (a value to compare
    with or store in ``claims.until``), with ``parameters`` bound in order."""

    sql: str
    parameters: tuple[Any, ...]


class Dialect(Protocol):
    """One database under the ledger or the audit log: its SQL differences and its
    connection (one, opened on first use, each call's transaction under a lock)."""

    @property
    def tables(self) -> Tables: ...

    @property
    def in_list(self) -> str:
        """The condition, after a column, that it is one of a list bound as one parameter
        (:meth:`id_list`): one statement and one plan for any number of ids."""
        ...

    @property
    def row_lock(self) -> str:
        """Appended to a SELECT in a read-then-write transaction, so that other writers of
        those rows wait until it commits (empty where the transaction holds the whole
        database's write lock already)."""
        ...

    @property
    def byte_order(self) -> str:
        """Appended to an ORDER BY term of text so that it sorts in byte order."""
        ...

    @property
    def json_value(self) -> str:
        """The placeholder for a JSON text written to the ledger's ``message`` column."""
        ...

    @property
    def nulls_last(self) -> str:
        """Appended to a descending ORDER BY term so that NULL sorts after every value
        (empty where the database does so already: the SQL spelling needs SQLite 3.30)."""
        ...

    @property
    def last_id(self) -> str:
        """A query for the id that this connection's last INSERT gave its row (in the same
        transaction; not ``RETURNING``, which needs SQLite 3.35)."""
        ...

    def id_list(self, ids: Sequence[str]) -> object:
        """``ids`` as the one parameter :attr:`in_list` binds."""
        ...

    def field(self, name: str) -> str:
        """The SQL for the text of the ledger message's top-level field ``name`` (NULL when
        it has none)."""
        ...

    def text(self, *path: str) -> str:
        """The SQL for the text at ``path`` inside a row's ``message`` (NULL when absent):
        :meth:`field` for a field nested in an object (a revision's ``Revises``)."""
        ...

    def number(self, *path: str) -> str:
        """The SQL for the number at ``path`` inside the ledger's message (NULL when absent)."""
        ...

    def contains(self, column: str) -> str:
        """The condition that ``column`` contains the text bound as its one parameter."""
        ...

    def time(self, moment: datetime) -> str | datetime:
        """An aware time as the ledger stores it (:meth:`read_time` reads it back, in UTC)."""
        ...

    def read_time(self, value: Any) -> datetime:
        """A time the ledger stored (:meth:`time`), in UTC."""
        ...

    def from_now(self, seconds: float) -> Moment:
        """The time ``seconds`` from now (negative: ago), by the clock every claimant sees."""
        ...

    def transaction(self) -> AbstractContextManager[Connection]:
        """BEGIN ... COMMIT on the connection, rolled back on any exception; the driver's
        errors surface as StorageError (ServiceUnavailableException where the server may
        come back). Not re-entrant: a method opens one and calls nothing that opens
        another."""
        ...

    def after_rewrite(self) -> None:
        """Called after a committed transaction rewrote rows to take something out of them
        (a redaction): where it is cheap, the old versions go from the files at once."""
        ...

    def erase_deleted(self) -> bool:
        """Rids the database's files of deleted and rewritten rows as far as it can, outside
        any transaction; True when none can be left in them."""
        ...

    def close(self) -> None: ...

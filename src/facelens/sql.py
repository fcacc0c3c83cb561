"""What a store needs of a SQL connection: qmark-style SQL in, rows out.

Why at the bottom: the collection store, the history (ledger and audit log)
and the paging helper each write their SQL once and run it on SQLite or
PostgreSQL. ``sqlite3.Connection`` takes qmark SQL (``?`` placeholders,
bound by position) as it is; a psycopg connection takes it through
:class:`facelens.postgres.QmarkConnection`. These Protocols are all the
shared code may assume of either.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any, Protocol


class Cursor(Protocol):
    """The result of one statement, as both drivers' cursors offer it."""

    @property
    def rowcount(self) -> int: ...

    def fetchone(self) -> Any: ...

    def fetchall(self) -> list[Any]: ...

    def __iter__(self) -> Iterator[Any]: ...


class Connection(Protocol):
    """A connection that runs qmark-style SQL (``?`` placeholders, bound by position)."""

    def execute(self, sql: str, parameters: Sequence[Any], /) -> Cursor: ...

"""What the collection store needs from a SQL database: the small part that differs.

Why a module of its own: the store's logic (Rekognition's semantics,
pagination, the search indexes kept coherent by a generation) is written once,
in :mod:`facelens.collection.stores.sql`, against this interface; each database
is one module that implements it (:mod:`facelens.collection.stores.sqlite`,
:mod:`facelens.collection.stores.postgres`), so a behaviour is fixed in one
place and the two cannot drift apart.

The shared SQL is written in the qmark style (``?``) against the tables named
by :class:`Tables`; a dialect's connection takes it as written. What else
differs is here: how a list of ids is bound, how a time is stored, how a
writer holds off the other writers of a collection, how rows go in and come
out in bulk, how a connection is held and its errors reported, and how the
files are rid of deleted rows.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol, TypeVar

import numpy as np
import numpy.typing as npt

from facelens.errors import StorageError
from facelens.sql import Connection, Cursor


class Batches(Protocol):
    """A cursor read a batch at a time (see :meth:`Dialect.stream`)."""

    def fetchmany(self, size: int, /) -> list[Any]: ...


C = TypeVar("C", bound=Connection)


@dataclass(frozen=True, slots=True)
class Tables:
    """The store's tables, by the names one database gives them."""

    collections: str
    faces: str
    users: str
    face_deletions: str
    face_sources: str

    @classmethod
    def prefixed(cls, prefix: str) -> Tables:
        """Every table named ``<prefix><table>``."""
        return cls(
            f"{prefix}collections", f"{prefix}faces", f"{prefix}users",
            f"{prefix}face_deletions", f"{prefix}face_sources",
        )  # fmt: skip


class Dialect(Protocol[C]):
    """One database under the collection store: its SQL differences and its connection.

    The store serialises every call (one lock per store), so a dialect holds
    one connection and need not be safe for concurrent use.
    """

    @property
    def tables(self) -> Tables: ...

    @property
    def in_list(self) -> str:
        """The condition, after a column, that it is one of a list bound as one parameter
        (:meth:`id_list`): one statement and one plan for any number of ids."""
        ...

    @property
    def row_lock(self) -> str:
        """Appended to the SELECT of a collection's row in a write transaction, so the
        collection's other writers wait until it commits (empty where the transaction
        holds the whole database's write lock already)."""
        ...

    def id_list(self, ids: Sequence[str]) -> object:
        """``ids`` as the one parameter :attr:`in_list` binds."""
        ...

    def timestamp(self, when: datetime) -> str | datetime:
        """An aware time as the database stores it (:func:`rows.instant` reads it back)."""
        ...

    def transaction(self, *, write: bool) -> AbstractContextManager[C]:
        """BEGIN ... COMMIT on the connection (opened on first use), rolled back on any
        exception; a driver's error surfaces as StorageError. A read sees one snapshot;
        a write must not fail on a serialisation conflict."""
        ...

    def insert(self, conn: C, table: str, columns: str, rows: Sequence[tuple[Any, ...]]) -> None:
        """Inserts ``rows`` (values in ``columns`` order) into ``table``, in bulk."""
        ...

    def stream(
        self, conn: C, name: str, sql: str, parameters: Sequence[Any]
    ) -> AbstractContextManager[Batches]:
        """``sql`` executed for reading in batches without the driver holding the whole
        result (``name``: what it reads, unique within a transaction), embeddings as bytes."""
        ...

    def set_embeddings(
        self,
        conn: C,
        collection_id: str,
        face_ids: Sequence[str],
        vectors: Sequence[npt.NDArray[np.float32]],
        generation: int,
    ) -> None:
        """Gives each face of ``face_ids`` its vector (little-endian float32, with its
        dimension) and ``generation``; faces no longer there are skipped."""
        ...

    def erase_deleted(self) -> bool:
        """After a purge: rids the database's files of deleted rows as far as it can,
        outside any transaction. True when none can be left in them."""
        ...

    def close(self) -> None: ...


def one(cursor: Cursor) -> Any:
    """The single row of a query that always returns one (an aggregate, a known row)."""
    row = cursor.fetchone()
    if row is None:
        raise StorageError("The database returned no row where one was certain")
    return row

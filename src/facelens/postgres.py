"""A psycopg connection that runs the qmark-style SQL the stores share with SQLite.

Why at the bottom: the collection store and the history both write their SQL
once, with ``?`` placeholders (:mod:`facelens.sql`), and run it on PostgreSQL
through this one adapter.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import psycopg

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

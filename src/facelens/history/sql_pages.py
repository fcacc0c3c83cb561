"""A page of history, newest first: the filters and the keyset cursor the ledger's records and
the visits' answers are paged by.

Why one function: both are read the same way (the REST API's pages, the
dashboard's live feed, ``facelens recognizer recent``) and must answer
alike: a status, the message's ``Camera`` and ``UserId``, a cursor that is
the previous page's last (time, id) with ties broken by id in byte order,
and a tail after a time. Written twice, the two drifted in how NUL and a
time that is not ISO 8601 were treated.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from facelens.history import nul
from facelens.history.ledger import Status, parse_time
from facelens.history.sql_dialect import Dialect


@dataclass(frozen=True)
class PageQuery:
    """The WHERE clause (empty for none) and its parameters; ``empty``: a filter holds NUL,
    which no row holds, so the page is empty without asking the database."""

    where: str
    parameters: list[Any]
    empty: bool = False


def page_query(
    sql: Dialect,
    *,
    time_column: str,
    id_column: str,
    status: Status | None,
    camera: str | None,
    user_id: str | None,
    before: tuple[str, str] | None,
    after: str | None,
) -> PageQuery:
    """The filter for one page ordered by ``time_column`` DESC, ``id_column``. A time that is
    not ISO 8601 (in ``before`` or ``after``) is InvalidParameterException, even when another
    filter makes the page empty."""
    clauses: list[str] = []
    params: list[Any] = []
    if status is not None:
        clauses.append("status = ?")
        params.append(status.value)
    if camera is not None:
        clauses.append(f"{sql.field('Camera')} = ?")
        params.append(camera)
    if user_id is not None:
        clauses.append(f"{sql.field('UserId')} = ?")
        params.append(user_id)
    if before is not None:
        at = sql.time(parse_time(before[0]))
        clauses.append(f"({time_column} < ? OR ({time_column} = ? AND {id_column} > ?))")
        params += [at, at, nul.before_nul(before[1])]
    if after is not None:
        clauses.append(f"{time_column} > ?")
        params.append(sql.time(parse_time(after)))
    where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
    return PageQuery(where, params, empty=nul.holds_nul(camera) or nul.holds_nul(user_id))

"""The visits' looks and answers on a SQL database, written once for every dialect.

The port and its rules are :mod:`facelens.history.visits`; what differs between
SQLite and PostgreSQL is the dialect's (:mod:`facelens.history.sql_dialect`),
as for the ledger (:mod:`facelens.history.sql_ledger`), whose database and
conventions these tables share: a message is JSON text read back with its keys
in the order written, ids compare in byte order, times come back in UTC with
microseconds, text holding NUL is refused when written and matches nothing
when filtered on (:mod:`facelens.history.nul`).

Two tables: ``visits`` (one row per visit: its current answer) and ``looks``
(one row per look, keyed by the look's recognition id, which makes storing it
idempotent). A revision is a compare-and-set that holds across processes and
hosts: the first answer is ``INSERT ... ON CONFLICT DO NOTHING`` and a later
one ``UPDATE ... WHERE revision = expected``; the row count says who won.
SQLite's ``BEGIN IMMEDIATE`` runs one writer at a time; PostgreSQL (READ
COMMITTED) makes the second of two racing writers wait for the first's row
and evaluate its condition again on what the first committed, so it changes
nothing and counts no row.

``visits.looks`` counts the looks stored for the visit, including those
retention dropped since (:meth:`SqlVisitLedger.drop_idle_looks` keeps the
count): a look stored before the visit's first answer is counted when that
answer is made; one stored after moves the count on. On PostgreSQL a look
stored in the very instant the first answer is inserted by another host may
go uncounted until the next look (each transaction sees only what the other
committed); the count is for display, the looks themselves are all stored.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from facelens.errors import InvalidParameterException
from facelens.history import nul
from facelens.history.ledger import Status, encode_message
from facelens.history.sql_dialect import Dialect
from facelens.history.sql_pages import page_query
from facelens.history.visits import VisitAnswer, VisitLook
from facelens.sql import Connection

_ANSWER = (
    "visit_id, revision, recognition_id, status, CAST(message AS TEXT), camera, looks,"
    " first_seen, updated_at"
)
_WRITTEN = (
    "visit_id, revision, recognition_id, status, message, camera, looks, first_seen, updated_at"
)
_LOOK = "recognition_id, visit_id, seen_at, weight, embedding, subject, similarity"
_NEWEST_FIRST = "ORDER BY updated_at DESC, visit_id"
_HEAVIEST_FIRST = "ORDER BY weight DESC, seen_at, recognition_id"
_NAMED_BY = ("UserId", "FaceId", "StrangerId")
"""The message fields that name a person, at the top and in ``Revises`` (the answer a
revision replaced still names whom it named)."""


class SqlVisitLedger:
    """:class:`~facelens.history.visits.VisitLedger` on ``dialect``'s database; thread-safe,
    opened on first use."""

    def __init__(self, dialect: Dialect) -> None:
        self._sql = dialect
        self._visits = dialect.tables.visits
        self._looks = dialect.tables.looks

    def add_look(self, look: VisitLook, *, keep: int) -> list[VisitLook]:
        """See :meth:`~facelens.history.visits.VisitLedger.add_look`. Also
        InvalidParameterException for a ``keep`` below 0, a weight outside 0-1 or a
        similarity outside 0-100 (NaN included: neither database orders it as a number)."""
        _refuse_look(look)
        if keep < 0:
            raise InvalidParameterException(f"A visit keeps at least 0 looks, not {keep}")
        seen = self._sql.time(look.seen_at)
        with self._sql.transaction() as conn:
            added = conn.execute(
                f"INSERT INTO {self._looks} ({_LOOK}) VALUES (?, ?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (recognition_id) DO NOTHING",
                (
                    look.recognition_id,
                    look.visit_id,
                    seen,
                    float(look.weight),
                    look.embedding,
                    look.subject,
                    None if look.similarity is None else float(look.similarity),
                ),
            )
            if added.rowcount > 0:
                # Never back in time: a late look (uploads overtake each other) still counts.
                conn.execute(
                    f"UPDATE {self._visits} SET looks = looks + 1,"
                    " updated_at = CASE WHEN updated_at < ? THEN ? ELSE updated_at END"
                    " WHERE visit_id = ?",
                    (seen, seen, look.visit_id),
                )
            rows = conn.execute(
                f"SELECT {_LOOK} FROM {self._looks} WHERE visit_id = ? {_HEAVIEST_FIRST} LIMIT ?",
                (look.visit_id, keep),
            ).fetchall()
        return [self._look(row) for row in rows]

    def answer(self, visit_id: str) -> VisitAnswer | None:
        if nul.holds_nul(visit_id):
            return None
        rows = self._select("WHERE visit_id = ?", [visit_id])
        return rows[0] if rows else None

    def revise(self, answer: VisitAnswer, *, expected: int | None) -> bool:
        """See :meth:`~facelens.history.visits.VisitLedger.revise` and the module's docstring.

        What is stored besides ``answer``: ``looks`` is the larger of the answer's and the
        looks stored so far (another worker may have stored one meanwhile); a revision
        keeps the visit's ``first_seen`` and never moves ``updated_at`` back."""
        a = answer
        nul.refuse(visit_id=a.visit_id, recognition_id=a.recognition_id, camera=a.camera)
        message = encode_message(a.message)
        nul.refuse_in_json("message", message)
        if a.revision < 0 or (expected is not None and expected < 0):
            raise InvalidParameterException(f"A revision is 0 or more, not {a.revision}")
        updated, first = self._sql.time(a.updated_at), self._sql.time(a.first_seen)
        with self._sql.transaction() as conn:
            looks = max(a.looks, self._stored_looks(conn, a.visit_id))
            if expected is None:
                cursor = conn.execute(
                    f"INSERT INTO {self._visits} ({_WRITTEN})"
                    f" VALUES (?, ?, ?, ?, {self._sql.json_value}, ?, ?, ?, ?)"
                    " ON CONFLICT (visit_id) DO NOTHING",
                    (
                        a.visit_id,
                        a.revision,
                        a.recognition_id,
                        a.status.value,
                        message,
                        a.camera,
                        looks,
                        first,
                        updated,
                    ),
                )
            else:
                cursor = conn.execute(
                    f"UPDATE {self._visits} SET revision = ?, recognition_id = ?, status = ?,"
                    f" message = {self._sql.json_value}, camera = ?,"
                    " looks = CASE WHEN looks < ? THEN ? ELSE looks END,"
                    " updated_at = CASE WHEN updated_at < ? THEN ? ELSE updated_at END"
                    " WHERE visit_id = ? AND revision = ?",
                    (
                        a.revision,
                        a.recognition_id,
                        a.status.value,
                        message,
                        a.camera,
                        looks,
                        looks,
                        updated,
                        updated,
                        a.visit_id,
                        expected,
                    ),
                )
        return cursor.rowcount > 0

    def visits(
        self,
        *,
        limit: int = 50,
        status: Status | None = None,
        camera: str | None = None,
        user_id: str | None = None,
        before: tuple[str, str] | None = None,
        after: str | None = None,
    ) -> list[VisitAnswer]:
        page = page_query(
            self._sql,
            time_column="updated_at",
            id_column="visit_id",
            status=status,
            camera=camera,
            user_id=user_id,
            before=before,
            after=after,
        )
        if page.empty:
            return []
        return self._select(f"{page.where} {_NEWEST_FIRST} LIMIT ?", [*page.parameters, limit])

    def naming(
        self,
        *,
        user_id: str | None,
        face_ids: Sequence[str],
        stranger_id: str | None = None,
        recognition_ids: Sequence[str] = (),
    ) -> list[VisitAnswer]:
        """See :meth:`~facelens.history.visits.VisitLedger.naming`; the answer's message names
        a person at its top or in ``Revises`` (a correction still says whom it corrected).
        Most recently updated first."""
        clauses: list[str] = []
        params: list[Any] = []
        in_list, ids = self._sql.in_list, self._sql.id_list
        face_ids = nul.matchable(face_ids)
        recognition_ids = nul.matchable(recognition_ids)
        named = {
            "UserId": None if nul.holds_nul(user_id) else user_id,
            "StrangerId": None if nul.holds_nul(stranger_id) else stranger_id,
        }
        for path in ((), ("Revises",)):
            for name in _NAMED_BY:
                value = named.get(name)
                if name == "FaceId" and face_ids:
                    clauses.append(f"{self._sql.text(*path, name)} {in_list}")
                    params.append(ids(face_ids))
                elif value is not None:
                    clauses.append(f"{self._sql.text(*path, name)} = ?")
                    params.append(value)
        if recognition_ids:
            clauses.append(f"recognition_id {in_list}")
            clauses.append(
                f"visit_id IN (SELECT visit_id FROM {self._looks} WHERE recognition_id {in_list})"
            )
            params += [ids(recognition_ids), ids(recognition_ids)]
        if not clauses:
            return []
        return self._select(f"WHERE {' OR '.join(clauses)} {_NEWEST_FIRST}", params)

    def delete(self, visit_ids: Sequence[str]) -> int:
        ids = self._sql.id_list(nul.matchable(visit_ids))
        with self._sql.transaction() as conn:
            conn.execute(f"DELETE FROM {self._looks} WHERE visit_id {self._sql.in_list}", (ids,))
            cursor = conn.execute(
                f"DELETE FROM {self._visits} WHERE visit_id {self._sql.in_list}", (ids,)
            )
        return cursor.rowcount

    def drop_idle_looks(self, idle_seconds: float, *, dry_run: bool = False) -> int:
        """See :meth:`~facelens.history.visits.VisitLedger.drop_idle_looks`. A visit is idle
        by its latest look's ``seen_at`` (a look whose visit has no answer yet, or whose
        answer was deleted, counts too: nobody else would ever drop it), compared with this
        host's clock. ``idle_seconds`` below 0 (or NaN) is InvalidParameterException."""
        if not idle_seconds >= 0:  # also NaN: a negative age would drop the looks of visits
            raise InvalidParameterException(
                f"A visit is idle for at least 0 seconds, not {idle_seconds}"
            )
        cutoff = self._sql.time(datetime.now(UTC) - timedelta(seconds=idle_seconds))
        idle = (
            f"FROM {self._looks} WHERE visit_id IN (SELECT visit_id FROM {self._looks}"
            " GROUP BY visit_id HAVING MAX(seen_at) < ?)"
            f" AND visit_id NOT IN (SELECT visit_id FROM {self._visits} WHERE updated_at >= ?)"
        )
        with self._sql.transaction() as conn:
            if dry_run:
                row = conn.execute(f"SELECT COUNT(*) {idle}", (cutoff, cutoff)).fetchone()
                return 0 if row is None else int(row[0])
            cursor = conn.execute(f"DELETE {idle}", (cutoff, cutoff))
        if cursor.rowcount > 0:
            self._sql.after_rewrite()  # embeddings: out of the write-ahead log too, where cheap
        return cursor.rowcount

    def purge_deleted(self) -> bool:
        """As :meth:`~facelens.history.ledger.RecognitionLedger.purge_deleted`: forgetting
        calls it after deleting a person's visits (their looks are embeddings)."""
        return self._sql.erase_deleted()

    def close(self) -> None:
        self._sql.close()

    def _stored_looks(self, conn: Connection, visit_id: str) -> int:
        """The looks stored for the visit, or counted on its row (some may have been dropped)."""
        row = conn.execute(
            f"SELECT COUNT(*) FROM {self._looks} WHERE visit_id = ?", (visit_id,)
        ).fetchone()
        counted = conn.execute(
            f"SELECT looks FROM {self._visits} WHERE visit_id = ?", (visit_id,)
        ).fetchone()
        return max(0 if row is None else int(row[0]), 0 if counted is None else int(counted[0]))

    def _select(self, rest: str, params: Sequence[Any]) -> list[VisitAnswer]:
        with self._sql.transaction() as conn:
            rows = conn.execute(f"SELECT {_ANSWER} FROM {self._visits} {rest}", params).fetchall()
        return [self._answer(row) for row in rows]

    def _answer(self, row: tuple[Any, ...]) -> VisitAnswer:
        visit_id, revision, rid, status, message, camera, looks, first, updated = row
        return VisitAnswer(
            visit_id=visit_id,
            revision=int(revision),
            recognition_id=rid,
            status=Status(status),
            message=json.loads(message),
            camera=camera,
            looks=int(looks),
            first_seen=self._sql.read_time(first),
            updated_at=self._sql.read_time(updated),
        )

    def _look(self, row: tuple[Any, ...]) -> VisitLook:
        rid, visit_id, seen, weight, embedding, subject, similarity = row
        return VisitLook(
            recognition_id=rid,
            visit_id=visit_id,
            seen_at=self._sql.read_time(seen),
            weight=float(weight),
            embedding=None if embedding is None else bytes(embedding),
            subject=subject,
            similarity=None if similarity is None else float(similarity),
        )


def _refuse_look(look: VisitLook) -> None:
    nul.refuse(recognition_id=look.recognition_id, visit_id=look.visit_id, subject=look.subject)
    if not 0.0 <= look.weight <= 1.0:  # also NaN
        raise InvalidParameterException(f"A look's weight is 0-1, not {look.weight}")
    s = look.similarity
    if s is not None and not (math.isfinite(s) and 0.0 <= s <= 100.0):
        raise InvalidParameterException(f"A look's similarity is 0-100, not {s}")

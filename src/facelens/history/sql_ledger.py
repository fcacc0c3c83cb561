"""The recognizer's ledger on a SQL database, written once for every dialect.

The port and its rules are :mod:`facelens.history.ledger`; what differs
between SQLite and PostgreSQL is the dialect's
(:mod:`facelens.history.sql_dialect`). Both answer alike: ``message`` is read
back as the JSON text it was written as (``CAST(message AS TEXT)``), so its
keys come back in the order they were recorded; ids compare in byte order;
times come back in UTC with microseconds.

A claim is one upsert that takes it (of two hosts racing, exactly one gets
it: SQLite's ``BEGIN IMMEDIATE`` holds the file, PostgreSQL locks the row),
then a check for an outcome in a statement of its own, which sees every
outcome committed before the claim was taken (:meth:`SqlLedger.record` ends
the claim in the transaction that stores the outcome); a claim taken on a
recorded id is given back. Text holding NUL is refused when written and
matches nothing when filtered on (:mod:`facelens.history.nul`).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from facelens.errors import InvalidParameterException
from facelens.history import nul
from facelens.history.ledger import (
    CROP_DELETED,
    Recognition,
    Status,
    StrangerSeen,
    encode_message,
    parse_time,
    stored_message,
)
from facelens.history.sql_dialect import Dialect
from facelens.history.sql_pages import page_query
from facelens.sql import Connection

_WRITTEN = "recognition_id, status, bucket, key, etag, topic, message, reason, recognized_at"
_READ = (
    "recognition_id, status, bucket, key, etag, topic, CAST(message AS TEXT), reason, recognized_at"
)
_NEWEST_FIRST = "ORDER BY recognized_at DESC, recognition_id"
_OLDEST_FIRST = "ORDER BY recognized_at, recognition_id"


class SqlLedger:
    """:class:`~facelens.history.ledger.RecognitionLedger` on ``dialect``'s database;
    thread-safe, opened on first use."""

    def __init__(self, dialect: Dialect) -> None:
        self._sql = dialect
        self._table = dialect.tables.recognitions
        self._claims = dialect.tables.claims

    def get(self, recognition_id: str) -> Recognition | None:
        if nul.holds_nul(recognition_id):
            return None
        rows = self._select("WHERE recognition_id = ?", [recognition_id])
        return rows[0] if rows else None

    def claim(self, recognition_id: str, owner: str, *, lease_seconds: float) -> bool:
        """See :meth:`~facelens.history.ledger.RecognitionLedger.claim` and the module's
        docstring; the lease is timed by the dialect's clock (:meth:`Dialect.from_now`)."""
        nul.refuse(recognition_id=recognition_id, owner=owner)
        ends, now = self._sql.from_now(lease_seconds), self._sql.from_now(0)
        with self._sql.transaction() as conn:
            taken = conn.execute(
                f"INSERT INTO {self._claims} AS c VALUES (?, ?, {ends.sql})"
                " ON CONFLICT (recognition_id) DO UPDATE"
                " SET owner = excluded.owner, until = excluded.until"
                f" WHERE c.owner = excluded.owner OR c.until < {now.sql}",
                (recognition_id, owner, *ends.parameters, *now.parameters),
            )
            if taken.rowcount <= 0:
                return False
            done = conn.execute(
                f"SELECT 1 FROM {self._table} WHERE recognition_id = ?", (recognition_id,)
            ).fetchone()
            if done is not None:
                self._end_claim(conn, recognition_id)
                return False
        return True

    def drop_abandoned_claims(self, ended_seconds: float, *, dry_run: bool = False) -> int:
        """See :meth:`~facelens.history.ledger.RecognitionLedger.drop_abandoned_claims`; timed
        by the clock leases are (:meth:`Dialect.from_now`). A claim taken again meanwhile has
        a lease in the future, so it is never dropped (SQLite's ``BEGIN IMMEDIATE`` holds the
        file; PostgreSQL's DELETE waits for the row and checks it again)."""
        if not ended_seconds >= 0:  # also NaN: a negative age would drop live claims
            raise InvalidParameterException(
                f"A claim's lease ends at least 0 seconds ago, not {ended_seconds}"
            )
        before = self._sql.from_now(-ended_seconds)
        where = f"FROM {self._claims} WHERE until < {before.sql}"
        with self._sql.transaction() as conn:
            if dry_run:
                row = conn.execute(f"SELECT COUNT(*) {where}", before.parameters).fetchone()
                return 0 if row is None else int(row[0])
            cursor = conn.execute(f"DELETE {where}", before.parameters)
        return cursor.rowcount

    def record(self, recognition: Recognition) -> bool:
        """Stores the outcome and ends its claim; False when that recognition id was already
        there (``ON CONFLICT DO NOTHING``: of two hosts racing, exactly one gets True)."""
        r = recognition
        message = stored_message(r)
        with self._sql.transaction() as conn:
            cursor = conn.execute(
                f"INSERT INTO {self._table} ({_WRITTEN})"
                f" VALUES (?, ?, ?, ?, ?, ?, {self._sql.json_value}, ?, ?)"
                " ON CONFLICT (recognition_id) DO NOTHING",
                (
                    r.recognition_id,
                    r.status.value,
                    r.bucket,
                    r.key,
                    r.etag,
                    r.topic,
                    message,
                    r.reason,
                    self._sql.time(r.recognized_at),
                ),
            )
            self._end_claim(conn, r.recognition_id)
        return cursor.rowcount > 0

    def recent(self, *, limit: int = 50, status: Status | None = None) -> list[Recognition]:
        return self.history(limit=limit, status=status)

    def history(
        self,
        *,
        limit: int = 50,
        status: Status | None = None,
        camera: str | None = None,
        user_id: str | None = None,
        before: tuple[str, str] | None = None,
        after: str | None = None,
    ) -> list[Recognition]:
        page = page_query(
            self._sql,
            time_column="recognized_at",
            id_column="recognition_id",
            status=status,
            camera=camera,
            user_id=user_id,
            before=before,
            after=after,
        )
        if page.empty:
            return []
        return self._select(f"{page.where} {_NEWEST_FIRST} LIMIT ?", [*page.parameters, limit])

    def count(self, *, status: Status | None = None) -> int:
        sql, params = f"SELECT COUNT(*) FROM {self._table}", []
        if status is not None:
            sql, params = sql + " WHERE status = ?", [status.value]
        with self._sql.transaction() as conn:
            row = conn.execute(sql, params).fetchone()
        return 0 if row is None else int(row[0])

    def dead_letters(self, *, limit: int = 50) -> list[Recognition]:
        return self.recent(limit=limit, status=Status.ERROR)

    def naming(
        self,
        *,
        user_id: str | None,
        face_ids: list[str],
        stranger_id: str | None = None,
        stranger_face_ids: list[str] | None = None,
    ) -> list[Recognition]:
        clauses: list[str] = []
        params: list[Any] = []
        # What holds NUL is dropped: it names no record, and the other names still do.
        stranger_face_ids = nul.matchable(stranger_face_ids or [])
        face_ids = nul.matchable(face_ids)
        user_id = None if nul.holds_nul(user_id) else user_id
        stranger_id = None if nul.holds_nul(stranger_id) else stranger_id
        field, in_list = self._sql.field, self._sql.in_list
        if stranger_face_ids:
            clauses.append(f"{field('StrangerFaceId')} {in_list}")
            params.append(self._sql.id_list(stranger_face_ids))
        # At the top, and in a visit's revision the answer it replaced (``Revises``): a
        # correction of a name of theirs still names them.
        for path in ((), ("Revises",)):
            if user_id is not None:
                clauses.append(f"{self._sql.text(*path, 'UserId')} = ?")
                params.append(user_id)
            if face_ids:
                clauses.append(f"{self._sql.text(*path, 'FaceId')} {in_list}")
                params.append(self._sql.id_list(face_ids))
            if stranger_id is not None:
                clauses.append(f"{self._sql.text(*path, 'StrangerId')} = ?")
                params.append(stranger_id)
        if not clauses:
            return []
        return self._select(f"WHERE {' OR '.join(clauses)} {_OLDEST_FIRST}", params)

    def delete(self, recognition_ids: list[str]) -> int:
        with self._sql.transaction() as conn:
            cursor = conn.execute(
                f"DELETE FROM {self._table} WHERE recognition_id {self._sql.in_list}",
                (self._sql.id_list(nul.matchable(recognition_ids)),),
            )
        return cursor.rowcount

    # -- retention --
    def crops_older_than(
        self,
        cutoff: datetime,
        statuses: list[Status],
        *,
        limit: int = 1000,
        after: tuple[str, str] | None = None,
    ) -> list[Recognition]:
        where = f"WHERE key IS NOT NULL AND recognized_at < ? AND status {self._sql.in_list}"
        params: list[Any] = [
            self._sql.time(cutoff),
            self._sql.id_list([s.value for s in statuses]),
        ]
        if after is not None:
            at = self._sql.time(parse_time(after[0]))
            where += " AND (recognized_at > ? OR (recognized_at = ? AND recognition_id > ?))"
            params += [at, at, nul.before_nul(after[1])]
        return self._select(f"{where} {_OLDEST_FIRST} LIMIT ?", [*params, limit])

    def mark_crop_deleted(self, recognition_id: str) -> None:
        """The message is rewritten here, not by the database's JSON functions (PostgreSQL's
        ``jsonb_set`` would reorder its keys): ``CropDeleted`` goes last, or stays where it
        was."""
        if nul.holds_nul(recognition_id):
            return
        with self._sql.transaction() as conn:
            row = conn.execute(
                f"SELECT CAST(message AS TEXT) FROM {self._table} WHERE recognition_id = ?"
                f"{self._sql.row_lock}",
                (recognition_id,),
            ).fetchone()
            if row is None:
                return
            message = json.loads(row[0])
            message[CROP_DELETED] = True
            conn.execute(
                f"UPDATE {self._table} SET bucket = NULL, key = NULL,"
                f" message = {self._sql.json_value} WHERE recognition_id = ?",
                (encode_message(message), recognition_id),
            )

    def known_crops(self, bucket: str, keys: list[str]) -> set[str]:
        if nul.holds_nul(bucket):
            return set()
        with self._sql.transaction() as conn:
            rows = conn.execute(
                f"SELECT key FROM {self._table} WHERE key {self._sql.in_list} AND bucket = ?",
                (self._sql.id_list(nul.matchable(keys)), bucket),
            ).fetchall()
        return {row[0] for row in rows}

    def purge_deleted(self) -> bool:
        """See :meth:`Dialect.erase_deleted`: SQLite empties its write-ahead log (deleted
        records are zeroed in the file), False when another connection's read kept part of
        it; PostgreSQL runs a plain VACUUM and answers False, as until a VACUUM FULL (the
        operator's call: an exclusive lock) its files may still hold deleted records."""
        return self._sql.erase_deleted()

    # -- strangers (read-only: sightings carry the StrangerId the recognizer gave them) --
    def sightings(
        self, stranger_ids: Sequence[str], *, limit: int = 50, largest_first: bool = False
    ) -> list[Recognition]:
        where = f"WHERE {self._sql.field('StrangerId')} {self._sql.in_list}"
        order = _NEWEST_FIRST
        if largest_first:
            area = (
                f"{self._sql.number('BoundingBox', 'Width')}"
                f" * {self._sql.number('BoundingBox', 'Height')}"
            )
            where += " AND key IS NOT NULL"
            order = (
                f"ORDER BY {area} DESC{self._sql.nulls_last}, recognized_at DESC, recognition_id"
            )
        ids = self._sql.id_list(nul.matchable(stranger_ids))
        return self._select(f"{where} {order} LIMIT ?", [ids, limit])

    def strangers_seen(self, stranger_ids: Sequence[str] | None = None) -> dict[str, StrangerSeen]:
        sid = self._sql.field("StrangerId")
        # A sighting is a visit: the looks of one visit (records sharing a VisitId, all
        # carrying its StrangerId) count once; a crop without a visit counts alone.
        sighting = f"COALESCE({self._sql.field('VisitId')}, recognition_id)"
        sql = (
            f"SELECT {sid} AS sid, COUNT(DISTINCT {sighting}), MIN(recognized_at),"
            " MAX(recognized_at)"
            f" FROM {self._table} WHERE "
        )
        params: list[Any] = []
        if stranger_ids is None:
            sql += f"{sid} IS NOT NULL"
        else:
            sql += f"{sid} {self._sql.in_list}"
            params.append(self._sql.id_list(nul.matchable(stranger_ids)))
        with self._sql.transaction() as conn:
            rows = conn.execute(
                f"{sql} GROUP BY sid ORDER BY {sid}{self._sql.byte_order}", params
            ).fetchall()
        read = self._sql.read_time
        return {str(sid): StrangerSeen(int(n), read(a), read(b)) for sid, n, a, b in rows}

    def close(self) -> None:
        self._sql.close()

    def _end_claim(self, conn: Connection, recognition_id: str) -> None:
        conn.execute(f"DELETE FROM {self._claims} WHERE recognition_id = ?", (recognition_id,))

    def _select(self, rest: str, params: Sequence[Any]) -> list[Recognition]:
        with self._sql.transaction() as conn:
            rows = conn.execute(f"SELECT {_READ} FROM {self._table} {rest}", params).fetchall()
        return [self._recognition(row) for row in rows]

    def _recognition(self, row: tuple[Any, ...]) -> Recognition:
        rid, status, bucket, key, etag, topic, message, reason, at = row
        return Recognition(
            recognition_id=rid,
            status=Status(status),
            topic=topic,
            message=json.loads(message),
            recognized_at=self._sql.read_time(at),
            bucket=bucket,
            key=key,
            etag=etag,
            reason=reason,
        )

"""The ledger in PostgreSQL (psycopg 3): one history for every recognizer host on the database.

Hosts that share the collections database share this ledger, so an event
delivered to two of them is published by one (:meth:`PostgresLedger.claim`,
one ``INSERT ... ON CONFLICT`` taking the claim), each host's dashboard
shows every host's identifications, and strangers' sightings count across
hosts.

Choices that keep its answers identical to :mod:`facelens.history.sqlite_ledger`:

* ``message`` is ``json``, not ``jsonb``: it keeps the text as written, so a
  message comes back with its keys in the order it was recorded (``jsonb``
  sorts them) and the ``->>`` operators still filter on it;
* ``recognition_id`` is ``COLLATE "C"``: ties in time order by id in byte
  order, as SQLite compares, whatever locale the database was made with;
* ``recognized_at`` is ``timestamptz`` (microseconds, like the SQLite text)
  and is read back in UTC whatever the session's time zone;
* a claim's lease is timed by the database's clock, the one clock every
  host sees;
* text holding NUL, which PostgreSQL cannot bind, is refused when written
  and matches nothing when filtered on, as no stored text holds it
  (:mod:`facelens.history.nul`).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

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
from facelens.history.postgres import PostgresTables, before_nul, holds_nul, matchable

_TABLE = "facelens_recognitions"
_CLAIMS = "facelens_recognition_claims"
_SCHEMA = (
    f"""CREATE TABLE IF NOT EXISTS {_TABLE} (
    recognition_id TEXT COLLATE "C" PRIMARY KEY, status TEXT NOT NULL,
    bucket TEXT, key TEXT, etag TEXT, topic TEXT NOT NULL, message JSON NOT NULL,
    reason TEXT, recognized_at TIMESTAMPTZ NOT NULL)""",
    f"CREATE INDEX IF NOT EXISTS {_TABLE}_time ON {_TABLE} (recognized_at)",
    f"CREATE INDEX IF NOT EXISTS {_TABLE}_stranger ON {_TABLE} ((message ->> 'StrangerId'))",
    f"CREATE INDEX IF NOT EXISTS {_TABLE}_user ON {_TABLE} ((message ->> 'UserId'))",
    f"CREATE INDEX IF NOT EXISTS {_TABLE}_crops ON {_TABLE} (recognized_at) WHERE key IS NOT NULL",
    f"CREATE INDEX IF NOT EXISTS {_TABLE}_keys ON {_TABLE} (key) WHERE key IS NOT NULL",
    f"""CREATE TABLE IF NOT EXISTS {_CLAIMS} (
    recognition_id TEXT COLLATE "C" PRIMARY KEY, owner TEXT NOT NULL,
    until TIMESTAMPTZ NOT NULL)""",
)
_COLUMNS = "recognition_id, status, bucket, key, etag, topic, message, reason, recognized_at"
_NEWEST_FIRST = "ORDER BY recognized_at DESC, recognition_id"
_OLDEST_FIRST = "ORDER BY recognized_at, recognition_id"
_BOX_AREA = (
    "(message #>> '{BoundingBox,Width}')::float8 * (message #>> '{BoundingBox,Height}')::float8"
)


class PostgresLedger:
    """:class:`~facelens.history.ledger.RecognitionLedger` in PostgreSQL; connects on first
    use (``url`` goes to libpq unchanged)."""

    def __init__(self, url: str) -> None:
        self._tables = PostgresTables(
            url, tables=(_TABLE, _CLAIMS), schema=_SCHEMA, what="The recognizer ledger"
        )

    def get(self, recognition_id: str) -> Recognition | None:
        if holds_nul(recognition_id):
            return None
        rows = self._select("WHERE recognition_id = %s", [recognition_id])
        return rows[0] if rows else None

    def claim(self, recognition_id: str, owner: str, *, lease_seconds: float) -> bool:
        """See :meth:`~facelens.history.ledger.RecognitionLedger.claim`.

        One upsert takes the claim (row-locked, so of two hosts racing exactly
        one gets it); the check for an outcome comes after it, in a statement
        of its own that sees every outcome committed before the claim was
        taken (:meth:`record` ends the claim in the transaction that stores
        the outcome). A claim taken on a recorded id is given back.
        """
        nul.refuse(recognition_id=recognition_id, owner=owner)
        with self._tables.transaction() as conn:
            taken = conn.execute(
                f"INSERT INTO {_CLAIMS} AS c VALUES"
                " (%(id)s, %(owner)s, clock_timestamp() + make_interval(secs => %(lease)s))"
                " ON CONFLICT (recognition_id) DO UPDATE"
                " SET owner = EXCLUDED.owner, until = EXCLUDED.until"
                " WHERE c.owner = EXCLUDED.owner OR c.until < clock_timestamp()"
                " RETURNING 1",
                {"id": recognition_id, "owner": owner, "lease": lease_seconds},
            ).fetchone()
            if taken is None:
                return False
            done = conn.execute(
                f"SELECT 1 FROM {_TABLE} WHERE recognition_id = %s", (recognition_id,)
            ).fetchone()
            if done is not None:
                conn.execute(f"DELETE FROM {_CLAIMS} WHERE recognition_id = %s", (recognition_id,))
                return False
        return True

    def record(self, recognition: Recognition) -> bool:
        """Stores the outcome and ends its claim; False when that recognition id was already
        there (``ON CONFLICT DO NOTHING``: of two hosts racing, exactly one gets True)."""
        r = recognition
        message = stored_message(r)
        with self._tables.transaction() as conn:
            cursor = conn.execute(
                f"INSERT INTO {_TABLE} ({_COLUMNS})"
                " VALUES (%s, %s, %s, %s, %s, %s, %s::json, %s, %s)"
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
                    r.recognized_at.astimezone(UTC),
                ),
            )
            conn.execute(f"DELETE FROM {_CLAIMS} WHERE recognition_id = %s", (r.recognition_id,))
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
        clauses: list[str] = []
        params: list[Any] = []
        if status is not None:
            clauses.append("status = %s")
            params.append(status.value)
        if camera is not None:
            clauses.append("message ->> 'Camera' = %s")
            params.append(camera)
        if user_id is not None:
            clauses.append("message ->> 'UserId' = %s")
            params.append(user_id)
        if before is not None:
            at = parse_time(before[0])
            clauses.append("(recognized_at < %s OR (recognized_at = %s AND recognition_id > %s))")
            params += [at, at, before_nul(before[1])]
        if after is not None:
            clauses.append("recognized_at > %s")
            params.append(parse_time(after))
        if holds_nul(camera) or holds_nul(user_id):
            return []  # only now: a time that is not ISO is refused whatever else was asked
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        return self._select(f"{where} {_NEWEST_FIRST} LIMIT %s", [*params, limit])

    def count(self, *, status: Status | None = None) -> int:
        sql, params = f"SELECT COUNT(*) FROM {_TABLE}", []
        if status is not None:
            sql, params = sql + " WHERE status = %s", [status.value]
        with self._tables.transaction() as conn:
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
        stranger_face_ids = matchable(stranger_face_ids or [])
        face_ids = matchable(face_ids)
        user_id = None if holds_nul(user_id) else user_id
        stranger_id = None if holds_nul(stranger_id) else stranger_id
        if stranger_face_ids:
            clauses.append("message ->> 'StrangerFaceId' = ANY(%s)")
            params.append(stranger_face_ids)
        if user_id is not None:
            clauses.append("message ->> 'UserId' = %s")
            params.append(user_id)
        if face_ids:
            clauses.append("message ->> 'FaceId' = ANY(%s)")
            params.append(face_ids)
        if stranger_id is not None:
            clauses.append("message ->> 'StrangerId' = %s")
            params.append(stranger_id)
        if not clauses:
            return []
        return self._select(f"WHERE {' OR '.join(clauses)} {_OLDEST_FIRST}", params)

    def delete(self, recognition_ids: list[str]) -> int:
        with self._tables.transaction() as conn:
            cursor = conn.execute(
                f"DELETE FROM {_TABLE} WHERE recognition_id = ANY(%s)",
                (matchable(recognition_ids),),
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
        where = "WHERE key IS NOT NULL AND recognized_at < %s AND status = ANY(%s)"
        params: list[Any] = [cutoff.astimezone(UTC), [s.value for s in statuses]]
        if after is not None:
            at = parse_time(after[0])
            where += " AND (recognized_at > %s OR (recognized_at = %s AND recognition_id > %s))"
            params += [at, at, before_nul(after[1])]
        return self._select(f"{where} {_OLDEST_FIRST} LIMIT %s", [*params, limit])

    def mark_crop_deleted(self, recognition_id: str) -> None:
        """The message is rewritten here rather than by ``jsonb_set``, which would reorder
        its keys: ``CropDeleted`` goes last, as SQLite's ``json_set`` puts it."""
        if holds_nul(recognition_id):
            return
        with self._tables.transaction() as conn:
            row = conn.execute(
                f"SELECT message FROM {_TABLE} WHERE recognition_id = %s FOR UPDATE",
                (recognition_id,),
            ).fetchone()
            if row is None:
                return
            message = dict(row[0])
            message[CROP_DELETED] = True
            conn.execute(
                f"UPDATE {_TABLE} SET bucket = NULL, key = NULL, message = %s::json"
                " WHERE recognition_id = %s",
                (encode_message(message), recognition_id),
            )

    def known_crops(self, bucket: str, keys: list[str]) -> set[str]:
        if holds_nul(bucket):
            return set()
        with self._tables.transaction() as conn:
            rows = conn.execute(
                f"SELECT key FROM {_TABLE} WHERE key = ANY(%s) AND bucket = %s",
                (matchable(keys), bucket),
            ).fetchall()
        return {row[0] for row in rows}

    def purge_deleted(self) -> bool:
        """A plain VACUUM of the tables; False: until a VACUUM FULL (the operator's call: an
        exclusive lock) PostgreSQL's files may still hold deleted records' bytes."""
        self._tables.vacuum()
        return False

    # -- strangers (read-only: sightings carry the StrangerId the recognizer gave them) --
    def sightings(
        self, stranger_ids: Sequence[str], *, limit: int = 50, largest_first: bool = False
    ) -> list[Recognition]:
        where = "WHERE message ->> 'StrangerId' = ANY(%s)"
        order = _NEWEST_FIRST
        if largest_first:
            # NULLS LAST: SQLite orders a missing box below every area.
            where += " AND key IS NOT NULL"
            order = f"ORDER BY {_BOX_AREA} DESC NULLS LAST, recognized_at DESC, recognition_id"
        return self._select(f"{where} {order} LIMIT %s", [matchable(stranger_ids), limit])

    def strangers_seen(self, stranger_ids: Sequence[str] | None = None) -> dict[str, StrangerSeen]:
        sql = (
            "SELECT message ->> 'StrangerId' AS sid, COUNT(*), MIN(recognized_at),"
            f" MAX(recognized_at) FROM {_TABLE} WHERE "
        )
        params: list[Any] = []
        if stranger_ids is None:
            sql += "message ->> 'StrangerId' IS NOT NULL"
        else:
            sql += "message ->> 'StrangerId' = ANY(%s)"
            params.append(matchable(stranger_ids))
        with self._tables.transaction() as conn:
            rows = conn.execute(
                f"{sql} GROUP BY sid ORDER BY (message ->> 'StrangerId') COLLATE \"C\"", params
            ).fetchall()
        return {
            str(sid): StrangerSeen(int(n), a.astimezone(UTC), b.astimezone(UTC))
            for sid, n, a, b in rows
        }

    def close(self) -> None:
        self._tables.close()

    def _select(self, rest: str, params: Sequence[Any]) -> list[Recognition]:
        with self._tables.transaction() as conn:
            rows = conn.execute(f"SELECT {_COLUMNS} FROM {_TABLE} {rest}", params).fetchall()
        return [_recognition(row) for row in rows]


def _recognition(row: tuple[Any, ...]) -> Recognition:
    rid, status, bucket, key, etag, topic, message, reason, at = row
    return Recognition(
        recognition_id=rid,
        status=Status(status),
        topic=topic,
        message=message,
        recognized_at=at.astimezone(UTC),
        bucket=bucket,
        key=key,
        etag=etag,
        reason=reason,
    )

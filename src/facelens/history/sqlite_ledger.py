"""The ledger in one SQLite file, ``<home>/recognizer.db``: one host's history.

The default (collections in SQLite, or in AWS Rekognition): no server to run.
Several processes on one host share the file (WAL, ``BEGIN IMMEDIATE``:
:mod:`facelens.sqlite`); hosts do not share it, so each keeps its own
history and its own idempotency. Times are stored as :func:`stamp` text,
whose text order is time order.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from facelens.history import nul
from facelens.history.ledger import (
    CROP_DELETED,
    Recognition,
    Status,
    StrangerSeen,
    parse_time,
    stamp,
    stored_message,
)
from facelens.sqlite import SqliteDatabase

_SCHEMA = """
CREATE TABLE IF NOT EXISTS recognitions (
    recognition_id TEXT PRIMARY KEY,
    status TEXT NOT NULL,
    bucket TEXT,
    key TEXT,
    etag TEXT,
    topic TEXT NOT NULL,
    message TEXT NOT NULL,
    reason TEXT,
    recognized_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS recognitions_time ON recognitions (recognized_at);
CREATE INDEX IF NOT EXISTS recognitions_stranger
    ON recognitions (json_extract(message, '$.StrangerId'));
CREATE INDEX IF NOT EXISTS recognitions_crops ON recognitions (recognized_at)
    WHERE key IS NOT NULL;
CREATE INDEX IF NOT EXISTS recognitions_keys ON recognitions (key) WHERE key IS NOT NULL;
CREATE TABLE IF NOT EXISTS claims (
    recognition_id TEXT PRIMARY KEY,
    owner TEXT NOT NULL,
    until REAL NOT NULL
);
"""
"""``claims.until``: Unix seconds when the claim's lease ends (a row goes when its outcome is
recorded). A file of an older facelens gets the table on first open."""


class SqliteLedger:
    """:class:`~facelens.history.ledger.RecognitionLedger` in one SQLite file; thread-safe,
    opened on first use."""

    def __init__(self, path: Path | str) -> None:
        self._db = SqliteDatabase(path, schema=_SCHEMA, what="The recognizer ledger")

    def get(self, recognition_id: str) -> Recognition | None:
        with self._db.transaction() as conn:
            row = conn.execute(
                "SELECT * FROM recognitions WHERE recognition_id = ?", (recognition_id,)
            ).fetchone()
        return None if row is None else _recognition(row)

    def claim(self, recognition_id: str, owner: str, *, lease_seconds: float) -> bool:
        """See :meth:`~facelens.history.ledger.RecognitionLedger.claim`; the lease is timed
        by this host's clock (every process sharing the file is on this host)."""
        nul.refuse(recognition_id=recognition_id, owner=owner)
        now = time.time()
        with self._db.transaction() as conn:
            done = conn.execute(
                "SELECT 1 FROM recognitions WHERE recognition_id = ?", (recognition_id,)
            ).fetchone()
            if done is not None:
                return False
            cursor = conn.execute(
                "INSERT INTO claims VALUES (?, ?, ?) ON CONFLICT (recognition_id) DO UPDATE"
                " SET owner = excluded.owner, until = excluded.until"
                " WHERE claims.owner = excluded.owner OR claims.until < ?",
                (recognition_id, owner, now + lease_seconds, now),
            )
        return cursor.rowcount > 0

    def record(self, recognition: Recognition) -> bool:
        """Stores the outcome and ends its claim; False when that recognition id was already
        there."""
        r = recognition
        message = stored_message(r)
        with self._db.transaction() as conn:
            cursor = conn.execute(
                "INSERT OR IGNORE INTO recognitions VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    r.recognition_id,
                    r.status.value,
                    r.bucket,
                    r.key,
                    r.etag,
                    r.topic,
                    message,
                    r.reason,
                    stamp(r.recognized_at),
                ),
            )
            conn.execute("DELETE FROM claims WHERE recognition_id = ?", (r.recognition_id,))
        return cursor.rowcount > 0

    def recent(self, *, limit: int = 50, status: Status | None = None) -> list[Recognition]:
        sql = "SELECT * FROM recognitions"
        params: list[Any] = []
        if status is not None:
            sql += " WHERE status = ?"
            params.append(status.value)
        with self._db.transaction() as conn:
            rows = conn.execute(
                f"{sql} ORDER BY recognized_at DESC, recognition_id LIMIT ?", [*params, limit]
            ).fetchall()
        return [_recognition(row) for row in rows]

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
            clauses.append("status = ?")
            params.append(status.value)
        if camera is not None:
            clauses.append("json_extract(message, '$.Camera') = ?")
            params.append(camera)
        if user_id is not None:
            clauses.append("json_extract(message, '$.UserId') = ?")
            params.append(user_id)
        if before is not None:
            at = stamp(parse_time(before[0]))
            clauses.append("(recognized_at < ? OR (recognized_at = ? AND recognition_id > ?))")
            params += [at, at, before[1]]
        if after is not None:
            clauses.append("recognized_at > ?")
            params.append(stamp(parse_time(after)))
        where = f" WHERE {' AND '.join(clauses)}" if clauses else ""
        with self._db.transaction() as conn:
            rows = conn.execute(
                f"SELECT * FROM recognitions{where}"
                " ORDER BY recognized_at DESC, recognition_id LIMIT ?",
                [*params, limit],
            ).fetchall()
        return [_recognition(row) for row in rows]

    def count(self, *, status: Status | None = None) -> int:
        sql, params = "SELECT COUNT(*) FROM recognitions", []
        if status is not None:
            sql, params = sql + " WHERE status = ?", [status.value]
        with self._db.transaction() as conn:
            (value,) = conn.execute(sql, params).fetchone()
        return int(value)

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
        clauses, params = [], []
        if stranger_face_ids:
            clauses.append(
                "json_extract(message, '$.StrangerFaceId') IN (SELECT value FROM json_each(?))"
            )
            params.append(json.dumps(stranger_face_ids))
        if user_id is not None:
            clauses.append("json_extract(message, '$.UserId') = ?")
            params.append(user_id)
        if face_ids:
            clauses.append("json_extract(message, '$.FaceId') IN (SELECT value FROM json_each(?))")
            params.append(json.dumps(face_ids))
        if stranger_id is not None:
            clauses.append("json_extract(message, '$.StrangerId') = ?")
            params.append(stranger_id)
        if not clauses:
            return []
        with self._db.transaction() as conn:
            rows = conn.execute(
                f"SELECT * FROM recognitions WHERE {' OR '.join(clauses)}"
                " ORDER BY recognized_at, recognition_id",
                params,
            ).fetchall()
        return [_recognition(row) for row in rows]

    def delete(self, recognition_ids: list[str]) -> int:
        with self._db.transaction() as conn:
            cursor = conn.execute(
                "DELETE FROM recognitions WHERE recognition_id IN (SELECT value FROM json_each(?))",
                (json.dumps(recognition_ids),),
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
        sql = (
            "SELECT * FROM recognitions WHERE key IS NOT NULL AND recognized_at < ?"
            " AND status IN (SELECT value FROM json_each(?))"
        )
        params: list[Any] = [stamp(cutoff), json.dumps([s.value for s in statuses])]
        if after is not None:
            sql += " AND (recognized_at > ? OR (recognized_at = ? AND recognition_id > ?))"
            params += [after[0], after[0], after[1]]
        with self._db.transaction() as conn:
            rows = conn.execute(
                f"{sql} ORDER BY recognized_at, recognition_id LIMIT ?", [*params, limit]
            ).fetchall()
        return [_recognition(row) for row in rows]

    def mark_crop_deleted(self, recognition_id: str) -> None:
        with self._db.transaction() as conn:
            conn.execute(
                "UPDATE recognitions SET bucket = NULL, key = NULL,"
                f" message = json_set(message, '$.{CROP_DELETED}', json('true'))"
                " WHERE recognition_id = ?",
                (recognition_id,),
            )

    def known_crops(self, bucket: str, keys: list[str]) -> set[str]:
        with self._db.transaction() as conn:
            rows = conn.execute(
                "SELECT key FROM recognitions WHERE key IN (SELECT value FROM json_each(?))"
                " AND bucket = ?",
                (json.dumps(keys), bucket),
            ).fetchall()
        return {row[0] for row in rows}

    def purge_deleted(self) -> bool:
        """Empties the WAL so deleted records (zeroed in the file) are in no file; False
        when another connection's read kept part of it."""
        return self._db.checkpoint()

    # -- strangers (read-only: sightings carry the StrangerId the recognizer gave them) --
    def sightings(
        self, stranger_ids: Sequence[str], *, limit: int = 50, largest_first: bool = False
    ) -> list[Recognition]:
        where = "json_extract(message, '$.StrangerId') IN (SELECT value FROM json_each(?))"
        order = "recognized_at DESC, recognition_id"
        if largest_first:
            where += " AND key IS NOT NULL"
            order = (
                "json_extract(message, '$.BoundingBox.Width')"
                " * json_extract(message, '$.BoundingBox.Height') DESC, " + order
            )
        with self._db.transaction() as conn:
            rows = conn.execute(
                f"SELECT * FROM recognitions WHERE {where} ORDER BY {order} LIMIT ?",
                (json.dumps(list(stranger_ids)), limit),
            ).fetchall()
        return [_recognition(row) for row in rows]

    def strangers_seen(self, stranger_ids: Sequence[str] | None = None) -> dict[str, StrangerSeen]:
        sql = (
            "SELECT json_extract(message, '$.StrangerId') AS sid, COUNT(*),"
            " MIN(recognized_at), MAX(recognized_at) FROM recognitions WHERE "
        )
        params: list[Any] = []
        if stranger_ids is None:
            sql += "sid IS NOT NULL"
        else:
            sql += "sid IN (SELECT value FROM json_each(?))"
            params.append(json.dumps(list(stranger_ids)))
        with self._db.transaction() as conn:
            rows = conn.execute(sql + " GROUP BY sid ORDER BY sid", params).fetchall()
        return {
            str(sid): StrangerSeen(int(n), datetime.fromisoformat(a), datetime.fromisoformat(b))
            for sid, n, a, b in rows
        }

    def close(self) -> None:
        self._db.close()


def _recognition(row: tuple[Any, ...]) -> Recognition:
    rid, status, bucket, key, etag, topic, message, reason, at = row
    return Recognition(
        recognition_id=rid,
        status=Status(status),
        topic=topic,
        message=json.loads(message),
        recognized_at=datetime.fromisoformat(at),
        bucket=bucket,
        key=key,
        etag=etag,
        reason=reason,
    )

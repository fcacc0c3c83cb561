"""The recognizer's ledger: every outcome once, by recognition id.

It makes the worker idempotent (an object already handled is not published
again), keeps the dead letters (events that can never succeed, with their
reason) and is the history of identifications the HTTP API pages through.
SQLite in <home>; one file per host.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

from facelens.errors import InvalidParameterException
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
"""
CROP_DELETED = "CropDeleted"
"""Set (true) in a record's message once retention deleted its crop (bucket and key go NULL)."""


@dataclass(frozen=True)
class StrangerSeen:
    """How often and when an anonymous person (``StrangerId``) was sighted."""

    count: int
    first_seen: datetime
    last_seen: datetime


class Status(StrEnum):
    IDENTIFIED = "identified"
    UNKNOWN = "unknown"
    ERROR = "error"


@dataclass(frozen=True)
class Recognition:
    """One outcome. ``message`` is exactly what was published on ``topic``.

    ``reason`` is the error code for dead letters (``status`` ERROR).
    """

    recognition_id: str
    status: Status
    topic: str
    message: Mapping[str, Any]
    recognized_at: datetime
    bucket: str | None = None
    key: str | None = None
    etag: str | None = None
    reason: str | None = None


class RecognitionLedger:
    """SQLite ledger; thread-safe, opened on first use."""

    def __init__(self, path: Path | str) -> None:
        self._db = SqliteDatabase(path, schema=_SCHEMA, what="The recognizer ledger")

    def get(self, recognition_id: str) -> Recognition | None:
        with self._db.transaction() as conn:
            row = conn.execute(
                "SELECT * FROM recognitions WHERE recognition_id = ?", (recognition_id,)
            ).fetchone()
        return None if row is None else _recognition(row)

    def record(self, recognition: Recognition) -> bool:
        """Stores the outcome; False when that recognition id was already there."""
        r = recognition
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
                    json.dumps(r.message, ensure_ascii=False, default=str),
                    r.reason,
                    stamp(r.recognized_at),
                ),
            )
        return cursor.rowcount > 0

    def recent(self, *, limit: int = 50, status: Status | None = None) -> list[Recognition]:
        """The latest outcomes, newest first."""
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
        """Outcomes newest first, filtered, one page at a time.

        before: the (recognized_at ISO text, recognition_id) of the last record
        of the previous page (a cursor; :func:`cursor_of`); after: only records
        newer than this ISO time (a live feed's tail). camera / user_id match the
        message's ``Camera`` / ``UserId``.
        """
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
            at = _restamp(before[0])
            clauses.append("(recognized_at < ? OR (recognized_at = ? AND recognition_id > ?))")
            params += [at, at, before[1]]
        if after is not None:
            clauses.append("recognized_at > ?")
            params.append(_restamp(after))
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

    def forget(self, *, user_id: str | None, face_ids: list[str]) -> list[Recognition]:
        """Deletes and returns the records that name ``user_id`` or one of ``face_ids``.

        The records carry the person's profile and crop keys: forgetting a person
        removes them (the caller deletes the crops they point to).
        """
        with self._db.transaction():
            records = self.naming(user_id=user_id, face_ids=face_ids)
            self.delete([r.recognition_id for r in records])
        return records

    def naming(
        self,
        *,
        user_id: str | None,
        face_ids: list[str],
        stranger_id: str | None = None,
        stranger_face_ids: list[str] | None = None,
    ) -> list[Recognition]:
        """The records whose message names ``user_id``, one of ``face_ids``, the stranger
        ``stranger_id`` (an unknown face's ``StrangerId``) or one of ``stranger_face_ids``
        (the stranger face a sighting added, ``StrangerFaceId``): one person's history."""
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
                f"SELECT * FROM recognitions WHERE {' OR '.join(clauses)}", params
            ).fetchall()
        return [_recognition(row) for row in rows]

    def delete(self, recognition_ids: list[str]) -> int:
        """Deletes these records; how many there were."""
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
        """Records of ``statuses`` recognized before ``cutoff`` that still name a crop,
        oldest first: the crops retention deletes. ``after``: the :func:`cursor_of` the
        previous page's last record (the next page starts after it)."""
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
        """The record's crop is gone: bucket and key NULL, ``CropDeleted`` in the message
        (which keeps the key it was published with, as history)."""
        with self._db.transaction() as conn:
            conn.execute(
                "UPDATE recognitions SET bucket = NULL, key = NULL,"
                f" message = json_set(message, '$.{CROP_DELETED}', json('true'))"
                " WHERE recognition_id = ?",
                (recognition_id,),
            )

    def known_crops(self, bucket: str, keys: list[str]) -> set[str]:
        """Which of ``keys`` in ``bucket`` a record names (the others were never recognized)."""
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
        """Sightings of these strangers, newest first; ``largest_first``: the largest face box
        first, among those whose crop is still stored (the best crops to show)."""
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
        """Count, first and last sighting per StrangerId (of these ids, or of every one)."""
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
            rows = conn.execute(sql + " GROUP BY sid", params).fetchall()
        return {
            str(sid): StrangerSeen(int(n), datetime.fromisoformat(a), datetime.fromisoformat(b))
            for sid, n, a, b in rows
        }

    def close(self) -> None:
        self._db.close()


def stamp(moment: datetime) -> str:
    """A time as the ledger stores it: UTC, always with microseconds, so that text order
    is time order (``isoformat()`` alone drops a zero microsecond part)."""
    return moment.astimezone(UTC).isoformat(timespec="microseconds")


def _restamp(text: str) -> str:
    try:
        return stamp(datetime.fromisoformat(text))
    except (ValueError, OverflowError) as exc:  # Overflow: year 1 or 9999 moved to UTC
        raise InvalidParameterException(f"Not an ISO 8601 time: {text!r}") from exc


def cursor_of(recognition: Recognition) -> tuple[str, str]:
    """The paging cursor after ``recognition`` for :meth:`RecognitionLedger.history`."""
    return stamp(recognition.recognized_at), recognition.recognition_id


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

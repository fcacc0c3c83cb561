"""The audit log in one SQLite file, ``<home>/audit.db``: one host's trail.

Written with ``synchronous=FULL`` (an entry survives power loss, not only a
crash) and ``secure_delete``: the ids :meth:`SqliteAuditLog.redact`
replaces are zeroed in the file, and a checkpoint empties the write-ahead
log that still held them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from facelens.errors import StorageError
from facelens.history import audit
from facelens.history.audit import AuditAction, AuditEntry, AuditPage
from facelens.sqlite import SqliteDatabase

_SCHEMA = """
CREATE TABLE IF NOT EXISTS audit (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    at REAL NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    target TEXT NOT NULL,
    collection_id TEXT,
    details TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS audit_actor ON audit (actor, id);
CREATE INDEX IF NOT EXISTS audit_target ON audit (target, id);
CREATE INDEX IF NOT EXISTS audit_action ON audit (action, id);
"""


class SqliteAuditLog:
    """:class:`~facelens.history.audit.AuditLog` in one SQLite file; thread-safe, and safe
    for several processes on one host."""

    def __init__(self, path: Path | str) -> None:
        self._db = SqliteDatabase(path, schema=_SCHEMA, what="The audit log", fsync=True)

    def record(
        self,
        actor: str,
        action: AuditAction | str,
        target: str,
        *,
        collection_id: str | None = None,
        details: Mapping[str, Any] | None = None,
        at: datetime | None = None,
    ) -> AuditEntry:
        entry = audit.new_entry(
            actor, action, target, collection_id=collection_id, details=details, at=at
        )
        try:
            with self._db.transaction() as conn:
                cursor = conn.execute(
                    "INSERT INTO audit (at, actor, action, target, collection_id, details) "
                    "VALUES (?, ?, ?, ?, ?, ?)",
                    (
                        entry.timestamp,
                        entry.actor,
                        entry.action.value,
                        entry.target,
                        entry.collection_id,
                        entry.encoded,
                    ),
                )
                entry_id = int(cursor.lastrowid or 0)
        except StorageError:
            entry.report_lost()
            raise
        return entry.stored(entry_id)

    def entries(
        self,
        *,
        limit: int = 100,
        before: int | None = None,
        actor: str | None = None,
        action: AuditAction | str | None = None,
        target: str | None = None,
        since: datetime | None = None,
    ) -> AuditPage:
        f = audit.entry_filter(
            limit=limit, before=before, actor=actor, action=action, target=target, since=since
        )
        clauses: list[str] = []
        params: list[Any] = []
        if f.actor is not None:
            clauses.append("actor = ?")
            params.append(f.actor)
        if f.target is not None:
            clauses.append("(target = ? OR instr(details, ?) > 0)")
            params += [f.target, f.needle]
        if f.action is not None:
            clauses.append("action = ?")
            params.append(f.action.value)
        if f.before is not None:
            clauses.append("id < ?")
            params.append(f.before)
        if f.since is not None:
            clauses.append("at >= ?")
            params.append(f.since)
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        with self._db.transaction() as conn:
            rows = conn.execute(
                "SELECT id, at, actor, action, target, collection_id, details FROM audit "
                f"{where} ORDER BY id DESC LIMIT ?",
                (*params, f.limit + 1),
            ).fetchall()
        return f.page(rows)

    def redact(self, person_id: str) -> int:
        needle = audit.redaction_needle(person_id)
        changed = 0
        with self._db.transaction() as conn:
            rows = conn.execute(
                "SELECT id, target, details FROM audit WHERE target = ? OR instr(details, ?) > 0",
                (person_id, needle),
            ).fetchall()
            for entry_id, target, details in rows:
                conn.execute(
                    "UPDATE audit SET target = ?, details = ? WHERE id = ?",
                    (*audit.redacted(target, details, person_id), entry_id),
                )
                changed += 1
        if changed:
            # The rows as they were are still in the write-ahead log until a checkpoint;
            # secure_delete (facelens.sqlite) zeroes what the update freed in the file.
            self._db.checkpoint()
        return changed

    def record_forget(
        self,
        actor: str,
        person_id: str,
        *,
        also: Sequence[str] = (),
        collection_id: str | None = None,
        details: Mapping[str, Any] | None = None,
    ) -> AuditEntry:
        return audit.record_forget(
            self, actor, person_id, also=also, collection_id=collection_id, details=details
        )

    def purge_deleted(self) -> bool:
        """Empties the write-ahead log, so ids :meth:`redact` replaced (zeroed in the file by
        ``secure_delete``) are in no file; False when another connection's read kept part."""
        return self._db.checkpoint()

    def close(self) -> None:
        self._db.close()

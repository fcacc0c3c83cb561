"""The audit log on a SQL database, written once for every dialect.

The port and its rules are :mod:`facelens.history.audit`; what differs
between SQLite and PostgreSQL is the dialect's
(:mod:`facelens.history.sql_dialect`). Both store an entry alike, so both
answer alike: ``at`` a double of Unix seconds, ``details`` the same JSON
text (a target is found inside it as text, :meth:`Dialect.contains`), ids
from the database. On PostgreSQL ids grow in the order entries were
*begun*: two hosts appending at once may commit out of that order, so a page
read in that instant can miss the entry with the smaller id until the next
read.

No entry's actor, target or collection holds NUL (:func:`audit.new_entry`
refuses it), so a filter on one holding it matches nothing; details may
name it, as JSON escapes it (:mod:`facelens.history.nul`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from facelens.errors import StorageError
from facelens.history import audit, nul
from facelens.history.audit import AuditAction, AuditEntry, AuditPage
from facelens.history.sql_dialect import Dialect

_READ = "id, at, actor, action, target, collection_id, details"


class SqlAuditLog:
    """:class:`~facelens.history.audit.AuditLog` on ``dialect``'s database; thread-safe, and
    safe for several writers (processes, or hosts on one PostgreSQL database) at once."""

    def __init__(self, dialect: Dialect) -> None:
        self._sql = dialect
        self._table = dialect.tables.audit

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
            with self._sql.transaction() as conn:
                conn.execute(
                    f"INSERT INTO {self._table} (at, actor, action, target, collection_id,"
                    " details) VALUES (?, ?, ?, ?, ?, ?)",
                    (
                        entry.timestamp,
                        entry.actor,
                        entry.action.value,
                        entry.target,
                        entry.collection_id,
                        entry.encoded,
                    ),
                )
                row = conn.execute(self._sql.last_id, ()).fetchone()
        except StorageError:
            entry.report_lost()
            raise
        if row is None:
            raise StorageError("The database returned no id for an audit entry")
        return entry.stored(int(row[0]))

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
        if nul.holds_nul(f.actor):
            return AuditPage([], None)
        clauses: list[str] = []
        params: list[Any] = []
        if f.actor is not None:
            clauses.append("actor = ?")
            params.append(f.actor)
        if f.target is not None and f.needle is not None:
            clause, named = self._concerning(f.target, f.needle)
            clauses.append(clause)
            params += named
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
        with self._sql.transaction() as conn:
            rows = conn.execute(
                f"SELECT {_READ} FROM {self._table} {where} ORDER BY id DESC LIMIT ?",
                (*params, f.limit + 1),
            ).fetchall()
        return f.page(rows)

    def redact(self, person_id: str) -> int:
        """The rows as they were stay in the database's files until the dialect rids them of
        old versions (:meth:`Dialect.after_rewrite`, :meth:`purge_deleted`, which
        forgetting runs after this)."""
        clause, named = self._concerning(person_id, audit.redaction_needle(person_id))
        with self._sql.transaction() as conn:
            rows = conn.execute(
                f"SELECT id, target, details FROM {self._table} WHERE {clause}{self._sql.row_lock}",
                named,
            ).fetchall()
            for entry_id, target, details in rows:
                conn.execute(
                    f"UPDATE {self._table} SET target = ?, details = ? WHERE id = ?",
                    (*audit.redacted(target, details, person_id), entry_id),
                )
        if rows:
            self._sql.after_rewrite()
        return len(rows)

    def record_forget(
        self,
        actor: str,
        person_id: str,
        *,
        also: Sequence[str] = (),
        collection_id: str | None = None,
        details: Mapping[str, Any] | None = None,
    ) -> AuditEntry:
        entry = self.record(
            actor,
            AuditAction.FORGET,
            audit.pseudonym(person_id),
            collection_id=collection_id,
            details=details,
        )
        for forgotten in (person_id, *also):
            self.redact(forgotten)
        return entry

    def purge_deleted(self) -> bool:
        """See :meth:`Dialect.erase_deleted`: True when the ids :meth:`redact` replaced are
        verifiably in no file (SQLite's checkpoint went through), False when part may
        remain until later (PostgreSQL: until a VACUUM FULL, the operator's call)."""
        return self._sql.erase_deleted()

    def close(self) -> None:
        self._sql.close()

    def _concerning(self, target: str, needle: str) -> tuple[str, list[str]]:
        """The condition (and its parameters) for entries concerning ``target``: as their
        target, or named in their details (``needle``, ``target`` as JSON). A target holding
        NUL is no entry's, but details may name it (JSON escapes it): then only they are
        searched."""
        in_details = self._sql.contains("details")
        if nul.holds_nul(target):
            return in_details, [needle]
        return f"(target = ? OR {in_details})", [target, needle]

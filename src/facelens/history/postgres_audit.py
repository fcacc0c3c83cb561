"""The audit log in PostgreSQL (psycopg 3): one trail for every host on the database.

Hosts that share the collections database share this log, so an action is
found whichever host's API, dashboard or CLI took it, and forgetting a
person redacts their id in every host's entries.

Stored as :mod:`facelens.history.sqlite_audit` stores it, so both answer
alike: ``at`` a double of Unix seconds, ``details`` the same JSON text (a
target is found inside it by ``strpos``, as SQLite's ``instr``), ids from
an identity column. Ids grow in the order entries were *begun*: two hosts
appending at once may commit out of that order, so a page read in that
instant can miss the entry with the smaller id until the next read.

No entry's actor, target or collection holds NUL (:func:`audit.new_entry`
refuses it: PostgreSQL cannot bind it), so a filter on one holding it
matches nothing; details may name it, as JSON escapes it
(:mod:`facelens.history.nul`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from facelens.errors import StorageError
from facelens.history import audit
from facelens.history.audit import AuditAction, AuditEntry, AuditPage
from facelens.history.postgres import PostgresTables, holds_nul

_TABLE = "facelens_audit"
_SCHEMA = (
    f"""CREATE TABLE IF NOT EXISTS {_TABLE} (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY, at DOUBLE PRECISION NOT NULL,
    actor TEXT NOT NULL, action TEXT NOT NULL, target TEXT NOT NULL, collection_id TEXT,
    details TEXT NOT NULL)""",
    f"CREATE INDEX IF NOT EXISTS {_TABLE}_actor ON {_TABLE} (actor, id)",
    f"CREATE INDEX IF NOT EXISTS {_TABLE}_target ON {_TABLE} (target, id)",
    f"CREATE INDEX IF NOT EXISTS {_TABLE}_action ON {_TABLE} (action, id)",
)


class PostgresAuditLog:
    """:class:`~facelens.history.audit.AuditLog` in PostgreSQL; connects on first use
    (``url`` goes to libpq unchanged)."""

    def __init__(self, url: str) -> None:
        self._tables = PostgresTables(url, tables=(_TABLE,), schema=_SCHEMA, what="The audit log")

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
            with self._tables.transaction() as conn:
                row = conn.execute(
                    f"INSERT INTO {_TABLE} (at, actor, action, target, collection_id, details)"
                    " VALUES (%s, %s, %s, %s, %s, %s) RETURNING id",
                    (
                        entry.timestamp,
                        entry.actor,
                        entry.action.value,
                        entry.target,
                        entry.collection_id,
                        entry.encoded,
                    ),
                ).fetchone()
        except StorageError:
            entry.report_lost()
            raise
        if row is None:
            raise StorageError("PostgreSQL returned no id for an audit entry")
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
        if holds_nul(f.actor):
            return AuditPage([], None)
        clauses: list[str] = []
        params: list[Any] = []
        if f.actor is not None:
            clauses.append("actor = %s")
            params.append(f.actor)
        if f.target is not None and f.needle is not None:
            clause, named = _concerning(f.target, f.needle)
            clauses.append(clause)
            params += named
        if f.action is not None:
            clauses.append("action = %s")
            params.append(f.action.value)
        if f.before is not None:
            clauses.append("id < %s")
            params.append(f.before)
        if f.since is not None:
            clauses.append("at >= %s")
            params.append(f.since)
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        with self._tables.transaction() as conn:
            rows = conn.execute(
                "SELECT id, at, actor, action, target, collection_id, details"
                f" FROM {_TABLE} {where} ORDER BY id DESC LIMIT %s",
                (*params, f.limit + 1),
            ).fetchall()
        return f.page(rows)

    def redact(self, person_id: str) -> int:
        """The old row versions stay in the table's files until a VACUUM reuses their space:
        :meth:`purge_deleted`, which forgetting runs after this."""
        clause, named = _concerning(person_id, audit.redaction_needle(person_id))
        with self._tables.transaction() as conn:
            rows = conn.execute(
                f"SELECT id, target, details FROM {_TABLE} WHERE {clause} FOR UPDATE", named
            ).fetchall()
            for entry_id, target, details in rows:
                conn.execute(
                    f"UPDATE {_TABLE} SET target = %s, details = %s WHERE id = %s",
                    (*audit.redacted(target, details, person_id), entry_id),
                )
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
        return audit.record_forget(
            self, actor, person_id, also=also, collection_id=collection_id, details=details
        )

    def purge_deleted(self) -> bool:
        """A plain VACUUM of the table; False: until a VACUUM FULL (the operator's call: an
        exclusive lock) PostgreSQL's files may still hold the ids redaction replaced."""
        self._tables.vacuum()
        return False

    def close(self) -> None:
        self._tables.close()


def _concerning(target: str, needle: str) -> tuple[str, list[str]]:
    """The condition (and its parameters) for entries concerning ``target``: as their target,
    or named in their details (``needle``, ``target`` as JSON). A target holding NUL is no
    entry's, but details may name it (JSON escapes it): then only they are searched."""
    if holds_nul(target):
        return "strpos(details, %s) > 0", [needle]
    return "(target = %s OR strpos(details, %s) > 0)", [target, needle]

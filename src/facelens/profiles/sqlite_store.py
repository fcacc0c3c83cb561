"""Profiles in SQLite: one JSON text column per item, in the same file as the collections.

WAL mode lets the recognizer read profiles while the CLI writes them. One
connection per store guarded by a lock: profile reads are sub-millisecond,
so a pool would buy nothing.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from facelens.pagination import keyset_page
from facelens.profiles.types import (
    Profile,
    ProfilePage,
    check_profile_id,
    make_item,
    stored_item,
)
from facelens.sqlite import SqliteDatabase

_SCHEMA = """
CREATE TABLE IF NOT EXISTS profiles (
    profile_id TEXT PRIMARY KEY,
    item TEXT NOT NULL,
    updated_at TEXT NOT NULL
)
"""
_SCOPE = "profiles"


class SQLiteProfileStore:
    """:class:`~facelens.profiles.store.ProfileStore` on one SQLite file (or ``:memory:``)."""

    def __init__(self, path: str) -> None:
        self._db = SqliteDatabase(path, schema=_SCHEMA, what="The profile store")

    def put(self, profile_id: str, attributes: Mapping[str, Any]) -> Profile:
        item = make_item(profile_id, attributes)
        now = datetime.now(UTC)
        with self._db.transaction() as conn:
            conn.execute(
                "INSERT OR REPLACE INTO profiles VALUES (?, ?, ?)",
                (profile_id, json.dumps(item, ensure_ascii=False), now.isoformat()),
            )
        return Profile(profile_id, item, now)

    def update(self, profile_id: str, attributes: Mapping[str, Any]) -> Profile:
        check_profile_id(profile_id)
        with self._db.transaction():
            current = self.get(profile_id)
            merged = {**(current.item if current else {}), **attributes}
            return self.put(profile_id, merged)

    def get(self, profile_id: str) -> Profile | None:
        check_profile_id(profile_id)
        with self._db.transaction() as conn:
            row = conn.execute(
                "SELECT profile_id, item, updated_at FROM profiles WHERE profile_id = ?",
                (profile_id,),
            ).fetchone()
        return None if row is None else _profile(row)

    def delete(self, profile_id: str) -> bool:
        check_profile_id(profile_id)
        with self._db.transaction() as conn:
            cursor = conn.execute("DELETE FROM profiles WHERE profile_id = ?", (profile_id,))
        return cursor.rowcount > 0

    def list(self, *, max_results: int = 100, next_token: str | None = None) -> ProfilePage:
        sql = "SELECT profile_id, item, updated_at FROM profiles WHERE 1"
        with self._db.transaction() as conn:
            rows, token = keyset_page(conn, sql, [], "profile_id", max_results, next_token, _SCOPE)
        return ProfilePage(tuple(_profile(r) for r in rows), token)

    def purge_deleted(self) -> bool:
        """Empties the WAL, so deleted profiles (already zeroed in the file) are in no file;
        False when another connection's read kept part of it."""
        return self._db.checkpoint()

    def close(self) -> None:
        self._db.close()


def _profile(row: tuple[str, str, str]) -> Profile:
    return Profile(row[0], stored_item(row[0], row[1]), datetime.fromisoformat(row[2]))

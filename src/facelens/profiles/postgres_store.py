"""Profiles in PostgreSQL (psycopg 3): JSONB items, for recognizers on several hosts.

PutItem is one ``INSERT ... ON CONFLICT DO UPDATE``; UpdateItem merges in the
database (``item || new``), so two hosts updating different attributes of
one profile do not overwrite each other.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from psycopg.types.json import Jsonb

from facelens.errors import InvalidParameterException, StorageError
from facelens.pagination import decode_token, encode_token
from facelens.postgres import PostgresConnection, Psycopg, create_missing_tables
from facelens.profiles.types import (
    MAX_ITEM_BYTES,
    Profile,
    ProfilePage,
    check_profile_id,
    make_item,
    served_item,
)

_TABLE = "facelens_profiles"
_SCHEMA = (
    f"""CREATE TABLE IF NOT EXISTS {_TABLE} (
    profile_id TEXT PRIMARY KEY,
    item JSONB NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL
)""",
)
SCHEMA_LOCK = 0x66_6C_70_72_6F_66_6C_31
"""``pg_advisory_xact_lock`` key ("flprofl1") held while the profile table is created."""
_SCOPE = "profiles"
_COLUMNS = "profile_id, item, updated_at"


class PostgresProfileStore:
    """:class:`~facelens.profiles.store.ProfileStore` on PostgreSQL; connects on first use.

    Its connection is :class:`facelens.postgres.PostgresConnection` (how it
    opens, lives and fails: one that died while idle is replaced once,
    silently), serialised by a lock: one store serves a process's threads.
    ``connect_timeout``: seconds libpq waits for the server.
    """

    def __init__(self, url: str, *, connect_timeout: int = 5) -> None:
        self._lock = threading.Lock()
        self._db = PostgresConnection(
            url,
            prepare=_ensure_table,
            what="The profile store",
            connect_timeout_s=connect_timeout,
        )

    def put(self, profile_id: str, attributes: Mapping[str, Any]) -> Profile:
        item = make_item(profile_id, attributes)
        with self._transaction() as conn:
            row = conn.execute(
                f"INSERT INTO {_TABLE} VALUES (%s, %s, %s) ON CONFLICT (profile_id)"
                f" DO UPDATE SET item = EXCLUDED.item, updated_at = EXCLUDED.updated_at"
                f" RETURNING {_COLUMNS}",
                (profile_id, Jsonb(item), datetime.now(UTC)),
            ).fetchone()
        return _profile(row)

    def update(self, profile_id: str, attributes: Mapping[str, Any]) -> Profile:
        """Merges in the database; the merged item is held to the 400 KB limit there too
        (jsonb's text is ``json.dumps``' layout: the same bytes :func:`make_item` counts)."""
        item = make_item(profile_id, attributes)
        with self._transaction() as conn:
            row = conn.execute(
                f"INSERT INTO {_TABLE} VALUES (%s, %s, %s) ON CONFLICT (profile_id)"
                f" DO UPDATE SET item = {_TABLE}.item || EXCLUDED.item,"
                f" updated_at = EXCLUDED.updated_at"
                f" WHERE octet_length(({_TABLE}.item || EXCLUDED.item)::text) <= %s"
                f" RETURNING {_COLUMNS}",
                (profile_id, Jsonb(item), datetime.now(UTC), MAX_ITEM_BYTES),
            ).fetchone()
        if row is None:  # the WHERE refused the merge: nothing was written
            raise InvalidParameterException(
                f"The merged item would be over {MAX_ITEM_BYTES} bytes of JSON"
            )
        return _profile(row)

    def get(self, profile_id: str) -> Profile | None:
        check_profile_id(profile_id)
        with self._transaction() as conn:
            row = conn.execute(
                f"SELECT {_COLUMNS} FROM {_TABLE} WHERE profile_id = %s", (profile_id,)
            ).fetchone()
        return None if row is None else _profile(row)

    def delete(self, profile_id: str) -> bool:
        check_profile_id(profile_id)
        with self._transaction() as conn:
            cursor = conn.execute(f"DELETE FROM {_TABLE} WHERE profile_id = %s", (profile_id,))
        return cursor.rowcount > 0

    def list(self, *, max_results: int = 100, next_token: str | None = None) -> ProfilePage:
        if max_results < 1:
            raise InvalidParameterException("MaxResults must be at least 1")
        after = "" if next_token is None else decode_token(next_token, scope=_SCOPE, key="id")
        with self._transaction() as conn:
            # COLLATE "C": byte order, the same order SQLite's keyset pages walk.
            rows = conn.execute(
                f'SELECT {_COLUMNS} FROM {_TABLE} WHERE profile_id COLLATE "C" > %s'
                f' ORDER BY profile_id COLLATE "C" LIMIT %s',
                (after, max_results + 1),
            ).fetchall()
        token = None
        if len(rows) > max_results:
            rows = rows[:max_results]
            token = encode_token(_SCOPE, "id", rows[-1][0])
        return ProfilePage(tuple(_profile(r) for r in rows), token)

    def purge_deleted(self) -> bool:
        """A plain VACUUM of the table; False: until a VACUUM FULL (the operator's call: an
        exclusive lock) PostgreSQL's files may still hold deleted profiles' bytes."""
        with self._lock:
            self._db.run(f"VACUUM {_TABLE}")
        return False

    def close(self) -> None:
        with self._lock:
            self._db.close()

    @contextmanager
    def _transaction(self) -> Iterator[Psycopg]:
        """BEGIN ... COMMIT under the lock, rolled back on any exception."""
        with self._lock, self._db.transaction() as conn:
            yield conn


def _ensure_table(conn: Psycopg) -> None:
    create_missing_tables(conn, tables=(_TABLE,), schema=_SCHEMA, lock=SCHEMA_LOCK)


def _profile(row: tuple[Any, ...] | None) -> Profile:
    if row is None:
        raise StorageError("PostgreSQL returned no row for a write")
    return Profile(row[0], served_item(row[0], row[1]), row[2])

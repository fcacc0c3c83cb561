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
from typing import TYPE_CHECKING, Any

from facelens.errors import InvalidParameterException, ServiceUnavailableException, StorageError
from facelens.pagination import decode_token, encode_token
from facelens.profiles.types import (
    MAX_ITEM_BYTES,
    Profile,
    ProfilePage,
    check_profile_id,
    make_item,
    served_item,
)

if TYPE_CHECKING:
    import psycopg

_SCHEMA = """
CREATE TABLE IF NOT EXISTS facelens_profiles (
    profile_id TEXT PRIMARY KEY,
    item JSONB NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL
)
"""
_SCOPE = "profiles"
_COLUMNS = "profile_id, item, updated_at"


class PostgresProfileStore:
    """:class:`~facelens.profiles.store.ProfileStore` on PostgreSQL; connects on first use."""

    def __init__(self, url: str, *, connect_timeout: int = 5) -> None:
        self._url = url
        self._connect_timeout = connect_timeout
        self._lock = threading.Lock()
        self._conn: psycopg.Connection[tuple[Any, ...]] | None = None

    def put(self, profile_id: str, attributes: Mapping[str, Any]) -> Profile:
        from psycopg.types.json import Jsonb

        item = make_item(profile_id, attributes)
        with self._cursor() as cur:
            cur.execute(
                f"INSERT INTO facelens_profiles VALUES (%s, %s, %s) ON CONFLICT (profile_id)"
                f" DO UPDATE SET item = EXCLUDED.item, updated_at = EXCLUDED.updated_at"
                f" RETURNING {_COLUMNS}",
                (profile_id, Jsonb(item), datetime.now(UTC)),
            )
            return _profile(cur.fetchone())

    def update(self, profile_id: str, attributes: Mapping[str, Any]) -> Profile:
        """Merges in the database; the merged item is held to the 400 KB limit there too
        (jsonb's text is ``json.dumps``' layout: the same bytes :func:`make_item` counts)."""
        from psycopg.types.json import Jsonb

        item = make_item(profile_id, attributes)
        with self._cursor() as cur:
            cur.execute(
                f"INSERT INTO facelens_profiles VALUES (%s, %s, %s) ON CONFLICT (profile_id)"
                f" DO UPDATE SET item = facelens_profiles.item || EXCLUDED.item,"
                f" updated_at = EXCLUDED.updated_at"
                f" WHERE octet_length((facelens_profiles.item || EXCLUDED.item)::text) <= %s"
                f" RETURNING {_COLUMNS}",
                (profile_id, Jsonb(item), datetime.now(UTC), MAX_ITEM_BYTES),
            )
            row = cur.fetchone()
        if row is None:  # the WHERE refused the merge: nothing was written
            raise InvalidParameterException(
                f"The merged item would be over {MAX_ITEM_BYTES} bytes of JSON"
            )
        return _profile(row)

    def get(self, profile_id: str) -> Profile | None:
        check_profile_id(profile_id)
        with self._cursor() as cur:
            cur.execute(
                f"SELECT {_COLUMNS} FROM facelens_profiles WHERE profile_id = %s", (profile_id,)
            )
            row = cur.fetchone()
        return None if row is None else _profile(row)

    def delete(self, profile_id: str) -> bool:
        check_profile_id(profile_id)
        with self._cursor() as cur:
            cur.execute("DELETE FROM facelens_profiles WHERE profile_id = %s", (profile_id,))
            return cur.rowcount > 0

    def list(self, *, max_results: int = 100, next_token: str | None = None) -> ProfilePage:
        if max_results < 1:
            raise InvalidParameterException("MaxResults must be at least 1")
        after = "" if next_token is None else decode_token(next_token, scope=_SCOPE, key="id")
        with self._cursor() as cur:
            # COLLATE "C": byte order, the same order SQLite's keyset pages walk.
            cur.execute(
                f'SELECT {_COLUMNS} FROM facelens_profiles WHERE profile_id COLLATE "C" > %s'
                f' ORDER BY profile_id COLLATE "C" LIMIT %s',
                (after, max_results + 1),
            )
            rows = cur.fetchall()
        token = None
        if len(rows) > max_results:
            rows = rows[:max_results]
            token = encode_token(_SCOPE, "id", rows[-1][0])
        return ProfilePage(tuple(_profile(r) for r in rows), token)

    def purge_deleted(self) -> bool:
        """A plain VACUUM of the table; False: until a VACUUM FULL (the operator's call: an
        exclusive lock) PostgreSQL's files may still hold deleted profiles' bytes."""
        import psycopg

        with self._lock:
            try:
                self._connect().execute("VACUUM facelens_profiles")
            except psycopg.OperationalError as exc:
                self._drop_connection()
                raise ServiceUnavailableException(f"PostgreSQL is unreachable: {exc}") from exc
            except psycopg.Error as exc:
                raise StorageError(f"The PostgreSQL profile store failed: {exc}") from exc
        return False

    def close(self) -> None:
        with self._lock:
            conn, self._conn = self._conn, None
            if conn is not None:
                conn.close()

    @contextmanager
    def _cursor(self) -> Iterator[psycopg.Cursor[tuple[Any, ...]]]:
        import psycopg

        with self._lock:
            try:
                conn = self._connect()
                with conn.transaction(), conn.cursor() as cur:
                    yield cur
            except psycopg.OperationalError as exc:
                self._drop_connection()
                raise ServiceUnavailableException(f"PostgreSQL is unreachable: {exc}") from exc
            except psycopg.Error as exc:
                raise StorageError(f"The PostgreSQL profile store failed: {exc}") from exc

    def _connect(self) -> psycopg.Connection[tuple[Any, ...]]:
        import psycopg

        if self._conn is None or self._conn.closed:
            conn = psycopg.connect(
                self._url, autocommit=True, connect_timeout=self._connect_timeout
            )
            conn.execute(_SCHEMA)
            self._conn = conn
        return self._conn

    def _drop_connection(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()


def _profile(row: tuple[Any, ...] | None) -> Profile:
    if row is None:
        raise StorageError("PostgreSQL returned no row for a write")
    return Profile(row[0], served_item(row[0], row[1]), row[2])

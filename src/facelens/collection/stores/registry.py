"""Opens the collection store named by a URL: an explicit table of schemes, no guessing."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlparse

from facelens.collection.stores.store import CollectionStore
from facelens.errors import ConfigurationError


def _sqlite(url: str, index_directory: Path | None) -> CollectionStore:
    """Saved search indexes live beside the database file, whatever ``index_directory`` says."""
    from facelens.collection.stores.sqlite import SQLiteCollectionStore

    path = url.removeprefix("sqlite://")
    # sqlite:///abs/path -> "/abs/path"; sqlite://relative.db -> "relative.db"
    if not path or path == "/":
        raise ConfigurationError(f"sqlite URL {url!r} names no file")
    return SQLiteCollectionStore(path)


def _memory(url: str, index_directory: Path | None) -> CollectionStore:
    from facelens.collection.stores.sqlite import SQLiteCollectionStore

    return SQLiteCollectionStore(":memory:")


def _postgres(url: str, index_directory: Path | None) -> CollectionStore:
    """The URL goes to libpq unchanged (both schemes are libpq's); it connects on first use.

    Saved search indexes go to a folder of ``index_directory`` per database
    (named by a hash of the URL's parameters, password left out), since
    several databases may hold collections of the same name.
    """
    from facelens.collection.stores.postgres import PostgresCollectionStore

    folder = None if index_directory is None else index_directory / database_key(url)
    return PostgresCollectionStore(url, index_directory=folder)


def database_key(url: str) -> str:
    """A short, stable name for the database ``url`` reaches (its password does not count)."""
    from psycopg.conninfo import conninfo_to_dict

    try:
        params = {k: str(v) for k, v in conninfo_to_dict(url).items() if k != "password"}
    except Exception as exc:  # psycopg raises its ProgrammingError for a malformed URL
        raise ConfigurationError(f"unreadable PostgreSQL URL: {exc}") from exc
    return hashlib.sha256(json.dumps(params, sort_keys=True).encode()).hexdigest()[:16]


STORES: dict[str, Callable[[str, Path | None], CollectionStore]] = {
    "sqlite": _sqlite,
    "memory": _memory,
    "postgresql": _postgres,
    "postgres": _postgres,
}


def open_store(url: str, *, index_directory: Path | None = None) -> CollectionStore:
    """The store for ``url``: 'sqlite:///path.db', 'memory://' or 'postgresql://user@host/db'.

    ``index_directory``: where a PostgreSQL store saves its search indexes
    (a local cache; None: not saved). A SQLite store saves them beside its file.
    """
    scheme = urlparse(url).scheme
    factory = STORES.get(scheme)
    if factory is None:
        known = ", ".join(f"{s}://" for s in sorted(STORES))
        raise ConfigurationError(f"unknown collections URL scheme in {url!r}; known: {known}")
    return factory(url, index_directory)

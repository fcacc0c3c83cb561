"""Opens the collection store named by a URL: an explicit table of schemes, no guessing."""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import urlparse

from facelens.collection.store import CollectionStore
from facelens.errors import ConfigurationError


def _sqlite(url: str) -> CollectionStore:
    from facelens.collection.sqlite_store import SQLiteCollectionStore

    path = url.removeprefix("sqlite://")
    # sqlite:///abs/path -> "/abs/path"; sqlite://relative.db -> "relative.db"
    if not path or path == "/":
        raise ConfigurationError(f"sqlite URL {url!r} names no file")
    return SQLiteCollectionStore(path)


def _memory(url: str) -> CollectionStore:
    from facelens.collection.sqlite_store import SQLiteCollectionStore

    return SQLiteCollectionStore(":memory:")


def _postgres(url: str) -> CollectionStore:
    """The URL goes to libpq unchanged (both schemes are libpq's); it connects on first use."""
    from facelens.collection.postgres_store import PostgresCollectionStore

    return PostgresCollectionStore(url)


STORES: dict[str, Callable[[str], CollectionStore]] = {
    "sqlite": _sqlite,
    "memory": _memory,
    "postgresql": _postgres,
    "postgres": _postgres,
}


def open_store(url: str) -> CollectionStore:
    """The store for ``url``: 'sqlite:///path.db', 'memory://' or 'postgresql://user@host/db'."""
    scheme = urlparse(url).scheme
    factory = STORES.get(scheme)
    if factory is None:
        known = ", ".join(f"{s}://" for s in sorted(STORES))
        raise ConfigurationError(f"unknown collections URL scheme in {url!r}; known: {known}")
    return factory(url)

"""Opens the profile store named by a URL: an explicit table of schemes, no guessing."""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import urlparse

from facelens.errors import ConfigurationError
from facelens.profiles.store import ProfileStore


def _sqlite(url: str) -> ProfileStore:
    from facelens.profiles.sqlite_store import SQLiteProfileStore

    path = url.removeprefix("sqlite://")
    if not path or path == "/":
        raise ConfigurationError(f"sqlite URL {url!r} names no file")
    return SQLiteProfileStore(path)


def _memory(url: str) -> ProfileStore:
    from facelens.profiles.sqlite_store import SQLiteProfileStore

    return SQLiteProfileStore(":memory:")


def _postgres(url: str) -> ProfileStore:
    from facelens.profiles.postgres_store import PostgresProfileStore

    return PostgresProfileStore(url)


def _dynamodb(url: str) -> ProfileStore:
    from facelens.profiles.dynamodb_store import DynamoDBProfileStore

    return DynamoDBProfileStore.from_url(url)


STORES: dict[str, Callable[[str], ProfileStore]] = {
    "sqlite": _sqlite,
    "memory": _memory,
    "postgresql": _postgres,
    "postgres": _postgres,
    "dynamodb": _dynamodb,
}


def open_profile_store(url: str) -> ProfileStore:
    """The store for ``url``: 'sqlite:///path.db', 'memory://', 'postgresql://...' or
    'dynamodb://table?region=...&endpoint_url=...&key=FaceId'."""
    factory = STORES.get(urlparse(url).scheme)
    if factory is None:
        known = ", ".join(f"{s}://" for s in sorted(STORES))
        raise ConfigurationError(f"unknown profiles URL scheme in {url!r}; known: {known}")
    return factory(url)

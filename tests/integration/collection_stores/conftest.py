"""One fresh database per test, on each back end in turn: SQLite, then PostgreSQL.

Why parametrized fixtures: the semantics (errors, pagination tokens, cache
coherence between instances) must not depend on the database, so every
test that asks for ``connect`` or ``store`` runs once per back end, without
a copy of it per back end. PostgreSQL comes from tests/servers/postgres.py
(skipped without its binaries on a laptop, failed in CI).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from facelens.collection.stores.postgres import PostgresCollectionStore
from facelens.collection.stores.sqlite import SQLiteCollectionStore
from tests.integration.collection_stores.helpers import MODEL, AnyStore, Connect


@pytest.fixture(params=["sqlite", "postgres"])
def connect(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Connect]:
    """Opens store instances on one fresh database of the back end; closes them all after."""
    opened: list[AnyStore] = []
    if request.param == "sqlite":
        path = str(tmp_path / "collections.db")

        def open_one() -> AnyStore:
            opened.append(SQLiteCollectionStore(path))
            return opened[-1]
    else:
        url: str = request.getfixturevalue("postgres_db")

        def open_one() -> AnyStore:
            opened.append(PostgresCollectionStore(url))
            return opened[-1]

    yield open_one
    for store in opened:
        store.close()


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(7)


@pytest.fixture
def store(connect: Connect) -> AnyStore:
    """A store instance holding one empty collection, "c"."""
    s = connect()
    s.create_collection("c", face_model_version=MODEL)
    return s

"""SQLiteCollectionStore: what only SQLite has (one file shared by processes, raw corruption).

The contract every back end shares (Rekognition semantics, pagination,
cache coherence, threads) runs on SQLite and PostgreSQL alike in
tests/integration/collection_stores/.
"""

from __future__ import annotations

import multiprocessing
import sqlite3
import threading
from pathlib import Path

import numpy as np
import pytest

from facelens.collection.stores.sqlite import SCHEMA_VERSION, SQLiteCollectionStore
from facelens.errors import StorageError
from tests.integration.collection_stores.helpers import MODEL, add, new_face, unit, walk_faces


def _add_in_process(path: str, prefix: str, seed: int, barrier: threading.Barrier) -> None:
    """Runs in a spawned process: 200 single-face transactions, racing the other worker."""
    store = SQLiteCollectionStore(path)
    vectors = unit(np.random.default_rng(seed), 200)
    barrier.wait()
    for i, vector in enumerate(vectors):
        store.add_faces("shared", [new_face(f"{prefix}{i:04d}", vector)])
        if i % 50 == 0:  # searching in between keeps this process's cache in play
            store.search_faces("shared", vector, limit=1, max_distance=2.0)
    store.close()


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(7)


@pytest.fixture
def db(tmp_path: Path) -> str:
    return str(tmp_path / "collections.db")


def test_memory_stores_are_private() -> None:
    a = SQLiteCollectionStore(":memory:")
    b = SQLiteCollectionStore(":memory:")
    a.create_collection("c", face_model_version=MODEL)
    assert b.list_collections(max_results=10).collection_ids == []
    a.close()
    b.close()


@pytest.mark.parametrize(
    "corruption",
    [
        "UPDATE faces SET embedding_dim = 64 WHERE face_id = 'f0013'",  # a foreign blob
        "UPDATE faces SET embedding = zeroblob(508) WHERE face_id = 'f0013'",  # truncated
        "UPDATE faces SET embedding = printf('%.*c', 512, 'x') WHERE face_id = 'f0013'",  # text
        "UPDATE faces SET embedding_dim = 0",
    ],
)
def test_corrupt_embeddings_are_refused_on_rebuild(
    db: str, rng: np.random.Generator, monkeypatch: pytest.MonkeyPatch, corruption: str
) -> None:
    monkeypatch.setattr("facelens.collection.stores.sql.READ_ROWS", 4)  # f0013: a late read
    s = SQLiteCollectionStore(db)
    s.create_collection("c", face_model_version=MODEL)
    vectors = unit(rng, 20)
    add(s, "c", "f", vectors)
    assert s.get_embeddings("c", ["f0013"])["f0013"].flags.writeable
    raw = sqlite3.connect(db)
    raw.execute(corruption)
    raw.commit()
    raw.close()
    with pytest.raises(StorageError, match="recorded dimension"):
        s.search_faces("c", vectors[0], limit=1, max_distance=2.0)
    with pytest.raises(StorageError, match="recorded dimension"):
        s.get_embeddings("c", ["f0013"])
    s.close()


def test_the_file_is_wal_with_our_schema_version(db: str) -> None:
    s = SQLiteCollectionStore(db)
    s.create_collection("c", face_model_version=MODEL)
    s.close()
    raw = sqlite3.connect(db)
    assert raw.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert raw.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    raw.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    raw.close()
    newer = SQLiteCollectionStore(db)
    with pytest.raises(StorageError, match="newer"):
        newer.describe_collection("c")
    newer.close()


def test_two_processes_adding_at_once_lose_nothing(db: str) -> None:
    setup = SQLiteCollectionStore(db)
    setup.create_collection("shared", face_model_version=MODEL)
    setup.close()
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(2)
    workers = [
        ctx.Process(target=_add_in_process, args=(db, prefix, seed, barrier))
        for prefix, seed in (("p", 1), ("q", 2))
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=120)
        assert worker.exitcode == 0

    third = SQLiteCollectionStore(db)
    listed = walk_faces(third, "shared", 1000)
    assert len(listed) == len(set(listed)) == 400
    for prefix, seed in (("p", 1), ("q", 2)):
        for i, vector in enumerate(unit(np.random.default_rng(seed), 200)):
            hit = third.search_faces("shared", vector, limit=1, max_distance=2.0)[0]
            assert hit.face.face_id == f"{prefix}{i:04d}"
    third.close()


def test_sqlite_failures_become_storage_errors(tmp_path: Path, rng: np.random.Generator) -> None:
    missing_dir = SQLiteCollectionStore(str(tmp_path / "no" / "such" / "dir.db"))
    with pytest.raises(StorageError):
        missing_dir.describe_collection("c")

    db = str(tmp_path / "corrupt.db")
    s = SQLiteCollectionStore(db)
    s.create_collection("c", face_model_version=MODEL)
    add(s, "c", "f", unit(rng, 2))
    raw = sqlite3.connect(db)
    raw.execute("UPDATE faces SET embedding = x'0000' WHERE face_id = 'f0000'")
    raw.commit()
    raw.close()
    with pytest.raises(StorageError):
        s.get_embeddings("c", ["f0000"])
    with pytest.raises(StorageError):
        s.search_faces("c", unit(rng, 1)[0], limit=1, max_distance=2.0)
    s.close()

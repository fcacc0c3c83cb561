"""Saved search indexes: a restart loads them, other instances' writes are caught up.

Each test runs on SQLite (indexes beside the file) and PostgreSQL (indexes in
a local folder). The ANN threshold is lowered to 100 faces so small
collections get an inverted file, which is what the stores save. Evidence is
the cache's counters (builds, loads, catch-ups, saves), never timing.
"""

from __future__ import annotations

import shutil
import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import psycopg
import pytest

from facelens.collection.index.ann import IvfIndex
from facelens.collection.stores import postgres, sqlite
from facelens.collection.stores.postgres import PostgresCollectionStore
from facelens.collection.stores.sqlite import SQLiteCollectionStore
from tests.integration.collection_stores.helpers import MODEL, AnyStore, add, new_face, unit

THRESHOLD = 100
Open = Callable[..., AnyStore]
"""Opens another store instance on the test's database; ``saving=False``: a reference
instance that neither loads nor saves indexes (it always rebuilds)."""


@pytest.fixture(params=["sqlite", "postgres"])
def open_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Open]:
    opened: list[AnyStore] = []
    if request.param == "sqlite":
        path = str(tmp_path / "collections.db")

        def open_one(*, saving: bool = True) -> AnyStore:
            store = SQLiteCollectionStore(path, ann_threshold=THRESHOLD, save_indexes=saving)
            opened.append(store)
            return store
    else:
        url: str = request.getfixturevalue("postgres_db")

        def open_one(*, saving: bool = True) -> AnyStore:
            folder = tmp_path / "indexes" if saving else None
            store = PostgresCollectionStore(url, ann_threshold=THRESHOLD, index_directory=folder)
            opened.append(store)
            return store

    yield open_one
    for store in opened:
        store.close()


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(11)


def answers(store: AnyStore, queries: np.ndarray) -> list[Any]:
    """Every face and user search answer for ``queries``, distances rounded (1e-5)."""
    out: list[Any] = []
    for q in queries:
        faces = store.search_faces("c", q, limit=5, max_distance=2.0)
        users = store.search_users("c", q, limit=5, max_distance=2.0)
        out.append([(h.face, round(h.distance, 5)) for h in faces])
        out.append([(h.user, round(h.distance, 5)) for h in users])
    return out


def saved_file(store: AnyStore) -> Path:
    path = store._indexes.path("c")  # white box: where this store saves collection "c"
    assert path is not None
    return path


def test_a_restart_loads_the_saved_index_instead_of_building_it(
    open_store: Open, rng: np.random.Generator
) -> None:
    first = open_store()
    first.create_collection("c", face_model_version=MODEL)
    vectors = unit(rng, 300)
    add(first, "c", "f", vectors)
    first.create_user("c", "u")
    first.associate_faces("c", "u", ["f0001", "f0002"])
    queries = np.concatenate([vectors[:20], unit(rng, 5)])
    expected = answers(first, queries)
    assert (first._indexes.stats.builds, first._indexes.stats.saves) == (1, 1)
    assert saved_file(first).exists()
    first.close()

    restarted = open_store()
    assert answers(restarted, queries) == expected
    stats = restarted._indexes.stats
    assert (stats.builds, stats.loads, stats.catch_ups, stats.saves) == (0, 1, 0, 0)
    cached = restarted._indexes.cached("c")
    assert cached is not None
    assert isinstance(cached[1].faces, IvfIndex)


def test_writes_by_another_instance_are_caught_up_not_rebuilt(
    open_store: Open, rng: np.random.Generator
) -> None:
    searcher, writer = open_store(), open_store()  # the recognizer, and the CLI or API
    searcher.create_collection("c", face_model_version=MODEL)
    vectors = unit(rng, 400)
    add(searcher, "c", "f", vectors[:300])
    searcher.create_user("c", "alice")
    searcher.create_user("c", "bob")
    searcher.associate_faces("c", "alice", ["f0000", "f0001", "f0002"])
    searcher.associate_faces("c", "bob", ["f0003", "f0004"])
    queries = np.concatenate([vectors[:40:2], vectors[300::10], unit(rng, 5)])
    answers(searcher, queries)  # built and saved here
    assert searcher._indexes.stats.builds == 1

    add(writer, "c", "g", vectors[300:])  # added
    writer.delete_faces("c", ["f0010", "f0011", "f0003"])  # deleted (one of bob's)
    writer.associate_faces("c", "alice", ["f0004", "g0005"])  # re-assigned from bob, and new
    writer.disassociate_faces("c", "alice", ["f0000"])
    writer.delete_faces("c", ["f0020"])
    writer.add_faces("c", [new_face("f0020", vectors[399])])  # the same id, another vector
    writer.create_user("c", "carol")
    writer.associate_faces("c", "carol", ["f0020"])
    writer.delete_user("c", "bob")

    reference = answers(open_store(saving=False), queries)  # rebuilt from the database
    assert answers(searcher, queries) == reference
    stats = searcher._indexes.stats
    assert (stats.builds, stats.catch_ups) == (1, 1)
    assert (
        stats.caught_up_faces == 103 + 4
    )  # rows written since (g*, f0000, f0004, f0020), deletions

    restarted = open_store()  # loads the file saved before those writes, then catches up
    assert answers(restarted, queries) == reference
    stats = restarted._indexes.stats
    assert (stats.builds, stats.loads, stats.catch_ups) == (0, 1, 1)


@pytest.mark.parametrize("damage", ["truncate", "flip", "garbage", "foreign", "recreated"])
def test_an_unusable_or_foreign_saved_index_is_ignored_and_replaced(
    open_store: Open, rng: np.random.Generator, tmp_path: Path, damage: str
) -> None:
    first = open_store()
    for collection in ("c", "other"):
        first.create_collection(collection, face_model_version=MODEL)
    vectors = unit(rng, 300)
    add(first, "c", "f", vectors[:200])
    add(first, "other", "o", vectors[100:])
    queries = vectors[::15]
    answers(first, queries)
    first.search_faces("other", vectors[0], limit=1, max_distance=2.0)
    path, other = saved_file(first), first._indexes.path("other")
    assert other is not None
    first.close()
    content = path.read_bytes()
    if damage == "truncate":
        path.write_bytes(content[: len(content) // 2])
    elif damage == "flip":
        path.write_bytes(content[:4000] + bytes([content[4000] ^ 0x40]) + content[4001:])
    elif damage == "garbage":
        path.write_bytes(b"\x00" * 1000)
    elif damage == "foreign":  # another collection's index where this one's belongs
        shutil.copyfile(other, path)
    else:  # the collection was deleted and created again by a process that saves nothing
        plain = open_store(saving=False)
        plain.delete_collection("c")
        plain.create_collection("c", face_model_version=MODEL)
        add(plain, "c", "f", vectors[:200])

    restarted = open_store()
    assert answers(restarted, queries) == answers(open_store(saving=False), queries)
    stats = restarted._indexes.stats
    assert (stats.builds, stats.loads, stats.refused_files, stats.saves) == (1, 0, 1, 1)
    again = open_store()  # the replacement is a good one
    again.search_faces("c", vectors[0], limit=1, max_distance=2.0)
    assert (again._indexes.stats.builds, again._indexes.stats.loads) == (0, 1)


def test_an_index_behind_the_deletion_log_is_rebuilt(
    open_store: Open, rng: np.random.Generator, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = open_store()
    first.create_collection("c", face_model_version=MODEL)
    vectors = unit(rng, 300)
    add(first, "c", "f", vectors)
    answers(first, vectors[:5])  # saved at this generation
    first.close()
    # keep deletions 2 generations only
    monkeypatch.setattr("facelens.collection.stores.sql.DELETION_LOG_GENERATIONS", 2)
    writer = open_store()
    for face_id in ("f0001", "f0002", "f0003", "f0004"):
        writer.delete_faces("c", [face_id])

    restarted = open_store()
    assert answers(restarted, vectors[:10]) == answers(open_store(saving=False), vectors[:10])
    stats = restarted._indexes.stats
    assert (stats.builds, stats.loads) == (1, 0)


def test_saves_are_amortised_and_happen_on_close(
    open_store: Open, rng: np.random.Generator
) -> None:
    store = open_store()
    store._indexes.save_min_changes = 20  # white box: a save after 20 changes, not 1000
    store.create_collection("c", face_model_version=MODEL)
    vectors = unit(rng, 400)
    add(store, "c", "f", vectors[:300])
    store.search_faces("c", vectors[0], limit=1, max_distance=2.0)
    assert store._indexes.stats.saves == 1  # after the build
    for i in range(19):
        store.add_faces("c", [new_face(f"g{i:04d}", vectors[300 + i])])
    assert store._indexes.stats.saves == 1  # 19 changes: not yet
    store.add_faces("c", [new_face("g0019", vectors[319])])
    assert store._indexes.stats.saves == 2
    store.add_faces("c", [new_face("g0020", vectors[320])])
    store.close()
    assert store._indexes.stats.saves == 3  # the one unsaved change, on close

    restarted = open_store()
    hit = restarted.search_faces("c", vectors[320], limit=1, max_distance=2.0)[0]
    assert hit.face.face_id == "g0020"
    assert (restarted._indexes.stats.loads, restarted._indexes.stats.catch_ups) == (1, 0)


ROW = ("c", "old", "img", None, 0.5, 0.5, 0.1, 0.1, 99.0, None, "2024-01-01T00:00:00+00:00")
"""A face as schema 1 stored it (before its embedding): no generation column yet."""


def check_migrated(first: AnyStore, second: AnyStore, old: np.ndarray, new: np.ndarray) -> None:
    """The old face is found; a second instance's writes reach the first by catching up."""
    hit = first.search_faces("c", old, limit=1, max_distance=0.1)[0]
    assert hit.face.face_id == "old"
    second.add_faces("c", [new_face("new", new)])
    second.delete_faces("c", ["old"])
    assert first.search_faces("c", old, limit=1, max_distance=0.1) == []
    assert first.search_faces("c", new, limit=1, max_distance=0.1)[0].face.face_id == "new"
    assert (first._indexes.stats.builds, first._indexes.stats.catch_ups) == (1, 1)


def test_a_schema_1_sqlite_file_is_migrated(tmp_path: Path, rng: np.random.Generator) -> None:
    old, new = unit(rng, 2)
    path = tmp_path / "v1.db"
    with sqlite3.connect(path) as conn:
        conn.executescript(V1_SQLITE)
        conn.execute("INSERT INTO collections VALUES ('c', 'm', '2024-01-01T00:00:00+00:00', 3)")
        blob = old.astype("<f4").tobytes()
        conn.execute("INSERT INTO faces VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)", (*ROW, 128, blob))
    first = SQLiteCollectionStore(str(path), ann_threshold=1)
    second = SQLiteCollectionStore(str(path), ann_threshold=1)
    check_migrated(first, second, old, new)
    for store in (first, second):
        store.close()
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == sqlite.SCHEMA_VERSION


def test_a_schema_1_postgres_database_is_migrated(
    postgres_db: str, tmp_path: Path, rng: np.random.Generator
) -> None:
    old, new = unit(rng, 2)
    with psycopg.connect(postgres_db, autocommit=True) as conn:
        for statement in V1_POSTGRES:
            conn.execute(statement)
        conn.execute("INSERT INTO facelens_collections VALUES ('c', 'm', now(), 3)")
        conn.execute(
            "INSERT INTO facelens_faces VALUES (%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s)",
            (*ROW, 128, old.astype("<f4").tobytes()),
        )
    stores = [
        PostgresCollectionStore(postgres_db, ann_threshold=1, index_directory=tmp_path / name)
        for name in ("first", "second")
    ]
    check_migrated(stores[0], stores[1], old, new)
    for store in stores:
        store.close()
    with psycopg.connect(postgres_db, autocommit=True) as conn:
        row = conn.execute("SELECT version FROM facelens_collection_schema").fetchone()
        assert row == (postgres.SCHEMA_VERSION,)


V1_SQLITE = """
CREATE TABLE collections (collection_id TEXT PRIMARY KEY, face_model_version TEXT NOT NULL,
    created_at TEXT NOT NULL, generation INTEGER NOT NULL DEFAULT 0);
CREATE TABLE faces (
    collection_id TEXT NOT NULL REFERENCES collections(collection_id) ON DELETE CASCADE,
    face_id TEXT NOT NULL, image_id TEXT NOT NULL, external_image_id TEXT,
    box_width REAL NOT NULL, box_height REAL NOT NULL, box_left REAL NOT NULL,
    box_top REAL NOT NULL, confidence REAL NOT NULL, user_id TEXT, indexed_at TEXT NOT NULL,
    embedding_dim INTEGER NOT NULL, embedding BLOB NOT NULL,
    PRIMARY KEY (collection_id, face_id));
CREATE INDEX faces_by_user ON faces(collection_id, user_id);
CREATE TABLE users (
    collection_id TEXT NOT NULL REFERENCES collections(collection_id) ON DELETE CASCADE,
    user_id TEXT NOT NULL, created_at TEXT NOT NULL, PRIMARY KEY (collection_id, user_id));
PRAGMA user_version = 1;
"""
V1_POSTGRES = (
    "CREATE TABLE facelens_collection_schema (version INTEGER NOT NULL)",
    "INSERT INTO facelens_collection_schema VALUES (1)",
    """CREATE TABLE facelens_collections (
    collection_id TEXT COLLATE "C" PRIMARY KEY, face_model_version TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL, generation BIGINT NOT NULL DEFAULT 0)""",
    """CREATE TABLE facelens_faces (
    collection_id TEXT COLLATE "C" NOT NULL
        REFERENCES facelens_collections(collection_id) ON DELETE CASCADE,
    face_id TEXT COLLATE "C" NOT NULL, image_id TEXT NOT NULL, external_image_id TEXT,
    box_width DOUBLE PRECISION NOT NULL, box_height DOUBLE PRECISION NOT NULL,
    box_left DOUBLE PRECISION NOT NULL, box_top DOUBLE PRECISION NOT NULL,
    confidence DOUBLE PRECISION NOT NULL, user_id TEXT COLLATE "C",
    indexed_at TIMESTAMPTZ NOT NULL, embedding_dim INTEGER NOT NULL, embedding BYTEA NOT NULL,
    PRIMARY KEY (collection_id, face_id))""",
    "CREATE INDEX facelens_faces_by_user ON facelens_faces(collection_id, user_id)",
    """CREATE TABLE facelens_users (
    collection_id TEXT COLLATE "C" NOT NULL
        REFERENCES facelens_collections(collection_id) ON DELETE CASCADE,
    user_id TEXT COLLATE "C" NOT NULL, created_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (collection_id, user_id))""",
)

"""Face sources and re-embedding in every collection store (SQLite, then PostgreSQL).

The store keeps a face's source (its crop, :mod:`facelens.collection.sources`)
in the transaction that stores the face and deletes it with the face, and
swaps a whole collection's vectors and model version in one transaction
(``replace_embeddings``, what ``facelens collections reindex`` ends with).
Sources here are small synthetic JPEGs: what a store does with them does not
depend on the pixels.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import cv2
import numpy as np
import psycopg
import pytest

from facelens.collection.models import NewFace
from facelens.collection.sources import FaceSource
from facelens.collection.stores import postgres, sqlite
from facelens.collection.stores.postgres import PostgresCollectionStore
from facelens.collection.stores.sqlite import SQLiteCollectionStore
from facelens.engine.types import Landmarks, Point
from facelens.errors import ConflictException, InvalidParameterException
from facelens.values.boxes import PixelBox
from tests.integration.collection_stores.helpers import (
    BOX,
    MODEL,
    AnyStore,
    Connect,
    new_face,
    unit,
)

NEW_MODEL = "test-model-2"


def source(seed: int) -> FaceSource:
    """A 40x48 noise JPEG with made-up geometry (each seed its own bytes)."""
    pixels = np.random.default_rng(seed).integers(0, 256, (48, 40, 3), dtype=np.uint8)
    ok, jpeg = cv2.imencode(".jpg", pixels, [cv2.IMWRITE_JPEG_QUALITY, 92])
    assert ok
    points = [Point(10.5 + i, 20.25 + seed % 7) for i in range(5)]
    return FaceSource(jpeg.tobytes(), 40, 48, PixelBox(5.0, 6.5, 35.0, 44.0), Landmarks(*points))


def sourced_face(face_id: str, vector: np.ndarray, seed: int) -> NewFace:
    return NewFace(face_id, "img", None, BOX, 99.0, vector, source=source(seed))


def test_sources_are_stored_with_their_faces_and_go_with_them(
    store: AnyStore, rng: np.random.Generator
) -> None:
    vectors = unit(rng, 4)
    store.add_faces(
        "c",
        [
            sourced_face("a", vectors[0], 1),
            sourced_face("b", vectors[1], 2),
            new_face("plain", vectors[2]),
        ],
    )
    found = store.get_sources("c", ["a", "b", "plain", "unknown"])
    assert found == {"a": source(1), "b": source(2)}  # bytes and geometry, exactly
    # deleted with the face, by DeleteFaces and by deleting a user with its faces
    assert store.delete_faces("c", ["a"]) == ["a"]
    assert store.get_sources("c", ["a", "b"]) == {"b": source(2)}
    store.add_faces("c", [new_face("a", vectors[0])])  # the same id again, without one
    assert store.get_sources("c", ["a"]) == {}
    # and with the collection: a new one of the same name starts without sources
    store.delete_collection("c")
    store.create_collection("c", face_model_version=MODEL)
    store.add_faces("c", [new_face("b", vectors[1])])
    assert store.get_sources("c", ["b"]) == {}


def test_a_collection_of_another_model_refuses_faces_in_the_same_transaction(
    store: AnyStore, rng: np.random.Generator
) -> None:
    [vector] = unit(rng, 1)
    store.add_faces("c", [new_face("ok", vector)], face_model_version=MODEL)
    with pytest.raises(InvalidParameterException, match="do not compare"):
        store.add_faces("c", [sourced_face("late", vector, 1)], face_model_version=NEW_MODEL)
    assert [f.face_id for f in store.list_faces("c", max_results=10).faces] == ["ok"]
    assert store.get_sources("c", ["late"]) == {}


def test_replace_embeddings_swaps_vectors_templates_and_model_in_one_go(
    connect: Connect, rng: np.random.Generator
) -> None:
    writer, reader = connect(), connect()  # reader: another process with its own index
    writer.create_collection("c", face_model_version=MODEL)
    old = unit(rng, 4)
    ids = ["f0", "f1", "f2", "gone"]
    writer.add_faces(
        "c", [sourced_face(i, v, n) for n, (i, v) in enumerate(zip(ids, old, strict=True))]
    )
    writer.create_user("c", "u")
    writer.associate_faces("c", "u", ["f0", "f1"])
    for s in (writer, reader):  # both have a current search index of the old vectors
        assert s.search_faces("c", old[2], limit=1, max_distance=0.01)[0].face.face_id == "f2"

    new = unit(rng, 3, dim=64)  # a new model, of another dimension
    writer.replace_embeddings(
        "c", dict(zip(ids[:3], new, strict=True)), face_model_version=NEW_MODEL, delete=["gone"]
    )

    info = reader.describe_collection("c")
    assert (info.face_model_version, info.face_count, info.user_count) == (NEW_MODEL, 3, 1)
    assert reader.get_sources("c", ids) == {i: source(n) for n, i in enumerate(ids[:3])}
    for s in (writer, reader):
        assert s.get_embeddings("c", ["f1"])["f1"] == pytest.approx(new[1])
        hits = s.search_faces("c", new[2], limit=4, max_distance=0.01)
        assert [h.face.face_id for h in hits] == ["f2"]
        template = (new[0] + new[1]) / np.linalg.norm(new[0] + new[1])
        [user] = s.search_users("c", template, limit=1, max_distance=0.01)
        assert (user.user.user_id, user.user.face_count) == ("u", 2)
    # the collection now takes the new model's faces only, of the new dimension
    with pytest.raises(InvalidParameterException, match="do not compare"):
        writer.add_faces("c", [new_face("x", old[0])], face_model_version=MODEL)
    writer.add_faces("c", [new_face("y", unit(rng, 1, dim=64)[0])], face_model_version=NEW_MODEL)
    assert reader.describe_collection("c").face_count == 4


def test_replace_embeddings_refuses_to_leave_a_face_of_the_old_model(
    store: AnyStore, rng: np.random.Generator
) -> None:
    old = unit(rng, 3)
    store.add_faces("c", [new_face(f"f{i}", v) for i, v in enumerate(old)])
    new = unit(rng, 3, dim=16)
    # f2 was added after the new vectors were computed: nothing changes
    with pytest.raises(ConflictException, match="1 face"):
        store.replace_embeddings(
            "c", {"f0": new[0], "f1": new[1]}, face_model_version=NEW_MODEL, delete=["nope"]
        )
    assert store.describe_collection("c").face_model_version == MODEL
    assert store.get_embeddings("c", ["f0"])["f0"] == pytest.approx(old[0])
    assert store.search_faces("c", old[0], limit=1, max_distance=0.01)[0].face.face_id == "f0"
    with pytest.raises(InvalidParameterException, match="one dimension"):
        store.replace_embeddings(
            "c", {"f0": new[0], "f1": new[1][:8], "f2": new[2]}, face_model_version=NEW_MODEL
        )
    # ids no longer there are ignored (a face deleted meanwhile)
    store.replace_embeddings(
        "c",
        {"f0": new[0], "f1": new[1], "f2": new[2], "deleted": new[0]},
        face_model_version=NEW_MODEL,
    )
    assert store.describe_collection("c").face_count == 3


def test_an_empty_collection_changes_model(store: AnyStore) -> None:
    store.replace_embeddings("c", {}, face_model_version=NEW_MODEL)
    assert store.describe_collection("c").face_model_version == NEW_MODEL


# -- stores made before sources existed get the table when opened --


def test_a_schema_2_sqlite_file_gets_the_sources_table(
    tmp_path: Path, rng: np.random.Generator
) -> None:
    path = tmp_path / "v2.db"
    first = SQLiteCollectionStore(str(path))
    first.create_collection("c", face_model_version=MODEL)
    first.add_faces("c", [new_face("old", unit(rng, 1)[0])])
    first.close()
    with sqlite3.connect(path) as conn:
        conn.execute("DROP TABLE face_sources")
        conn.execute("PRAGMA user_version = 2")
    reopened = SQLiteCollectionStore(str(path))
    reopened.add_faces("c", [sourced_face("new", unit(rng, 1)[0], 5)])
    assert reopened.get_sources("c", ["old", "new"]) == {"new": source(5)}
    reopened.delete_faces("c", ["new"])
    assert reopened.get_sources("c", ["new"]) == {}
    reopened.close()
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == sqlite.SCHEMA_VERSION
        assert conn.execute("SELECT COUNT(*) FROM face_sources").fetchone()[0] == 0


def test_a_schema_2_postgres_database_gets_the_sources_table(
    postgres_db: str, rng: np.random.Generator
) -> None:
    first = PostgresCollectionStore(postgres_db)
    first.create_collection("c", face_model_version=MODEL)
    first.add_faces("c", [new_face("old", unit(rng, 1)[0])])
    first.close()
    with psycopg.connect(postgres_db, autocommit=True) as conn:
        conn.execute("DROP TABLE facelens_face_sources")
        conn.execute("UPDATE facelens_collection_schema SET version = 2")
    reopened = PostgresCollectionStore(postgres_db)
    reopened.add_faces("c", [sourced_face("new", unit(rng, 1)[0], 5)])
    assert reopened.get_sources("c", ["old", "new"]) == {"new": source(5)}
    reopened.delete_collection("c")
    reopened.close()
    with psycopg.connect(postgres_db, autocommit=True) as conn:
        version = conn.execute("SELECT version FROM facelens_collection_schema").fetchone()
        assert version == (postgres.SCHEMA_VERSION,)
        rows = conn.execute("SELECT COUNT(*) FROM facelens_face_sources").fetchone()
        assert rows == (0,)

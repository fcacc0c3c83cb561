"""``purge_deleted`` on each collection back end: deleted FaceIds leave the deletion log and
the saved index, and an index that was behind rebuilds rather than keeping them."""

from __future__ import annotations

import uuid
from pathlib import Path

import numpy as np
import pytest

from facelens.collection.stores.postgres import PostgresCollectionStore
from facelens.collection.stores.sqlite import SQLiteCollectionStore
from facelens.profiles.postgres_store import PostgresProfileStore
from tests.integration.collection_stores.helpers import MODEL, AnyStore, add, unit


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_purge_deleted(backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> None:
    folder = tmp_path / "faceindex"
    stores: list[AnyStore] = []

    def open_one() -> AnyStore:
        store: AnyStore
        if backend == "sqlite":
            path = str(tmp_path / "c.db")
            store = SQLiteCollectionStore(path, ann_threshold=1, index_directory=folder)
        else:
            url: str = request.getfixturevalue("postgres_db")
            store = PostgresCollectionStore(url, ann_threshold=1, index_directory=folder)
        stores.append(store)
        return store

    rng = np.random.default_rng(3)
    writer, reader = open_one(), open_one()
    writer.create_collection("c", face_model_version=MODEL)
    vectors = unit(rng, 6)
    ids = add(writer, "c", "f", vectors)
    assert reader.search_faces("c", vectors[0], limit=1, max_distance=0.1)[0].face.face_id == ids[0]
    [saved] = folder.glob("*.faceindex")
    writer.delete_faces("c", ids[:2])

    purged = writer.purge_deleted(["c", "c.rejected"])

    assert purged is (backend == "sqlite")  # PostgreSQL: until a VACUUM FULL, maybe not
    assert not saved.exists()
    # the reader's index is behind and the log no longer names the faces: it rebuilds
    hits = reader.search_faces("c", vectors[0], limit=6, max_distance=2.0)
    assert ids[0] not in {h.face.face_id for h in hits}
    assert len(hits) == 4
    for store in stores:
        store.close()


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_a_stale_index_is_not_saved_back_on_close(
    backend: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    """Another process held an index with unsaved changes when a person was forgotten: its
    close must not write their vectors back into a file."""
    folder = tmp_path / "faceindex"

    def open_one() -> AnyStore:
        if backend == "sqlite":
            return SQLiteCollectionStore(
                str(tmp_path / "c.db"), ann_threshold=1, index_directory=folder
            )
        url: str = request.getfixturevalue("postgres_db")
        return PostgresCollectionStore(url, ann_threshold=1, index_directory=folder)

    rng = np.random.default_rng(5)
    holder, forgetter = open_one(), open_one()
    holder.create_collection("c", face_model_version=MODEL)
    vectors = unit(rng, 4)
    kept = add(holder, "c", "keep", vectors[:2])
    holder.search_faces("c", vectors[0], limit=1, max_distance=0.1)  # built and saved
    doomed = add(holder, "c", "doomed", vectors[2:])  # patched in: unsaved changes
    forgetter.delete_faces("c", doomed)
    forgetter.purge_deleted(["c"])
    forgetter.close()

    holder.close()  # stale now: must not save

    for path in folder.glob("*.faceindex"):
        data = path.read_bytes()
        for face_id in doomed:
            assert face_id.encode() not in data
            assert uuid.UUID(face_id).bytes not in data
    again = open_one()
    hits = again.search_faces("c", vectors[2], limit=4, max_distance=2.0)
    assert {h.face.face_id for h in hits} == set(kept)
    again.close()


def test_postgres_profiles_purge(postgres_db: str) -> None:
    profiles = PostgresProfileStore(postgres_db)
    profiles.put("anna", {"Name": "Anna"})
    assert profiles.delete("anna")
    assert profiles.purge_deleted() is False
    assert profiles.get("anna") is None
    profiles.close()

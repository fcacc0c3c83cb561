"""SQLiteCollectionStore: Rekognition semantics, pagination, cache coherence, processes."""

from __future__ import annotations

import multiprocessing
import sqlite3
import threading
from collections.abc import Callable, Iterator
from datetime import UTC
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from facelens.collection.models import NewFace, UserStatus
from facelens.collection.sqlite_store import SCHEMA_VERSION, SQLiteCollectionStore
from facelens.engine.types import BoundingBox
from facelens.errors import (
    ConflictException,
    InvalidParameterException,
    ResourceAlreadyExistsException,
    ResourceNotFoundException,
    StorageError,
)

DIM = 128
MODEL = "test-model-1"
BOX = BoundingBox(width=0.25, height=0.5, left=0.125, top=0.0625)


def unit(rng: np.random.Generator, n: int, dim: int = DIM) -> npt.NDArray[np.float32]:
    vectors: npt.NDArray[np.float32] = rng.standard_normal((n, dim)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors


def new_face(face_id: str, vector: npt.NDArray[np.float32], image_id: str = "img") -> NewFace:
    return NewFace(face_id, image_id, f"ext-{face_id}", BOX, 99.5, vector)


def add(
    store: SQLiteCollectionStore, collection_id: str, prefix: str, vectors: npt.NDArray[np.float32]
) -> list[str]:
    ids = [f"{prefix}{i:04d}" for i in range(len(vectors))]
    store.add_faces(collection_id, [new_face(f, v) for f, v in zip(ids, vectors, strict=True)])
    return ids


def walk_faces(store: SQLiteCollectionStore, collection_id: str, max_results: int) -> list[str]:
    seen: list[str] = []
    token: str | None = None
    while True:
        page = store.list_faces(collection_id, max_results=max_results, next_token=token)
        assert len(page.faces) <= max_results
        seen += [f.face_id for f in page.faces]
        token = page.next_token
        if token is None:
            return seen


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
def store() -> Iterator[SQLiteCollectionStore]:
    s = SQLiteCollectionStore(":memory:")
    s.create_collection("c", face_model_version=MODEL)
    yield s
    s.close()


@pytest.fixture
def db(tmp_path: Path) -> str:
    return str(tmp_path / "collections.db")


# -- collections --


def test_collection_lifecycle() -> None:
    s = SQLiteCollectionStore(":memory:")
    info = s.create_collection("alpha", face_model_version=MODEL)
    assert info.created_at.tzinfo is not None
    assert info.created_at.utcoffset() == UTC.utcoffset(None)
    described = s.describe_collection("alpha")
    assert described == info
    assert (described.face_count, described.user_count) == (0, 0)
    with pytest.raises(ResourceAlreadyExistsException, match="alpha"):
        s.create_collection("alpha", face_model_version=MODEL)
    s.delete_collection("alpha")
    calls: list[Callable[[], object]] = [
        lambda: s.describe_collection("alpha"),
        lambda: s.delete_collection("alpha"),
        lambda: s.list_faces("alpha", max_results=10),
        lambda: s.add_faces("alpha", []),
        lambda: s.create_user("alpha", "u"),
        lambda: s.search_faces("alpha", np.ones(DIM, np.float32), limit=1, max_distance=2.0),
    ]
    for call in calls:
        with pytest.raises(ResourceNotFoundException, match="The collection id: alpha does not"):
            call()
    s.close()


def test_list_collections_pages_in_id_order() -> None:
    s = SQLiteCollectionStore(":memory:")
    names = [f"col-{i:02d}" for i in range(7)]
    for name in reversed(names):
        s.create_collection(name, face_model_version=f"v-{name}")
    page = s.list_collections(max_results=3)
    assert page.collection_ids == names[:3]
    assert page.face_model_versions == [f"v-{n}" for n in names[:3]]
    seen, token = list(page.collection_ids), page.next_token
    while token is not None:
        page = s.list_collections(max_results=3, next_token=token)
        seen += page.collection_ids
        token = page.next_token
    assert seen == names
    assert s.list_collections(max_results=7).next_token is None
    s.close()


def test_delete_collection_removes_faces_and_users(rng: np.random.Generator) -> None:
    s = SQLiteCollectionStore(":memory:")
    s.create_collection("c", face_model_version=MODEL)
    vectors = unit(rng, 3)
    ids = add(s, "c", "f", vectors)
    s.create_user("c", "u")
    s.associate_faces("c", "u", ids[:1])
    assert s.search_faces("c", vectors[0], limit=1, max_distance=2.0)  # cache built
    s.delete_collection("c")
    s.create_collection("c", face_model_version=MODEL)
    assert s.describe_collection("c").face_count == 0
    assert s.list_users("c", max_results=10).users == []
    assert s.search_faces("c", vectors[0], limit=1, max_distance=2.0) == []
    assert s.search_users("c", vectors[0], limit=1, max_distance=2.0) == []
    s.close()


# -- faces --


def test_add_get_list_delete_faces(store: SQLiteCollectionStore, rng: np.random.Generator) -> None:
    vectors = unit(rng, 5)
    faces = [new_face(f"f{i}", v, image_id=f"img{i}") for i, v in enumerate(vectors)]
    stored = store.add_faces("c", faces)
    assert [f.face_id for f in stored] == [f"f{i}" for i in range(5)]
    assert all(f.user_id is None and f.indexed_at.tzinfo is not None for f in stored)
    got = store.get_faces("c", ["f1", "f3", "nope"])
    assert set(got) == {"f1", "f3"}
    assert got["f1"] == stored[1]
    assert got["f1"].bounding_box == BOX
    assert got["f1"].external_image_id == "ext-f1"
    embeddings = store.get_embeddings("c", ["f2", "nope"])
    assert set(embeddings) == {"f2"}
    np.testing.assert_array_equal(embeddings["f2"], vectors[2])
    assert embeddings["f2"].dtype == np.float32
    assert store.describe_collection("c").face_count == 5
    page = store.list_faces("c", max_results=100)
    assert [f.face_id for f in page.faces] == [f"f{i}" for i in range(5)]
    assert page.next_token is None
    assert store.delete_faces("c", ["f3", "nope", "f1", "f3"]) == ["f3", "f1"]
    assert store.delete_faces("c", ["f3"]) == []
    assert set(store.get_faces("c", ["f1", "f3"])) == set()
    assert store.describe_collection("c").face_count == 3


def test_add_faces_is_all_or_none(store: SQLiteCollectionStore, rng: np.random.Generator) -> None:
    vectors = unit(rng, 3)
    store.add_faces("c", [new_face("f0", vectors[0])])
    with pytest.raises(ResourceAlreadyExistsException, match="f0"):
        store.add_faces("c", [new_face("f1", vectors[1]), new_face("f0", vectors[2])])
    assert [f.face_id for f in store.list_faces("c", max_results=10).faces] == ["f0"]
    with pytest.raises(InvalidParameterException):
        store.add_faces("c", [new_face("f2", vectors[1]), new_face("f2", vectors[2])])
    with pytest.raises(InvalidParameterException, match="dimension"):
        store.add_faces("c", [new_face("f3", unit(rng, 1, dim=64)[0])])
    assert store.describe_collection("c").face_count == 1
    assert store.add_faces("c", []) == []


@pytest.mark.parametrize("max_results", [1, 3, 1000])
def test_pagination_walks_every_face_once(
    store: SQLiteCollectionStore, rng: np.random.Generator, max_results: int
) -> None:
    ids = add(store, "c", "f", unit(rng, 25))
    assert walk_faces(store, "c", max_results) == ids


def test_pagination_survives_concurrent_writes(
    store: SQLiteCollectionStore, rng: np.random.Generator
) -> None:
    ids = add(store, "c", "m", unit(rng, 30))  # m0000..m0029
    doomed = {ids[20], ids[25]}
    seen: list[str] = []
    token: str | None = None
    step = 0
    while True:
        page = store.list_faces("c", max_results=4, next_token=token)
        seen += [f.face_id for f in page.faces]
        token = page.next_token
        if token is None:
            break
        step += 1  # faces sorting before, among and after the existing ones
        for prefix in ("a", "m0010x", "z"):
            store.add_faces("c", [new_face(f"{prefix}{step:03d}", unit(rng, 1)[0])])
        if step == 2:
            store.delete_faces("c", sorted(doomed))
    assert len(seen) == len(set(seen))
    assert set(ids) - doomed <= set(seen)
    assert not doomed & set(seen)


def test_bad_tokens_are_refused(store: SQLiteCollectionStore, rng: np.random.Generator) -> None:
    store.create_collection("other", face_model_version=MODEL)
    add(store, "c", "f", unit(rng, 3))
    add(store, "other", "f", unit(rng, 3))
    for user in ("u1", "u2", "u3"):
        store.create_user("c", user)
    faces_token = store.list_faces("c", max_results=1).next_token
    users_token = store.list_users("c", max_results=1).next_token
    assert faces_token is not None
    assert users_token is not None
    for token in ("garbage!", "", "bm90IGpzb24=", "e30=", faces_token + "x"):
        with pytest.raises(InvalidParameterException):
            store.list_faces("c", max_results=1, next_token=token)
    with pytest.raises(InvalidParameterException):
        store.list_faces("other", max_results=1, next_token=faces_token)
    with pytest.raises(InvalidParameterException):
        store.list_faces("c", max_results=1, next_token=users_token)
    with pytest.raises(InvalidParameterException):
        store.list_users("c", max_results=1, next_token=faces_token)
    with pytest.raises(InvalidParameterException):
        store.list_collections(max_results=1, next_token=faces_token)
    with pytest.raises(InvalidParameterException):
        store.list_faces("c", max_results=0)


def test_list_faces_filters(store: SQLiteCollectionStore, rng: np.random.Generator) -> None:
    ids = add(store, "c", "f", unit(rng, 6))
    store.create_user("c", "u")
    store.associate_faces("c", "u", [ids[1], ids[3], ids[4]])

    def listed(**kwargs: object) -> list[str]:
        return [f.face_id for f in store.list_faces("c", max_results=100, **kwargs).faces]  # type: ignore[arg-type]

    assert listed(user_id="u") == [ids[1], ids[3], ids[4]]
    assert listed(face_ids=[ids[5], ids[0], "nope"]) == [ids[0], ids[5]]
    assert listed(user_id="u", face_ids=[ids[0], ids[3]]) == [ids[3]]
    page = store.list_faces("c", max_results=1, user_id="u")
    assert [f.face_id for f in page.faces] == [ids[1]]
    page = store.list_faces("c", max_results=5, user_id="u", next_token=page.next_token)
    assert [f.face_id for f in page.faces] == [ids[3], ids[4]]
    assert page.next_token is None


# -- users --


def test_user_lifecycle(store: SQLiteCollectionStore, rng: np.random.Generator) -> None:
    ids = add(store, "c", "f", unit(rng, 4))
    assert store.create_user("c", "bob").status is UserStatus.CREATED
    with pytest.raises(ConflictException, match="bob"):
        store.create_user("c", "bob")
    with pytest.raises(ResourceNotFoundException, match="nobody"):
        store.get_user("c", "nobody")
    calls: list[Callable[[], object]] = [
        lambda: store.associate_faces("c", "nobody", ids),
        lambda: store.disassociate_faces("c", "nobody", ids),
        lambda: store.delete_user("c", "nobody"),
    ]
    for call in calls:
        with pytest.raises(ResourceNotFoundException):
            call()
    store.create_user("c", "amy")
    store.associate_faces("c", "bob", [ids[0], ids[1], "nope"])
    store.associate_faces("c", "amy", [ids[2]])
    bob = store.get_user("c", "bob")
    assert (bob.status, bob.face_count) == (UserStatus.ACTIVE, 2)
    assert store.get_faces("c", [ids[0]])[ids[0]].user_id == "bob"
    store.disassociate_faces("c", "bob", [ids[0], ids[2]])  # ids[2] is amy's: untouched
    assert store.get_user("c", "bob").face_count == 1
    assert store.get_faces("c", [ids[2]])[ids[2]].user_id == "amy"
    assert store.describe_collection("c").user_count == 2
    users = store.list_users("c", max_results=1)
    assert [(u.user_id, u.face_count) for u in users.users] == [("amy", 1)]
    users = store.list_users("c", max_results=1, next_token=users.next_token)
    assert [(u.user_id, u.status) for u in users.users] == [("bob", UserStatus.ACTIVE)]
    assert users.next_token is None
    store.disassociate_faces("c", "bob", [ids[1]])
    assert store.get_user("c", "bob").status is UserStatus.CREATED
    store.delete_user("c", "amy")
    with pytest.raises(ResourceNotFoundException):
        store.get_user("c", "amy")
    assert store.get_faces("c", [ids[2]])[ids[2]].user_id is None
    assert store.describe_collection("c").face_count == 4


# -- search --


def test_search_faces_nearest_limit_and_distance(
    store: SQLiteCollectionStore, rng: np.random.Generator
) -> None:
    assert store.search_faces("c", unit(rng, 1)[0], limit=5, max_distance=2.0) == []
    vectors = unit(rng, 200)
    ids = add(store, "c", "f", vectors)
    query = vectors[17] + 0.05 * unit(rng, 1)[0]
    query /= np.linalg.norm(query)
    hits = store.search_faces("c", query, limit=10, max_distance=2.0)
    assert len(hits) == 10
    assert hits[0].face.face_id == ids[17]
    assert hits[0].face.bounding_box == BOX
    distances = np.linalg.norm(vectors - query, axis=1)
    assert [h.distance for h in hits] == pytest.approx(sorted(distances)[:10], abs=1e-5)
    close = store.search_faces("c", query, limit=10, max_distance=0.5)
    assert [h.face.face_id for h in close] == [ids[17]]
    assert store.search_faces("c", query, limit=10, max_distance=1e-4) == []
    with pytest.raises(InvalidParameterException):
        store.search_faces("c", unit(rng, 1, dim=64)[0], limit=1, max_distance=2.0)


def test_deleted_face_is_never_found_again(
    store: SQLiteCollectionStore, rng: np.random.Generator
) -> None:
    vectors = unit(rng, 20)
    ids = add(store, "c", "f", vectors)
    assert store.search_faces("c", vectors[5], limit=1, max_distance=2.0)[0].face.face_id == ids[5]
    store.delete_faces("c", [ids[5]])
    hits = store.search_faces("c", vectors[5], limit=20, max_distance=2.0)
    assert ids[5] not in {h.face.face_id for h in hits}
    assert len(hits) == 19


def test_search_users_by_template(store: SQLiteCollectionStore, rng: np.random.Generator) -> None:
    vectors = unit(rng, 6)
    ids = add(store, "c", "f", vectors)
    store.create_user("c", "amy")
    store.create_user("c", "bob")
    assert store.search_users("c", vectors[0], limit=5, max_distance=2.0) == []
    store.associate_faces("c", "amy", ids[:2])
    store.associate_faces("c", "bob", ids[2:3])
    template = (vectors[0] + vectors[1]) / np.linalg.norm(vectors[0] + vectors[1])
    hits = store.search_users("c", template, limit=5, max_distance=2.0)
    assert [h.user.user_id for h in hits] == ["amy", "bob"]
    assert hits[0].distance == pytest.approx(0.0, abs=1e-3)
    assert (hits[0].user.status, hits[0].user.face_count) == (UserStatus.ACTIVE, 2)
    assert len(store.search_users("c", template, limit=1, max_distance=2.0)) == 1
    store.disassociate_faces("c", "amy", ids[:2])
    assert [
        h.user.user_id for h in store.search_users("c", template, limit=5, max_distance=2.0)
    ] == ["bob"]
    store.delete_user("c", "bob")
    assert store.search_users("c", template, limit=5, max_distance=2.0) == []


def test_incremental_cache_matches_a_rebuilt_one(db: str, rng: np.random.Generator) -> None:
    """Every write patches the writer's cache; a fresh reader must agree after each step."""
    writer = SQLiteCollectionStore(db)
    writer.create_collection("c", face_model_version=MODEL)
    vectors = unit(rng, 40)
    queries = unit(rng, 4)
    steps: list[Callable[[], object]] = [
        lambda: add(writer, "c", "f", vectors[:30]),
        lambda: writer.create_user("c", "u1"),
        lambda: writer.create_user("c", "u2"),
        lambda: writer.associate_faces("c", "u1", ["f0001", "f0002", "f0003"]),
        lambda: writer.associate_faces("c", "u2", ["f0004", "f0005"]),
        lambda: writer.associate_faces("c", "u2", ["f0003"]),  # moves from u1
        lambda: writer.delete_faces("c", ["f0001", "f0010"]),
        lambda: add(writer, "c", "g", vectors[30:]),
        lambda: writer.disassociate_faces("c", "u2", ["f0004"]),
        lambda: writer.delete_user("c", "u1"),
    ]
    for number, step in enumerate(steps):
        cached = writer._caches.get("c")  # white box: the writer's own search index
        step()
        if number > 0:  # patched in place, not rebuilt, since nobody else wrote
            assert cached is not None
            assert writer._caches["c"][1] is cached[1]
        reader = SQLiteCollectionStore(db)
        for q in queries:
            faces = writer.search_faces("c", q, limit=50, max_distance=2.0)
            fresh_faces = reader.search_faces("c", q, limit=50, max_distance=2.0)
            assert [h.face for h in faces] == [h.face for h in fresh_faces]
            assert [h.distance for h in faces] == pytest.approx(
                [h.distance for h in fresh_faces], abs=1e-5
            )
            users = writer.search_users("c", q, limit=50, max_distance=2.0)
            fresh_users = reader.search_users("c", q, limit=50, max_distance=2.0)
            assert [h.user for h in users] == [h.user for h in fresh_users]
            assert [h.distance for h in users] == pytest.approx(
                [h.distance for h in fresh_users], abs=1e-5
            )
        reader.close()
    writer.close()


def test_cold_rebuild_in_many_reads_matches_the_patched_cache(
    db: str, rng: np.random.Generator, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A restart reads the faces in chunks (7 rows here) into one matrix the index adopts.

    The reader's bulk-built index must answer like the writer's cache, which
    was built empty and then patched write by write, and like brute force.
    """
    monkeypatch.setattr("facelens.collection.sqlite_schema.READ_ROWS", 7)
    writer = SQLiteCollectionStore(db)
    writer.create_collection("c", face_model_version=MODEL)
    writer.create_collection("other", face_model_version=MODEL)  # rows the reads must skip
    assert writer.search_faces("c", unit(rng, 1)[0], limit=1, max_distance=2.0) == []
    vectors = unit(rng, 100)
    ids = add(writer, "c", "f", vectors[:60]) + add(writer, "c", "g", vectors[60:])
    add(writer, "other", "f", unit(rng, 30))
    for user, members in (("amy", ids[3:9]), ("bob", ids[40:41]), ("cy", ids[70:95:5])):
        writer.create_user("c", user)
        writer.associate_faces("c", user, members)
    writer.delete_faces("c", [ids[4], ids[50], ids[99]])
    kept = [i for i in range(100) if i not in (4, 50, 99)]
    queries = np.concatenate([unit(rng, 5), vectors[[0, 3, 72]]])

    reader = SQLiteCollectionStore(db)
    for q in queries:
        cold = reader.search_faces("c", q, limit=100, max_distance=2.0)
        warm = writer.search_faces("c", q, limit=100, max_distance=2.0)
        assert [h.face for h in cold] == [h.face for h in warm]
        assert [h.distance for h in cold] == pytest.approx([h.distance for h in warm], abs=1e-6)
        expected = np.sort(np.linalg.norm(vectors[kept] - q, axis=1))
        assert [h.distance for h in cold] == pytest.approx(expected.tolist(), abs=1e-5)
        cold_users = reader.search_users("c", q, limit=10, max_distance=2.0)
        warm_users = writer.search_users("c", q, limit=10, max_distance=2.0)
        assert [h.user for h in cold_users] == [h.user for h in warm_users]
        assert [h.distance for h in cold_users] == pytest.approx(
            [h.distance for h in warm_users], abs=1e-6
        )
    assert {u.user_id: u.face_count for u in (h.user for h in cold_users)} == {
        "amy": 5,
        "bob": 1,
        "cy": 5,
    }
    reader.close()
    writer.close()


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
    monkeypatch.setattr("facelens.collection.sqlite_schema.READ_ROWS", 4)  # f0013: a late read
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


# -- durability, processes and threads --


def test_restart_keeps_everything(db: str, rng: np.random.Generator) -> None:
    first = SQLiteCollectionStore(db)
    first.create_collection("c", face_model_version=MODEL)
    vectors = unit(rng, 10)
    ids = add(first, "c", "f", vectors)
    first.create_user("c", "u")
    first.associate_faces("c", "u", ids[:3])
    before = first.search_faces("c", vectors[4], limit=3, max_distance=2.0)
    first.close()
    with pytest.raises(StorageError, match="closed"):
        first.describe_collection("c")

    second = SQLiteCollectionStore(db)
    assert second.describe_collection("c").face_count == 10
    assert second.get_user("c", "u").face_count == 3
    assert second.search_faces("c", vectors[4], limit=3, max_distance=2.0) == before
    assert second.search_users("c", vectors[0], limit=1, max_distance=2.0)[0].user.user_id == "u"
    second.close()

    raw = sqlite3.connect(db)
    assert raw.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert raw.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    raw.close()


def test_stale_cache_sees_other_instances_writes(db: str, rng: np.random.Generator) -> None:
    a = SQLiteCollectionStore(db)
    b = SQLiteCollectionStore(db)
    a.create_collection("c", face_model_version=MODEL)
    vectors = unit(rng, 4)
    add(a, "c", "a", vectors[:1])
    assert [h.face.face_id for h in a.search_faces("c", vectors[1], limit=5, max_distance=2.0)] == [
        "a0000"
    ]
    b.add_faces("c", [new_face("b1", vectors[1])])
    assert a.search_faces("c", vectors[1], limit=1, max_distance=2.0)[0].face.face_id == "b1"
    b.create_user("c", "u")
    b.associate_faces("c", "u", ["b1"])
    assert a.search_users("c", vectors[1], limit=1, max_distance=0.01)[0].user.user_id == "u"
    b.add_faces("c", [new_face("b2", vectors[2])])
    a.add_faces("c", [new_face("a2", vectors[3])])  # a's cache is behind: must not be patched
    found = {h.face.face_id for h in a.search_faces("c", vectors[0], limit=10, max_distance=2.0)}
    assert found == {"a0000", "b1", "b2", "a2"}
    b.delete_faces("c", ["b1"])
    assert "b1" not in {
        h.face.face_id for h in a.search_faces("c", vectors[1], limit=10, max_distance=2.0)
    }
    assert a.search_users("c", vectors[1], limit=1, max_distance=2.0) == []
    a.close()
    b.close()


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


def test_one_store_shared_by_threads(db: str, rng: np.random.Generator) -> None:
    s = SQLiteCollectionStore(db)
    s.create_collection("c", face_model_version=MODEL)
    vectors = unit(rng, 200)
    errors: list[BaseException] = []

    def work(offset: int) -> None:
        try:
            for i in range(offset, 200, 4):
                s.add_faces("c", [new_face(f"t{i:04d}", vectors[i])])
                s.search_faces("c", vectors[i], limit=1, max_distance=2.0)
        except BaseException as exc:  # reported below, in the test's thread
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert s.describe_collection("c").face_count == 200
    for i in range(0, 200, 17):
        assert s.search_faces("c", vectors[i], limit=1, max_distance=2.0)[0].face.face_id == (
            f"t{i:04d}"
        )
    s.close()


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

"""Every collection store kept coherent: its cache, restarts, other instances, threads.

Each test runs on SQLite and on PostgreSQL (see conftest.py). ``connect()``
opens another instance on the same database, as a restart or another
worker process would; the caches must never answer from a stale view.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from contextlib import suppress

import numpy as np
import pytest

from facelens.errors import ResourceAlreadyExistsException, StorageError
from tests.integration.collection_stores.helpers import (
    MODEL,
    Connect,
    add,
    new_face,
    unit,
    walk_faces,
)


def test_incremental_cache_matches_a_rebuilt_one(
    connect: Connect, rng: np.random.Generator
) -> None:
    """Every write patches the writer's cache; a fresh reader must agree after each step."""
    writer = connect()
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
        cached = writer._indexes.cached("c")  # white box: the writer's own search index
        step()
        if number > 0:  # patched in place, not rebuilt, since nobody else wrote
            assert cached is not None
            now = writer._indexes.cached("c")
            assert now is not None
            assert now[1] is cached[1]
        reader = connect()
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


def test_cold_rebuild_in_many_reads_matches_the_patched_cache(
    connect: Connect, rng: np.random.Generator, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A restart reads the faces in chunks (7 rows here) into one matrix the index adopts.

    The reader's bulk-built index must answer like the writer's cache, which
    was built empty and then patched write by write, and like brute force.
    """
    monkeypatch.setattr("facelens.collection.stores.sql.READ_ROWS", 7)
    writer = connect()
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

    reader = connect()
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


def test_restart_keeps_everything(connect: Connect, rng: np.random.Generator) -> None:
    first = connect()
    first.create_collection("c", face_model_version=MODEL)
    vectors = unit(rng, 10)
    ids = add(first, "c", "f", vectors)
    first.create_user("c", "u")
    first.associate_faces("c", "u", ids[:3])
    before = first.search_faces("c", vectors[4], limit=3, max_distance=2.0)
    first.close()
    with pytest.raises(StorageError, match="closed"):
        first.describe_collection("c")

    second = connect()
    assert second.describe_collection("c").face_count == 10
    assert second.get_user("c", "u").face_count == 3
    assert second.search_faces("c", vectors[4], limit=3, max_distance=2.0) == before
    assert second.search_users("c", vectors[0], limit=1, max_distance=2.0)[0].user.user_id == "u"


def test_stale_cache_sees_other_instances_writes(
    connect: Connect, rng: np.random.Generator
) -> None:
    a = connect()
    b = connect()
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
    b.delete_collection("c")
    b.create_collection("c", face_model_version=MODEL)  # a new incarnation, same generation
    assert a.search_faces("c", vectors[0], limit=10, max_distance=2.0) == []


def test_one_store_shared_by_threads(connect: Connect, rng: np.random.Generator) -> None:
    s = connect()
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


def test_instances_racing_from_an_empty_database_lose_nothing(
    connect: Connect, rng: np.random.Generator
) -> None:
    """Three instances (as three workers would) create the schema and write all at once."""
    stores = [connect() for _ in range(3)]
    vectors = unit(rng, 3 * 60)
    barrier = threading.Barrier(len(stores))
    errors: list[BaseException] = []

    def work(k: int) -> None:
        try:
            barrier.wait(timeout=30)
            s = stores[k]
            with suppress(ResourceAlreadyExistsException):  # every worker tries; one wins
                s.create_collection("shared", face_model_version=MODEL)
            for i in range(k, len(vectors), len(stores)):
                s.add_faces("shared", [new_face(f"w{i:04d}", vectors[i])])
                if i % 10 == 0:  # keeps this instance's cache in play
                    s.search_faces("shared", vectors[i], limit=1, max_distance=2.0)
        except BaseException as exc:  # reported below, in the test's thread
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(len(stores))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    for s in stores:
        assert len(walk_faces(s, "shared", 1000)) == len(vectors)
        for i in range(0, len(vectors), 23):
            hit = s.search_faces("shared", vectors[i], limit=1, max_distance=2.0)[0]
            assert hit.face.face_id == f"w{i:04d}"

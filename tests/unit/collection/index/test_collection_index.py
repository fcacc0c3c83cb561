"""ExactIndex and CollectionIndex against brute-force numpy on random unit vectors."""

from __future__ import annotations

import time
from typing import cast

import numpy as np
import numpy.typing as npt
import pytest

from facelens.collection.index.collection_index import CollectionIndex, VectorIndex
from facelens.collection.index.exact import ExactIndex

DIM = 128


def unit(rng: np.random.Generator, n: int, dim: int = DIM) -> npt.NDArray[np.float32]:
    vectors: npt.NDArray[np.float32] = rng.standard_normal((n, dim)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors


def brute(
    ids: list[str], vectors: npt.NDArray[np.float32], query: npt.NDArray[np.float32]
) -> list[tuple[str, float]]:
    distances = np.linalg.norm(vectors.astype(np.float64) - query.astype(np.float64), axis=1)
    order = np.argsort(distances, kind="stable")
    return [(ids[i], float(distances[i])) for i in order]


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(1234)


def test_exact_index_is_a_vector_index() -> None:
    index: VectorIndex = ExactIndex()
    assert len(index) == 0


def test_empty_index_finds_nothing(rng: np.random.Generator) -> None:
    assert ExactIndex().search(unit(rng, 1)[0], limit=5, max_distance=2.0) == []


def test_search_matches_brute_force(rng: np.random.Generator) -> None:
    vectors = unit(rng, 500)
    ids = [f"id-{i}" for i in range(500)]
    index = ExactIndex()
    index.add(ids, vectors)
    for query in unit(rng, 5):
        expected = brute(ids, vectors, query)
        for limit in (1, 7, 500, 1000):
            hits = index.search(query, limit=limit, max_distance=2.0)
            assert [h.id for h in hits] == [e[0] for e in expected[:limit]]
            assert [h.distance for h in hits] == pytest.approx([e[1] for e in expected[:limit]])
        cutoff = expected[20][1]
        hits = index.search(query, limit=1000, max_distance=cutoff)
        assert all(h.distance <= cutoff for h in hits)
        found = {h.id for h in hits}
        assert {e[0] for e in expected if e[1] < cutoff - 1e-5} <= found
        assert found <= {e[0] for e in expected if e[1] <= cutoff + 1e-5}


def test_distances_are_sorted_and_within_zero_to_two(rng: np.random.Generator) -> None:
    vectors = unit(rng, 50)
    index = ExactIndex()
    index.add([str(i) for i in range(50)], vectors)
    itself = index.search(vectors[3], limit=50, max_distance=2.0)
    assert itself[0].id == "3"
    assert itself[0].distance == pytest.approx(0.0, abs=1e-3)
    distances = [h.distance for h in itself]
    assert distances == sorted(distances)
    assert all(0.0 <= d <= 2.0 for d in distances)
    farthest = index.search(-vectors[3], limit=50, max_distance=2.0)[-1]
    assert farthest.id == "3"
    assert farthest.distance == pytest.approx(2.0, abs=1e-3)


def test_exact_match_passes_zero_max_distance(rng: np.random.Generator) -> None:
    vectors = unit(rng, 10)
    index = ExactIndex()
    index.add([str(i) for i in range(10)], vectors)
    for i, vector in enumerate(vectors):  # rounding never pushes a vector off itself
        hits = index.search(vector, limit=10, max_distance=0.0)
        assert [(h.id, h.distance) for h in hits] == [(str(i), 0.0)]
    assert index.search(-vectors[0], limit=10, max_distance=0.0) == []


def test_limit_zero_and_negative_distance_find_nothing(rng: np.random.Generator) -> None:
    vectors = unit(rng, 10)
    index = ExactIndex()
    index.add([str(i) for i in range(10)], vectors)
    assert index.search(vectors[0], limit=0, max_distance=2.0) == []
    assert index.search(vectors[0], limit=5, max_distance=-1.0) == []


def test_remove_swaps_rows_without_losing_any(rng: np.random.Generator) -> None:
    vectors = unit(rng, 300)
    ids = [f"id-{i}" for i in range(300)]
    index = ExactIndex()
    index.add(ids, vectors)
    removed = set(rng.choice(ids, size=150, replace=False).tolist())
    index.remove([*sorted(removed), "never-added"])
    assert len(index) == 150
    kept = [i for i, face_id in enumerate(ids) if face_id not in removed]
    for query in unit(rng, 3):
        hits = index.search(query, limit=300, max_distance=2.0)
        expected = brute([ids[i] for i in kept], vectors[kept], query)
        assert [h.id for h in hits] == [e[0] for e in expected]
    for face_id in removed:
        assert face_id not in index
        assert index.search(vectors[ids.index(face_id)], limit=1, max_distance=0.01) == []


def test_add_one_at_a_time_grows_and_overwrites(rng: np.random.Generator) -> None:
    vectors = unit(rng, 1000)
    index = ExactIndex()
    for i in range(1000):
        index.add([str(i)], vectors[i : i + 1])
    assert len(index) == 1000
    assert index.search(vectors[999], limit=1, max_distance=2.0)[0].id == "999"
    index.add(["5", "new"], np.stack([vectors[7], vectors[8]]))  # "5" overwritten, "new" added
    assert len(index) == 1001
    assert {h.id for h in index.search(vectors[7], limit=2, max_distance=0.01)} == {"5", "7"}
    np.testing.assert_array_equal(index.vectors(["new"])[0], vectors[8])


def test_bad_shapes_are_refused(rng: np.random.Generator) -> None:
    index = ExactIndex()
    with pytest.raises(ValueError, match="duplicate"):
        index.add(["a", "a"], unit(rng, 2))
    with pytest.raises(ValueError, match="matrix"):
        index.add(["a"], unit(rng, 2))
    index.add(["a"], unit(rng, 1))
    with pytest.raises(ValueError, match="dimension"):
        index.add(["b"], unit(rng, 1, dim=64))
    with pytest.raises(ValueError, match="shape"):
        index.search(unit(rng, 1, dim=64)[0], limit=1, max_distance=2.0)
    index.remove(["a"])
    index.add(["b"], unit(rng, 1, dim=64))  # an empty index takes a new dimension
    assert index.dim == 64


def test_search_over_many_vectors_is_fast(rng: np.random.Generator) -> None:
    """200k x 128 is a fifth of the 1M target; a search must take a few ms, not seconds."""
    n = 200_000
    vectors = rng.standard_normal((n, DIM), dtype=np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    index = ExactIndex()
    index.add([str(i) for i in range(n)], vectors)
    timings = []
    for i in range(5):
        start = time.perf_counter()
        hits = index.search(vectors[i * 1000], limit=100, max_distance=2.0)
        timings.append(time.perf_counter() - start)
        assert hits[0].id == str(i * 1000)
    assert sorted(timings)[2] < 0.1


def test_collection_index_templates_are_renormalised_means(rng: np.random.Generator) -> None:
    vectors = unit(rng, 6)
    ids = [f"f{i}" for i in range(6)]
    index = CollectionIndex.build(ids, vectors, ["alice", "alice", "bob", None, None, None])
    alice = vectors[0] + vectors[1]
    alice /= np.linalg.norm(alice)
    hit = index.users.search(alice, limit=1, max_distance=2.0)[0]
    assert hit.id == "alice"
    assert hit.distance == pytest.approx(0.0, abs=1e-3)
    assert index.face_count("alice") == 2
    bob_hit = index.users.search(vectors[2], limit=1, max_distance=2.0)[0]
    assert bob_hit.id == "bob"
    assert bob_hit.distance == pytest.approx(0.0, abs=1e-3)

    index.assign(["f3"], "bob")  # bob: f2 + f3
    bob = (vectors[2] + vectors[3]) / np.linalg.norm(vectors[2] + vectors[3])
    assert index.users.search(bob, limit=1, max_distance=1e-2)[0].id == "bob"
    index.assign(["f1"], "bob")  # moves from alice to bob
    assert index.face_count("alice") == 1
    assert index.face_count("bob") == 3
    assert index.users.search(vectors[0], limit=1, max_distance=1e-2)[0].id == "alice"

    index.remove_faces(["f0"])  # alice's last face
    assert index.face_count("alice") == 0
    assert "alice" not in index.users
    index.assign(["f1", "f2", "f3"], None)
    assert len(index.users) == 0
    assert len(index.faces) == 5


def test_collection_index_ignores_unknown_faces(rng: np.random.Generator) -> None:
    index = CollectionIndex()
    index.assign(["ghost"], "alice")
    assert index.face_count("alice") == 0
    assert len(index.users) == 0
    index.add_faces(["f"], unit(rng, 1))
    index.assign(["f"], "alice")
    assert index.face_count("alice") == 1


def answers(index: ExactIndex, queries: npt.NDArray[np.float32]) -> list[list[tuple[str, float]]]:
    """Every query at several limits and distances, as plain (id, distance) lists."""
    return [
        [(h.id, h.distance) for h in index.search(q, limit=limit, max_distance=distance)]
        for q in queries
        for limit in (1, 10, 10_000)
        for distance in (0.0, 0.9, 1.3, 2.0)
    ]


@pytest.mark.parametrize("copy", [True, False])
def test_bulk_built_index_answers_exactly_like_an_incremental_one(
    rng: np.random.Generator, copy: bool
) -> None:
    """from_matrix (the cold-start path) against add in uneven chunks, then the same edits."""
    vectors = unit(rng, 2_000)
    ids = [f"face-{i:05d}" for i in rng.permutation(2_000)]
    queries = np.concatenate([unit(rng, 8), vectors[[0, 7, 1999]]])
    incremental = ExactIndex()
    for start, stop in ((0, 1), (1, 17), (17, 1_000), (1_000, 1_999), (1_999, 2_000)):
        incremental.add(ids[start:stop], vectors[start:stop])
    bulk = ExactIndex.from_matrix(ids, vectors.copy(), copy=copy)
    assert (len(bulk), bulk.dim) == (len(incremental), incremental.dim) == (2_000, DIM)
    assert answers(bulk, queries) == answers(incremental, queries)
    np.testing.assert_array_equal(bulk.vectors(ids[::7]), incremental.vectors(ids[::7]))

    removed = [ids[i] for i in rng.choice(2_000, size=300, replace=False)]
    gone = set(removed)
    kept = [item for item in ids if item not in gone]
    extra = unit(rng, 40)
    extra_ids = [*removed[:20], *(f"extra-{i}" for i in range(20))]  # re-added and new ids
    for index in (bulk, incremental):  # an adopted matrix is edited and grown like any other
        index.remove([*removed, "never-added"])
        index.add(extra_ids, extra)
        index.add(kept[:3], vectors[8:11])  # overwrites take the per-id path
    assert len(bulk) == len(incremental) == 2_000 - 300 + 40
    assert answers(bulk, queries) == answers(incremental, queries)
    assert all((item in bulk) == (item in incremental) for item in [*ids, *extra_ids])


def test_from_matrix_adopts_only_what_it_may(rng: np.random.Generator) -> None:
    vectors = unit(rng, 5)
    ids = list("abcde")
    adopted = ExactIndex.from_matrix(ids, vectors, copy=False)
    assert adopted._matrix is vectors  # white box: no copy of a large matrix
    copied = ExactIndex.from_matrix(ids, vectors)
    assert not np.shares_memory(copied._matrix, vectors)
    readonly = np.frombuffer(vectors.tobytes(), dtype=np.float32).reshape(5, DIM)
    strided = np.asfortranarray(vectors)
    # float64 on purpose, against from_matrix's float32 type: it must convert (so copy) it
    wider = cast("npt.NDArray[np.float32]", vectors.astype(np.float64))
    for other in (readonly, strided, wider):
        index = ExactIndex.from_matrix(ids, other, copy=False)
        assert not np.shares_memory(index._matrix, other)
        np.testing.assert_array_equal(index.vectors(ids), vectors.astype(np.float32))
    with pytest.raises(ValueError, match="duplicate"):
        ExactIndex.from_matrix(["a", "b", "a", "d", "e"], vectors, copy=False)
    with pytest.raises(ValueError, match="matrix"):
        ExactIndex.from_matrix(ids[:4], vectors, copy=False)
    empty = ExactIndex.from_matrix([], np.empty((0, DIM), np.float32), copy=False)
    assert (len(empty), empty.dim) == (0, None)


def test_failed_add_leaves_the_index_unchanged(rng: np.random.Generator) -> None:
    vectors = unit(rng, 4)
    index = ExactIndex()
    index.add(["a", "b"], vectors[:2])
    with pytest.raises(ValueError, match="duplicate"):
        index.add(["c", "c"], vectors[2:])
    with pytest.raises(ValueError, match="dimension"):
        index.add(["c"], unit(rng, 1, dim=64))
    assert len(index) == 2
    assert "c" not in index
    index.add(["c", "d"], vectors[2:])  # the fast path after a refused add
    assert [h.id for h in index.search(vectors[3], limit=1, max_distance=2.0)] == ["d"]


def test_collection_index_build_without_copy_matches(rng: np.random.Generator) -> None:
    vectors = unit(rng, 50)
    ids = [f"f{i}" for i in range(50)]
    owners = [("u1", "u2", None)[i % 3] for i in range(50)]
    copied = CollectionIndex.build(ids, vectors, owners)
    adopted = CollectionIndex.build(ids, vectors.copy(), owners, copy=False)
    for query in unit(rng, 5):
        for part in ("faces", "users"):
            a = getattr(copied, part).search(query, limit=50, max_distance=2.0)
            b = getattr(adopted, part).search(query, limit=50, max_distance=2.0)
            assert a == b
    assert adopted.face_count("u1") == copied.face_count("u1") == 17

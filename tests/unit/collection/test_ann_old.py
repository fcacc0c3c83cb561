"""HnswIndex against ExactIndex on seeded random unit vectors: semantics, recall, persistence.

Faces are drawn around "person" centres (several photos per person, far
from other people), so the nearest neighbours of a query are unambiguous and
an approximate index must find exactly what the exact one finds.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from facelens.collection.ann import HnswIndex
from facelens.collection.index import CollectionIndex, ExactIndex, FaceIndex, Neighbor

DIM = 128
PHOTO_SPREAD = 0.25
"""Typical Euclidean distance of a photo's embedding from its person's centre."""

Matrix = npt.NDArray[np.float32]


def normalised(vectors: npt.NDArray[np.floating]) -> Matrix:
    unit: Matrix = (vectors / np.linalg.norm(vectors, axis=1, keepdims=True)).astype(np.float32)
    return unit


def faces(rng: np.random.Generator, people: int, count: int) -> Matrix:
    """``count`` unit vectors, each a photo of one of ``people`` random persons."""
    centres = normalised(rng.standard_normal((people, DIM)))
    owners = rng.integers(0, people, size=count)
    noise = rng.standard_normal((count, DIM)) * PHOTO_SPREAD / np.sqrt(DIM)
    return normalised(centres[owners] + noise)


def second_photos(rng: np.random.Generator, stored: Matrix) -> Matrix:
    """Another photo of the people in ``stored``: each row moved by about PHOTO_SPREAD."""
    return normalised(stored + rng.standard_normal(stored.shape) * PHOTO_SPREAD / np.sqrt(DIM))


def pairs(hits: list[Neighbor]) -> list[tuple[str, float]]:
    return [(h.id, h.distance) for h in hits]


def assert_same_answers(
    ann: HnswIndex, exact: ExactIndex, queries: Matrix, *, limit: int = 3, distance: float = 2.0
) -> None:
    for query in queries:
        got = ann.search(query, limit=limit, max_distance=distance)
        want = exact.search(query, limit=limit, max_distance=distance)
        assert [h.id for h in got] == [h.id for h in want]
        assert [h.distance for h in got] == pytest.approx([h.distance for h in want], abs=1e-6)


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(20240607)


def test_hnsw_index_is_a_face_index() -> None:
    index: FaceIndex = HnswIndex()
    assert len(index) == 0
    assert index.dim is None


def test_empty_and_degenerate_searches_find_nothing(rng: np.random.Generator) -> None:
    query = faces(rng, 1, 1)[0]
    assert HnswIndex().search(query, limit=5, max_distance=2.0) == []
    index = HnswIndex.from_matrix([f"f{i}" for i in range(300)], faces(rng, 30, 300))
    assert index.search(query, limit=0, max_distance=2.0) == []
    assert index.search(query, limit=5, max_distance=-1.0) == []
    with pytest.raises(ValueError, match="shape"):
        index.search(query[:64], limit=1, max_distance=2.0)


def test_adds_removes_and_overwrites_follow_exact_index(rng: np.random.Generator) -> None:
    vectors = faces(rng, 200, 2_000)
    ids = [f"face-{i:05d}" for i in range(2_000)]
    queries = second_photos(rng, vectors[::50])
    ann, exact = HnswIndex(rebuild_ratio=0.9), ExactIndex()  # keep every tombstone
    for start, stop in ((0, 1), (1, 700), (700, 2_000)):
        for index in (ann, exact):
            index.add(ids[start:stop], vectors[start:stop])
    assert_same_answers(ann, exact, queries)

    removed = ids[100:400]
    overwritten, replacements = ids[::3][:200], faces(rng, 20, 200)
    returning = faces(rng, 5, 50)  # removed ids come back elsewhere (fresh vectors: no ties)
    for index in (ann, exact):
        index.remove([*removed, "never-added"])
        index.add(overwritten, replacements)
        index.add(removed[:50], returning)
    assert ann.graph_size == 2_000 + 200 + 50  # every add appended nodes; no rebuild yet
    assert ann.tombstones == ann.graph_size - len(ann)
    assert len(ann) == len(exact) == len(set(ids) - set(removed) | set(overwritten + removed[:50]))
    assert all((i in ann) == (i in exact) for i in [*ids, "never-added"])
    live = [i for i in ids if i in exact]
    np.testing.assert_array_equal(ann.vectors(live), exact.vectors(live))
    assert_same_answers(ann, exact, queries)
    assert_same_answers(ann, exact, second_photos(rng, replacements[:20]))


def test_tombstones_are_never_returned(rng: np.random.Generator) -> None:
    vectors = faces(rng, 100, 1_000)
    ids = [str(i) for i in range(1_000)]
    index = HnswIndex(rebuild_ratio=0.99)  # keep the tombstones in the graph
    index.add(ids, vectors)
    gone = set(ids[::4])
    index.remove(sorted(gone))
    moved = ids[1::4]
    index.add(moved, vectors[2::4])  # overwritten: the old nodes are tombstones too
    assert index.tombstones == 500
    for query in vectors[::7]:
        hits = index.search(query, limit=100, max_distance=2.0)
        assert len(hits) == 100
        assert not gone & {h.id for h in hits}
        assert len({h.id for h in hits}) == len(hits)  # an overwritten id appears once
    for row, face_id in enumerate(moved):
        hits = index.search(vectors[2 + 4 * row], limit=2, max_distance=0.0)
        assert {h.id for h in hits} == {face_id, ids[2 + 4 * row]}


def test_rebuild_after_many_removals_keeps_results_right(rng: np.random.Generator) -> None:
    vectors = faces(rng, 150, 1_500)
    ids = [f"f{i}" for i in range(1_500)]
    ann, exact = HnswIndex.from_matrix(ids, vectors), ExactIndex.from_matrix(ids, vectors)
    for start in range(0, 450, 50):  # 30% removed in steps: one rebuild past 20%
        for index in (ann, exact):
            index.remove(ids[start : start + 50])
    assert ann.tombstones < 0.2 * ann.graph_size
    assert ann.graph_size < 1_500
    assert len(ann) == len(exact) == 1_050
    assert_same_answers(ann, exact, second_photos(rng, vectors[::30]), limit=5)
    for index in (ann, exact):
        index.remove(ids)
    assert len(ann) == ann.graph_size == 0
    assert ann.search(vectors[0], limit=1, max_distance=2.0) == []
    ann.add(["again"], vectors[:1])
    assert pairs(ann.search(vectors[0], limit=1, max_distance=2.0)) == [("again", 0.0)]


def test_max_distance_filters_like_exact_index(rng: np.random.Generator) -> None:
    vectors = faces(rng, 100, 1_000)
    ids = [f"f{i}" for i in range(1_000)]
    ann, exact = HnswIndex.from_matrix(ids, vectors), ExactIndex.from_matrix(ids, vectors)
    queries = second_photos(rng, vectors[::100])
    for distance in (0.2, 0.3, 0.4, 0.6):
        assert_same_answers(ann, exact, queries, limit=20, distance=distance)
        for query in queries:
            assert all(
                h.distance <= distance for h in ann.search(query, limit=20, max_distance=distance)
            )
    for row in (0, 500, 999):  # rounding never pushes a vector off itself
        assert pairs(ann.search(vectors[row], limit=1, max_distance=0.0)) == [(ids[row], 0.0)]


def test_save_and_load_round_trip(rng: np.random.Generator, tmp_path: Path) -> None:
    vectors = faces(rng, 100, 1_000)
    ids = [f"f-{i}-ü" for i in range(1_000)]  # any str survives
    index = HnswIndex.from_matrix(ids, vectors, ef_search=48)
    index.remove(ids[:50])
    index.add(ids[50:60], vectors[:10])
    index.save(tmp_path)
    loaded = HnswIndex.load(tmp_path)
    assert (len(loaded), loaded.dim, loaded.tombstones) == (len(index), DIM, index.tombstones)
    assert loaded._ef_search == 48
    queries = np.concatenate([second_photos(rng, vectors[::40]), vectors[:10]])
    for query in queries:  # the same graph: the very same answers
        assert index.search(query, limit=10, max_distance=2.0) == loaded.search(
            query, limit=10, max_distance=2.0
        )
    np.testing.assert_array_equal(loaded.vectors(ids[50:]), index.vectors(ids[50:]))
    loaded.add(["new"], vectors[:1])  # a loaded index is a working one
    assert {h.id for h in loaded.search(vectors[0], limit=2, max_distance=0.0)} == {"new", "f-50-ü"}

    loaded.save(tmp_path)  # a second save leaves one graph file, and no temporary files
    assert len(list(tmp_path.glob("graph-*.faiss"))) == 1
    assert not [p.name for p in tmp_path.iterdir() if p.name.startswith(".")]
    assert len(HnswIndex.load(tmp_path)) == len(index) + 1

    empty = tmp_path / "empty"
    HnswIndex().save(empty)
    assert len(HnswIndex.load(empty)) == 0


def test_files_that_do_not_belong_together_raise_value_error(
    rng: np.random.Generator, tmp_path: Path
) -> None:
    ids = [f"f{i}" for i in range(500)]
    first, second = tmp_path / "first", tmp_path / "second"
    HnswIndex.from_matrix(ids, faces(rng, 50, 500)).save(first)
    HnswIndex.from_matrix(ids, faces(rng, 50, 500)).save(second)  # same counts, other vectors
    with pytest.raises(ValueError, match="no usable"):
        HnswIndex.load(tmp_path / "missing")

    (graph,) = first.glob("graph-*.faiss")
    (other,) = second.glob("graph-*.faiss")
    saved = graph.read_bytes()
    shutil.copyfile(other, graph)
    with pytest.raises(ValueError, match=r"other vectors|not the one"):
        HnswIndex.load(first)
    graph.write_bytes(saved[:-100])  # truncated
    with pytest.raises(ValueError, match="not the one"):
        HnswIndex.load(first)
    graph.write_bytes(saved)
    assert len(HnswIndex.load(first)) == 500

    HnswIndex.from_matrix(ids[:400], faces(rng, 50, 400)).save(second)  # other counts
    shutil.copyfile(next(second.glob("graph-*.faiss")), graph)
    with pytest.raises(ValueError, match="no usable"):
        HnswIndex.load(first)
    (first / "hnsw.npz").write_bytes(b"not a zip file")
    with pytest.raises(ValueError, match="no usable"):
        HnswIndex.load(first)


def test_recall_at_1_against_exact_search(rng: np.random.Generator) -> None:
    """20k faces of 2k people; queries are second photos of 200 stored faces."""
    vectors = faces(rng, 2_000, 20_000)
    ids = [f"f{i}" for i in range(20_000)]
    ann, exact = HnswIndex.from_matrix(ids, vectors), ExactIndex.from_matrix(ids, vectors)
    queries = second_photos(rng, vectors[rng.choice(20_000, size=200, replace=False)])
    found = sum(
        ann.search(q, limit=1, max_distance=2.0)[0].id
        == exact.search(q, limit=1, max_distance=2.0)[0].id
        for q in queries
    )
    assert found / len(queries) >= 0.99


def test_collection_index_picks_hnsw_from_the_threshold(rng: np.random.Generator) -> None:
    vectors = faces(rng, 20, 200)
    ids = [f"f{i}" for i in range(200)]
    owners = [("alice", "bob", None)[i % 3] for i in range(200)]
    small = CollectionIndex.build(ids[:99], vectors[:99], owners[:99], ann_threshold=100)
    large = CollectionIndex.build(ids[:100], vectors[:100], owners[:100], ann_threshold=100)
    assert isinstance(small.faces, ExactIndex)
    assert isinstance(large.faces, HnswIndex)
    assert isinstance(large.users, ExactIndex)
    alice = normalised(vectors[:100:3].mean(axis=0, keepdims=True))[0]
    assert pairs(large.users.search(alice, limit=1, max_distance=1e-3))[0][0] == "alice"
    assert isinstance(CollectionIndex.build(ids, vectors.copy(), owners).faces, ExactIndex)

    grown = CollectionIndex(ann_threshold=100)
    grown.add_faces(ids[:99], vectors[:99])
    assert isinstance(grown.faces, ExactIndex)
    grown.add_faces(ids[99:150], vectors[99:150])  # reaching the threshold builds the graph
    assert isinstance(grown.faces, HnswIndex)
    assert len(grown.faces) == 150
    grown.assign(ids[:3], "carol")
    assert grown.face_count("carol") == 3
    grown.remove_faces(ids[:120])  # no switching back below the threshold
    assert isinstance(grown.faces, HnswIndex)
    assert len(grown.faces) == 30
    assert grown.face_count("carol") == 0
    hit = grown.faces.search(vectors[140], limit=1, max_distance=0.0)
    assert pairs(hit) == [("f140", 0.0)]

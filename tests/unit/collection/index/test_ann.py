"""IvfIndex against ExactIndex on seeded random unit vectors: semantics, recall, persistence.

Faces are drawn around "person" centres (several photos per person, far
from other people), so the nearest neighbours of a query are unambiguous and
an approximate index must find what the exact one finds. Sizes are small and
the lists few, so every test runs in well under a second.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from facelens.collection.index import ann
from facelens.collection.index.ann import IvfIndex, lists_for
from facelens.collection.index.collection_index import CollectionIndex, FaceIndex
from facelens.collection.index.exact import ExactIndex, Neighbor
from facelens.collection.index.saved import load_index, save_index
from facelens.errors import IndexFileError

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
    approximate: FaceIndex, exact: ExactIndex, queries: Matrix, *, limit: int = 3,
    distance: float = 2.0,
) -> None:  # fmt: skip
    for query in queries:
        got = approximate.search(query, limit=limit, max_distance=distance)
        want = exact.search(query, limit=limit, max_distance=distance)
        assert [h.id for h in got] == [h.id for h in want]
        assert [h.distance for h in got] == pytest.approx([h.distance for h in want], abs=1e-6)


def assert_same_users(one: CollectionIndex, other: CollectionIndex, query: Matrix) -> None:
    """Templates built in bulk or patched user by user differ only in float rounding."""
    got = one.users.search(query, limit=3, max_distance=2.0)
    want = other.users.search(query, limit=3, max_distance=2.0)
    assert [h.id for h in got] == [h.id for h in want]
    assert [h.distance for h in got] == pytest.approx([h.distance for h in want], abs=1e-6)


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(20240607)


def test_ivf_index_is_a_face_index() -> None:
    index: FaceIndex = IvfIndex()
    assert len(index) == 0
    assert index.dim is None
    assert "anything" not in index


def test_list_counts_grow_with_the_square_root_and_are_capped() -> None:
    assert [lists_for(n) for n in (1, 79, 80, 1_000, 50_000, 1_000_000)] == [1, 1, 2, 25, 256, 1024]
    assert lists_for(10_000_000) == ann.MAX_LISTS == 2048


def test_empty_and_degenerate_searches_find_nothing(rng: np.random.Generator) -> None:
    query = faces(rng, 1, 1)[0]
    assert IvfIndex().search(query, limit=5, max_distance=2.0) == []
    index = IvfIndex.from_matrix([f"f{i}" for i in range(300)], faces(rng, 30, 300))
    assert index.search(query, limit=0, max_distance=2.0) == []
    assert index.search(query, limit=5, max_distance=-1.0) == []
    with pytest.raises(ValueError, match="shape"):
        index.search(query[:64], limit=1, max_distance=2.0)
    with pytest.raises(ValueError, match="duplicate"):
        IvfIndex.from_matrix(["a", "a"], faces(rng, 1, 2))


def test_adds_removes_and_overwrites_follow_exact_index(rng: np.random.Generator) -> None:
    vectors = faces(rng, 200, 2_000)
    ids = [f"face-{i:05d}" for i in range(2_000)]
    queries = second_photos(rng, vectors[::50])
    approximate, exact = IvfIndex(), ExactIndex()
    for start, stop in ((0, 1), (1, 700), (700, 2_000)):  # grows: re-trained on the way
        for index in (approximate, exact):
            index.add(ids[start:stop], vectors[start:stop])
    assert approximate.nlist > 1
    assert_same_answers(approximate, exact, queries)

    removed = ids[100:400]
    overwritten, replacements = ids[::3][:200], faces(rng, 20, 200)
    returning = faces(rng, 5, 50)  # removed ids come back elsewhere (fresh vectors: no ties)
    for index in (approximate, exact):
        index.remove([*removed, "never-added", removed[0]])
        index.add(overwritten, replacements)
        index.add(removed[:50], returning)
    assert (
        len(approximate)
        == len(exact)
        == len(set(ids) - set(removed) | {*overwritten, *removed[:50]})
    )
    assert all((i in approximate) == (i in exact) for i in [*ids, "never-added"])
    live = [i for i in ids if i in exact]
    np.testing.assert_array_equal(approximate.vectors(live), exact.vectors(live))
    with pytest.raises(KeyError):
        approximate.vectors([live[0], "never-added"])
    assert_same_answers(approximate, exact, queries)
    assert_same_answers(approximate, exact, second_photos(rng, replacements[:20]))
    assert_same_answers(approximate, exact, returning[:10], limit=1, distance=0.0)


def test_removed_and_overwritten_rows_are_never_returned(rng: np.random.Generator) -> None:
    vectors = faces(rng, 100, 1_000)
    ids = [str(i) for i in range(1_000)]
    index = IvfIndex.from_matrix(ids, vectors)
    gone = set(ids[::16])
    index.remove(sorted(gone))
    moved = ids[1::16]
    index.add(moved, vectors[2::16])  # overwritten: the old rows are tombstones
    assert index.tombstones == 126  # below the compaction ratio: still there
    for query in vectors[::7]:
        hits = index.search(query, limit=100, max_distance=2.0)
        assert not gone & {h.id for h in hits}
        assert len({h.id for h in hits}) == len(hits)  # an overwritten id appears once
    for row, face_id in enumerate(moved):
        hits = index.search(vectors[2 + 16 * row], limit=2, max_distance=0.0)
        assert {h.id for h in hits} == {face_id, ids[2 + 16 * row]}


def test_compaction_after_many_removals_keeps_results_right(rng: np.random.Generator) -> None:
    vectors = faces(rng, 150, 1_500)
    ids = [f"f{i}" for i in range(1_500)]
    approximate, exact = IvfIndex.from_matrix(ids, vectors), ExactIndex.from_matrix(ids, vectors)
    for start in range(0, 450, 50):  # 30% removed in steps: compacted past 20%
        for index in (approximate, exact):
            index.remove(ids[start : start + 50])
    assert approximate.tombstones < 0.2 * len(approximate)
    assert len(approximate) == len(exact) == 1_050
    assert_same_answers(approximate, exact, second_photos(rng, vectors[::30]), limit=5)
    for index in (approximate, exact):
        index.remove(ids)
    assert len(approximate) == approximate.tombstones == 0
    assert approximate.search(vectors[0], limit=1, max_distance=2.0) == []
    approximate.add(["again"], vectors[:1])
    assert pairs(approximate.search(vectors[0], limit=1, max_distance=2.0)) == [("again", 0.0)]


def test_max_distance_filters_like_exact_index(rng: np.random.Generator) -> None:
    vectors = faces(rng, 100, 1_000)
    ids = [f"f{i}" for i in range(1_000)]
    approximate, exact = IvfIndex.from_matrix(ids, vectors), ExactIndex.from_matrix(ids, vectors)
    queries = second_photos(rng, vectors[::100])
    for distance in (0.2, 0.3, 0.4, 0.6):
        assert_same_answers(approximate, exact, queries, limit=20, distance=distance)
    for row in (0, 500, 999):  # rounding never pushes a vector off itself
        hits = approximate.search(vectors[row], limit=1, max_distance=0.0)
        assert pairs(hits) == [(ids[row], 0.0)]


def test_recall_at_1_on_random_vectors(rng: np.random.Generator) -> None:
    """The hardest case: no clusters. 20k random faces, second photos at distance 0.4."""
    vectors = normalised(rng.standard_normal((20_000, DIM)))
    ids = [str(uuid.UUID(bytes=rng.bytes(16), version=4)) for _ in range(20_000)]
    approximate = IvfIndex.from_matrix(ids, vectors, nprobe=16)  # 16 of 128 lists
    exact = ExactIndex.from_matrix(ids, vectors)
    sources = rng.choice(20_000, size=300, replace=False)
    noise = rng.standard_normal((300, DIM)) * 0.4 / np.sqrt(DIM)
    queries = normalised(vectors[sources] + noise)
    found = sum(
        approximate.search(q, limit=1, max_distance=2.0)[0].id
        == exact.search(q, limit=1, max_distance=2.0)[0].id
        for q in queries
    )
    assert found / len(queries) >= 0.99
    assert approximate._keys.mode == "uuid"  # white box: canonical UUIDs take 16 bytes


def test_uuid_and_other_ids_mix(rng: np.random.Generator) -> None:
    """A first id that is no canonical UUID converts the map to text keys, losing nothing."""
    vectors = faces(rng, 30, 300)
    ids = [str(uuid.UUID(int=i, version=4)) for i in range(298)] + [
        "F-ÜBER-\x00",  # any str: non-ASCII, a trailing NUL
        str(uuid.UUID(int=0xABCDEF)).upper(),  # a UUID, but not in canonical (lowercase) form
    ]
    index = IvfIndex.from_matrix(ids[:200], vectors[:200])
    assert "not-a-uuid" not in index  # a lookup never converts
    index.add(ids[200:], vectors[200:])
    for row in (0, 199, 250, 298, 299):
        assert pairs(index.search(vectors[row], limit=1, max_distance=0.0)) == [(ids[row], 0.0)]
    assert "F-ÜBER-" not in index
    assert "F-ÜBER-\x00" in index
    index.remove(ids[298:])
    assert len(index) == 298


def test_save_and_load_round_trip(rng: np.random.Generator, tmp_path: Path) -> None:
    vectors = faces(rng, 100, 1_000)
    ids = [f"f-{i}-ü" for i in range(1_000)]  # any str survives
    owners = [("alice", "bob", None)[i % 3] for i in range(1_000)]
    index = CollectionIndex.build(ids, vectors, owners, ann_threshold=500)
    index.remove_faces(ids[:50])  # tombstones are saved as they are
    index.add_faces(ids[:10], vectors[:10])
    assert isinstance(index.faces, IvfIndex)
    path = tmp_path / "c.faceindex"
    save_index(path, index, {"collection": "c", "generation": 7})
    meta, loaded = load_index(path, ann_threshold=500)
    assert (meta["collection"], meta["generation"]) == ("c", 7)
    assert isinstance(loaded.faces, IvfIndex)
    assert (len(loaded.faces), loaded.faces.dim) == (len(index.faces), DIM)
    assert loaded.faces.tombstones == index.faces.tombstones
    assert loaded.face_users() == index.face_users()
    queries = np.concatenate([second_photos(rng, vectors[::40]), vectors[:10]])
    for query in queries:  # the same lists: the very same answers
        assert index.faces.search(query, limit=10, max_distance=2.0) == loaded.faces.search(
            query, limit=10, max_distance=2.0
        )
        assert_same_users(index, loaded, query)
    loaded.add_faces(["new"], vectors[:1])  # a loaded index is a working one
    hits = loaded.faces.search(vectors[0], limit=2, max_distance=0.0)
    assert {h.id for h in hits} == {"new", "f-0-ü"}
    assert not [p.name for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp files


def test_corrupt_truncated_or_foreign_files_are_refused(
    rng: np.random.Generator, tmp_path: Path
) -> None:
    ids = [f"f{i}" for i in range(500)]
    index = CollectionIndex.build(ids, faces(rng, 50, 500), [None] * 500, ann_threshold=100)
    path = tmp_path / "c.faceindex"
    save_index(path, index, {"collection": "c", "generation": 1})
    saved = path.read_bytes()
    with pytest.raises(IndexFileError, match="cannot open"):
        load_index(tmp_path / "missing.faceindex", ann_threshold=100)
    damaged = [
        saved[:-100],  # truncated
        saved[:5000] + bytes([saved[5000] ^ 1]) + saved[5001:],  # one flipped bit
        b"not an index at all",
        saved.replace(b'"kind": "ivf-sq8"', b'"kind": "hnsw-xx"'),  # another kind of index
    ]
    for content in damaged:
        path.write_bytes(content)
        with pytest.raises(IndexFileError):
            load_index(path, ann_threshold=100)
    path.write_bytes(saved)
    assert len(load_index(path, ann_threshold=100)[1].faces) == 500


def test_collection_index_picks_ivf_from_the_threshold(rng: np.random.Generator) -> None:
    vectors = faces(rng, 20, 200)
    ids = [f"f{i}" for i in range(200)]
    owners = [("alice", "bob", None)[i % 3] for i in range(200)]
    small = CollectionIndex.build(ids[:99], vectors[:99], owners[:99], ann_threshold=100)
    large = CollectionIndex.build(ids[:100], vectors[:100], owners[:100], ann_threshold=100)
    assert isinstance(small.faces, ExactIndex)
    assert isinstance(large.faces, IvfIndex)
    assert isinstance(large.users, ExactIndex)
    alice = normalised(vectors[:100:3].mean(axis=0, keepdims=True))[0]
    assert pairs(large.users.search(alice, limit=1, max_distance=1e-3))[0][0] == "alice"
    assert isinstance(CollectionIndex.build(ids, vectors.copy(), owners).faces, ExactIndex)

    grown = CollectionIndex(ann_threshold=100)
    grown.add_faces(ids[:99], vectors[:99])
    assert isinstance(grown.faces, ExactIndex)
    grown.add_faces(ids[99:150], vectors[99:150])  # reaching the threshold trains the lists
    assert isinstance(grown.faces, IvfIndex)
    assert len(grown.faces) == 150
    grown.assign(ids[:3], "carol")
    assert grown.face_count("carol") == 3
    grown.remove_faces(ids[:120])  # no switching back below the threshold
    assert isinstance(grown.faces, IvfIndex)
    assert len(grown.faces) == 30
    assert grown.face_count("carol") == 0
    assert pairs(grown.faces.search(vectors[140], limit=1, max_distance=0.0)) == [("f140", 0.0)]


def test_apply_changes_catches_up_like_a_rebuild(rng: np.random.Generator) -> None:
    """Deleted, added, re-added with another vector and re-assigned faces, in one catch-up."""
    vectors = faces(rng, 30, 400)
    ids = [f"f{i}" for i in range(400)]
    owners: list[str | None] = [("alice", "bob", None)[i % 3] for i in range(400)]
    index = CollectionIndex.build(ids[:300], vectors[:300], owners[:300], ann_threshold=100)
    # what another process did since: rows written (with their present user) and deletions
    changed_ids = [*ids[300:], "f5", "f6", "f1"]  # new faces, f5 re-added, f6 and f1 moved
    changed = np.concatenate([vectors[300:], vectors[399:400], vectors[6:7], vectors[1:2]])
    changed_users: list[str | None] = [*owners[300:], "carol", None, "alice"]
    index.apply_changes(["f5", "f7", "f9", "never"], changed_ids, changed, changed_users)

    final_ids = [i for i in ids if i not in ("f7", "f9")]
    final_vectors = {i: vectors[int(i[1:])] for i in final_ids} | {"f5": vectors[399]}
    final_users = dict(zip(ids, owners, strict=True)) | {"f5": "carol", "f6": None, "f1": "alice"}
    rebuilt = CollectionIndex.build(
        final_ids, np.stack([final_vectors[i] for i in final_ids]),
        [final_users[i] for i in final_ids], ann_threshold=100,
    )  # fmt: skip
    assert index.face_users() == rebuilt.face_users()
    np.testing.assert_array_equal(index.faces.vectors(final_ids), rebuilt.faces.vectors(final_ids))
    for user in ("alice", "bob", "carol"):
        assert index.face_count(user) == rebuilt.face_count(user)
    for query in second_photos(rng, vectors[::20]):
        assert_same_users(index, rebuilt, query)


def test_saving_removes_temporary_files_a_killed_save_left(
    rng: np.random.Generator, tmp_path: Path
) -> None:
    index = CollectionIndex.build(["a", "b"], faces(rng, 2, 2), [None, None], ann_threshold=1)
    path = tmp_path / "c.faceindex"
    old, fresh = tmp_path / ".c.faceindex.abc.tmp", tmp_path / ".c.faceindex.def.tmp"
    for temp in (old, fresh):
        temp.write_bytes(b"partial")
    os.utime(old, (0, 0))  # an hour and more ago: abandoned
    save_index(path, index, {"collection": "c", "generation": 0})
    assert not old.exists()
    assert fresh.exists()  # perhaps another process's save in progress

"""The contract of every collection store: collections, faces, users, pages and search.

Each test runs on SQLite and on PostgreSQL (see conftest.py); what only one
back end has is tested beside it (tests/unit/collection/test_sqlite_store.py,
test_postgres.py here).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC

import numpy as np
import pytest

from facelens.collection.models import NewFace, UserStatus
from facelens.errors import (
    ConflictException,
    InvalidParameterException,
    ResourceAlreadyExistsException,
    ResourceNotFoundException,
)
from tests.integration.collection_stores.helpers import (
    BOX,
    DIM,
    MODEL,
    AnyStore,
    Connect,
    add,
    new_face,
    unit,
    walk_faces,
)

# -- collections --


def test_collection_lifecycle(connect: Connect) -> None:
    s = connect()
    info = s.create_collection("alpha", face_model_version=MODEL)
    assert info.created_at.tzinfo is not None
    assert info.created_at.utcoffset() == UTC.utcoffset(None)
    described = s.describe_collection("alpha")
    assert described == info
    assert described.created_at.utcoffset() == UTC.utcoffset(None)
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


def test_list_collections_pages_in_id_order(connect: Connect) -> None:
    s = connect()
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


def test_ids_sort_by_code_point_whatever_the_locale(
    connect: Connect, rng: np.random.Generator
) -> None:
    """Byte (code point) order on every back end, so a page token means the same on each."""
    s = connect()
    names = ["b", "B", "a.b", "a-b", "a_b", "Zed", "é", "z", "10", "9"]
    for name in names:
        s.create_collection(name, face_model_version=MODEL)
    assert s.list_collections(max_results=100).collection_ids == sorted(names)
    s.add_faces("b", [new_face(i, v) for i, v in zip(names, unit(rng, len(names)), strict=True)])
    assert walk_faces(s, "b", 3) == sorted(names)
    for name in names:
        s.create_user("b", name)
    users = s.list_users("b", max_results=4)
    assert [u.user_id for u in users.users] == sorted(names)[:4]


def test_delete_collection_removes_faces_and_users(
    connect: Connect, rng: np.random.Generator
) -> None:
    s = connect()
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


# -- faces --


def test_add_get_list_delete_faces(store: AnyStore, rng: np.random.Generator) -> None:
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
    assert embeddings["f2"].flags.writeable
    assert store.get_faces("c", []) == {}
    assert store.get_embeddings("c", []) == {}
    assert store.describe_collection("c").face_count == 5
    page = store.list_faces("c", max_results=100)
    assert [f.face_id for f in page.faces] == [f"f{i}" for i in range(5)]
    assert page.next_token is None
    assert store.delete_faces("c", ["f3", "nope", "f1", "f3"]) == ["f3", "f1"]
    assert store.delete_faces("c", ["f3"]) == []
    assert store.delete_faces("c", []) == []
    assert set(store.get_faces("c", ["f1", "f3"])) == set()
    assert store.describe_collection("c").face_count == 3


def test_add_faces_is_all_or_none(store: AnyStore, rng: np.random.Generator) -> None:
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


def test_awkward_strings_round_trip(store: AnyStore, rng: np.random.Generator) -> None:
    """Values that quoting, COPY escaping or placeholder rewriting could mangle."""
    odd = ["tab\there", "new\nline", "back\\slash", "quote'd", 'dq"', "%s", "?", "ünï", "a b"]
    vectors = unit(rng, len(odd))
    faces = [
        NewFace(f"id{o}", f"img{o}", None if i == 0 else o, BOX, 12.25, v)
        for i, (o, v) in enumerate(zip(odd, vectors, strict=True))
    ]
    stored = store.add_faces("c", faces)
    assert store.get_faces("c", [f.face_id for f in faces]) == {f.face_id: f for f in stored}
    assert walk_faces(store, "c", 2) == sorted(f.face_id for f in faces)
    store.create_user("c", "?%s")
    store.associate_faces("c", "?%s", ["id?", "id%s"])
    assert store.get_user("c", "?%s").face_count == 2
    assert store.delete_faces("c", ["id?"]) == ["id?"]


@pytest.mark.parametrize("max_results", [1, 3, 1000])
def test_pagination_walks_every_face_once(
    store: AnyStore, rng: np.random.Generator, max_results: int
) -> None:
    ids = add(store, "c", "f", unit(rng, 25))
    assert walk_faces(store, "c", max_results) == ids


def test_pagination_survives_concurrent_writes(store: AnyStore, rng: np.random.Generator) -> None:
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


def test_bad_tokens_are_refused(store: AnyStore, rng: np.random.Generator) -> None:
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


def test_list_faces_filters(store: AnyStore, rng: np.random.Generator) -> None:
    ids = add(store, "c", "f", unit(rng, 6))
    store.create_user("c", "u")
    store.associate_faces("c", "u", [ids[1], ids[3], ids[4]])

    def listed(**kwargs: object) -> list[str]:
        return [f.face_id for f in store.list_faces("c", max_results=100, **kwargs).faces]  # type: ignore[arg-type]

    assert listed(user_id="u") == [ids[1], ids[3], ids[4]]
    assert listed(face_ids=[ids[5], ids[0], "nope"]) == [ids[0], ids[5]]
    assert listed(user_id="u", face_ids=[ids[0], ids[3]]) == [ids[3]]
    assert listed(face_ids=[]) == []
    page = store.list_faces("c", max_results=1, user_id="u")
    assert [f.face_id for f in page.faces] == [ids[1]]
    page = store.list_faces("c", max_results=5, user_id="u", next_token=page.next_token)
    assert [f.face_id for f in page.faces] == [ids[3], ids[4]]
    assert page.next_token is None


# -- users --


def test_user_lifecycle(store: AnyStore, rng: np.random.Generator) -> None:
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


def test_search_faces_nearest_limit_and_distance(store: AnyStore, rng: np.random.Generator) -> None:
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


def test_deleted_face_is_never_found_again(store: AnyStore, rng: np.random.Generator) -> None:
    vectors = unit(rng, 20)
    ids = add(store, "c", "f", vectors)
    assert store.search_faces("c", vectors[5], limit=1, max_distance=2.0)[0].face.face_id == ids[5]
    store.delete_faces("c", [ids[5]])
    hits = store.search_faces("c", vectors[5], limit=20, max_distance=2.0)
    assert ids[5] not in {h.face.face_id for h in hits}
    assert len(hits) == 19


def test_search_users_by_template(store: AnyStore, rng: np.random.Generator) -> None:
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

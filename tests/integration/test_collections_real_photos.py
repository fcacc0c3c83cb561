"""Rekognition's collection semantics on real photos and the real dlib engine."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from facelens.collection.models import QualityFilter
from facelens.engine.protocol import FaceEngine
from facelens.errors import InvalidParameterException, ResourceNotFoundException
from tests.integration.conftest import Services, open_services

OBAMA_OTHERS = [
    "obama_2.jpg",
    "obama_3.jpg",
    "obama_4.jpg",
    "obama_240p.jpg",
    "obama_480p.jpg",
    "obama_720p.jpg",
    "obama_1080p.jpg",
    "obama_small.jpg",
]


def photo(testdata: Path, relative: str) -> bytes:
    return (testdata / relative).read_bytes()


@pytest.fixture(scope="module")
def enrolled(
    engine: FaceEngine, testdata: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Services, str, str]]:
    """obama and biden, enrolled from one photo each."""
    services = open_services(engine, tmp_path_factory.mktemp("enrolled") / "facelens.db")
    services.collections.create_collection("people")
    obama = services.collections.index_faces(
        "people", photo(testdata, "people/obama/obama_1.jpg"), external_image_id="obama"
    )
    biden = services.collections.index_faces(
        "people", photo(testdata, "people/biden/biden_1.jpg"), external_image_id="biden"
    )
    assert len(obama.face_records) == 1
    assert len(biden.face_records) == 1
    yield services, obama.face_records[0].face.face_id, biden.face_records[0].face.face_id
    services.store.close()


@pytest.mark.parametrize(
    ("relative", "own"),
    [
        *((f"people/obama/{name}", "obama") for name in OBAMA_OTHERS),
        ("people/biden/biden_2.jpg", "biden"),
    ],
)
def test_every_other_photo_finds_its_own_face_and_never_the_other(
    enrolled: tuple[Services, str, str], testdata: Path, relative: str, own: str
) -> None:
    services, obama_id, biden_id = enrolled
    own_id, other_id = (obama_id, biden_id) if own == "obama" else (biden_id, obama_id)
    result = services.collections.search_faces_by_image("people", photo(testdata, relative))
    by_id = {m.face.face_id: m for m in result.face_matches}
    assert own_id in by_id, f"{relative} did not find {own}"
    assert by_id[own_id].similarity >= 80
    assert by_id[own_id].face.external_image_id == own
    assert other_id not in by_id
    assert result.face_matches[0].face.face_id == own_id


def test_search_by_image_reports_the_searched_face(
    enrolled: tuple[Services, str, str], testdata: Path
) -> None:
    services, _, _ = enrolled
    result = services.collections.search_faces_by_image(
        "people", photo(testdata, "groups/obama_biden_1.jpg"), face_match_threshold=0, max_faces=2
    )
    box = result.searched_face.bounding_box
    assert 0 <= box.left < 1
    assert 0 <= box.top < 1
    assert 0 < box.width <= 1
    assert result.searched_face.confidence > 50
    similarities = [m.similarity for m in result.face_matches]
    assert similarities == sorted(similarities, reverse=True)
    assert len(result.face_matches) == 2


def test_search_faces_by_id_excludes_the_face_itself(enrolled: tuple[Services, str, str]) -> None:
    services, obama_id, biden_id = enrolled
    result = services.collections.search_faces("people", obama_id, face_match_threshold=0)
    ids = [m.face.face_id for m in result.face_matches]
    assert obama_id not in ids
    assert ids == [biden_id]
    assert result.face_matches[0].similarity < 80


def test_a_user_with_several_faces_is_found_by_search_users_by_image(
    services: Services, testdata: Path
) -> None:
    c, u = services.collections, services.users
    c.create_collection("team")
    obama_faces = [
        c.index_faces("team", photo(testdata, f"people/obama/{n}"), max_faces=1)
        .face_records[0]
        .face.face_id
        for n in ("obama_1.jpg", "obama_2.jpg", "obama_3.jpg")
    ]
    biden_face = (
        c.index_faces("team", photo(testdata, "people/biden/biden_1.jpg"))
        .face_records[0]
        .face.face_id
    )
    u.create_user("team", "obama")
    u.create_user("team", "biden")
    associated = u.associate_faces("team", "obama", obama_faces)
    assert associated.associated_face_ids == obama_faces
    assert associated.user_status.value == "ACTIVE"
    u.associate_faces("team", "biden", [biden_face])

    found = u.search_users_by_image("team", photo(testdata, "people/obama/obama_4.jpg"))
    assert [m.user.user_id for m in found.user_matches] == ["obama"]
    assert found.user_matches[0].similarity >= 75

    found = u.search_users_by_image("team", photo(testdata, "people/biden/biden_2.jpg"))
    assert [m.user.user_id for m in found.user_matches][:1] == ["biden"]

    # a group photo: the largest face is searched, the rest come back unsearched
    group = u.search_users_by_image("team", photo(testdata, "groups/obama_biden_2.jpg"))
    assert len(group.unsearched_faces) == 2
    assert all(f.reasons[0].value == "FACE_NOT_LARGEST" for f in group.unsearched_faces)

    # a stranger's face is not associated to obama
    stranger = c.index_faces(
        "team", photo(testdata, "people/brad_pitt/brad_pitt_1.jpg")
    ).face_records[0]
    refused = u.associate_faces("team", "obama", [stranger.face.face_id])
    assert refused.associated_face_ids == []
    assert refused.unsuccessful[0].reasons == ("LOW_MATCH_CONFIDENCE",)
    # ...nor can biden's face be associated to obama
    taken = u.associate_faces("team", "obama", [biden_face])
    assert taken.unsuccessful[0].reasons == ("ASSOCIATED_TO_A_DIFFERENT_USER",)


# Photos in which the HOG detector finds every face (counted by hand).
GROUPS = {
    "groups/obama_biden_1.jpg": 2,
    "groups/kit_harington_rose_leslie.jpg": 2,
    "groups/compreface_two-faces.jpg": 2,
    "groups/compreface_four-faces.jpg": 4,
    "groups/compreface_six-faces.jpg": 6,
}


@pytest.mark.parametrize(("relative", "count"), GROUPS.items())
def test_group_photos_index_every_face_with_one_image_id(
    services: Services, testdata: Path, relative: str, count: int
) -> None:
    services.collections.create_collection("groups")
    result = services.collections.index_faces(
        "groups",
        photo(testdata, relative),
        external_image_id="group",
        quality_filter=QualityFilter.NONE,
    )
    assert len(result.face_records) == count
    assert len({r.face.image_id for r in result.face_records}) == 1
    assert len({r.face.face_id for r in result.face_records}) == count
    assert all(r.face.external_image_id == "group" for r in result.face_records)
    assert result.unindexed_faces == []
    assert services.collections.describe_collection("groups").face_count == count


def test_max_faces_keeps_the_largest(services: Services, testdata: Path) -> None:
    services.collections.create_collection("groups")
    result = services.collections.index_faces(
        "groups",
        photo(testdata, "groups/compreface_six-faces.jpg"),
        max_faces=2,
        quality_filter=QualityFilter.NONE,
    )
    kept = [r.detail.face.box.area for r in result.face_records]
    dropped = [u.detail.face.box.area for u in result.unindexed_faces]
    assert len(kept) == 2
    assert len(dropped) == 4
    assert min(kept) >= max(dropped)
    assert all(u.reasons == ("EXCEEDS_MAX_FACES",) for u in result.unindexed_faces)


@pytest.mark.parametrize(
    "relative",
    [
        "noface/compreface_NoFace-img1.jpg",
        "noface/compreface_NoFace-img2.jpg",
        "noface/compreface_no-faces.jpg",
    ],
)
def test_images_without_a_face(services: Services, testdata: Path, relative: str) -> None:
    services.collections.create_collection("c")
    with pytest.raises(InvalidParameterException, match="no faces"):
        services.collections.search_faces_by_image("c", photo(testdata, relative))
    with pytest.raises(InvalidParameterException):
        services.users.search_users_by_image("c", photo(testdata, relative))
    indexed = services.collections.index_faces("c", photo(testdata, relative))
    assert indexed.face_records == []
    assert indexed.unindexed_faces == []


def test_a_restart_keeps_everything(engine: FaceEngine, services: Services, testdata: Path) -> None:
    c = services.collections
    c.create_collection("durable")
    face_id = (
        c.index_faces("durable", photo(testdata, "people/obama/obama_1.jpg"))
        .face_records[0]
        .face.face_id
    )
    services.users.create_user("durable", "obama")
    services.users.associate_faces("durable", "obama", [face_id])
    services.store.close()

    reopened = open_services(engine, services.path)
    try:
        info = reopened.collections.describe_collection("durable")
        assert (info.face_count, info.user_count) == (1, 1)
        match = reopened.collections.search_faces_by_image(
            "durable", photo(testdata, "people/obama/obama_2.jpg")
        ).face_matches
        assert [m.face.face_id for m in match] == [face_id]
        assert match[0].face.user_id == "obama"
        users = reopened.users.search_users_by_image(
            "durable", photo(testdata, "people/obama/obama_2.jpg")
        )
        assert [m.user.user_id for m in users.user_matches] == ["obama"]
    finally:
        reopened.store.close()


def test_a_deleted_face_is_never_found_again(services: Services, testdata: Path) -> None:
    c = services.collections
    c.create_collection("c")
    face_id = (
        c.index_faces("c", photo(testdata, "people/obama/obama_1.jpg")).face_records[0].face.face_id
    )
    result = c.delete_faces("c", [face_id, "00000000-0000-4000-8000-000000000000"])
    assert result.deleted_faces == [face_id]
    assert [f.reasons for f in result.unsuccessful] == [("FACE_NOT_FOUND",)]
    probe = photo(testdata, "people/obama/obama_2.jpg")
    assert c.search_faces_by_image("c", probe, face_match_threshold=0).face_matches == []
    assert c.list_faces("c").faces == []
    with pytest.raises(ResourceNotFoundException):
        c.search_faces("c", face_id)


def test_a_face_of_a_user_is_not_deleted_until_disassociated(
    services: Services, testdata: Path
) -> None:
    c, u = services.collections, services.users
    c.create_collection("c")
    face_id = (
        c.index_faces("c", photo(testdata, "people/obama/obama_1.jpg")).face_records[0].face.face_id
    )
    u.create_user("c", "obama")
    u.associate_faces("c", "obama", [face_id])
    refused = c.delete_faces("c", [face_id])
    assert refused.deleted_faces == []
    assert refused.unsuccessful[0].reasons == ("ASSOCIATED_TO_AN_EXISTING_USER",)
    # deleting the person entirely forgets the face
    assert u.delete_user("c", "obama", delete_faces=True) == [face_id]
    assert c.describe_collection("c").face_count == 0


def test_pagination_walks_every_face_exactly_once(services: Services, testdata: Path) -> None:
    c = services.collections
    c.create_collection("c")
    indexed = set()
    for relative in (
        "groups/compreface_six-faces.jpg",
        "groups/compreface_four-faces.jpg",
        "people/obama/obama_1.jpg",
    ):
        result = c.index_faces("c", photo(testdata, relative), quality_filter=QualityFilter.NONE)
        indexed |= {r.face.face_id for r in result.face_records}
    assert len(indexed) == 11
    seen: list[str] = []
    token = None
    while True:
        page = c.list_faces("c", max_results=3, next_token=token)
        assert len(page.faces) <= 3
        seen += [f.face_id for f in page.faces]
        token = page.next_token
        if token is None:
            break
    assert len(seen) == len(set(seen)) == 11
    assert set(seen) == indexed


def test_a_collection_of_another_model_is_refused_before_any_work(
    services: Services, testdata: Path
) -> None:
    services.store.create_collection("foreign", face_model_version="some-other-model")
    with pytest.raises(InvalidParameterException, match="some-other-model"):
        services.collections.index_faces("foreign", photo(testdata, "people/obama/obama_1.jpg"))
    with pytest.raises(ResourceNotFoundException):
        services.collections.search_faces_by_image(
            "missing", photo(testdata, "people/obama/obama_1.jpg")
        )

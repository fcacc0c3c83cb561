"""``POST /api/v1/collections/{id}/identify`` and the collection's ``Rule`` over real HTTP.

One real server for the module (the engine loads once), two people enrolled
from the shared test photos: Obama from three photos, Biden from one. Every
test reads; the test that checks identification records nothing compares the
stores before and after.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from facelens.collection.models import QualityFilter
from facelens.config import RecognizerSettings, ServeSettings, Settings
from facelens.engine.open_set import calibration_for
from facelens.enrolment import EnrolmentParts, Photo, enrol_person
from facelens.history.audit import Actor, AuditAction
from facelens.wiring.people import enrolment
from facelens.wiring.recognizer import engine_finder
from tests.integration.test_cli import facelens, out
from tests.servers.facelens_api import ApiServer, start_api_server, start_server

COLLECTION = "faces"
"""The recognizer's and the dashboard's collection (the default), so both can be compared."""
ADMIN = Actor("dashboard", "test-admin")


def _photo(testdata: Path, relative: str) -> bytes:
    return (testdata / relative).read_bytes()


def _enrolment(server: ApiServer) -> EnrolmentParts:
    """The server's own collections, profiles and audit log, as its dashboard enrols into
    them."""
    b = server.bundles
    return enrolment(b.collections(), b.profiles(), b.history().audit)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, testdata: Path) -> Iterator[ApiServer]:
    started = start_api_server(tmp_path_factory.mktemp("identify") / "home")
    try:
        c = _enrolment(started)
        obama = [f"people/obama/obama_{n}.jpg" for n in (1, 2, 3)]
        enrol_person(
            c,
            ADMIN,
            COLLECTION,
            "Barack Obama",
            [Photo(p, _photo(testdata, p)) for p in obama],
            user_id="obama",
        )
        biden = "people/biden/biden_1.jpg"
        photos = [Photo(biden, _photo(testdata, biden))]
        enrol_person(c, ADMIN, COLLECTION, "Joe Biden", photos, user_id="biden")
        yield started
    finally:
        started.server.stop()
        started.stack.close()


def identify(
    server: ApiServer,
    image: bytes,
    *,
    collection: str = COLLECTION,
    faces: str | None = None,
    token: str | None = None,
    headers: dict[str, str] | None = None,
    expect: int = 200,
) -> dict[str, Any]:
    response = requests.post(
        f"{server.url}/api/v1/collections/{collection}/identify",
        params={"faces": faces} if faces else None,
        files={"image": ("photo.jpg", image, "image/jpeg")},
        headers=server.headers(token=token) if headers is None else headers,
        timeout=120,
    )
    assert response.status_code == expect, response.text
    found: dict[str, Any] = response.json()
    return found


def test_the_engine_is_calibrated(server: ApiServer) -> None:
    """The figures below need the default engine's open-set calibration to ship."""
    version = server.bundles.collections().collections.face_model_version
    assert calibration_for(version) is not None, f"no calibration for {version}"


def test_an_enrolled_person_is_named_with_how_sure(server: ApiServer, testdata: Path) -> None:
    found = identify(
        server, _photo(testdata, "people/obama/obama_4.jpg"), token=server.reader_token
    )
    [face] = found["Faces"]
    person = face["Person"]
    assert person["UserId"] == "obama"
    assert person["Profile"] == {"UserId": "obama", "Name": "Barack Obama"}
    assert person["FaceId"]
    assert 0 < person["Similarity"] <= 100
    assert isinstance(person["ExpectedFPIR"], float)
    assert 0 < person["ExpectedFPIR"] <= 1
    assert person["GallerySize"] == 2
    box = face["BoundingBox"]
    assert 0 < box["Width"] <= 1
    assert 0 < box["Height"] <= 1
    assert found["Rule"] == {
        "Name": "open-set",
        "MaxFalseIdentificationRate": 0.01,
        "FaceMatchThreshold": None,
    }
    # The profile was read on the reader's behalf: audited as GET /profiles/{id} is.
    entries = server.bundles.history().audit.entries(
        action=AuditAction.PROFILE_READ, target="obama"
    )
    assert any(e.details.get("Via") == "identify" for e in entries.entries)


def test_the_answer_is_the_recognizers(server: ApiServer, testdata: Path) -> None:
    """The recognizer's own finder on the same photo decides the same, as surely."""
    image = _photo(testdata, "people/obama/obama_480p.jpg")
    b = server.bundles
    sighting = engine_finder(b.settings, b.collections(), b.people().policy).find(image)
    person = identify(server, image)["Faces"][0]["Person"]
    assert sighting.identity is not None
    assert person["UserId"] == sighting.identity.user_id
    assert person["Similarity"] == pytest.approx(sighting.identity.similarity)
    assert person["ExpectedFPIR"] == pytest.approx(sighting.identity.expected_fpir)


def test_nobody_enrolled_is_unknown(server: ApiServer, testdata: Path) -> None:
    [face] = identify(server, _photo(testdata, "people/rose_leslie/rose_leslie_1.jpg"))["Faces"]
    assert face == {"BoundingBox": face["BoundingBox"], "Unknown": {"StrangerId": None}}


def test_every_face_of_a_group_largest_first(server: ApiServer, testdata: Path) -> None:
    found = identify(server, _photo(testdata, "groups/obama_biden_1.jpg"), faces="all")
    faces = found["Faces"]
    assert len(faces) == 2
    areas = [f["BoundingBox"]["Width"] * f["BoundingBox"]["Height"] for f in faces]
    assert areas == sorted(areas, reverse=True)
    named = {f["Person"]["UserId"] for f in faces if "Person" in f}
    assert named == {"obama", "biden"}
    largest = identify(server, _photo(testdata, "groups/obama_biden_1.jpg"))["Faces"]
    assert largest == faces[:1]


def test_identification_changes_nothing(server: ApiServer, testdata: Path) -> None:
    """No ledger record, no stranger, no face: and not even the strangers' collection."""
    b = server.bundles
    collections, strangers = b.collections().collections, b.people().strangers
    ledger = b.history().ledger

    def state() -> Any:
        info = collections.describe_collection(COLLECTION)
        ids = collections.list_collections(max_results=100).collection_ids
        seen = strangers.list(COLLECTION)
        return (info.face_count, info.user_count, ids, ledger.history(limit=10), seen)

    before = state()
    identify(server, _photo(testdata, "people/kit_harington/kit_harington_1.jpg"))
    identify(server, _photo(testdata, "groups/obama_biden_2.jpg"), faces="all")
    assert state() == before


def test_an_unknown_face_says_which_stranger_it_would_join(
    server: ApiServer, testdata: Path
) -> None:
    analyzer, strangers = server.bundles.analyzer(), server.bundles.people().strangers
    seen = _photo(testdata, "people/kit_harington/kit_harington_2.jpg")
    embedding = analyzer.probe(seen, QualityFilter.NONE).embedding
    match = strangers.observe(COLLECTION, embedding)  # as the recognizer files an unknown face
    before = strangers.list(COLLECTION)
    [face] = identify(server, seen)["Faces"]
    assert face["Unknown"] == {"StrangerId": match.stranger_id}
    other = _photo(testdata, "people/rose_leslie/rose_leslie_2.jpg")
    assert identify(server, other)["Faces"][0]["Unknown"] == {"StrangerId": None}
    assert strangers.list(COLLECTION) == before  # still one face, no new stranger


@pytest.mark.parametrize("faces", ["largest", "all"])
def test_a_photo_without_a_face_is_invalid(server: ApiServer, testdata: Path, faces: str) -> None:
    body = identify(
        server, _photo(testdata, "noface/compreface_no-faces.jpg"), faces=faces, expect=400
    )
    assert body["__type"] == "InvalidParameterException"


def test_bad_uploads_are_refused(server: ApiServer, testdata: Path) -> None:
    assert (
        identify(server, b"not an image at all", expect=400)["__type"]
        == "InvalidImageFormatException"
    )
    assert identify(server, b"", expect=400)["__type"] == "InvalidParameterException"
    image = _photo(testdata, "people/obama/obama_1.jpg")
    assert identify(server, image, faces="some", expect=400)["__type"] == "ValidationException"
    missing = identify(server, image, collection="nobody-here", expect=404)
    assert missing["__type"] == "ResourceNotFoundException"


def test_identification_needs_a_key(server: ApiServer, testdata: Path) -> None:
    image = _photo(testdata, "people/obama/obama_1.jpg")
    refused = identify(server, image, headers={}, expect=401)
    assert refused["__type"] == "UnrecognizedClientException"
    wrong = identify(server, image, headers={"Authorization": "Bearer fl_no_such"}, expect=401)
    assert wrong["__type"] == "UnrecognizedClientException"


def test_the_route_is_documented(server: ApiServer) -> None:
    response = requests.get(
        f"{server.url}/openapi.json", headers=server.headers(token=server.reader_token), timeout=10
    )
    route = response.json()["paths"]["/api/v1/collections/{collection_id}/identify"]["post"]
    assert "recognizer" in route["summary"]
    assert {p["name"] for p in route["parameters"]} >= {"collection_id", "faces"}


def test_describe_gives_the_rule_and_its_figures(server: ApiServer) -> None:
    response = requests.get(
        f"{server.url}/api/v1/collections/{COLLECTION}",
        headers=server.headers(token=server.reader_token),
        timeout=30,
    )
    assert response.status_code == 200, response.text
    described = response.json()
    assert described["UserCount"] == 2
    rule = described["Rule"]
    assert rule["Name"] == "open-set"
    assert rule["Calibrated"] is True
    assert rule["MaxFalseIdentificationRate"] == 0.01
    assert rule["ExpectedFPIR"] == pytest.approx(0.005)  # the rule aims at half its bound
    assert rule["ExpectedFNIR"] is None or 0 <= rule["ExpectedFNIR"] <= 1
    assert rule["People"] == 2
    assert rule["OnePhotoPeople"] == 1
    assert rule["OnePhotoUserIds"] == ["biden"]
    assert "at most 1 in 200 strangers is given a name (bound 1%)" in rule["Summary"]
    assert "1 person has one photo: enrol two more of each." in rule["Summary"]


def test_the_cli_describes_the_same(server: ApiServer, testdata: Path) -> None:
    home = server.bundles.settings.home
    done = facelens(
        "collections", "describe", "--collection-id", COLLECTION, env={"FACELENS_HOME": str(home)}
    )
    described = out(done)
    response = requests.get(
        f"{server.url}/api/v1/collections/{COLLECTION}", headers=server.headers(), timeout=30
    )
    assert described["Rule"] == response.json()["Rule"]
    assert json.loads(done.stdout)["Rule"]["OnePhotoUserIds"] == ["biden"]


def test_the_people_page_says_it_and_links_one_photo_people(server: ApiServer) -> None:
    response = requests.get(f"{server.url}/ui/people", headers=server.headers(), timeout=30)
    assert response.status_code == 200, response.text
    page = response.text
    assert "at most 1 in 200 strangers is given a name" in page
    assert "1 person has one photo: enrol two more of each." in page
    assert '<a href="/ui/people/biden">Joe Biden</a>' in page


def test_the_similarity_rule_when_set(tmp_path: Path, testdata: Path) -> None:
    """recognizer.rule=similarity: FaceMatchThreshold decides, and no rate is claimed."""
    settings = Settings(
        home=tmp_path / "home",
        models_dir=None,
        serve=ServeSettings(port=0),
        recognizer=RecognizerSettings(rule="similarity"),
    )
    started = start_server(settings)
    try:
        obama = "people/obama/obama_1.jpg"
        photos = [Photo(obama, _photo(testdata, obama))]
        enrol_person(
            _enrolment(started), ADMIN, COLLECTION, "Barack Obama", photos, user_id="obama"
        )
        found = identify(started, _photo(testdata, "people/obama/obama_2.jpg"))
        person = found["Faces"][0]["Person"]
        assert person["UserId"] == "obama"
        assert person["ExpectedFPIR"] is None
        assert found["Rule"] == {
            "Name": "similarity",
            "MaxFalseIdentificationRate": None,
            "FaceMatchThreshold": 80.0,
        }
        response = requests.get(
            f"{started.url}/api/v1/collections/{COLLECTION}", headers=started.headers(), timeout=30
        )
        rule = response.json()["Rule"]
        assert rule["Name"] == "similarity"
        assert rule["ExpectedFPIR"] is None
        assert rule["OnePhotoUserIds"] == ["obama"]
        assert rule["Summary"].startswith("Rule similarity (recognizer.rule): ")
    finally:
        started.server.stop()
        started.stack.close()

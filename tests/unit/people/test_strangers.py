"""StrangerService on a memory collection store, synthetic unit embeddings and a real ledger.

Vectors: 128-d unit vectors; a person is a random direction, their faces that
direction plus a little noise (distance ~0.1, similarity ~100); two random
directions are ~1.4 apart (similarity 0).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import ExitStack
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from facelens.bus.publisher import MemoryPublisher
from facelens.collection.models import StoredFace
from facelens.collection.stores.registry import open_store
from facelens.collection.stores.store import CollectionStore
from facelens.errors import (
    ConflictException,
    InvalidParameterException,
    ResourceNotFoundException,
)
from facelens.history.ledger import Recognition, RecognitionLedger, Status
from facelens.history.sqlite import SqliteLedger
from facelens.people.stranger_faces import aliases, evictable
from facelens.people.stranger_model import StrangerSettings, companion_id, stranger_number
from facelens.people.strangers import StrangerService
from facelens.profiles.registry import open_profile_store
from facelens.profiles.store import ProfileStore
from facelens.recognizer.finders import Sighting
from facelens.recognizer.service import Recognizer, StrangerObserver
from facelens.storage.memory import MemoryObjectStore
from facelens.values.boxes import BoundingBox
from facelens.values.events import ObjectCreated
from facelens.values.strangers import StrangerMatch

MODEL = "test-model"
MAIN = "faces"
T0 = datetime(2025, 1, 1, 12, tzinfo=UTC)


class People:
    def __init__(self, seed: int = 7) -> None:
        self.rng = np.random.default_rng(seed)

    def person(self) -> np.ndarray:
        v = self.rng.normal(size=128)
        return (v / np.linalg.norm(v)).astype(np.float32)

    def face(self, person: np.ndarray, noise: float = 0.01) -> np.ndarray:
        v = person + self.rng.normal(scale=noise, size=person.shape)
        return (v / np.linalg.norm(v)).astype(np.float32)


@pytest.fixture
def store() -> Iterator[CollectionStore]:
    s = open_store("memory://")
    s.create_collection(MAIN, face_model_version=MODEL)
    yield s
    s.close()


@pytest.fixture
def profiles() -> Iterator[ProfileStore]:
    p = open_profile_store("memory://")
    yield p
    p.close()


@pytest.fixture
def ledger(tmp_path: Path) -> Iterator[RecognitionLedger]:
    led = SqliteLedger(tmp_path / "recognizer.db")
    yield led
    led.close()


@pytest.fixture
def service(
    store: CollectionStore, profiles: ProfileStore, ledger: RecognitionLedger
) -> StrangerService:
    return StrangerService(store, profiles=profiles, ledger=ledger)


def sighting(ledger: RecognitionLedger, stranger_id: str, n: int, *, width: float = 0.5) -> None:
    """A ledger record as the recognizer writes it for an unknown face of this stranger."""
    message = {
        "StrangerId": stranger_id,
        "Camera": "door",
        "BoundingBox": {"Width": width, "Height": width, "Left": 0.1, "Top": 0.1},
    }
    ledger.record(
        Recognition(
            f"r-{stranger_id}-{n}",
            Status.UNKNOWN,
            "rekognition/unknown",
            message,
            T0 + timedelta(minutes=n),
            "facelens",
            f"faces/{stranger_id}-{n}.jpg",
        )
    )


def test_faces_of_one_person_form_one_stranger_and_others_their_own(
    service: StrangerService, store: CollectionStore
) -> None:
    people = People()
    anna, bob = people.person(), people.person()
    first = service.observe(MAIN, people.face(anna))
    assert (first.stranger_id, first.new, first.similarity) == ("stranger-1", True, None)
    again = service.observe(MAIN, people.face(anna))
    assert (again.stranger_id, again.new) == ("stranger-1", False)
    assert again.similarity is not None
    assert again.similarity > 99
    other = service.observe(MAIN, people.face(bob))
    assert (other.stranger_id, other.new) == ("stranger-2", True)
    info = store.describe_collection(companion_id(MAIN))
    assert info.face_model_version == MODEL
    assert [s.face_count for s in service.list(MAIN)] == [2, 1]


def test_sightings_and_first_seen_come_from_the_ledger(
    service: StrangerService, ledger: RecognitionLedger
) -> None:
    people = People()
    anna = people.person()
    match = service.observe(MAIN, people.face(anna), seen_at=T0)
    assert (match.sightings, match.first_seen) == (1, T0)
    sighting(ledger, match.stranger_id, 0)
    sighting(ledger, match.stranger_id, 1, width=0.8)
    later = service.observe(MAIN, people.face(anna), seen_at=T0 + timedelta(hours=1))
    assert (later.sightings, later.first_seen) == (3, T0)
    stranger = service.get(MAIN, match.stranger_id)
    assert stranger.sightings == 2
    assert stranger.first_seen == T0
    assert stranger.last_seen == T0 + timedelta(minutes=1)
    assert [c.key for c in stranger.best_crops] == [
        "faces/stranger-1-1.jpg",
        "faces/stranger-1-0.jpg",
    ]


def test_faces_kept_per_stranger_are_capped_to_the_most_recent(
    store: CollectionStore, profiles: ProfileStore
) -> None:
    service = StrangerService(store, profiles=profiles, settings=StrangerSettings(max_faces=5))
    people = People()
    anna = people.person()
    ids = [service.observe(MAIN, people.face(anna)).face_id for _ in range(8)]
    (stranger,) = service.list(MAIN)
    assert stranger.face_count == 5
    assert set(stranger.face_ids) == set(ids[-5:])


def test_a_template_of_different_people_does_not_swallow_a_third() -> None:
    """Average linkage: a face between two strangers' faces joins neither, though the
    renormalised mean of the two would be near it."""
    store = open_store("memory://")
    store.create_collection(MAIN, face_model_version=MODEL)
    service = StrangerService(store, settings=StrangerSettings(threshold=50))
    people = People(3)
    a, b = people.person(), people.person()
    mid = (a + b) / np.linalg.norm(a + b)
    first = service.observe(MAIN, a)
    service.merge(MAIN, first.stranger_id, service.observe(MAIN, b).stranger_id)
    assert service.observe(MAIN, mid.astype(np.float32)).new


def test_ids_are_never_given_out_twice(
    service: StrangerService, store: CollectionStore, profiles: ProfileStore
) -> None:
    people = People()
    first = service.observe(MAIN, people.face(people.person()))
    service.name(MAIN, first.stranger_id, "anna")
    # A fresh service (another process) knows the id from the ledger's records.
    fresh = StrangerService(store, profiles=profiles, ledger=service.ledger)
    assert service.ledger is not None
    sighting(service.ledger, first.stranger_id, 0)
    assert fresh.observe(MAIN, people.face(people.person())).stranger_id == "stranger-2"


def test_naming_enrols_the_faces_as_a_user_with_a_profile(
    service: StrangerService, store: CollectionStore, profiles: ProfileStore
) -> None:
    people = People()
    anna = people.person()
    sid = service.observe(MAIN, people.face(anna)).stranger_id
    service.observe(MAIN, people.face(anna))
    named = service.name(MAIN, sid, "anna", profile={"Role": "Neighbour"})
    assert named.created
    assert len(named.face_ids) == 2
    assert named.profile == {"Role": "Neighbour", "Name": "anna"}
    assert store.get_user(MAIN, "anna").face_count == 2
    found = store.search_users(MAIN, people.face(anna), limit=1, max_distance=0.3)
    assert found[0].user.user_id == "anna"
    assert service.list(MAIN) == []
    assert store.describe_collection(companion_id(MAIN)).face_count == 0
    with pytest.raises(ResourceNotFoundException):
        service.get(MAIN, sid)


def test_naming_an_existing_user_needs_extend(
    service: StrangerService, store: CollectionStore, profiles: ProfileStore
) -> None:
    people = People()
    anna = people.person()
    store.create_user(MAIN, "anna")
    profiles.put("anna", {"Name": "Anna A."})
    sid = service.observe(MAIN, people.face(anna)).stranger_id
    with pytest.raises(ConflictException):
        service.name(MAIN, sid, "anna")
    assert service.get(MAIN, sid).face_count == 1  # nothing changed
    named = service.name(MAIN, sid, "anna", profile={"Age": 40}, extend=True)
    assert not named.created
    assert named.profile == {"Name": "Anna A.", "Age": 40}


def test_extending_a_user_needs_the_stranger_to_look_like_them(
    service: StrangerService, store: CollectionStore
) -> None:
    """Naming must not teach facelens a wrong face: a stranger joins an existing person
    only when their faces resemble that person's (AssociateFaces' threshold, 75)."""
    people = People()
    anna, bob = people.person(), people.person()
    first = service.observe(MAIN, people.face(anna)).stranger_id
    service.name(MAIN, first, "anna")  # anna now has a face of her own
    again = service.observe(MAIN, people.face(anna)).stranger_id
    stranger_bob = service.observe(MAIN, people.face(bob)).stranger_id
    with pytest.raises(InvalidParameterException, match="does not look like anna"):
        service.name(MAIN, stranger_bob, "anna", extend=True)
    assert service.get(MAIN, stranger_bob).face_count == 1  # nothing changed
    extended = service.name(MAIN, again, "anna", extend=True)
    assert (extended.created, store.get_user(MAIN, "anna").face_count) == (False, 2)


def test_merge_moves_faces_and_sightings(
    service: StrangerService, ledger: RecognitionLedger
) -> None:
    people = People()
    a = service.observe(MAIN, people.face(people.person())).stranger_id
    b = service.observe(MAIN, people.face(people.person())).stranger_id
    sighting(ledger, a, 0)
    sighting(ledger, b, 1)
    merged = service.merge(MAIN, a, b)
    assert (merged.face_count, merged.sightings, merged.merged) == (2, 2, (b,))
    assert [s.stranger_id for s in service.list(MAIN)] == [a]
    with pytest.raises(InvalidParameterException):
        service.merge(MAIN, a, a)
    with pytest.raises(ResourceNotFoundException):
        service.merge(MAIN, a, b)


def test_split_moves_faces_to_a_new_stranger(service: StrangerService) -> None:
    people = People()
    anna = people.person()
    sid = service.observe(MAIN, people.face(anna)).stranger_id
    for _ in range(2):
        service.observe(MAIN, people.face(anna))
    faces = service.get(MAIN, sid).face_ids
    new = service.split(MAIN, sid, [faces[0]])
    assert new == "stranger-2"
    assert service.get(MAIN, new).face_ids == (faces[0],)
    assert set(service.get(MAIN, sid).face_ids) == set(faces[1:])
    assert service.get(MAIN, new).merged == ()
    with pytest.raises(InvalidParameterException):
        service.split(MAIN, sid, list(faces[1:]))  # every face: nothing would remain
    with pytest.raises(InvalidParameterException):
        service.split(MAIN, sid, [faces[0]])  # not this stranger's any more
    with pytest.raises(InvalidParameterException):
        service.split(MAIN, sid, ["not-a-face-id"])


def test_unknown_collections_and_strangers(service: StrangerService) -> None:
    people = People()
    with pytest.raises(ResourceNotFoundException):
        service.observe("nope", people.person())
    with pytest.raises(ResourceNotFoundException):
        service.list("nope")
    assert service.list(MAIN) == []  # no stranger yet: no companion collection either
    with pytest.raises(ResourceNotFoundException):
        service.get(MAIN, "stranger-1")
    with pytest.raises(ResourceNotFoundException):
        service.name(MAIN, "stranger-9", "anna")
    with pytest.raises(InvalidParameterException):
        service.name(MAIN, "stranger-9", "not a valid id!")


def _face(face_id: str, origin: str | None, minute: int) -> StoredFace:
    return StoredFace(
        face_id,
        "img",
        origin,
        BoundingBox(1.0, 1.0, 0.0, 0.0),
        100.0,
        "stranger-1",
        T0 + timedelta(minutes=minute),
    )


def test_eviction_keeps_the_last_face_of_a_merged_stranger() -> None:
    newest_first = [
        _face("f4", "stranger-1", 4),
        _face("f3", "stranger-1", 3),
        _face("f2", "stranger-1", 2),
        _face("f1", "stranger-5", 1),
    ]
    assert [f.face_id for f in evictable(newest_first, 3)] == ["f2"]
    assert [f.face_id for f in evictable(newest_first, 1)] == ["f2", "f3", "f1"]
    assert evictable(newest_first, 4) == []
    assert aliases("stranger-1", newest_first) == ["stranger-1", "stranger-5"]


def test_stranger_numbers() -> None:
    assert stranger_number("stranger-12") == 12
    assert stranger_number("stranger-x") is None
    assert stranger_number(None) is None


def test_the_recognizer_is_wired_with_strangers_unless_disabled(tmp_path: Path) -> None:
    from facelens.config import RecognizerSettings, Settings
    from tests.wired import open_wired

    with ExitStack() as stack:
        on = open_wired(Settings(home=tmp_path / "on", models_dir=None), stack)
        off = open_wired(
            Settings(
                home=tmp_path / "off",
                models_dir=None,
                recognizer=RecognizerSettings(strangers=False, stranger_threshold=90),
            ),
            stack,
        )
        assert on.recognizer.recognizer.strangers is on.people.strangers
        assert on.people.strangers.settings.threshold == 95
        assert off.recognizer.recognizer.strangers is None
        assert off.people.strangers.settings.threshold == 90


class _Finder:
    """A finder that always sees one unknown face with ``embedding``."""

    def __init__(self, embedding: np.ndarray | None) -> None:
        self.embedding = embedding

    def prepare(self) -> None:
        pass

    def find(self, image: bytes) -> Sighting:
        return Sighting(BoundingBox(0.5, 0.5, 0.25, 0.25), None, self.embedding)


class _Broken:
    def observe(self, *args: object, **kwargs: object) -> StrangerMatch:
        raise InvalidParameterException("no")

    def take_back(self, collection_id: str, face_id: str) -> bool:
        raise InvalidParameterException("no")


def _recognize(
    ledger: RecognitionLedger, finder: _Finder, strangers: StrangerObserver | None, n: int = 2
) -> list[dict[str, object]]:
    objects = MemoryObjectStore()
    objects.create_bucket("crops")
    publisher = MemoryPublisher()
    recognizer = Recognizer(
        objects=objects,
        finder=finder,
        profiles=open_profile_store("memory://"),
        ledger=ledger,
        publisher=publisher,
        strangers=strangers,
    )
    for i in range(n):
        info = objects.put_object("crops", f"faces/{i}.jpg", b"jpeg")
        recognizer.handle(ObjectCreated("crops", f"faces/{i}.jpg", 4, info.etag, f"{i:016x}", T0))
    return [json.loads(m.payload) for m in publisher.messages]


def test_the_recognizer_marks_unknown_faces_with_their_stranger(
    tmp_path: Path, store: CollectionStore, ledger: RecognitionLedger
) -> None:
    people = People()
    service = StrangerService(store, ledger=ledger)
    first, second = _recognize(ledger, _Finder(people.person()), service)
    assert first["Status"] == "unknown"
    assert (first["StrangerId"], first["StrangerSightings"]) == ("stranger-1", 1)
    assert second["StrangerId"] == "stranger-1"
    assert second["FirstSeen"] == first["FirstSeen"]
    # Rekognition gives no embedding; a failing observer only leaves the id out.
    others = [SqliteLedger(tmp_path / f"other-{i}.db") for i in range(2)]
    plain = [
        *_recognize(others[0], _Finder(None), service),
        *_recognize(others[1], _Finder(people.person()), _Broken()),
    ]
    for other in others:
        other.close()
    assert [m["Status"] for m in plain] == ["unknown"] * 4
    assert not [m for m in plain if "StrangerId" in m]

"""`forget` leaves no trace: the test searches the database, the store and the index.

Real photos and the session's dlib engine, the production wiring
(:mod:`facelens.wiring`'s factories) on a private home, crops recognized by
the real recognizer, a negative example made by a real correction, and a
saved search index (``ann_threshold=1``, so even a small collection is
saved). Afterwards every file under the home is read back raw: no UserId,
FaceId, name or embedding of theirs may be in any of them.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from facelens.bus.delivery import EventSource
from facelens.collection.analysis import FaceAnalyzer
from facelens.collection.service import CollectionService
from facelens.collection.stores.sqlite import SQLiteCollectionStore
from facelens.collection.users import UserService
from facelens.engine.protocol import FaceEngine
from facelens.errors import ResourceNotFoundException
from facelens.history.audit import Actor
from facelens.history.ledger import Recognition, Status
from facelens.history.visits import VisitAnswer, VisitLook
from facelens.people.forget import ForgetReport
from facelens.recognizer.worker import RecognizerWorker
from facelens.storage.crops import CropMetadata
from facelens.wiring.bus import open_event_source
from facelens.wiring.stores import (
    CollectionParts,
    Stores,
    open_history,
    open_profiles,
    open_raw_objects,
)
from tests.integration.recognizer.conftest import COLLECTION, enroll, make_crop, pipeline_settings
from tests.wired import Wired, open_wired

TESTER = Actor("cli", "test")

STRANGERS = f"{COLLECTION}.strangers"
REJECTED = f"{COLLECTION}.rejected"


@dataclass
class Home:
    path: Path
    c: Wired
    source: EventSource
    testdata: Path
    engine: FaceEngine
    counter: int = 0

    def photo(self, person: str, name: str) -> Path:
        return self.testdata / "people" / person / name

    def recognize(self, person: str, name: str) -> Recognition:
        """Uploads a crop of the photo as a camera would and lets the recognizer handle it."""
        self.counter += 1
        key = f"faces/11_26/10_30/17641500{self.counter:05d}_0.jpg"
        meta = CropMetadata(camera="door", captured_at=datetime.now(UTC), track_id="1")
        body = make_crop(self.engine, self.photo(person, name))
        self.c.objects.put_object(
            self.c.settings.bucket,
            key,
            body,
            content_type="image/jpeg",
            metadata=meta.to_metadata(),
        )
        worker = RecognizerWorker(self.source, self.c.recognizer.recognizer, wait_seconds=0.1)
        while worker.run_once():
            pass
        [record] = [r for r in self.c.stores.history.ledger.recent(limit=100) if r.key == key]
        return record

    def files(self) -> dict[Path, bytes]:
        """Every file of the home but the crops (checked on their own) and the model cache."""
        skip = (self.path / "objects", self.path / "models")
        return {
            p: p.read_bytes()
            for p in self.path.rglob("*")
            if p.is_file() and not any(p.is_relative_to(s) for s in skip)
        }

    def holding(self, needles: dict[str, bytes]) -> list[str]:
        """Which needles some file still holds, and where."""
        files = self.files()
        return [f"{n} in {p.name}" for n, b in needles.items() for p, d in files.items() if b in d]

    def crop_files(self) -> dict[str, bytes]:
        root = self.path / "objects" / self.c.settings.bucket / "objects"
        return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}

    def saved_indexes(self) -> list[Path]:
        return sorted((self.path / "facelens.db-faceindex").glob("*.faceindex"))


def open_home(engine: FaceEngine, testdata: Path, path: Path, stack: ExitStack) -> Home:
    settings = pipeline_settings(path, mqtt_url=None)
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    # A saved index even for a handful of faces: the file must be checked too.
    store = SQLiteCollectionStore(str(path / "facelens.db"), ann_threshold=1)
    stack.callback(store.close)
    analyzer = FaceAnalyzer(engine)
    collections = CollectionService(analyzer, store)
    stores = Stores(
        collections=CollectionParts(
            analyzer, store, collections, UserService(collections, analyzer, store)
        ),
        rekognition=None,
        profiles=open_profiles(settings, stack),
        objects=open_raw_objects(settings, stack),
        history=open_history(settings, stack),
    )
    wired = open_wired(settings, stack, stores=stores)
    source = open_event_source(settings, stack, outbox=wired.outbox)
    return Home(path, wired, source, testdata, engine)


@pytest.fixture
def home(engine: FaceEngine, testdata: Path, tmp_path: Path) -> Iterator[Home]:
    with ExitStack() as stack:
        h = open_home(engine, testdata, tmp_path / "home", stack)
        enroll(h.c, testdata)  # obama: a user with a profile; brad: one face with a profile
        second = h.c.collections.collections.index_faces(
            COLLECTION, h.photo("obama", "obama_4.jpg").read_bytes(), max_faces=1
        ).face_records[0]
        h.c.collections.users.associate_faces(COLLECTION, "obama", [second.face.face_id])
        yield h


def _is_uuid(text: str) -> bool:
    try:
        return str(uuid.UUID(text)) == text
    except ValueError:
        return False


def needles_of(vectors: dict[str, np.ndarray], *ids: str) -> dict[str, bytes]:
    """What must be in no file: the ids (as stored: UTF-8 text) and each embedding's first
    eight float32 values, byte for byte as a blob or a saved index holds them."""
    found = {i: i.encode() for i in ids}
    for i in ids:
        if _is_uuid(i):  # an index keeps a FaceId as its 16 bytes (facelens.collection.index.keys)
            found[f"{i} as 16 bytes"] = uuid.UUID(i).bytes
    for face_id, vector in vectors.items():
        found[f"embedding of {face_id}"] = np.asarray(vector, dtype="<f4")[:8].tobytes()
    return found


@pytest.mark.slow
def test_forget_leaves_no_trace_in_the_database_the_store_or_the_index(home: Home) -> None:
    c = home.c
    obama_faces = sorted(
        f.face_id
        for f in c.collections.store.list_faces(COLLECTION, max_results=10, user_id="obama").faces
    )
    brad_face = home.c.collections.store.list_faces(COLLECTION, max_results=10).faces
    brad = next(f.face_id for f in brad_face if f.user_id is None)
    seen = [home.recognize("obama", "obama_2.jpg"), home.recognize("obama", "obama_3.jpg")]
    assert [r.status for r in seen] == [Status.IDENTIFIED, Status.IDENTIFIED]
    assert {r.message["UserId"] for r in seen} == {"obama"}
    other = home.recognize("brad_pitt", "brad_pitt_2.jpg")
    assert other.message["FaceId"] == brad
    # "this is not Obama": the crop's face becomes a negative example of obama
    correction = c.people.corrections.reject(seen[1].recognition_id, actor=TESTER)
    negatives = c.collections.store.list_faces(REJECTED, max_results=10).faces
    assert [f.external_image_id for f in negatives] == ["obama"]
    vectors = {
        **c.collections.store.get_embeddings(COLLECTION, obama_faces),
        **c.collections.store.get_embeddings(REJECTED, [negatives[0].face_id]),
    }
    their_crops = {r.key: home.crop_files()[str(r.key)] for r in seen}
    needles = needles_of(vectors, "obama", "Barack Obama", *obama_faces, negatives[0].face_id)
    # the checks below would see them: before forgetting, they are there
    [index_file] = home.saved_indexes()
    assert uuid.UUID(obama_faces[0]).bytes in index_file.read_bytes()
    assert home.holding(needles)

    report = c.people.forgetter.forget("obama", actor=TESTER)

    assert report.kind == "user"
    assert report.deleted_user == "obama"
    assert sorted(report.deleted_faces) == obama_faces
    assert report.deleted_negatives == (negatives[0].face_id,)
    assert report.deleted_profiles == ("obama",)
    assert sorted(report.deleted_crops) == sorted(str(k) for k in their_crops)
    assert report.deleted_records == 2
    assert report.purged
    # THE STORE: no crop of theirs, by name or by content; brad's stays
    left = home.crop_files()
    assert not set(their_crops) & set(left)
    assert not set(their_crops.values()) & set(left.values())
    assert str(other.key) in left
    # THE INDEX: their photo finds nothing, as a face or a user
    photo = home.photo("obama", "obama_1.jpg").read_bytes()
    assert c.collections.collections.search_faces_by_image(COLLECTION, photo).face_matches == []
    assert c.collections.users.search_users_by_image(COLLECTION, photo).user_matches == []
    brad_photo = home.photo("brad_pitt", "brad_pitt_1.jpg").read_bytes()
    assert c.collections.collections.search_faces_by_image(COLLECTION, brad_photo).face_matches
    [index_file] = home.saved_indexes()  # rebuilt by that search, without them
    assert uuid.UUID(brad).bytes in index_file.read_bytes()
    # THE DATABASE (collections, profiles, ledger, audit, outbox, index files: every file)
    assert home.holding(needles) == []
    assert c.collections.store.list_faces(REJECTED, max_results=10).faces == []
    assert [r.key for r in c.stores.history.ledger.recent(limit=100)] == [other.key]
    assert c.stores.profiles.get("obama") is None
    assert c.stores.profiles.get(brad) is not None
    # the audit log keeps that it happened, under a pseudonym
    forgets = c.stores.history.audit.entries(action="forget").entries
    assert [e.target.startswith("forgotten:") for e in forgets] == [True]
    assert correction.correction_id  # the correction's entry stays too, redacted
    # nothing left to forget
    with pytest.raises(ResourceNotFoundException):
        c.people.forgetter.forget("obama", actor=TESTER)


@pytest.mark.slow
def test_forget_a_face_without_a_user(home: Home) -> None:
    c = home.c
    brad = next(
        f.face_id
        for f in c.collections.store.list_faces(COLLECTION, max_results=10).faces
        if f.user_id is None
    )
    record = home.recognize("brad_pitt", "brad_pitt_2.jpg")
    vectors = c.collections.store.get_embeddings(COLLECTION, [brad])
    report = c.people.forgetter.forget(brad, actor=TESTER)
    assert (report.kind, report.deleted_faces, report.deleted_profiles) == (
        "face",
        (brad,),
        (brad,),
    )
    assert report.deleted_crops == (record.key,)
    assert home.holding(needles_of(vectors, brad, "Brad Pitt")) == []
    assert "obama" in {u.user_id for u in c.collections.users.list_users(COLLECTION).users}


def add_stranger(home: Home, stranger_id: str, person: str, photos: list[str]) -> list[str]:
    """A stranger as the strangers module keeps one: a user of ``<collection>.strangers`` with
    the faces seen, and unknown sightings in the ledger naming it (``StrangerId``), each
    with its crop in the store."""
    c = home.c
    faces = [
        c.collections.collections.index_faces(
            STRANGERS, home.photo(person, name).read_bytes(), max_faces=1
        )
        .face_records[0]
        .face.face_id
        for name in photos
    ]
    c.collections.users.create_user(STRANGERS, stranger_id)
    c.collections.users.associate_faces(STRANGERS, stranger_id, faces)
    for n, name in enumerate(photos):
        key = f"faces/strangers/{stranger_id}-{n}.jpg"
        c.stores.objects.put_object(
            c.settings.bucket, key, make_crop(home.engine, home.photo(person, name))
        )
        rid = f"{stranger_id}-sighting-{n}"
        message = {"RecognitionId": rid, "Status": "unknown", "Key": key, "StrangerId": stranger_id}
        at = datetime.now(UTC) - timedelta(minutes=n)
        c.stores.history.ledger.record(
            Recognition(
                rid, Status.UNKNOWN, "rekognition/unknown", message, at, c.settings.bucket, key
            )
        )
    return faces


@pytest.mark.slow
def test_forget_a_stranger_leaves_no_trace(home: Home) -> None:
    c = home.c
    c.collections.collections.create_collection(STRANGERS)
    biden = add_stranger(home, "stranger-1", "biden", ["biden_1.jpg", "biden_2.jpg"])
    kate = add_stranger(home, "stranger-2", "kate_siegel", ["kate_siegel_1.jpg"])
    vectors = c.collections.store.get_embeddings(STRANGERS, biden)
    photo = home.photo("biden", "biden_2.jpg").read_bytes()
    assert c.collections.collections.search_faces_by_image(
        STRANGERS, photo
    ).face_matches  # findable

    report: ForgetReport = c.people.forgetter.forget("stranger-1", actor=TESTER)

    assert report.kind == "stranger"
    assert sorted(report.deleted_stranger_faces) == sorted(biden)
    assert report.deleted_faces == ()
    assert sorted(report.deleted_crops) == [f"faces/strangers/stranger-1-{n}.jpg" for n in (0, 1)]
    assert report.deleted_records == 2
    left = home.crop_files()
    assert sorted(left) == ["faces/strangers/stranger-2-0.jpg"]
    assert c.collections.collections.search_faces_by_image(STRANGERS, photo).face_matches == []
    assert [u.user_id for u in c.collections.users.list_users(STRANGERS).users] == ["stranger-2"]
    assert (
        sorted(f.face_id for f in c.collections.store.list_faces(STRANGERS, max_results=10).faces)
        == kate
    )
    assert home.holding(needles_of(vectors, "stranger-1", *biden)) == []
    assert [r.recognition_id for r in c.stores.history.ledger.recent(limit=10)] == [
        "stranger-2-sighting-0"
    ]


def test_nobody_is_not_found(home: Home) -> None:
    with pytest.raises(ResourceNotFoundException):
        home.c.people.forgetter.forget("nobody-at-all", actor=TESTER)
    with pytest.raises(ResourceNotFoundException):
        home.c.people.forgetter.forget("stranger-99", actor=TESTER)


@pytest.mark.slow
def test_forget_a_named_stranger_takes_their_sightings_as_a_stranger(home: Home) -> None:
    c = home.c
    c.collections.collections.create_collection(STRANGERS)
    biden = add_stranger(home, "stranger-3", "biden", ["biden_1.jpg", "biden_2.jpg"])
    vectors = c.collections.store.get_embeddings(STRANGERS, biden)
    named = c.people.strangers.name(COLLECTION, "stranger-3", "joe", profile={"Name": "Joe"})
    assert named.stranger_id == "stranger-3"

    report = c.people.forgetter.forget("joe", actor=TESTER)

    assert (report.kind, report.deleted_user) == ("user", "joe")
    assert report.former_stranger_ids == ("stranger-3",)
    assert len(report.deleted_faces) == 2
    assert sorted(report.deleted_crops) == [f"faces/strangers/stranger-3-{n}.jpg" for n in (0, 1)]
    assert not [k for k in home.crop_files() if "stranger-3" in k]
    needles = needles_of(vectors, "joe", "stranger-3", *report.deleted_faces)
    assert home.holding(needles) == []


def visit_of(visit_id: str, rid: str, **message: object) -> VisitAnswer:
    at = datetime.now(UTC)
    body = {"RecognitionId": rid, "VisitId": visit_id, "Revision": 0, **message}
    return VisitAnswer(visit_id, 0, rid, Status.IDENTIFIED, body, "door", 1, at, at)


@pytest.mark.slow
def test_forget_takes_the_visits_that_named_them_with_their_looks(home: Home) -> None:
    """A visit is one person: the visits whose answer named them, whose revision corrected
    a name of theirs, or that hold a look of one of their records go whole, embeddings and
    all; another person's visit stays."""
    visits = home.c.stores.history.visits
    seen = home.recognize("obama", "obama_2.jpg")
    rng = np.random.default_rng(7)
    embeddings = [rng.standard_normal(128).astype("<f4").tobytes() for _ in range(3)]
    now = datetime.now(UTC)
    looks = [
        VisitLook("named-look", "v-named", now, 0.9, embeddings[0], "obama", 98.0),
        VisitLook(seen.recognition_id, "v-their-look", now, 0.8, embeddings[1]),
        VisitLook("other-look", "v-other", now, 0.7, embeddings[2], "brad", 97.0),
    ]
    for look in looks:
        visits.add_look(look, keep=5)
    visits.revise(
        visit_of("v-named", "named-look", UserId="obama", Name="Barack Obama"), expected=None
    )
    visits.revise(visit_of("v-their-look", "their-answer", UserId="brad"), expected=None)
    revises = {"RecognitionId": "x", "Status": "identified", "UserId": "obama"}
    visits.revise(visit_of("v-corrected", "y", UserId="brad", Revises=revises), expected=None)
    visits.revise(visit_of("v-other", "other-look", UserId="brad"), expected=None)
    assert home.holding({"look": embeddings[0]})  # the check below would see it

    report = home.c.people.forgetter.forget("obama", actor=TESTER)

    assert report.deleted_visits >= 3  # and any visit the recognizer itself kept for them
    for gone in ("v-named", "v-their-look", "v-corrected"):
        assert visits.answer(gone) is None
    kept = visits.answer("v-other")
    assert kept is not None
    assert kept.message["UserId"] == "brad"
    left = {"first look": embeddings[0], "their record's look": embeddings[1]}
    assert home.holding({**left, "Barack Obama": b"Barack Obama"}) == []
    assert home.holding({"brad's look": embeddings[2]})
    [forget] = home.c.stores.history.audit.entries(action="forget").entries
    assert forget.details["Visits"] == report.deleted_visits

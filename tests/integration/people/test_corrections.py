"""Corrections on real photos: "this is not Nicole", undo, and per-person thresholds.

The wrong match a user rejects: Sarah Paulson taken for Nicole Kidman
(:mod:`tests.integration.people.corrections_helpers`). Each crop is a new
upload (a new object, a new RecognitionId), recognized by the production
wiring; corrections are made through a second process's bundles on the same
home, as the CLI or the server would make them (another store instance,
whose writes the recognizer's warm index must see).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest

from facelens.config import RecognizerSettings
from facelens.engine.protocol import FaceEngine
from facelens.errors import InvalidParameterException, ResourceNotFoundException
from facelens.history.audit import Actor, AuditAction
from facelens.history.ledger import Status
from facelens.people.corrections import correction_id
from facelens.people.matching import negatives_collection
from tests.integration.people.corrections_helpers import (
    NICOLE,
    enrol_nicole,
    make_crops,
    recognize,
    who,
)
from tests.integration.recognizer.conftest import COLLECTION, open_recognizer_process
from tests.wired import Wired

TESTER = Actor("cli", "tester")


@pytest.fixture(scope="session")
def crops(engine: FaceEngine, testdata: Path) -> dict[str, bytes]:
    return make_crops(engine, testdata)


@pytest.fixture
def homes(engine: FaceEngine, testdata: Path, tmp_path: Path) -> Iterator[tuple[Wired, Wired]]:
    """(recognizer, admin): two processes on one home; Nicole enrolled as a user."""
    with ExitStack() as first, ExitStack() as second:
        recognizer = open_recognizer_process(engine, tmp_path / "home", first, mqtt_url=None)
        admin = open_recognizer_process(engine, tmp_path / "home", second, mqtt_url=None)
        enrol_nicole(admin, testdata)
        yield recognizer, admin


def test_a_rejected_match_stops_recurring_for_that_face(
    homes: tuple[Wired, Wired], crops: dict[str, bytes]
) -> None:
    recognizer, admin = homes
    wrong = recognize(recognizer, crops["sarah_paulson_3"])
    assert who(wrong) == NICOLE  # Sarah, taken for Nicole
    assert wrong.message["Similarity"] > 85
    assert who(recognize(recognizer, crops["sarah_paulson_4"])) == NICOLE  # and again
    assert not admin.people.corrections.list()

    correction = admin.people.corrections.reject(wrong.recognition_id, actor=TESTER)
    assert correction.person_id == NICOLE
    assert correction.correction_id == correction_id(wrong.recognition_id, NICOLE)
    assert correction.similarity == wrong.message["Similarity"]
    # Stored as a face of the companion collection, named after the person.
    negatives = admin.collections.collections.list_faces(negatives_collection(COLLECTION)).faces
    assert [(f.image_id, f.external_image_id) for f in negatives] == [
        (correction.correction_id, NICOLE)
    ]

    # The same crop, uploaded again, is no longer Nicole; nor is another photo of the same
    # face that resembles the negative more than it resembles Nicole.
    assert who(recognize(recognizer, crops["sarah_paulson_3"])) is None
    assert who(recognize(recognizer, crops["sarah_paulson_4"])) is None
    # Nicole herself still is, though this photo of her is ~85 similar to the rejected face.
    assert who(recognize(recognizer, crops["nicole_kidman_2"])) == NICOLE

    # Rejecting it again is the same correction, not a second one.
    again = admin.people.corrections.reject(wrong.recognition_id, actor=TESTER)
    assert again.correction_id == correction.correction_id
    [listed] = admin.people.corrections.list()
    assert listed.correction_id == correction.correction_id
    assert listed.recognition_id == wrong.recognition_id  # from the audit log
    assert listed.actor == "cli:tester"
    assert admin.people.corrections.list(person="someone-else") == []
    assert admin.people.corrections.get(correction_id(wrong.recognition_id, NICOLE)) == listed

    undone = admin.people.corrections.undo(correction.correction_id, actor=TESTER)
    assert undone.undone
    assert admin.people.corrections.list() == []
    assert admin.people.corrections.get(correction.correction_id) is None
    assert who(recognize(recognizer, crops["sarah_paulson_3"])) == NICOLE  # the mistake is back
    with pytest.raises(ResourceNotFoundException):
        admin.people.corrections.undo(correction.correction_id, actor=TESTER)

    entries = admin.stores.history.audit.entries(target=NICOLE).entries
    actions = [(e.action, e.actor, e.details.get("CorrectionId")) for e in reversed(entries)]
    assert actions == [
        (AuditAction.CORRECT, "cli:tester", correction.correction_id),
        (AuditAction.UNDO_CORRECTION, "cli:tester", correction.correction_id),
    ]


@pytest.fixture
def similarity_homes(
    engine: FaceEngine, testdata: Path, tmp_path: Path
) -> Iterator[tuple[Wired, Wired]]:
    """(recognizer, admin) as ``homes``, deciding by the similarity rule at 85 (so that a
    look-alike at ~82 falls between a lowered own threshold and the global one)."""
    rule = RecognizerSettings(collection_id=COLLECTION, rule="similarity", face_match_threshold=85)
    home = tmp_path / "home"
    with ExitStack() as first, ExitStack() as second:
        recognizer = open_recognizer_process(engine, home, first, mqtt_url=None, recognizer=rule)
        admin = open_recognizer_process(engine, home, second, mqtt_url=None, recognizer=rule)
        enrol_nicole(admin, testdata)
        yield recognizer, admin


def test_per_person_thresholds_raise_and_lower_the_bar_under_the_similarity_rule(
    similarity_homes: tuple[Wired, Wired], crops: dict[str, bytes]
) -> None:
    recognizer, admin = similarity_homes
    corrections = admin.people.corrections
    assert corrections.threshold(NICOLE).override is None
    assert corrections.threshold(NICOLE).effective == 85
    wrong = recognize(recognizer, crops["sarah_paulson_3"])
    right = recognize(recognizer, crops["nicole_kidman_2"])
    assert who(wrong) == who(right) == NICOLE
    assert wrong.message["Similarity"] < 95 < right.message["Similarity"]
    assert wrong.message["ExpectedFPIR"] is None  # the similarity rule says nothing of it

    # Raised above the look-alike's similarity: only Nicole herself is Nicole.
    assert corrections.set_threshold(NICOLE, 95, actor=TESTER).effective == 95
    assert admin.stores.profiles.get(NICOLE).attributes == {  # type: ignore[union-attr]
        "Name": "Nicole Kidman",
        "FaceMatchThreshold": 95.0,
    }
    assert who(recognize(recognizer, crops["sarah_paulson_3"])) is None
    assert who(recognize(recognizer, crops["nicole_kidman_2"])) == NICOLE
    # Raised above every similarity she reaches: Nicole is unknown.
    corrections.set_threshold(NICOLE, 100, actor=TESTER)
    assert who(recognize(recognizer, crops["nicole_kidman_2"])) is None

    # Lowered below the global 85: a borderline face (~82) now counts as Nicole.
    assert who(recognize(recognizer, crops["sarah_paulson_1"])) is None
    corrections.set_threshold(NICOLE, 75, actor=TESTER)
    borderline = recognize(recognizer, crops["sarah_paulson_1"])
    assert who(borderline) == NICOLE
    assert 75 <= borderline.message["Similarity"] < 85

    cleared = corrections.set_threshold(NICOLE, None, actor=TESTER)
    assert (cleared.override, cleared.effective) == (None, 85)
    assert admin.stores.profiles.get(NICOLE).attributes == {"Name": "Nicole Kidman"}  # type: ignore[union-attr]
    assert who(recognize(recognizer, crops["sarah_paulson_1"])) is None
    changes = admin.stores.history.audit.entries(action=AuditAction.THRESHOLD).entries
    assert [e.details["FaceMatchThreshold"] for e in reversed(changes)] == [95, 100, 75, None]


def test_under_the_open_set_rule_an_own_threshold_only_raises_the_bar(
    homes: tuple[Wired, Wired], crops: dict[str, bytes]
) -> None:
    """The default rule names by the share of strangers it lets through; a person's own
    FaceMatchThreshold is a similarity their matches must also reach, never a way around it."""
    recognizer, admin = homes
    corrections = admin.people.corrections
    right = recognize(recognizer, crops["nicole_kidman_2"])
    assert who(right) == NICOLE
    assert 0 < right.message["ExpectedFPIR"] <= 0.005
    assert right.message["GallerySize"] == 1
    assert who(recognize(recognizer, crops["biden_1"])) is None

    corrections.set_threshold(NICOLE, 95, actor=TESTER)
    assert who(recognize(recognizer, crops["sarah_paulson_3"])) is None  # ~91
    assert who(recognize(recognizer, crops["nicole_kidman_2"])) == NICOLE  # ~100
    corrections.set_threshold(NICOLE, 50, actor=TESTER)  # the lowest allowed
    assert who(recognize(recognizer, crops["biden_1"])) is None  # not alike: still nobody


def test_what_cannot_be_corrected(homes: tuple[Wired, Wired], crops: dict[str, bytes]) -> None:
    recognizer, admin = homes
    corrections = admin.people.corrections
    with pytest.raises(ResourceNotFoundException):
        corrections.reject(str(uuid.uuid4()), actor=TESTER)
    stranger = recognize(recognizer, crops["biden_1"])
    assert stranger.status is Status.UNKNOWN
    with pytest.raises(InvalidParameterException, match="identified nobody"):
        corrections.reject(stranger.recognition_id, actor=TESTER)
    # Naming the person works for an unknown face too: "whoever this is, not Nicole".
    assert corrections.reject(stranger.recognition_id, actor=TESTER, person=NICOLE)

    wrong = recognize(recognizer, crops["sarah_paulson_3"])
    assert wrong.bucket is not None
    assert wrong.key is not None
    admin.stores.objects.delete_object(wrong.bucket, wrong.key)
    with pytest.raises(InvalidParameterException, match="is gone"):
        corrections.reject(wrong.recognition_id, actor=TESTER)

    with pytest.raises(ResourceNotFoundException):
        corrections.undo(str(uuid.uuid4()), actor=TESTER)
    with pytest.raises(InvalidParameterException):
        corrections.undo("not-a-uuid", actor=TESTER)
    with pytest.raises(ResourceNotFoundException):
        corrections.set_threshold("nobody", 90, actor=TESTER)
    with pytest.raises(InvalidParameterException):
        corrections.set_threshold(NICOLE, 30, actor=TESTER)

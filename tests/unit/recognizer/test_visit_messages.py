"""What a visit's answers look like on the wire and in an alert (messages.py, alert_for)."""

from __future__ import annotations

from datetime import UTC, datetime

from facelens.history.ledger import Recognition, Status
from facelens.recognizer import messages
from facelens.recognizer.messages import VisitPart
from facelens.recognizer.service import alert_for
from facelens.storage.crops import CropMetadata
from facelens.up import identification_line
from facelens.values.boxes import BoundingBox
from facelens.values.events import ObjectCreated
from facelens.values.identity import Identity

T0 = datetime(2026, 1, 1, tzinfo=UTC)
EVENT = ObjectCreated("b", "faces/1.jpg", 10, "etag", "0001", T0)
BOX = BoundingBox(width=0.5, height=0.5, left=0.25, top=0.25)
ANNA = Identity(similarity=97.5, face_id="f1", user_id="anna", expected_fpir=0.001, gallery_size=3)


def test_a_crop_without_a_visit_is_revision_0_of_a_visit_of_one_look() -> None:
    m = messages.identified(
        "r1", EVENT, CropMetadata(camera="door"), T0, identity=ANNA, profile={}, box=BOX
    )
    assert (m["VisitId"], m["Revision"], m["Revises"], m["Looks"]) == (None, 0, None, 1)
    assert "Published" not in m


def test_a_revision_names_the_answer_it_replaces_and_a_profile_cannot_forge_it() -> None:
    before = messages.unknown("r1", EVENT, CropMetadata(visit_id="v"), T0, box=BOX)
    visit = VisitPart("v", 1, before, looks=3)
    profile = {"Name": "Anna", "Revision": 99, "VisitId": "forged", "Published": True}
    m = messages.identified(
        "r2",
        EVENT,
        CropMetadata(visit_id="v"),
        T0,
        identity=ANNA,
        profile=profile,
        box=BOX,
        visit=visit,
    )
    assert m["Revision"] == 1
    assert m["VisitId"] == "v"
    assert m["Looks"] == 3
    assert m["Revises"] == {
        "RecognitionId": "r1",
        "Status": "unknown",
        "UserId": None,
        "FaceId": None,
        "Name": None,
    }
    assert "Published" not in m
    assert messages.profile_of(m) == {"Name": "Anna"}
    assert messages.identity_of(m) == ANNA
    assert messages.identity_of(before) is None


def test_a_look_that_changed_nothing_says_so() -> None:
    visit = VisitPart("v", 2, None, looks=4, published=False)
    m = messages.unknown(
        "r3",
        EVENT,
        CropMetadata(visit_id="v"),
        T0,
        box=BOX,
        stranger_fields={"StrangerId": "stranger-1", "StrangerFaceId": "sf", "Other": 1},
        visit=visit,
    )
    assert m["Published"] is False
    assert m["Revision"] == 2
    assert m["StrangerId"] == "stranger-1"
    assert m["StrangerFaceId"] == "sf"
    assert "Other" not in m


def recognition(message: dict[str, object], status: Status) -> Recognition:
    return Recognition("r", status, "t", message, T0)


def test_alerts_say_correction_for_a_revision_and_nothing_else_for_a_first_answer() -> None:
    first = messages.identified(
        "r1",
        EVENT,
        CropMetadata(camera="door"),
        T0,
        identity=ANNA,
        profile={"Name": "Anna"},
        box=BOX,
    )
    alert = alert_for(recognition(first, Status.IDENTIFIED))
    assert alert.title == "Anna at door"
    assert alert.person == "anna"
    bob = Identity(similarity=99.0, user_id="bob")
    revised = messages.identified(
        "r2",
        EVENT,
        CropMetadata(camera="door"),
        T0,
        identity=bob,
        profile={"Name": "Bob"},
        box=BOX,
        visit=VisitPart("v", 1, first, looks=2),
    )
    alert = alert_for(recognition(revised, Status.IDENTIFIED))
    assert alert.title == "Correction: Bob at door"
    assert "earlier: Anna" in alert.body
    withdrawn = messages.unknown(
        "r3", EVENT, CropMetadata(camera="door"), T0, box=BOX, visit=VisitPart("v", 2, revised)
    )
    alert = alert_for(recognition(withdrawn, Status.UNKNOWN))
    assert alert.title == "Correction: Unknown person at door"
    assert alert.person is None
    assert "earlier: Bob" in alert.body


def test_facelens_up_prints_a_revision_as_a_correction() -> None:
    first = messages.unknown("r1", EVENT, CropMetadata(camera="door"), T0, box=BOX)
    revised = messages.identified(
        "r2",
        EVENT,
        CropMetadata(camera="door"),
        T0,
        identity=ANNA,
        profile={"Name": "Anna"},
        box=BOX,
        visit=VisitPart("v", 1, first, looks=2),
    )
    assert "correction" not in (identification_line(first) or "")
    line = identification_line(revised) or ""
    assert "correction: Anna (anna)" in line
    assert "Revision" not in line  # the visit's fields are facelens' own, not profile extras

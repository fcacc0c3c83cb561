"""The Gallery records each change to enrolled faces and users itself: the session's engine
on real photos, a SQLite collection store and a real SQLite audit log."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from facelens.errors import ResourceNotFoundException
from facelens.history.audit import Actor, AuditAction, AuditEntry
from facelens.history.sqlite import SqliteAuditLog
from facelens.people.gallery import Gallery
from tests.integration.conftest import Services

CID = "staff"
ME = Actor("cli", "tester")


def photo(testdata: Path, person: str, name: str) -> bytes:
    return (testdata / "people" / person / name).read_bytes()


@pytest.fixture
def audit(tmp_path: Path) -> Iterator[SqliteAuditLog]:
    log = SqliteAuditLog(tmp_path / "audit.db")
    yield log
    log.close()


@pytest.fixture
def gallery(services: Services, audit: SqliteAuditLog) -> Gallery:
    services.collections.create_collection(CID)
    return Gallery(services.collections, services.users, audit)


def entries(audit: SqliteAuditLog) -> list[AuditEntry]:
    """Oldest first."""
    return list(reversed(audit.entries().entries))


def test_each_change_is_recorded_once_as_the_actor(
    gallery: Gallery, audit: SqliteAuditLog, testdata: Path
) -> None:
    obama = photo(testdata, "obama", "obama_1.jpg")
    first = gallery.index_faces(ME, CID, obama, external_image_id="obama", max_faces=1)
    [face_id] = [r.face.face_id for r in first.face_records]
    second = gallery.index_faces(
        ME, CID, photo(testdata, "obama", "obama_2.jpg"), max_faces=1, context={"Via": "IndexFaces"}
    )
    [other_id] = [r.face.face_id for r in second.face_records]
    gallery.users.create_user(CID, "barack")  # past the gallery: not recorded
    gallery.associate_faces(ME, CID, "barack", [face_id])
    gallery.delete_user(ME, CID, "barack")
    gallery.delete_faces(ME, CID, [other_id, "00000000-0000-4000-8000-000000000000"])
    gallery.delete_collection(ME, CID)

    got = [(e.action, e.target, e.collection_id, dict(e.details)) for e in entries(audit)]
    assert got == [
        (AuditAction.ENROL, face_id, CID, {"FaceIds": [face_id], "ExternalImageId": "obama"}),
        (AuditAction.ENROL, other_id, CID, {"FaceIds": [other_id], "Via": "IndexFaces"}),
        (AuditAction.ENROL, "barack", CID, {"FaceIds": [face_id]}),
        (AuditAction.DELETE_USER, "barack", CID, {}),
        (AuditAction.DELETE_FACE, other_id, CID, {"FaceIds": [other_id]}),
        (AuditAction.DELETE_COLLECTION, CID, CID, {}),
    ]
    assert {e.actor for e in entries(audit)} == {"cli:tester"}


def test_what_did_not_happen_is_not_recorded(
    gallery: Gallery, audit: SqliteAuditLog, testdata: Path
) -> None:
    nobody = "00000000-0000-4000-8000-000000000000"
    assert gallery.delete_faces(ME, CID, [nobody]).deleted_faces == []
    with pytest.raises(ResourceNotFoundException):
        gallery.delete_user(ME, CID, "nobody")
    with pytest.raises(ResourceNotFoundException):
        gallery.index_faces(ME, "no-such-collection", photo(testdata, "obama", "obama_1.jpg"))
    assert entries(audit) == []


def test_creating_a_user_and_taking_faces_off_one_are_recorded(
    gallery: Gallery, audit: SqliteAuditLog, testdata: Path
) -> None:
    obama = photo(testdata, "obama", "obama_1.jpg")
    [face_id] = [r.face.face_id for r in gallery.collections.index_faces(CID, obama).face_records]
    via = {"Via": "CreateUser"}
    gallery.create_user(ME, CID, "barack", context=via)
    gallery.users.associate_faces(CID, "barack", [face_id])  # past the gallery: not recorded
    nobody = "00000000-0000-4000-8000-000000000000"
    result = gallery.disassociate_faces(ME, CID, "barack", [face_id, nobody])
    assert result.disassociated_face_ids == [face_id]
    # Nothing taken off: nothing recorded.
    assert gallery.disassociate_faces(ME, CID, "barack", [nobody]).disassociated_face_ids == []

    got = [(e.actor, e.action, e.target, e.collection_id, dict(e.details)) for e in entries(audit)]
    assert got == [
        ("cli:tester", AuditAction.CREATE_USER, "barack", CID, via),
        ("cli:tester", AuditAction.DISASSOCIATE, "barack", CID, {"FaceIds": [face_id]}),
    ]

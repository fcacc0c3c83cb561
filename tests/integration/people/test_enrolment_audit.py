"""Enrolling a person and taking a face off them record themselves: the session's engine on
real photos, SQLite stores and a real SQLite audit log."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from facelens.enrolment import EnrolmentParts, Photo, enrol_person, remove_face
from facelens.errors import InvalidParameterException
from facelens.history.audit import Actor, AuditAction, AuditEntry
from facelens.history.sqlite import SqliteAuditLog
from facelens.profiles.registry import open_profile_store
from tests.integration.conftest import Services

CID = "staff"
EDITOR = Actor("dashboard", "editor")


@pytest.fixture
def audit(tmp_path: Path) -> Iterator[SqliteAuditLog]:
    log = SqliteAuditLog(tmp_path / "audit.db")
    yield log
    log.close()


@pytest.fixture
def parts(services: Services, audit: SqliteAuditLog) -> Iterator[EnrolmentParts]:
    profiles = open_profile_store("memory://")
    yield EnrolmentParts(services.collections, services.users, profiles, audit)
    profiles.close()


def entries(audit: SqliteAuditLog) -> list[AuditEntry]:
    """Oldest first."""
    return list(reversed(audit.entries().entries))


def test_an_enrolment_and_a_removal_are_each_one_entry_of_the_actor(
    parts: EnrolmentParts, audit: SqliteAuditLog, testdata: Path
) -> None:
    folder = testdata / "people" / "obama"
    photos = [Photo(name, folder / name) for name in ("obama_1.jpg", "obama_2.jpg")]
    advanced: list[int] = []
    report = enrol_person(
        parts,
        EDITOR,
        CID,
        "Barack Obama",
        photos,
        context={"RecognitionId": "r-1"},
        advance=lambda: advanced.append(1),
    )
    assert (report.user_id, len(report.face_ids), len(advanced)) == ("barack-obama", 2, 2)
    kept, removed = report.face_ids
    remove_face(parts, EDITOR, CID, report.user_id, removed)

    enrolled, deleted = entries(audit)
    assert (enrolled.actor, enrolled.action, enrolled.target, enrolled.collection_id) == (
        "dashboard:editor",
        AuditAction.ENROL,
        "barack-obama",
        CID,
    )
    assert dict(enrolled.details) == {
        "FaceIds": [kept, removed],
        "Created": True,
        "RecognitionId": "r-1",
    }
    assert (deleted.action, deleted.target, dict(deleted.details)) == (
        AuditAction.DELETE_FACE,
        removed,
        {"UserId": "barack-obama"},
    )


def test_an_enrolment_that_enrolled_nothing_is_not_recorded(
    parts: EnrolmentParts, audit: SqliteAuditLog, testdata: Path
) -> None:
    empty = Photo("empty.jpg", b"not a photo")
    with pytest.raises(InvalidParameterException):
        enrol_person(parts, EDITOR, CID, "Nobody", [empty])
    assert entries(audit) == []

"""Enrolling a person: photos in; a user with their faces, and a profile, out.

One path for every front end (``facelens enroll``, the dashboard, the API):
a person is a user whose id is the slug of their name (:func:`person_id`)
and whose profile holds ``Name``; each photo adds its largest face, with
``ExternalImageId`` = the user id, associated to the user. Association
checks each new face against the person's other faces
(``UserMatchThreshold``, 75 by default), so a photo of someone else is
refused instead of spoiling the template; a face that was refused is
deleted again rather than left behind, unassigned. Taking one face off a
person again (:func:`remove_face`, the dashboard's) deletes it with its
profile.

Both are on record: the front end hands its actor (the API key, the
dashboard session, ``cli:<os user>``) and the enrolment or removal records
itself in the audit log once it succeeded (:mod:`facelens.history.audit`).
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Callable, Mapping, Sequence
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from facelens.collection.models import QualityFilter
from facelens.collection.service import CollectionService
from facelens.collection.users import UserService
from facelens.errors import (
    ConflictException,
    FacelensError,
    InvalidParameterException,
    ResourceAlreadyExistsException,
    ResourceNotFoundException,
)
from facelens.history.audit import Actor, AuditAction, AuditLog, Context, record_as
from facelens.profiles.store import ProfileStore
from facelens.profiles.types import make_item


def person_id(name: str) -> str:
    """The UserId for a person's name: a lower-case slug (``Barack Obama`` → ``barack-obama``).

    Names without Latin letters or digits (``李小龍``) get ``person-`` and 10 hex
    digits of the name's SHA-256, so the same name always gives the same id.
    """
    cleaned = " ".join(name.split())
    if not cleaned or len(cleaned) > 200 or not cleaned.isprintable():
        raise InvalidParameterException("A name is 1-200 printable characters")
    ascii_text = unicodedata.normalize("NFKD", cleaned).encode("ascii", "ignore").decode()
    slug = re.sub(r"[^a-z0-9]+", "-", ascii_text.lower()).strip("-")[:64].strip("-")
    if slug:
        return slug
    return "person-" + hashlib.sha256(cleaned.encode()).hexdigest()[:10]


@dataclass(frozen=True)
class Photo:
    """One image; ``label`` names it in messages (the file name, or the crop key).
    ``body``: its bytes, or the file they are read from when its turn comes (so a folder's
    photos are not all held in memory at once)."""

    label: str
    body: bytes | Path

    def read(self) -> bytes:
        return self.body if isinstance(self.body, bytes) else self.body.read_bytes()


@dataclass(frozen=True)
class EnrolmentParts:
    """What an enrolment writes: the collection's faces and users, and the profiles; and
    the audit log it records itself in."""

    collections: CollectionService
    users: UserService
    profiles: ProfileStore
    audit: AuditLog


@dataclass(frozen=True)
class EnrolReport:
    """What an enrolment did. problems: one line per photo that added no face."""

    user_id: str
    name: str
    face_ids: tuple[str, ...]
    problems: tuple[str, ...]
    created: bool


def ensure_collection(collections: CollectionService, collection_id: str) -> None:
    """Creates the dashboard's collection on first use (two racing creators are fine)."""
    try:
        collections.describe_collection(collection_id)
    except ResourceNotFoundException:
        with suppress(ResourceAlreadyExistsException):
            collections.create_collection(collection_id)


def enrol_person(
    parts: EnrolmentParts,
    actor: Actor,
    collection_id: str,
    name: str,
    photos: Sequence[Photo],
    *,
    user_id: str | None = None,
    quality_filter: QualityFilter = QualityFilter.AUTO,
    attributes: Mapping[str, Any] | None = None,
    context: Context | None = None,
    advance: Callable[[], None] | None = None,
) -> EnrolReport:
    """Adds each photo's largest face to the person called ``name``, creating them if new,
    and records that ``actor`` enrolled them (the FaceIds, whether the person is new;
    ``context``: what the entry point adds, e.g. the RecognitionId of a named sighting).

    user_id: the person's id when known (a person page adding photos), else
    the slug of ``name``. Raises InvalidParameterException when no photo
    gave a face (a person it had just created is removed again). An
    existing person keeps their profile's ``Name``; a new one gets
    ``{"Name": name}``; ``attributes`` are merged into the profile after that.
    ``advance`` is called after each photo (a progress bar).
    """
    if not photos:
        raise InvalidParameterException("Choose at least one photo")
    user_id = user_id or person_id(name)
    # The profile store's checks (nesting, Unicode, 400 KB) before anything is enrolled:
    # refused at the end, the person was enrolled and the caller told nothing was.
    make_item(user_id, {"Name": name, **(attributes or {})})
    ensure_collection(parts.collections, collection_id)
    created = True
    try:
        parts.users.create_user(collection_id, user_id)
    except ConflictException:
        created = False
    labels: dict[str, str] = {}  # FaceId -> the photo it came from
    problems: list[str] = []
    for photo in photos:
        face_id, problem = _index_one(
            parts.collections, collection_id, user_id, photo, quality_filter
        )
        if face_id is not None:
            labels[face_id] = photo.label
        if problem is not None:
            problems.append(problem)
        if advance is not None:
            advance()
    face_ids = list(labels)
    if face_ids:
        result = parts.users.associate_faces(collection_id, user_id, face_ids)
        refused = {f.face_id: f for f in result.unsuccessful}
        if refused:
            parts.collections.delete_faces(collection_id, list(refused))
            for face_id, failure in refused.items():
                seen = f" (similarity {failure.confidence:.0f} %)" if failure.confidence else ""
                problems.append(
                    f"{labels[face_id]}: does not look like {name}'s other photos{seen}"
                )
            face_ids = [f for f in face_ids if f not in refused]
    if not face_ids:
        if created:
            parts.users.delete_user(collection_id, user_id)
        raise InvalidParameterException("No face was enrolled: " + "; ".join(problems))
    profile = parts.profiles.get(user_id)
    if profile is None or not profile.attributes.get("Name"):
        parts.profiles.update(user_id, {"Name": " ".join(name.split())})
    if attributes:
        parts.profiles.update(user_id, dict(attributes))
    shown = profile.attributes.get("Name") if profile is not None else None
    record_as(
        parts.audit,
        actor,
        AuditAction.ENROL,
        user_id,
        collection_id=collection_id,
        details={"FaceIds": face_ids, "Created": created},
        context=context,
    )
    return EnrolReport(
        user_id=user_id,
        name=str(shown or " ".join(name.split())),
        face_ids=tuple(face_ids),
        problems=tuple(problems),
        created=created,
    )


def remove_face(
    parts: EnrolmentParts,
    actor: Actor,
    collection_id: str,
    user_id: str,
    face_id: str,
    *,
    context: Context | None = None,
) -> None:
    """Takes one face from a person and deletes it, with any profile kept on its FaceId;
    recorded as ``actor``'s deletion of the face."""
    parts.users.disassociate_faces(collection_id, user_id, [face_id])
    result = parts.collections.delete_faces(collection_id, [face_id])
    if result.unsuccessful:
        reasons = ", ".join(r for f in result.unsuccessful for r in f.reasons)
        raise InvalidParameterException(f"The face was not deleted: {reasons}")
    parts.profiles.delete(face_id)
    record_as(
        parts.audit,
        actor,
        AuditAction.DELETE_FACE,
        face_id,
        collection_id=collection_id,
        details={"UserId": user_id},
        context=context,
    )


def _index_one(
    collections: CollectionService,
    collection_id: str,
    user_id: str,
    photo: Photo,
    quality_filter: QualityFilter,
) -> tuple[str | None, str | None]:
    """The FaceId of the photo's largest face, or why there is none."""
    try:
        result = collections.index_faces(
            collection_id,
            photo.read(),
            external_image_id=user_id,
            max_faces=1,
            quality_filter=quality_filter,
        )
    except FacelensError as exc:
        if exc.http_status >= 500:  # a store or engine failure, not this photo's fault
            raise
        return None, f"{photo.label}: {exc.message}"
    if result.face_records:
        return result.face_records[0].face.face_id, None
    reasons = sorted({r.value for u in result.unindexed_faces for r in u.reasons})
    why = f" ({', '.join(reasons).lower().replace('_', ' ')})" if reasons else ""
    return None, f"{photo.label}: no usable face found{why}"

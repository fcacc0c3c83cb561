"""Enrolling a person: photos in; a user with their faces, and a profile, out.

One path for every front end (``facelens enroll``, the dashboard, the API):
a person is a user whose id is the slug of their name (:func:`person_id`)
and whose profile holds ``Name``; each photo adds its largest face, with
``ExternalImageId`` = the user id, associated to the user. Association
checks each new face against the person's other faces
(``UserMatchThreshold``, 75 by default), so a photo of someone else is
refused instead of spoiling the template; a face that was refused is
deleted again rather than left behind, unassigned.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Mapping, Sequence
from contextlib import suppress
from dataclasses import dataclass
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
    """One uploaded image; ``label`` names it in messages (the file name, or the crop key)."""

    label: str
    body: bytes


@dataclass(frozen=True)
class EnrolmentParts:
    """What an enrolment writes: the collection's faces and users, and the profiles."""

    collections: CollectionService
    users: UserService
    profiles: ProfileStore


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
    collection_id: str,
    name: str,
    photos: Sequence[Photo],
    *,
    user_id: str | None = None,
    quality_filter: QualityFilter = QualityFilter.AUTO,
    attributes: Mapping[str, Any] | None = None,
) -> EnrolReport:
    """Adds each photo's largest face to the person called ``name``, creating them if new.

    user_id: the person's id when known (a person page adding photos), else
    the slug of ``name``. Raises InvalidParameterException when no photo
    gave a face (a person it had just created is removed again). An
    existing person keeps their profile's ``Name``; a new one gets
    ``{"Name": name}``; ``attributes`` are merged into the profile after that.
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
    return EnrolReport(
        user_id=user_id,
        name=str(shown or " ".join(name.split())),
        face_ids=tuple(face_ids),
        problems=tuple(problems),
        created=created,
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
            photo.body,
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

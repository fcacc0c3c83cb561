"""Enrolling a folder: one face record per photo, one user per sub-folder.

Layout understood::

    photos/
      alice.jpg            -> ExternalImageId "alice.jpg", every face indexed
      bob/1.jpg, bob/2.png -> user "bob", the largest face of each photo

A photo that fails (unreadable, no face, a face that does not match the
user's others) is reported and the run goes on: one bad file never costs the
rest.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path

from facelens.collection.analysis import ImageInput
from facelens.collection.models import IndexFacesResult, QualityFilter
from facelens.collection.service import CollectionService
from facelens.collection.users import UserService
from facelens.errors import ConflictException, FacelensError

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".webp", ".bmp"})
_NOT_ALLOWED = re.compile(r"[^a-zA-Z0-9_.\-:]")


def external_image_id(path: Path) -> str:
    """The file name, with characters ExternalImageId forbids replaced by '_' (max 255)."""
    return _NOT_ALLOWED.sub("_", path.name)[:255] or "_"


def user_id_for(folder: Path) -> str:
    return _NOT_ALLOWED.sub("_", folder.name)[:128] or "_"


@dataclass(frozen=True, slots=True)
class EnrolItem:
    path: Path
    external_image_id: str
    user_id: str | None


@dataclass(slots=True)
class EnrolOutcome:
    item: EnrolItem
    result: IndexFacesResult | None = None
    associated: list[str] = field(default_factory=list)
    error: FacelensError | None = None


def plan(folder: Path) -> list[EnrolItem]:
    """Image files directly in ``folder`` and one level down (sorted, hidden files skipped)."""

    def images(directory: Path) -> Iterator[Path]:
        for path in sorted(directory.iterdir()):
            if (
                path.is_file()
                and path.suffix.lower() in IMAGE_SUFFIXES
                and not path.name.startswith(".")
            ):
                yield path

    items = [EnrolItem(p, external_image_id(p), None) for p in images(folder)]
    for sub in sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")):
        uid = user_id_for(sub)
        items.extend(EnrolItem(p, external_image_id(p), uid) for p in images(sub))
    return items


def enrol(
    collections: CollectionService,
    users: UserService,
    collection_id: str,
    items: list[EnrolItem],
    *,
    read: Callable[[Path], ImageInput],
    quality_filter: QualityFilter = QualityFilter.AUTO,
    advance: Callable[[], None] | None = None,
) -> list[EnrolOutcome]:
    """Indexes each item; items with a user get their largest face associated to it."""
    outcomes = []
    known_users: set[str] = set()
    for item in items:
        outcome = EnrolOutcome(item)
        try:
            image = read(item.path)
            result = collections.index_faces(
                collection_id,
                image,
                external_image_id=item.external_image_id,
                max_faces=1 if item.user_id else None,
                quality_filter=quality_filter,
            )
            outcome.result = result
            if item.user_id and result.face_records:
                if item.user_id not in known_users:
                    # a user from an earlier run is extended, not an error
                    with suppress(ConflictException):
                        users.create_user(collection_id, item.user_id)
                    known_users.add(item.user_id)
                face_ids = [r.face.face_id for r in result.face_records]
                association = users.associate_faces(collection_id, item.user_id, face_ids)
                outcome.associated = association.associated_face_ids
        except FacelensError as exc:
            outcome.error = exc
        outcomes.append(outcome)
        if advance:
            advance()
    return outcomes

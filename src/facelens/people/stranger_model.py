"""The stranger model: ids, the companion collection, settings, and the frozen results the
stranger service returns (rendered as JSON by :mod:`facelens.rendering.strangers`)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

STRANGERS_SUFFIX = ".strangers"
"""A collection's strangers live in the companion collection ``<collection_id>.strangers``."""

ID_PREFIX = "stranger-"
_ID = re.compile(r"stranger-([0-9]{1,12})")

DEFAULT_STRANGER_THRESHOLD = 95.0
"""Similarity (0-100) a face needs to a stranger's faces (RMS distance) to join it.

Chosen on the LFW development images (``python -m bench.strangers_lfw``, figures in
bench/README.md): at 95 (distance 0.356) 3791 faces of 2075 people form 2018 strangers,
purity 0.93, 94% of a person's faces in their largest stranger, pairwise precision
and recall both 0.85. Lower thresholds merge people (80: purity 0.78), and a merged
stranger, once named, enrols someone else's face; higher ones split people (98: 2232
strangers), which a merge repairs."""

DEFAULT_MAX_FACES = 20
DEFAULT_BEST_CROPS = 3


def companion_id(collection_id: str) -> str:
    return f"{collection_id}{STRANGERS_SUFFIX}"


def stranger_number(stranger_id: str | None) -> int | None:
    """n of 'stranger-<n>', None for any other id."""
    match = _ID.fullmatch(stranger_id or "")
    return int(match.group(1)) if match else None


@dataclass(frozen=True)
class StrangerSettings:
    """threshold: similarity 0-100 a face needs to a stranger's template to join it.
    max_faces: faces kept per stranger (the most recent; see ``StrangerService``).
    best_crops: crops ``list`` and ``get`` return per stranger (largest face first)."""

    threshold: float = DEFAULT_STRANGER_THRESHOLD
    max_faces: int = DEFAULT_MAX_FACES
    best_crops: int = DEFAULT_BEST_CROPS


@dataclass(frozen=True)
class Crop:
    """One sighting's crop in the object store, as the recognizer's ledger recorded it."""

    recognition_id: str
    bucket: str
    key: str
    recognized_at: datetime
    camera: str | None = None


@dataclass(frozen=True)
class Stranger:
    """An anonymous person: its faces (at most ``max_faces``), its sightings in the ledger
    (count, first and last, UTC; None when the ledger holds none) and its best crops."""

    stranger_id: str
    collection_id: str
    face_ids: tuple[str, ...]
    sightings: int
    first_seen: datetime | None
    last_seen: datetime | None
    best_crops: tuple[Crop, ...] = ()
    merged: tuple[str, ...] = ()
    """Earlier stranger ids merged into this one (their sightings count as its own)."""

    @property
    def face_count(self) -> int:
        return len(self.face_ids)


@dataclass(frozen=True)
class NamedStranger:
    """A stranger turned into user ``user_id`` of ``collection_id``.

    face_ids: the faces enrolled for it there (new FaceIds, the stranger's embeddings);
    created: whether the user was new (False: an existing user was extended);
    profile: the user's profile attributes afterwards."""

    stranger_id: str
    collection_id: str
    user_id: str
    face_ids: tuple[str, ...]
    created: bool
    sightings: int
    profile: Mapping[str, Any] = field(default_factory=dict)

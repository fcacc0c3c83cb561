"""Which sighting each of a stranger's faces came from: the two are paired by time.

A stranger's faces are embeddings in the companion collection, stored without
the recognition that produced them; the sighting (the ledger's record of that
unknown face) keeps its crop. Both are written within the same recognition,
milliseconds apart, so a face's sighting is the one recorded nearest in time
to it, when one is within :data:`PAIRING_SECONDS` (a face whose record is gone,
expired or forgotten, has none). Pages show a face with its sighting's crop.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import TypeVar

from facelens.collection.models import StoredFace
from facelens.collection.stores.store import CollectionStore
from facelens.people.stranger_faces import faces_of
from facelens.people.stranger_model import Stranger, companion_id

PAIRING_SECONDS = 10.0
"""Longest gap between a stranger's face and a sighting for the sighting to stand for it."""

S = TypeVar("S")


def pair_sightings(
    faces: Sequence[StoredFace],
    sightings: Sequence[S],
    *,
    seen_at: Callable[[S], datetime],
    within: float = PAIRING_SECONDS,
) -> list[tuple[StoredFace, S | None]]:
    """Each face, in the order given, with the sighting nearest in time to it among those
    not yet taken, when that one is within ``within`` seconds; else None. A sighting stands
    for one face at most, so two faces of one moment do not share a crop."""
    free = list(sightings)
    paired: list[tuple[StoredFace, S | None]] = []
    for face in faces:

        def gap(s: S, face: StoredFace = face) -> float:
            return abs((seen_at(s) - face.indexed_at).total_seconds())

        near = min(free, key=gap, default=None)
        if near is not None and gap(near) <= within:
            free.remove(near)
            paired.append((face, near))
        else:
            paired.append((face, None))
    return paired


def faces_with_sightings(
    store: CollectionStore,
    stranger: Stranger,
    sightings: Sequence[S],
    *,
    seen_at: Callable[[S], datetime],
) -> list[tuple[StoredFace, S | None]]:
    """The stranger's faces (newest first), each with the sighting it came from, if known."""
    faces = faces_of(store, companion_id(stranger.collection_id), stranger.stranger_id)
    return pair_sightings(faces, sightings, seen_at=seen_at)

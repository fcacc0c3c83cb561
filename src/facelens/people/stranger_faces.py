"""The strangers' faces in their companion collection: paging, the per-stranger cap, origins.

Module functions on a :class:`CollectionStore`, so the service reads as its
operations. A face's ``ExternalImageId`` is its *origin*: the stranger it
was first clustered into. After a merge, the origins are how the absorbed
strangers' ledger sightings are still found.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence

import numpy as np

from facelens.collection.models import NewFace, StoredFace
from facelens.collection.sources import FaceSource
from facelens.collection.stores.store import CollectionStore
from facelens.engine.types import Embedding
from facelens.errors import ResourceNotFoundException
from facelens.history.ledger import RecognitionLedger
from facelens.people.stranger_model import stranger_number
from facelens.values.boxes import BoundingBox

_WHOLE = BoundingBox(width=1.0, height=1.0, left=0.0, top=0.0)
_PAGE = 1000
CANDIDATES = 3
"""Strangers (nearest templates first) whose faces a new face is compared with."""


def nearest(
    store: CollectionStore, companion: str, embedding: Embedding, max_distance: float
) -> tuple[str | None, float]:
    """The stranger a face joins (None: none), and its RMS distance to that stranger's faces.

    The decision is average linkage: the root mean square of the distances to the
    stranger's faces must be within ``max_distance``. The store's template search
    (renormalised mean) only proposes candidates: a template renormalised from faces
    that disagree drifts towards the average face, close to everyone, and joining on it
    alone chains different people into one stranger (on LFW's first 400 shuffled faces,
    one stranger of 53 faces at similarity 80). The RMS distance is never below the
    template's (the plain mean is at most unit length), so no candidate is missed.
    """
    hits = store.search_users(companion, embedding, limit=CANDIDATES, max_distance=max_distance)
    best: tuple[str | None, float] = (None, 2.0)
    probe = np.asarray(embedding, dtype=np.float32)
    for hit in hits:
        stranger_id = hit.user.user_id
        ids = [f.face_id for f in faces_of(store, companion, stranger_id)]
        vectors = list(store.get_embeddings(companion, ids).values())
        if not vectors:
            continue
        gaps = np.stack(vectors) - probe
        rms = float(np.sqrt(np.mean(np.sum(gaps * gaps, axis=1))))
        if rms <= max_distance and rms < best[1]:
            best = (stranger_id, rms)
    return best


def highest_number(store: CollectionStore, companion: str, ledger: RecognitionLedger | None) -> int:
    """The highest stranger number ever used here: among the users, the faces' origins
    (merged strangers) and the ledger's StrangerIds, so that no id is given out twice."""
    numbers = [stranger_number(u) or 0 for u in all_user_ids(store, companion)]
    numbers += [stranger_number(f.external_image_id) or 0 for f in all_faces(store, companion)]
    if ledger is not None:
        numbers += [stranger_number(s) or 0 for s in ledger.strangers_seen()]
    return max(numbers, default=0)


def new_face(
    embedding: Embedding,
    origin: str,
    box: BoundingBox | None,
    confidence: float,
    source: FaceSource | None = None,
) -> NewFace:
    """A sighting's face for the companion collection; ``origin``: the stranger it starts in;
    ``source``: its crop, to re-embed it when the engine changes."""
    return NewFace(
        face_id=str(uuid.uuid4()),
        image_id=str(uuid.uuid4()),
        external_image_id=origin,
        bounding_box=box or _WHOLE,
        confidence=confidence,
        embedding=embedding,
        source=source,
    )


def add_faces(
    store: CollectionStore, collection_id: str, user_id: str, faces: Sequence[NewFace]
) -> None:
    """Stores the faces and associates them to the user; if the user has vanished
    meanwhile the faces go again and ResourceNotFoundException is raised."""
    if not faces:
        return
    store.add_faces(collection_id, faces)
    ids = [f.face_id for f in faces]
    try:
        store.associate_faces(collection_id, user_id, ids)
    except ResourceNotFoundException:
        store.delete_faces(collection_id, ids)
        raise


def all_faces(
    store: CollectionStore, collection_id: str, *, user_id: str | None = None
) -> list[StoredFace]:
    """Every face (of ``user_id``), all pages."""
    faces: list[StoredFace] = []
    token: str | None = None
    while True:
        page = store.list_faces(collection_id, max_results=_PAGE, next_token=token, user_id=user_id)
        faces.extend(page.faces)
        token = page.next_token
        if token is None:
            return faces


def all_user_ids(store: CollectionStore, collection_id: str) -> list[str]:
    ids: list[str] = []
    token: str | None = None
    while True:
        page = store.list_users(collection_id, max_results=500, next_token=token)
        ids.extend(u.user_id for u in page.users)
        token = page.next_token
        if token is None:
            return ids


def faces_of(store: CollectionStore, companion: str, stranger_id: str) -> list[StoredFace]:
    """The stranger's faces, newest first."""
    faces = all_faces(store, companion, user_id=stranger_id)
    faces.sort(key=lambda f: f.indexed_at, reverse=True)
    return faces


def trim(store: CollectionStore, companion: str, stranger_id: str, keep: int) -> list[StoredFace]:
    """Deletes the stranger's faces over ``keep``; returns those kept, newest first."""
    faces = faces_of(store, companion, stranger_id)
    evict = evictable(faces, keep)
    if not evict:
        return faces
    store.delete_faces(companion, [f.face_id for f in evict])
    gone = {f.face_id for f in evict}
    return [f for f in faces if f.face_id not in gone]


def aliases(stranger_id: str, faces: Sequence[StoredFace]) -> list[str]:
    """The stranger's own id, then the ids of strangers merged into it (its faces' origins)."""
    origins = dict.fromkeys(
        f.external_image_id
        for f in faces
        if f.external_image_id is not None and f.external_image_id != stranger_id
    )
    return [stranger_id, *(o for o in origins if o is not None)]


def evictable(faces: Sequence[StoredFace], keep: int) -> list[StoredFace]:
    """The faces to delete so ``keep`` remain (``faces`` newest first): the oldest, skipping
    one that is the last of its origin while others can go, so a merged stranger's id
    (and with it its sightings) is not forgotten by the cap."""
    excess = len(faces) - keep
    if excess <= 0:
        return []
    remaining: dict[str | None, int] = {}
    for f in faces:
        remaining[f.external_image_id] = remaining.get(f.external_image_id, 0) + 1
    chosen: list[StoredFace] = []
    for f in reversed(faces):  # oldest first
        if len(chosen) == excess:
            return chosen
        if remaining[f.external_image_id] > 1:
            remaining[f.external_image_id] -= 1
            chosen.append(f)
    for f in reversed(faces):  # more origins than room: the oldest go regardless
        if len(chosen) == excess:
            break
        if f not in chosen:
            chosen.append(f)
    return chosen

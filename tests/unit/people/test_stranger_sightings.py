"""Pairing a stranger's faces with the sightings they came from, by time."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np

from facelens.collection.models import NewFace, StoredFace
from facelens.collection.stores.registry import open_store
from facelens.people.stranger_model import Stranger, companion_id
from facelens.people.stranger_sightings import (
    PAIRING_SECONDS,
    faces_with_sightings,
    pair_sightings,
)
from facelens.values.boxes import BoundingBox

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
BOX = BoundingBox(width=1.0, height=1.0, left=0.0, top=0.0)


def face(face_id: str, seconds: float) -> StoredFace:
    return StoredFace(
        face_id=face_id,
        image_id="image",
        external_image_id="stranger-1",
        bounding_box=BOX,
        confidence=99.0,
        user_id="stranger-1",
        indexed_at=T0 + timedelta(seconds=seconds),
    )


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def test_each_face_takes_the_nearest_sighting_within_the_window() -> None:
    faces = [face("new", 100.0), face("old", 0.0)]
    sightings = [at(0.2), at(99.9), at(50.0)]
    paired = pair_sightings(faces, sightings, seen_at=lambda s: s)
    assert paired == [(faces[0], at(99.9)), (faces[1], at(0.2))]


def test_a_sighting_stands_for_one_face_only() -> None:
    faces = [face("a", 0.0), face("b", 0.1)]
    paired = pair_sightings(faces, [at(0.05)], seen_at=lambda s: s)
    assert paired == [(faces[0], at(0.05)), (faces[1], None)]


def test_a_sighting_further_than_the_window_stands_for_no_face() -> None:
    faces = [face("a", 0.0)]
    assert pair_sightings(faces, [at(PAIRING_SECONDS + 0.5)], seen_at=lambda s: s) == [
        (faces[0], None)
    ]
    assert pair_sightings(faces, [at(PAIRING_SECONDS)], seen_at=lambda s: s) == [
        (faces[0], at(PAIRING_SECONDS))
    ]
    assert pair_sightings(faces, [], seen_at=lambda s: s) == [(faces[0], None)]


def test_faces_with_sightings_reads_the_stranger_faces_from_the_companion_collection() -> None:
    store = open_store("memory://")
    companion = companion_id("faces")
    store.create_collection(companion, face_model_version="test")
    store.create_user(companion, "stranger-1")
    vector = np.zeros(128, dtype=np.float32)
    vector[0] = 1.0
    new = NewFace(
        face_id="f1",
        image_id="image",
        external_image_id="stranger-1",
        bounding_box=BOX,
        confidence=99.0,
        embedding=vector,
    )
    [stored] = store.add_faces(companion, [new])
    store.associate_faces(companion, "stranger-1", ["f1"])
    stranger = Stranger(
        stranger_id="stranger-1",
        collection_id="faces",
        face_ids=("f1",),
        sightings=1,
        first_seen=None,
        last_seen=None,
    )
    seen = stored.indexed_at + timedelta(seconds=0.01)
    [(paired_face, sighting)] = faces_with_sightings(store, stranger, [seen], seen_at=lambda s: s)
    assert paired_face.face_id == "f1"
    assert sighting == seen

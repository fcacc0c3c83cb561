"""What the corrections tests share: the look-alike crops, Nicole's enrolment, one recognition.

Nicole Kidman is enrolled from one photo; Sarah Paulson is not, and some of
her photos look enough like Nicole's for the engine to mix them up at the
default threshold 80 (crop sarah_paulson_3: ~92.5 similar to Nicole's
enrolment; sarah_paulson_4: ~80.7; sarah_paulson_1: ~77).
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from pathlib import Path

from facelens.engine.protocol import FaceEngine
from facelens.history.ledger import Recognition, Status
from facelens.storage.crops import CropMetadata
from facelens.storage.events import new_sequencer
from facelens.values.events import ObjectCreated
from tests.integration.recognizer.conftest import make_crop
from tests.wired import Wired

NICOLE = "nicole"
PHOTOS = {
    "sarah_paulson": ["sarah_paulson_1", "sarah_paulson_3", "sarah_paulson_4"],
    "nicole_kidman": ["nicole_kidman_2"],
    "biden": ["biden_1"],
}


def make_crops(engine: FaceEngine, testdata: Path) -> dict[str, bytes]:
    """Crops as the edge runner makes them, by photo name."""
    people = testdata / "people"
    return {
        name: make_crop(engine, people / folder / f"{name}.jpg")
        for folder, names in PHOTOS.items()
        for name in names
    }


def enrol_nicole(w: Wired, testdata: Path) -> None:
    """Nicole as user ``nicole`` of the recognizer's collection, from one photo, with a profile."""
    collection = w.settings.recognizer.collection_id
    collections, users = w.collections.collections, w.collections.users
    collections.create_collection(collection)
    photo = testdata / "people" / "nicole_kidman" / "nicole_kidman_1.jpg"
    indexed = collections.index_faces(
        collection, photo.read_bytes(), external_image_id="nicole_kidman_1.jpg", max_faces=1
    )
    users.create_user(collection, NICOLE)
    users.associate_faces(collection, NICOLE, [indexed.face_records[0].face.face_id])
    w.stores.profiles.put(NICOLE, {"Name": "Nicole Kidman"})


def recognize(w: Wired, crop: bytes) -> Recognition:
    """Uploads ``crop`` under a new key and lets the recognizer handle its event."""
    bucket, key = w.settings.bucket, f"faces/test/{uuid.uuid4()}.jpg"
    meta = CropMetadata(camera="front-door", captured_at=datetime.now(UTC), track_id="1")
    objects = w.stores.objects
    objects.put_object(bucket, key, crop, content_type="image/jpeg", metadata=meta.to_metadata())
    info = objects.head_object(bucket, key)
    event = ObjectCreated(bucket, key, info.size, info.etag, new_sequencer(), info.last_modified)
    return w.recognizer.recognizer.handle(event).recognition


def who(recognition: Recognition) -> str | None:
    """The UserId a recognition named; None for an unknown face."""
    assert recognition.status is not Status.ERROR, recognition.message
    return recognition.message.get("UserId") if recognition.status is Status.IDENTIFIED else None

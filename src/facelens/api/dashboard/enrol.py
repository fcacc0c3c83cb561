"""The dashboard's writes to collections and profiles: name an unknown face, remove a face.

Enrolment itself is :mod:`facelens.enrolment` (shared with ``facelens enroll``),
handed to the pages as :class:`facelens.api.parts.Enrol`. Blocking (the face
engine and the stores): the pages call these through ``run_in_threadpool``.
"""

from __future__ import annotations

from facelens.api.parts import Enrol
from facelens.collection.models import QualityFilter
from facelens.collection.service import CollectionService
from facelens.collection.users import UserService
from facelens.enrolment import EnrolReport, Photo
from facelens.errors import InvalidParameterException, ResourceNotFoundException
from facelens.history.ledger import RecognitionLedger, Status
from facelens.profiles.store import ProfileStore
from facelens.storage.protocol import ObjectStore


def name_unknown(
    enrol: Enrol,
    ledger: RecognitionLedger,
    objects: ObjectStore,
    collection_id: str,
    recognition_id: str,
    name: str,
) -> EnrolReport:
    """Enrols the crop of an unknown sighting as ``name``: later sightings are identified."""
    record = ledger.get(recognition_id)
    if record is None or record.status is not Status.UNKNOWN or not record.bucket:
        raise ResourceNotFoundException("That unknown face is no longer in the history")
    if not record.key:
        raise ResourceNotFoundException("That sighting kept no crop")
    crop = objects.get_object(record.bucket, record.key)
    # The recognizer already found this face, so no quality filter: a crop is small.
    photo = Photo(label="the crop", body=crop.body)
    return enrol(collection_id, name, [photo], quality_filter=QualityFilter.NONE)


def remove_face(
    users: UserService,
    collections: CollectionService,
    profiles: ProfileStore,
    collection_id: str,
    user_id: str,
    face_id: str,
) -> None:
    """Takes one face from a person and deletes it, with any profile kept on its FaceId."""
    users.disassociate_faces(collection_id, user_id, [face_id])
    result = collections.delete_faces(collection_id, [face_id])
    if result.unsuccessful:
        reasons = ", ".join(r for f in result.unsuccessful for r in f.reasons)
        raise InvalidParameterException(f"The face was not deleted: {reasons}")
    profiles.delete(face_id)

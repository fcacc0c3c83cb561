"""The dashboard's writes to collections and profiles: name an unknown face, remove a face.

Enrolment itself is :mod:`facelens.enrolment` (shared with ``facelens enroll``).
Blocking (the face engine and the stores): the pages call these through
``run_in_threadpool``.
"""

from __future__ import annotations

from facelens.collection.models import QualityFilter
from facelens.enrolment import EnrolReport, Photo, enrol_person
from facelens.errors import InvalidParameterException, ResourceNotFoundException
from facelens.history.ledger import Status
from facelens.wiring import Components


def name_unknown(
    components: Components, collection_id: str, recognition_id: str, name: str
) -> EnrolReport:
    """Enrols the crop of an unknown sighting as ``name``: later sightings are identified."""
    record = components.ledger.get(recognition_id)
    if record is None or record.status is not Status.UNKNOWN or not record.bucket:
        raise ResourceNotFoundException("That unknown face is no longer in the history")
    if not record.key:
        raise ResourceNotFoundException("That sighting kept no crop")
    crop = components.raw_objects.get_object(record.bucket, record.key)
    # The recognizer already found this face, so no quality filter: a crop is small.
    photo = Photo(label="the crop", body=crop.body)
    return enrol_person(components, collection_id, name, [photo], quality_filter=QualityFilter.NONE)


def remove_face(components: Components, collection_id: str, user_id: str, face_id: str) -> None:
    """Takes one face from a person and deletes it, with any profile kept on its FaceId."""
    components.users.disassociate_faces(collection_id, user_id, [face_id])
    result = components.collections.delete_faces(collection_id, [face_id])
    if result.unsuccessful:
        reasons = ", ".join(r for f in result.unsuccessful for r in f.reasons)
        raise InvalidParameterException(f"The face was not deleted: {reasons}")
    components.profiles.delete(face_id)

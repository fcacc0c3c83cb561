"""The dashboard's enrolment from a sighting: name an unknown face.

Enrolment itself is :mod:`facelens.enrolment` (shared with ``facelens enroll``),
handed to the pages as :class:`facelens.enrolment.EnrolmentParts`; it records
itself as the dashboard user's. Blocking (the face engine and the stores):
the pages call this through ``run_in_threadpool``.
"""

from __future__ import annotations

from facelens.collection.models import QualityFilter
from facelens.enrolment import EnrolmentParts, EnrolReport, Photo, enrol_person
from facelens.errors import ResourceNotFoundException
from facelens.history.audit import Actor, Context
from facelens.history.ledger import RecognitionLedger, Status
from facelens.storage.protocol import ObjectStore


def name_unknown(
    enrolment: EnrolmentParts,
    actor: Actor,
    ledger: RecognitionLedger,
    objects: ObjectStore,
    collection_id: str,
    recognition_id: str,
    name: str,
) -> EnrolReport:
    """Enrols the crop of an unknown sighting as ``name``: later sightings are identified.
    The enrolment's entry names the sighting (``RecognitionId``)."""
    record = ledger.get(recognition_id)
    if record is None or record.status is not Status.UNKNOWN or not record.bucket:
        raise ResourceNotFoundException("That unknown face is no longer in the history")
    if not record.key:
        raise ResourceNotFoundException("That sighting kept no crop")
    crop = objects.get_object(record.bucket, record.key)
    # The recognizer already found this face, so no quality filter: a crop is small.
    photo = Photo(label="the crop", body=crop.body)
    sighting: Context = {"RecognitionId": recognition_id}
    return enrol_person(
        enrolment,
        actor,
        collection_id,
        name,
        [photo],
        quality_filter=QualityFilter.NONE,
        context=sighting,
    )

"""Corrections: "this is not P", its undo, and per-person match thresholds.

A wrong identification is rejected by its RecognitionId. The face of its crop
becomes a negative example of P: a face in the companion collection
``<collection>.rejected`` (:func:`facelens.people.matching.negatives_collection`)
whose ``ExternalImageId`` is P (UserId, else FaceId) and whose ``ImageId`` and
``FaceId`` are the correction's id. The matching rule
(:mod:`facelens.people.matching`) then vetoes P for faces that resemble it more
than they resemble P. Keeping negatives in the collection store, not in a file
of this host, means every recognizer sharing the store (PostgreSQL) honours a
correction from its next crop on, and undo deletes exactly one face.

The correction id is derived from (RecognitionId, person): rejecting the same
identification twice is one correction, and the dashboard can name the
correction of an identification without a lookup. Who rejected what, and
when, goes to the audit log (:mod:`facelens.history.audit`): every front end
(REST, dashboard, CLI) hands the service its actor, and the service records
each change itself; ``on_change`` is told of each one too.

Thresholds are the profile attribute ``FaceMatchThreshold`` of the person, so
they travel with the profile (DynamoDB, PostgreSQL) like any other attribute.
"""

from __future__ import annotations

import builtins
import contextlib
import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from facelens.collection import validation
from facelens.collection.analysis import FaceAnalyzer, ProbeFace
from facelens.collection.models import NewFace, QualityFilter, StoredFace
from facelens.collection.service import CollectionService
from facelens.errors import (
    InvalidParameterException,
    ResourceAlreadyExistsException,
    ResourceNotFoundException,
)
from facelens.history.audit import Actor, AuditAction, AuditLog, record_as
from facelens.history.ledger import Recognition, RecognitionLedger, Status
from facelens.people.matching import (
    MIN_OVERRIDE,
    THRESHOLD_ATTRIBUTE,
    negatives_collection,
    parse_threshold,
)
from facelens.profiles.store import ProfileStore
from facelens.storage.protocol import ObjectStore

_log = logging.getLogger(__name__)

_NAMESPACE = uuid.UUID("0b6c2f4e-93a7-4d51-8c1e-6f2a9d3b5e70")
_PAGE = 1000


def correction_id(recognition_id: str, person_id: str) -> str:
    """The id of the correction rejecting ``person_id`` for ``recognition_id`` (a UUID)."""
    return str(uuid.uuid5(_NAMESPACE, f"{recognition_id}\0{person_id}"))


@dataclass(frozen=True)
class Correction:
    """One negative example. ``person_id``: who the face is NOT (UserId, else FaceId);
    ``similarity``: what the wrong match scored (0-100), when known. ``recognition_id`` and
    ``actor`` come from the audit log and are None when it is not kept (or was redacted)."""

    correction_id: str
    collection_id: str
    person_id: str
    created_at: datetime
    recognition_id: str | None = None
    actor: str | None = None
    similarity: float | None = None
    undone: bool = False

    def as_json(self) -> dict[str, Any]:
        """The correction with the field names the API and the CLI print."""
        return {
            "CorrectionId": self.correction_id,
            "CollectionId": self.collection_id,
            "PersonId": self.person_id,
            "RecognitionId": self.recognition_id,
            "Actor": self.actor,
            "Similarity": self.similarity,
            "CreatedAt": self.created_at.isoformat(),
            "Undone": self.undone,
        }


@dataclass(frozen=True)
class PersonThreshold:
    """A person's match threshold: ``override`` from the profile (None: none set) and the
    ``effective`` one the recognizer applies (the override, else the global threshold)."""

    person_id: str
    override: float | None
    effective: float

    def as_json(self) -> dict[str, Any]:
        return {
            "PersonId": self.person_id,
            THRESHOLD_ATTRIBUTE: self.override,
            "EffectiveThreshold": self.effective,
        }


ChangeHook = Callable[[str, str, dict[str, Any]], None]
"""Told of each change: (action, person id, details); e.g. to notify a dashboard."""


class CorrectionService:
    """Rejects identifications, undoes that, and sets per-person thresholds.

    ``collection_id``: the recognizer's collection (whose people are corrected);
    ``face_match_threshold``: the global threshold (0-100), reported as the effective
    one for people without an override.
    """

    def __init__(
        self,
        *,
        ledger: RecognitionLedger,
        objects: ObjectStore,
        analyzer: FaceAnalyzer,
        collections: CollectionService,
        profiles: ProfileStore,
        collection_id: str,
        face_match_threshold: float,
        audit: AuditLog,
        on_change: ChangeHook | None = None,
    ) -> None:
        self.ledger = ledger
        self.objects = objects
        self.analyzer = analyzer
        self.collections = collections
        self.profiles = profiles
        self.collection_id = collection_id
        self.face_match_threshold = face_match_threshold
        self.audit = audit
        self.on_change = on_change

    @property
    def negatives_id(self) -> str:
        return negatives_collection(self.collection_id)

    # -- corrections --
    def reject(self, recognition_id: str, *, actor: Actor, person: str | None = None) -> Correction:
        """Keeps the face of ``recognition_id``'s crop as a negative example of ``person``
        (default: whom it was identified as). Rejecting it again returns the same correction.

        ResourceNotFoundException: no such recognition; InvalidParameterException: it named
        nobody and no ``person`` is given, or its crop is gone (retention) or was replaced.
        """
        record = self.ledger.get(recognition_id)
        if record is None:
            raise ResourceNotFoundException(f"No recognition {recognition_id}")
        if record.status is Status.ERROR:
            raise InvalidParameterException(
                f"Recognition {recognition_id} failed ({record.reason}): there is no face to reject"
            )
        message = record.message
        identified = message.get("UserId") or message.get("FaceId")
        person_id = person or (str(identified) if identified else None)
        if person_id is None:
            raise InvalidParameterException(
                f"Recognition {recognition_id} identified nobody: say which person it is not"
            )
        validation.user_id(person_id)
        cid = correction_id(recognition_id, person_id)
        existing = self._negative(cid)
        if existing is not None:
            return self._correction(existing, recognition_id=recognition_id)
        probe = self._face_of(recognition_id, record)
        similarity = message.get("Similarity") if person_id == identified else None
        face = NewFace(
            face_id=cid,
            image_id=cid,
            external_image_id=person_id,
            bounding_box=probe.detail.bounding_box,
            confidence=probe.detail.confidence,
            embedding=probe.embedding,
            source=probe.source,
        )
        self._ensure_negatives()
        try:
            [stored] = self.collections.store.add_faces(
                self.negatives_id, [face], face_model_version=self.collections.face_model_version
            )
        except ResourceAlreadyExistsException:  # the same rejection, at the same moment
            again = self._negative(cid)
            if again is None:
                raise
            return self._correction(again, recognition_id=recognition_id)
        correction = replace(
            self._correction(stored, recognition_id=recognition_id),
            actor=actor.label,
            similarity=float(similarity) if isinstance(similarity, int | float) else None,
        )
        self._changed(
            actor,
            AuditAction.CORRECT,
            person_id,
            {
                "CorrectionId": cid,
                "RecognitionId": recognition_id,
                "Similarity": correction.similarity,
                "Bucket": record.bucket,
                "Key": record.key,
            },
        )
        return correction

    def undo(self, correction_id: str, *, actor: Actor) -> Correction:
        """Deletes exactly that negative example; ResourceNotFoundException if there is none."""
        validation.face_ids([correction_id], limit=1)
        face = self._negative(correction_id)
        if face is None:
            raise ResourceNotFoundException(f"No correction {correction_id}")
        self.collections.store.delete_faces(self.negatives_id, [correction_id])
        correction = replace(self._correction(face), undone=True)
        self._changed(
            actor,
            AuditAction.UNDO_CORRECTION,
            correction.person_id,
            {"CorrectionId": correction_id},
        )
        return replace(correction, actor=actor.label)

    def get(self, correction_id: str) -> Correction | None:
        """The correction in force under that id (see :func:`correction_id`), or None."""
        face = self._negative(correction_id)
        return None if face is None else self._correction(face, origins=self._origins())

    def list(
        self, collection_id: str | None = None, *, person: str | None = None
    ) -> builtins.list[Correction]:
        """The corrections in force, newest first (only ``person``'s when given)."""
        cid = collection_id or self.collection_id
        faces: builtins.list[StoredFace] = []
        token: str | None = None
        while True:
            try:
                page = self.collections.store.list_faces(
                    negatives_collection(cid), max_results=_PAGE, next_token=token
                )
            except ResourceNotFoundException:
                return []
            faces += [f for f in page.faces if person is None or f.external_image_id == person]
            token = page.next_token
            if token is None:
                break
        origins = self._origins() if faces else {}
        found = [self._correction(f, collection_id=cid, origins=origins) for f in faces]
        return sorted(found, key=lambda c: (c.created_at, c.correction_id), reverse=True)

    # -- thresholds --
    def threshold(self, person_id: str) -> PersonThreshold:
        """The person's override (None if unset) and the threshold that applies to them."""
        profile = self.profiles.get(person_id)
        override = (
            None if profile is None else parse_threshold(profile.item.get(THRESHOLD_ATTRIBUTE))
        )
        effective = self.face_match_threshold if override is None else override
        return PersonThreshold(person_id, override, effective)

    def set_threshold(
        self, person_id: str, value: float | None, *, actor: Actor
    ) -> PersonThreshold:
        """Sets (``value``, similarity MIN_OVERRIDE-100) or removes (None) the person's override.

        The person must be a user or a face of the collection (a typo would otherwise
        create a profile nobody is matched against).
        """
        if value is not None:
            validation.in_range(value, THRESHOLD_ATTRIBUTE, MIN_OVERRIDE, 100)
        self._require_person(person_id)
        before = self.threshold(person_id).override
        if value is not None:
            self.profiles.update(person_id, {THRESHOLD_ATTRIBUTE: float(value)})
        else:
            profile = self.profiles.get(person_id)
            if profile is not None and THRESHOLD_ATTRIBUTE in profile.item:
                # No attribute removal in the store port: put the item back without it.
                # A profile write landing between the two calls would be lost.
                kept = {k: v for k, v in profile.attributes.items() if k != THRESHOLD_ATTRIBUTE}
                self.profiles.put(person_id, kept)
        self._changed(
            actor,
            AuditAction.THRESHOLD,
            person_id,
            {"Before": before, THRESHOLD_ATTRIBUTE: None if value is None else float(value)},
        )
        return self.threshold(person_id)

    # -- helpers --
    def _face_of(self, recognition_id: str, record: Recognition) -> ProbeFace:
        """The largest face of the record's crop, with its source (to re-embed it later)."""
        if record.bucket is None or record.key is None:
            raise InvalidParameterException(
                f"The crop of recognition {recognition_id} is gone (deleted by retention): "
                "it cannot be kept as a negative example"
            )
        try:
            stored = self.objects.get_object(record.bucket, record.key)
        except ResourceNotFoundException as exc:
            raise InvalidParameterException(
                f"The crop of recognition {recognition_id} ({record.bucket}/{record.key}) "
                "is gone: it cannot be kept as a negative example"
            ) from exc
        if record.etag and stored.info.etag and _etag(stored.info.etag) != _etag(record.etag):
            raise InvalidParameterException(
                f"The crop {record.bucket}/{record.key} was replaced after recognition "
                f"{recognition_id}: its face is not the one identified"
            )
        return self.analyzer.probe(stored.body, QualityFilter.NONE, with_source=True)

    def _ensure_negatives(self) -> None:
        try:
            self.collections.require_compatible(self.negatives_id)
        except ResourceNotFoundException:
            with contextlib.suppress(ResourceAlreadyExistsException):  # another process did
                self.collections.create_collection(self.negatives_id)

    def _negative(self, cid: str) -> StoredFace | None:
        try:
            return self.collections.store.get_faces(self.negatives_id, [cid]).get(cid)
        except ResourceNotFoundException:
            return None

    def _require_person(self, person_id: str) -> None:
        store = self.collections.store
        try:
            store.get_user(self.collection_id, validation.user_id(person_id))
            return
        except ResourceNotFoundException:
            pass
        if validation.FACE_ID.fullmatch(person_id) and store.get_faces(
            self.collection_id, [person_id]
        ):
            return
        raise ResourceNotFoundException(
            f"No user or face {person_id} in collection {self.collection_id}"
        )

    def _origins(self) -> dict[str, tuple[str | None, str, Any]]:
        """CorrectionId -> (RecognitionId, actor, similarity) from the audit log's latest
        corrections (one query)."""
        page = self.audit.entries(action=AuditAction.CORRECT, limit=1000)
        found: dict[str, tuple[str | None, str, Any]] = {}
        for entry in page.entries:
            cid = entry.details.get("CorrectionId")
            if isinstance(cid, str) and cid not in found:
                found[cid] = (
                    entry.details.get("RecognitionId"),
                    entry.actor,
                    entry.details.get("Similarity"),
                )
        return found

    def _correction(
        self,
        face: StoredFace,
        *,
        collection_id: str | None = None,
        recognition_id: str | None = None,
        origins: dict[str, tuple[str | None, str, Any]] | None = None,
    ) -> Correction:
        rid, actor, similarity = (origins or {}).get(face.face_id, (recognition_id, None, None))
        return Correction(
            correction_id=face.face_id,
            collection_id=collection_id or self.collection_id,
            person_id=face.external_image_id or "",
            created_at=face.indexed_at,
            recognition_id=rid,
            actor=actor,
            similarity=float(similarity) if isinstance(similarity, int | float) else None,
        )

    def _changed(
        self, actor: Actor, action: AuditAction, person_id: str, details: dict[str, Any]
    ) -> None:
        _log.info("%s: %s %s %s", actor.label, action.value, person_id, details)
        record_as(
            self.audit, actor, action, person_id, collection_id=self.collection_id, details=details
        )
        if self.on_change is not None:
            self.on_change(action.value, person_id, details)


def _etag(value: str) -> str:
    return value.strip('"').lower()

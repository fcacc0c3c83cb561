"""The JSON the recognizer publishes: one builder per outcome, the only place these shapes live.

Identifications are flat, as the original recipe published its DynamoDB
item: the profile's attributes at the top level, then facelens' own fields,
which win over a profile attribute of the same name (``RESERVED``). Times
are ISO-8601 UTC; ``Similarity`` is 0-100; ``BoundingBox`` is the searched
face in the crop, in Rekognition's ratios. ``ExpectedFPIR`` says how sure a name
is: the share of strangers (0-1) expected to score as high against the
``GallerySize`` people enrolled (null when the similarity rule decided).

Visits (:mod:`facelens.recognizer.visits`): every identification and unknown
carries ``VisitId`` (the edge's visit the crop is a look of; null for a crop
without one, a visit of one look), ``Revision`` (0: the visit's first answer,
then 1, 2, ... for each change), ``Revises`` (null for revision 0, else the
``RecognitionId``, ``Status``, ``UserId``, ``FaceId`` and ``Name`` of the
answer it replaces) and ``Looks`` (how many looks were fused into it). Only a
visit's first answer and the answers that change it are published; a look that
changes nothing is recorded with the visit's standing answer and
``"Published": false``.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from facelens.storage.crops import CropMetadata
from facelens.values.boxes import BoundingBox
from facelens.values.events import ObjectCreated
from facelens.values.identity import Identity
from facelens.values.strangers import StrangerMatch

_NAMESPACE = uuid.UUID("5d1b8a52-6f0e-4a43-9f3c-3a1e5f0b7c11")

RESERVED = (
    "RecognitionId",
    "Status",
    "FaceId",
    "UserId",
    "ExternalImageId",
    "Similarity",
    "ExpectedFPIR",
    "GallerySize",
    "Bucket",
    "Key",
    "ETag",
    "Camera",
    "CapturedAt",
    "RecognizedAt",
    "BoundingBox",
    "Error",
    "StrangerId",
    "StrangerFaceId",
    "StrangerSightings",
    "FirstSeen",
    "VisitId",
    "Revision",
    "Revises",
    "Looks",
    "Published",
)

STRANGER_FIELDS = ("StrangerId", "StrangerSightings", "FirstSeen", "StrangerFaceId")
"""What an unknown answer says about the stranger the visit joined."""
_REVISES = ("RecognitionId", "Status", "UserId", "FaceId", "Name")


@dataclass(frozen=True)
class VisitPart:
    """Where an answer stands in its visit. visit_id: None for a crop without one (a visit of
    one look); revision: 0 for the first answer; revises: the message of the answer this
    one replaces (None for revision 0); looks: looks fused into it; published: False for
    the record of a look that changed nothing (recorded, never published)."""

    visit_id: str | None = None
    revision: int = 0
    revises: Mapping[str, Any] | None = None
    looks: int = 1
    published: bool = True

    def fields(self) -> dict[str, Any]:
        revises = None if self.revises is None else {k: self.revises.get(k) for k in _REVISES}
        out: dict[str, Any] = {
            "VisitId": self.visit_id,
            "Revision": self.revision,
            "Revises": revises,
            "Looks": self.looks,
        }
        if not self.published:
            out["Published"] = False
        return out


def identity_of(message: Mapping[str, Any]) -> Identity | None:
    """The identity an identification message names (None for any other message): how a
    visit's standing answer is carried on by a look that changes nothing."""
    if message.get("Status") != "identified":
        return None
    similarity = message.get("Similarity")
    fpir = message.get("ExpectedFPIR")
    size = message.get("GallerySize")
    return Identity(
        similarity=float(similarity) if isinstance(similarity, int | float) else 0.0,
        face_id=_text(message.get("FaceId")),
        user_id=_text(message.get("UserId")),
        external_image_id=_text(message.get("ExternalImageId")),
        expected_fpir=float(fpir) if isinstance(fpir, int | float) else None,
        gallery_size=size if isinstance(size, int) and not isinstance(size, bool) else None,
    )


def profile_of(message: Mapping[str, Any]) -> dict[str, Any]:
    """The profile attributes an identification message was built with (all but
    :data:`RESERVED`), so a look that changes nothing repeats them without reading the
    profile again."""
    return {k: v for k, v in message.items() if k not in RESERVED}


def stranger_of(message: Mapping[str, Any]) -> dict[str, Any]:
    """The stranger fields of an unknown message (empty when it joined none)."""
    return {k: message[k] for k in STRANGER_FIELDS if k in message}


def _text(value: object) -> str | None:
    return value if isinstance(value, str) else None


def recognition_id(event: ObjectCreated) -> str:
    """Stable for one object version: the same (bucket, key, eTag) always gives the same id."""
    return str(uuid.uuid5(_NAMESPACE, f"{event.bucket}\0{event.key}\0{event.etag}"))


def raw_message_id(raw: bytes) -> str:
    """Stable id for a message that could not be read as an event at all."""
    return str(uuid.uuid5(_NAMESPACE, raw.hex()))


def _common(
    rid: str,
    status: str,
    event: ObjectCreated,
    crop: CropMetadata,
    recognized_at: datetime,
) -> dict[str, Any]:
    return {
        "RecognitionId": rid,
        "Status": status,
        "Bucket": event.bucket,
        "Key": event.key,
        "ETag": event.etag,
        "Camera": crop.camera,
        "CapturedAt": crop.captured_at.isoformat() if crop.captured_at else None,
        "RecognizedAt": recognized_at.isoformat(),
    }


def _box(box: BoundingBox) -> dict[str, float]:
    return {
        "Width": round(box.width, 6),
        "Height": round(box.height, 6),
        "Left": round(box.left, 6),
        "Top": round(box.top, 6),
    }


def identified(
    rid: str,
    event: ObjectCreated,
    crop: CropMetadata,
    recognized_at: datetime,
    *,
    identity: Identity,
    profile: Mapping[str, Any],
    box: BoundingBox,
    visit: VisitPart | None = None,
) -> dict[str, Any]:
    own = _common(rid, "identified", event, crop, recognized_at) | {
        "FaceId": identity.face_id,
        "UserId": identity.user_id,
        "ExternalImageId": identity.external_image_id,
        "Similarity": round(identity.similarity, 4),
        "ExpectedFPIR": identity.expected_fpir,
        "GallerySize": identity.gallery_size,
        "BoundingBox": _box(box),
    }
    # A profile attribute named like one of ours is dropped, not just overwritten: the
    # fields an answer may leave out (Published, StrangerId...) must not be forged by one.
    attributes = {k: v for k, v in profile.items() if k not in RESERVED}
    return {**attributes, **own, **(visit or _single(crop)).fields()}


def unknown(
    rid: str,
    event: ObjectCreated,
    crop: CropMetadata,
    recognized_at: datetime,
    *,
    box: BoundingBox,
    stranger: StrangerMatch | None = None,
    stranger_fields: Mapping[str, Any] | None = None,
    visit: VisitPart | None = None,
) -> dict[str, Any]:
    """``StrangerId``, ``StrangerSightings`` and ``FirstSeen`` when the face was grouped, so an
    automation can tell "the same stranger came back"; ``StrangerFaceId``, the face this
    sighting added to the stranger, ties the message to that face wherever a merge or split
    moves it (so forgetting finds the crop). ``stranger_fields``: those fields as the visit's
    standing answer has them (a later look of an unknown visit joins no stranger itself, but
    its crop is that stranger's)."""
    message = _common(rid, "unknown", event, crop, recognized_at) | {"BoundingBox": _box(box)}
    if stranger is not None:
        message |= {
            "StrangerId": stranger.stranger_id,
            "StrangerSightings": stranger.sightings,
            "FirstSeen": stranger.first_seen.isoformat(),
            "StrangerFaceId": stranger.face_id,
        }
    elif stranger_fields:
        message |= {k: stranger_fields[k] for k in STRANGER_FIELDS if k in stranger_fields}
    return message | (visit or _single(crop)).fields()


def _single(crop: CropMetadata) -> VisitPart:
    """A crop decided on its own: the first (and, without a visit id, only) look."""
    return VisitPart(visit_id=crop.visit_id)


def failed(
    rid: str,
    event: ObjectCreated | None,
    crop: CropMetadata,
    recognized_at: datetime,
    *,
    code: str,
    message: str,
) -> dict[str, Any]:
    error = {"Error": {"Code": code, "Message": message}}
    if event is None:
        return {
            "RecognitionId": rid,
            "Status": "error",
            "RecognizedAt": recognized_at.isoformat(),
        } | error
    # VisitId only: a look that could not be read fused into nothing and revised nothing.
    return _common(rid, "error", event, crop, recognized_at) | error | {"VisitId": crop.visit_id}

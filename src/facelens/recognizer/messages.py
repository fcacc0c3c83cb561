"""The JSON the recognizer publishes: one builder per outcome, the only place these shapes live.

Identifications are flat, as the original recipe published its DynamoDB
item: the profile's attributes at the top level, then facelens' own fields,
which win over a profile attribute of the same name (``RESERVED``). Times
are ISO-8601 UTC; ``Similarity`` is 0-100; ``BoundingBox`` is the searched
face in the crop, in Rekognition's ratios. ``ExpectedFPIR`` says how sure a name
is: the share of strangers (0-1) expected to score as high against the
``GallerySize`` people enrolled (null when the similarity rule decided).
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
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
)


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
    return {**profile, **own}


def unknown(
    rid: str,
    event: ObjectCreated,
    crop: CropMetadata,
    recognized_at: datetime,
    *,
    box: BoundingBox,
    stranger: StrangerMatch | None = None,
) -> dict[str, Any]:
    """``StrangerId``, ``StrangerSightings`` and ``FirstSeen`` when the face was grouped, so an
    automation can tell "the same stranger came back"; ``StrangerFaceId``, the face this
    sighting added to the stranger, ties the message to that face wherever a merge or split
    moves it (so forgetting finds the crop)."""
    message = _common(rid, "unknown", event, crop, recognized_at) | {"BoundingBox": _box(box)}
    if stranger is not None:
        message |= {
            "StrangerId": stranger.stranger_id,
            "StrangerSightings": stranger.sightings,
            "FirstSeen": stranger.first_seen.isoformat(),
            "StrangerFaceId": stranger.face_id,
        }
    return message


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
    return _common(rid, "error", event, crop, recognized_at) | error

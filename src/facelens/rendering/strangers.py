"""Strangers as the one JSON the CLI prints and the REST API returns.

``facelens strangers list|show|name`` and ``/api/v1/collections/{id}/strangers``
render the stranger service's results (:mod:`facelens.people.stranger_model`)
here, so a script reads one shape whichever it called.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from facelens.people.stranger_model import Crop, NamedStranger, Stranger


def _time(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat()


def crop_json(crop: Crop) -> dict[str, Any]:
    return {
        "RecognitionId": crop.recognition_id,
        "Bucket": crop.bucket,
        "Key": crop.key,
        "RecognizedAt": crop.recognized_at.isoformat(),
        "Camera": crop.camera,
    }


def stranger_json(stranger: Stranger) -> dict[str, Any]:
    """A stranger as the CLI prints it and the REST API returns it."""
    return {
        "StrangerId": stranger.stranger_id,
        "CollectionId": stranger.collection_id,
        "FaceCount": stranger.face_count,
        "FaceIds": list(stranger.face_ids),
        "Sightings": stranger.sightings,
        "FirstSeen": _time(stranger.first_seen),
        "LastSeen": _time(stranger.last_seen),
        "BestCrops": [crop_json(c) for c in stranger.best_crops],
        "MergedStrangerIds": list(stranger.merged),
    }


def named_json(named: NamedStranger) -> dict[str, Any]:
    return {
        "StrangerId": named.stranger_id,
        "CollectionId": named.collection_id,
        "UserId": named.user_id,
        "FaceIds": list(named.face_ids),
        "UserCreated": named.created,
        "Sightings": named.sightings,
        "Profile": dict(named.profile),
    }

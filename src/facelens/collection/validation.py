"""Parameter checks with Rekognition's patterns and ranges.

Each failure is an InvalidParameterException naming the parameter.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from facelens.collection.models import QualityFilter
from facelens.errors import InvalidParameterException

COLLECTION_ID = re.compile(r"[a-zA-Z0-9_.\-]{1,255}")
EXTERNAL_IMAGE_ID = re.compile(r"[a-zA-Z0-9_.\-:]{1,255}")
USER_ID = re.compile(r"[a-zA-Z0-9_.\-:]{1,128}")
FACE_ID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def _match(pattern: re.Pattern[str], value: str, name: str) -> str:
    if not isinstance(value, str) or pattern.fullmatch(value) is None:
        raise InvalidParameterException(
            f"{name} {value!r} must match the pattern {pattern.pattern}"
        )
    return value


def collection_id(value: str) -> str:
    return _match(COLLECTION_ID, value, "CollectionId")


def external_image_id(value: str | None) -> str | None:
    return None if value is None else _match(EXTERNAL_IMAGE_ID, value, "ExternalImageId")


def user_id(value: str) -> str:
    return _match(USER_ID, value, "UserId")


def face_ids(values: Sequence[str], *, limit: int) -> list[str]:
    """1..limit FaceIds (UUIDs), duplicates dropped, order kept."""
    if not values or len(values) > limit:
        raise InvalidParameterException(f"FaceIds must hold 1 to {limit} ids, got {len(values)}")
    for value in values:
        _match(FACE_ID, value, "FaceId")
    return list(dict.fromkeys(values))


def in_range(value: int | float, name: str, low: float, high: float) -> None:
    if not low <= value <= high:
        raise InvalidParameterException(f"{name} must be between {low:g} and {high:g}, got {value}")


def quality_filter(value: str | QualityFilter) -> QualityFilter:
    try:
        return QualityFilter(str(value).upper())
    except ValueError:
        known = ", ".join(q.value for q in QualityFilter)
        raise InvalidParameterException(f"QualityFilter must be one of {known}") from None

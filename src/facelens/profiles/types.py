"""Profiles: free-form items about a face or a person, keyed as the original table was.

An item is a JSON object (strings, numbers, booleans, null, lists, maps),
stored whole. Its key is the id it was put under: a FaceId (a UUID, as
Rekognition issues them) or a UserId (any other string). The item always
carries that key as an attribute, ``FaceId`` or ``UserId``, so an item read
back looks like the DynamoDB item the original recipe stored.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from facelens.errors import InvalidParameterException

MAX_ITEM_BYTES = 400 * 1024
"""DynamoDB's item limit (400 KB of JSON here): a profile is a card, not a file store."""

MAX_ID_LENGTH = 1024


@dataclass(frozen=True)
class Profile:
    """One stored item; ``item`` includes the key attribute (``FaceId`` or ``UserId``)."""

    profile_id: str
    item: Mapping[str, Any]
    updated_at: datetime

    @property
    def attributes(self) -> dict[str, Any]:
        """The item without its key attribute: what the profile says about the person."""
        key = key_attribute(self.profile_id)
        return {name: value for name, value in self.item.items() if name != key}


@dataclass(frozen=True)
class ProfilePage:
    profiles: tuple[Profile, ...]
    next_token: str | None = None


def key_attribute(profile_id: str) -> str:
    """``FaceId`` for a UUID (Rekognition's FaceId format), ``UserId`` for anything else."""
    try:
        uuid.UUID(profile_id)
    except ValueError:
        return "UserId"
    return "FaceId" if len(profile_id) == 36 else "UserId"


def check_profile_id(profile_id: str) -> str:
    if not profile_id or len(profile_id) > MAX_ID_LENGTH or not profile_id.isprintable():
        raise InvalidParameterException(
            f"A profile id must be 1-{MAX_ID_LENGTH} printable characters, got {profile_id!r}"
        )
    return profile_id


def make_item(profile_id: str, attributes: Mapping[str, Any]) -> dict[str, Any]:
    """The item stored for ``profile_id``: the attributes plus the key attribute.

    Raises InvalidParameterException for a key attribute that names another
    id, values JSON cannot hold (NaN, sets, bytes), or an item over 400 KB.
    """
    check_profile_id(profile_id)
    key = key_attribute(profile_id)
    if attributes.get(key, profile_id) != profile_id:
        raise InvalidParameterException(
            f"The item's {key} {attributes[key]!r} does not match the id {profile_id!r}"
        )
    item = {**attributes, key: profile_id}
    for name in item:
        if not isinstance(name, str) or not name:
            raise InvalidParameterException("Attribute names must be non-empty strings")
    try:
        encoded = json.dumps(item, allow_nan=False, ensure_ascii=False)
    except (TypeError, ValueError) as exc:
        raise InvalidParameterException(f"The item is not JSON-representable: {exc}") from exc
    if len(encoded.encode()) > MAX_ITEM_BYTES:
        raise InvalidParameterException(f"The item is over {MAX_ITEM_BYTES} bytes of JSON")
    return item

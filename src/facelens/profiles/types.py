"""Profiles: free-form items about a face or a person, keyed as the original table was.

An item is a JSON object (strings, numbers, booleans, null, lists, maps),
stored whole, within DynamoDB's limits: 400 KB, and values nested at most 32
levels deep (:data:`MAX_LEVELS`). Every store checks them on the way in
(:func:`make_item`), whichever front end (REST, DynamoDB endpoint, dashboard,
CLI) the item came through; a profile stored before the nesting limit
existed is served without its too-deep attributes (:func:`served_item`).

Its key is the id it was put under: a FaceId (a UUID, as Rekognition issues
them) or a UserId (any other string). The item always carries that key as an
attribute, ``FaceId`` or ``UserId``, so an item read back looks like the
DynamoDB item the original recipe stored.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from facelens import json_limits
from facelens.errors import InvalidParameterException

MAX_ITEM_BYTES = 400 * 1024
"""DynamoDB's item limit (400 KB of JSON here): a profile is a card, not a file store."""

MAX_ID_LENGTH = 1024
MAX_LEVELS = 32
"""DynamoDB's nesting limit, counted as DynamoDB counts it: an attribute is level 1 and
each list or map around a value one more, so ``{"a": {"b": 1}}`` reaches level 2 and
an attribute may hold at most 31 nested lists and maps. Deeper values broke whatever
walked them later (pydantic's serializer gives up at about 255 levels, ``json`` at about
1000): a profile stored 300 deep made every listing answer 500."""

_log = logging.getLogger(__name__)


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
    id, values JSON cannot hold (NaN, sets, bytes) or UTF-8 cannot (an unpaired
    surrogate), a NUL character (PostgreSQL cannot store it), a value nested over
    :data:`MAX_LEVELS` levels, or an item over 400 KB.
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
    too_deep = _too_deep(item)
    if too_deep:
        raise InvalidParameterException(
            f"Attribute {too_deep[0]!r} is nested more than {MAX_LEVELS} levels deep "
            f"(DynamoDB's limit: the attribute and at most {MAX_LEVELS - 1} lists and maps)"
        )
    if _holds_nul(item):
        # PostgreSQL's text and jsonb cannot hold U+0000 (the store answered 500); refused
        # for every store, so a profile means the same wherever it is kept.
        raise InvalidParameterException("The item holds a NUL character (U+0000)")
    try:
        encoded = json.dumps(item, allow_nan=False, ensure_ascii=False).encode()
    except UnicodeEncodeError:  # a lone surrogate: no store could encode it (a 500, before)
        raise InvalidParameterException(
            "The item holds a string that is not valid Unicode (an unpaired surrogate)"
        ) from None
    except (TypeError, ValueError) as exc:
        raise InvalidParameterException(f"The item is not JSON-representable: {exc}") from exc
    if len(encoded) > MAX_ITEM_BYTES:
        raise InvalidParameterException(f"The item is over {MAX_ITEM_BYTES} bytes of JSON")
    return item


def served_item(profile_id: str, item: Any) -> dict[str, Any]:
    """A stored item as the stores hand it out: without the attributes nested over
    :data:`MAX_LEVELS` levels (only a profile stored before the limit has any), which are
    logged (WARNING) by name; putting the profile again, or deleting it, repairs it.

    A stored item that is not a JSON object is served as its key attribute alone.
    """
    if not isinstance(item, Mapping):
        _log.warning(
            "Profile %r is stored as %s, not an object: served empty",
            profile_id,
            type(item).__name__,
        )
        return {key_attribute(profile_id): profile_id}
    withheld = _too_deep(item)
    if withheld:
        _log.warning(
            "Profile %r: attributes %s are nested more than %d levels deep (stored before that "
            "was refused): served without them; put the profile again to repair it",
            profile_id,
            ", ".join(repr(name) for name in withheld),
            MAX_LEVELS,
        )
    return {name: value for name, value in item.items() if name not in withheld}


def stored_item(profile_id: str, text: str | bytes) -> dict[str, Any]:
    """:func:`served_item` of an item stored as JSON text (SQLite). Text too deep even to
    parse (over ~1000 levels: RecursionError) is served as its key attribute alone."""
    try:
        item = json.loads(text)
    except RecursionError:
        _log.warning("Profile %r nests too deep to parse: served empty; put it again", profile_id)
        return {key_attribute(profile_id): profile_id}
    return served_item(profile_id, item)


def _holds_nul(item: Mapping[str, Any]) -> bool:
    """Whether a name or string anywhere in ``item`` holds U+0000 (walked with a stack:
    no recursion to run out of, whatever the nesting)."""
    stack: list[Any] = [item]
    while stack:
        value = stack.pop()
        if isinstance(value, str):
            if "\x00" in value:
                return True
        elif isinstance(value, Mapping):
            stack.extend(value.keys())
            stack.extend(value.values())
        elif isinstance(value, list | tuple):
            stack.extend(value)
    return False


def _too_deep(item: Mapping[str, Any]) -> list[str]:
    """The names of ``item``'s attributes nested over :data:`MAX_LEVELS` levels."""
    most = MAX_LEVELS - 1  # lists and maps inside the attribute, which is level 1
    return [name for name, value in item.items() if json_limits.depth(value, limit=most) > most]

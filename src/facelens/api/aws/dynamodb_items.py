"""Items of the DynamoDB endpoint: typed JSON checked as DynamoDB checks it, and profile pages.

Every table is a view of the one profile store (see
:mod:`facelens.api.aws.dynamodb_tables`): an item's table key (``FaceId``) is the
profile id, and the item's attributes are the profile's. Typed values
(``{"S": …}``, ``{"N": "1.5"}``, ``{"M": {…}}``) are checked here with
DynamoDB's rules and messages, then converted by
:mod:`facelens.profiles.dynamo`. Profiles are JSON, which sets what survives
a round trip: numbers come back as JSON numbers (integers exactly, others as
a double: about 17 significant digits, where DynamoDB keeps 38), string and
number sets come back as sorted lists (``L``), and binary values (``B``,
``BS``) are refused.

An item read through a table always carries that table's key attribute set
to the profile id, whatever key the profile was stored under; the store's
own key attribute (``FaceId`` for a UUID, ``UserId`` otherwise) is there too.
"""

from __future__ import annotations

import json
import sys
import threading
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from facelens.api.aws.dynamodb_tables import TableCatalogue, TableInfo
from facelens.errors import InvalidParameterException, ValidationException
from facelens.profiles.dynamo import from_dynamo_item, to_dynamo_item
from facelens.profiles.store import ProfileStore
from facelens.profiles.types import Profile

KEY_MISMATCH = "The provided key element does not match the schema"
MAX_PAGE_BYTES = 1024 * 1024
"""A Scan page stops after 1 MB of items, as DynamoDB's does (JSON bytes here)."""

_STORE_PAGE = 1000
"""Profiles read per call to the store while counting or skipping (rows)."""
_RESUME_TOKENS = 1024
"""Scan positions remembered (last profile id -> the store's token to continue from it)."""
_NUMBER_EXPONENTS = range(-130, 126)
"""DynamoDB's number range: magnitudes from 1E-130 to below 1E+126."""
_TYPES = frozenset({"S", "N", "B", "SS", "NS", "BS", "M", "L", "NULL", "BOOL"})


def check_value(value: Any, where: str) -> None:
    """Raises ValidationException unless ``value`` is one well-formed typed value.

    ``where`` names the attribute in messages. Binary values are refused: a
    profile is JSON and has no place for them.
    """
    if not isinstance(value, dict) or not value:
        raise ValidationException(
            f"Supplied AttributeValue is empty, must contain exactly one of the supported "
            f"datatypes ({where})"
        )
    if len(value) != 1:
        raise ValidationException(
            "Supplied AttributeValue has more than one datatypes set, must contain exactly "
            f"one of the supported datatypes ({where})"
        )
    ((kind, inner),) = value.items()
    if kind not in _TYPES:
        raise ValidationException(f"Supplied AttributeValue has an unknown datatype {kind!r}")
    if kind in ("B", "BS"):
        raise ValidationException(
            f"{where}: binary attributes (B, BS) are not supported: a profile is JSON"
        )
    if kind == "S" and not isinstance(inner, str):
        raise ValidationException(f"{where}: an S value must be a string")
    if kind == "N":
        _number(inner, where)
    if kind == "BOOL" and not isinstance(inner, bool):
        raise ValidationException(f"{where}: a BOOL value must be true or false")
    if kind == "NULL" and inner is not True:
        raise ValidationException(
            "One or more parameter values were invalid: Null attribute value types must have "
            "the value of true"
        )
    if kind in ("SS", "NS"):
        _set(kind, inner, where)
    if kind == "L":
        if not isinstance(inner, list):
            raise ValidationException(f"{where}: an L value must be a list")
        for index, member in enumerate(inner):
            check_value(member, f"{where}[{index}]")
    if kind == "M":
        check_item(inner, where=f"{where}.")


def check_item(item: Any, *, where: str = "") -> None:
    """Every attribute of ``item`` (a map of names to typed values) well-formed."""
    if not isinstance(item, dict):
        raise ValidationException(f"{where or 'An item'} must be a map of attribute values")
    for name, value in item.items():
        if not name:
            raise ValidationException(
                "One or more parameter values were invalid: An attribute name cannot be empty"
            )
        check_value(value, f"{where}{name}")


def _number(text: Any, where: str) -> Decimal:
    try:
        number = Decimal(text) if isinstance(text, str) else None
    except InvalidOperation:
        number = None
    if number is None or not number.is_finite():
        raise ValidationException(
            f"The parameter cannot be converted to a numeric value: {text!r} ({where})"
        )
    if number and number.adjusted() not in _NUMBER_EXPONENTS:
        raise ValidationException(
            f"Number overflow or underflow: {text!r} is outside DynamoDB's range ({where})"
        )
    return number


def _set(kind: str, members: Any, where: str) -> None:
    what = "string" if kind == "SS" else "number"
    if not isinstance(members, list) or not all(isinstance(m, str) for m in members):
        raise ValidationException(f"{where}: a {kind} value must be a list of strings")
    if not members:
        raise ValidationException(
            f"One or more parameter values were invalid: An {what} set may not be empty ({where})"
        )
    keys = [_number(m, where) for m in members] if kind == "NS" else list(members)
    if len(set(keys)) != len(keys):
        raise ValidationException(f"Input collection {members} contains duplicates ({where})")


def key_id(table: TableInfo, key: Any) -> str:
    """The profile id a ``Key`` names: exactly the table's key attribute, of type S."""
    if not isinstance(key, dict) or set(key) != {table.key}:
        raise ValidationException(KEY_MISMATCH)
    value = key[table.key]
    if not isinstance(value, dict) or set(value) != {"S"} or not isinstance(value["S"], str):
        raise ValidationException(KEY_MISMATCH)
    return _non_empty(table, value["S"])


def item_id(table: TableInfo, item: Any) -> tuple[str, dict[str, Any]]:
    """The profile id and plain attributes of a PutItem ``Item`` (the key attribute included)."""
    check_item(item)
    value = item.get(table.key)
    if value is None:
        raise ValidationException(
            f"One or more parameter values were invalid: Missing the key {table.key} in the item"
        )
    ((kind, inner),) = value.items()
    if kind != "S":
        raise ValidationException(
            f"One or more parameter values were invalid: Type mismatch for key {table.key} "
            f"expected: S actual: {kind}"
        )
    return _non_empty(table, inner), plain(item)


def plain(item: Mapping[str, Any]) -> dict[str, Any]:
    """Plain values of a checked typed item; a value JSON cannot hold is ValidationException."""
    try:
        return from_dynamo_item(item)
    except InvalidParameterException as exc:
        raise ValidationException(exc.message) from exc


def typed_item(table: TableInfo, profile: Profile) -> dict[str, Any]:
    """The profile as an item of ``table``: its attributes, with the table's key set."""
    return to_dynamo_item({**profile.item, table.key: profile.profile_id})


def typed_key(table: TableInfo, profile_id: str) -> dict[str, Any]:
    return {table.key: {"S": profile_id}}


def _non_empty(table: TableInfo, profile_id: str) -> str:
    if not profile_id:
        raise ValidationException(
            "One or more parameter values are not valid. The AttributeValue for a key attribute "
            f"cannot contain an empty string value. Key: {table.key}"
        )
    return profile_id


@dataclass(frozen=True)
class ScanPage:
    """Profiles in id order; ``last_id`` is where the next page starts after, None at the end."""

    profiles: tuple[Profile, ...]
    last_id: str | None


class ProfileTables:
    """The tables (catalogue) over the one profile store, with Scan's paging.

    The store pages with opaque tokens while DynamoDB resumes from a key
    (``ExclusiveStartKey``). A page that ends where a store page ends
    remembers the store's token under its last id, so the usual walk (each
    page's LastEvaluatedKey passed to the next) costs one store page per
    page; any other start key is found by reading from the beginning and
    skipping ids up to it (ids are in code point order, which is the store's
    byte order for UTF-8).
    """

    def __init__(self, catalogue: TableCatalogue, profiles: ProfileStore, *, region: str) -> None:
        self.catalogue = catalogue
        self.profiles = profiles
        self.region = region
        self._resume: OrderedDict[str, str] = OrderedDict()
        self._lock = threading.Lock()

    def counts(self) -> tuple[int, int]:
        """How many profiles there are and their size in JSON bytes (a full read: DynamoDB's
        own figures are refreshed every six hours, so callers must not rely on them)."""
        items = size = 0
        token: str | None = None
        while True:
            page = self.profiles.list(max_results=_STORE_PAGE, next_token=token)
            items += len(page.profiles)
            size += sum(_size(p) for p in page.profiles)
            if page.next_token is None:
                return items, size
            token = page.next_token

    def scan(self, *, after: str | None, limit: int | None) -> ScanPage:
        """Up to ``limit`` profiles (and at most 1 MB of them) with ids after ``after``."""
        wanted = limit if limit is not None else sys.maxsize
        token = self._token_after(after)
        skip_to = after if after is not None and token is None else None
        found: list[Profile] = []
        size = 0
        while True:
            request = _STORE_PAGE if skip_to is not None else min(wanted - len(found), _STORE_PAGE)
            page = self.profiles.list(max_results=request, next_token=token)
            for index, profile in enumerate(page.profiles):
                if skip_to is not None and profile.profile_id <= skip_to:
                    continue
                found.append(profile)
                size += _size(profile)
                if len(found) < wanted and size < MAX_PAGE_BYTES:
                    continue
                if index == len(page.profiles) - 1:
                    if page.next_token is None:
                        return ScanPage(tuple(found), None)
                    self._remember(profile.profile_id, page.next_token)
                return ScanPage(tuple(found), profile.profile_id)
            if page.next_token is None:
                return ScanPage(tuple(found), None)
            token = page.next_token

    def _token_after(self, after: str | None) -> str | None:
        if after is None:
            return None
        with self._lock:
            return self._resume.get(after)

    def _remember(self, last_id: str, token: str) -> None:
        with self._lock:
            self._resume[last_id] = token
            self._resume.move_to_end(last_id)
            while len(self._resume) > _RESUME_TOKENS:
                self._resume.popitem(last=False)


def _size(profile: Profile) -> int:
    return len(json.dumps(profile.item, ensure_ascii=False).encode())

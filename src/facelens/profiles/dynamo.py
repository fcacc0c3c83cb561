"""DynamoDB's typed JSON (``{"Bio": {"S": "..."}}``) to and from plain values.

boto3's own serializer does the typing; we only map its ``Decimal`` numbers
to ``int``/``float`` (profiles are JSON) and its sets to sorted lists.
Binary values (``B``/``BS``) are refused: a profile has no place for them,
and so is an item nested far deeper than DynamoDB allows (before converting it).
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from facelens import json_limits
from facelens.errors import InvalidParameterException
from facelens.profiles.types import MAX_LEVELS

_MAX_TYPED_DEPTH = 2 * MAX_LEVELS + 2
"""JSON levels of the deepest typed item converted: two per level (``{"M": {``), one for
the item; over it, refused before boto3's deserializer (which recurses per level) runs.
Within it, :func:`facelens.profiles.types.make_item` checks the exact limit."""


def from_dynamo_item(item: Mapping[str, Any]) -> dict[str, Any]:
    """Plain values from a DynamoDB item in typed JSON."""
    from boto3.dynamodb.types import TypeDeserializer

    if not isinstance(item, Mapping):
        raise InvalidParameterException("A DynamoDB item is a JSON object of typed values")
    if json_limits.depth(item, limit=_MAX_TYPED_DEPTH) > _MAX_TYPED_DEPTH:
        raise InvalidParameterException(
            f"The item is nested more than {MAX_LEVELS} levels deep (DynamoDB's limit)"
        )
    deserializer = TypeDeserializer()
    try:
        return {name: _plain(deserializer.deserialize(value)) for name, value in item.items()}
    except (TypeError, ValueError, AttributeError, KeyError) as exc:
        raise InvalidParameterException(f"Not DynamoDB typed JSON: {exc}") from exc


def to_dynamo_item(values: Mapping[str, Any]) -> dict[str, Any]:
    """DynamoDB typed JSON for plain values (floats travel as DynamoDB's decimal strings)."""
    from boto3.dynamodb.types import TypeSerializer

    serializer = TypeSerializer()
    return {name: serializer.serialize(_decimal(value)) for name, value in values.items()}


def _plain(value: Any) -> Any:
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, set | frozenset):
        return sorted(_plain(v) for v in value)
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, bytes | bytearray) or type(value).__name__ == "Binary":
        raise InvalidParameterException("Binary attributes are not supported in profiles")
    return value


def _decimal(value: Any) -> Any:
    if isinstance(value, float):
        return Decimal(repr(value))
    if isinstance(value, list):
        return [_decimal(v) for v in value]
    if isinstance(value, dict):
        return {k: _decimal(v) for k, v in value.items()}
    return value

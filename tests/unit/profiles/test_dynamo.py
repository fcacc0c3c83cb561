"""DynamoDB typed JSON in and out of profiles."""

from __future__ import annotations

import pytest

from facelens.errors import InvalidParameterException
from facelens.profiles.dynamo import from_dynamo_item, to_dynamo_item
from facelens.profiles.types import key_attribute


def test_typed_json_round_trip() -> None:
    typed = {
        "FaceId": {"S": "11111111-2222-4333-8444-555555555555"},
        "Name": {"S": "Lin-Manuel Miranda"},
        "Age": {"N": "45"},
        "Height": {"N": "1.75"},
        "Roles": {"L": [{"S": "Hamilton"}, {"S": "Usnavi"}]},
        "Tags": {"SS": ["b", "a"]},
        "Home": {"M": {"City": {"S": "New York"}, "Zip": {"N": "10001"}}},
        "Active": {"BOOL": True},
        "Nothing": {"NULL": True},
    }
    plain = from_dynamo_item(typed)
    assert plain == {
        "FaceId": "11111111-2222-4333-8444-555555555555",
        "Name": "Lin-Manuel Miranda",
        "Age": 45,
        "Height": 1.75,
        "Roles": ["Hamilton", "Usnavi"],
        "Tags": ["a", "b"],
        "Home": {"City": "New York", "Zip": 10001},
        "Active": True,
        "Nothing": None,
    }
    assert isinstance(plain["Age"], int)
    again = from_dynamo_item(to_dynamo_item(plain))
    assert again == plain


@pytest.mark.parametrize(
    "bad",
    [
        {"Name": {"X": "unknown type"}},
        {"Name": "not typed"},
        {"Photo": {"B": "aGVsbG8="}},
        ["not", "a", "map"],
    ],
)
def test_bad_typed_json_is_refused(bad: object) -> None:
    with pytest.raises(InvalidParameterException):
        from_dynamo_item(bad)  # type: ignore[arg-type]


def test_key_attribute_tells_face_ids_from_user_ids() -> None:
    assert key_attribute("11111111-2222-4333-8444-555555555555") == "FaceId"
    assert key_attribute("obama") == "UserId"
    assert key_attribute("11111111222243338444555555555555") == "UserId"

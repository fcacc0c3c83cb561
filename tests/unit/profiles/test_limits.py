"""The profile value's limits: DynamoDB's 32 levels, checked and served without recursion."""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest

from facelens.errors import InvalidParameterException
from facelens.profiles.dynamo import from_dynamo_item
from facelens.profiles.types import MAX_LEVELS, make_item, served_item, stored_item


def nested(levels: int, leaf: Any = "leaf") -> Any:
    value = leaf
    for _ in range(levels):
        value = {"a": value}
    return value


def test_an_attribute_may_hold_31_lists_and_maps() -> None:
    assert MAX_LEVELS == 32
    item = make_item("p1", {"deep": nested(30, ["x"])})  # 30 maps and a list: level 32
    assert item["UserId"] == "p1"
    with pytest.raises(InvalidParameterException, match="'deep' is nested more than 32"):
        make_item("p1", {"fine": 1, "deep": nested(31, ["x"])})


def test_a_value_deeper_than_python_can_recurse_is_refused_not_a_recursion_error() -> None:
    with pytest.raises(InvalidParameterException, match="32 levels"):
        make_item("p1", {"deep": nested(100_000)})


def test_what_is_stored_too_deep_is_served_without_it(caplog: pytest.LogCaptureFixture) -> None:
    stored = {"UserId": "p1", "Name": "Ada", "deep": nested(300)}
    with caplog.at_level(logging.WARNING, logger="facelens.profiles.types"):
        served = served_item("p1", stored)
    assert served == {"UserId": "p1", "Name": "Ada"}
    assert "'deep'" in caplog.text
    assert "p1" in caplog.text
    assert served_item("p1", {"UserId": "p1", "ok": nested(31)}) == {
        "UserId": "p1",
        "ok": nested(31),
    }
    assert served_item("p1", ["not", "an", "object"]) == {"UserId": "p1"}


def test_stored_text_too_deep_to_parse_is_served_as_its_key() -> None:
    text = '{"UserId": "p1", "deep": ' + "[" * 100_000 + "]" * 100_000 + "}"
    assert stored_item("p1", text) == {"UserId": "p1"}
    assert stored_item("p1", json.dumps({"UserId": "p1", "Name": "Ada"})) == {
        "UserId": "p1",
        "Name": "Ada",
    }


def test_a_typed_item_far_too_deep_is_refused_before_boto3_converts_it() -> None:
    typed: Any = {"S": "leaf"}
    for _ in range(5_000):
        typed = {"M": {"a": typed}}
    with pytest.raises(InvalidParameterException, match="32 levels"):
        from_dynamo_item({"UserId": {"S": "p1"}, "deep": typed})


def test_a_lone_surrogate_is_refused_in_values_and_names() -> None:
    with pytest.raises(InvalidParameterException, match="not valid Unicode"):
        make_item("p1", {"Name": "\ud800"})
    with pytest.raises(InvalidParameterException, match="not valid Unicode"):
        make_item("p1", {"\udc00": "x"})
    assert make_item("p1", {"Name": "\U0001f600"})["Name"] == "\U0001f600"


@pytest.mark.parametrize(
    "attributes",
    [{"Note": "a\x00b"}, {"a\x00": "x"}, {"Deep": [{"k": ["\x00"]}]}, {"Map": {"\x00": 1}}],
)
def test_a_nul_character_is_refused_anywhere(attributes: dict[str, Any]) -> None:
    """PostgreSQL's text and jsonb cannot hold U+0000: its profile store answered 500 (found
    by the fuzz suite). Refused for every store, so a profile means the same everywhere."""
    with pytest.raises(InvalidParameterException, match="NUL"):
        make_item("ada", attributes)


def test_the_text_of_an_escape_is_not_a_nul() -> None:
    assert make_item("ada", {"Note": "\\u0000"})["Note"] == "\\u0000"

"""Typed attribute values checked as DynamoDB checks them, keys, and Scan's paging."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from facelens.api.aws.dynamodb_items import (
    KEY_MISMATCH,
    ProfileTables,
    check_value,
    item_id,
    key_id,
    typed_item,
)
from facelens.api.aws.dynamodb_tables import TableCatalogue, TableInfo
from facelens.errors import ValidationException
from facelens.profiles.registry import open_profile_store
from facelens.profiles.store import ProfileStore

FACE_ID = "0b5c5c1e-6a0e-4a5c-8a39-3c6f1d2e4f50"
FACES = TableInfo("faces", "FaceId", "PAY_PER_REQUEST", 0, 0, "id", 0.0)
PEOPLE = TableInfo("people", "UserId", "PAY_PER_REQUEST", 0, 0, "id", 0.0)


@pytest.mark.parametrize(
    ("value", "match"),
    [
        ({}, "empty"),
        ("Anna", "empty"),
        ({"S": "a", "N": "1"}, "more than one datatypes"),
        ({"X": "a"}, "unknown datatype"),
        ({"S": 1}, "must be a string"),
        ({"N": 1}, "cannot be converted to a numeric value"),
        ({"N": "abc"}, "cannot be converted to a numeric value"),
        ({"N": "NaN"}, "cannot be converted to a numeric value"),
        ({"N": "Infinity"}, "cannot be converted to a numeric value"),
        ({"N": "1E+126"}, "overflow"),
        ({"N": "1E-131"}, "underflow"),
        ({"BOOL": "true"}, "true or false"),
        ({"NULL": False}, "must have the value of true"),
        ({"SS": []}, "may not be empty"),
        ({"NS": []}, "may not be empty"),
        ({"SS": ["a", "a"]}, "duplicates"),
        ({"NS": ["1", "1.0"]}, "duplicates"),
        ({"NS": ["1", "x"]}, "numeric"),
        ({"SS": [1]}, "list of strings"),
        ({"B": "AAEC"}, "binary"),
        ({"BS": ["AAEC"]}, "binary"),
        ({"L": [{"S": "ok"}, {"B": "AAEC"}]}, r"binary"),
        ({"M": {"Inner": {"NULL": False}}}, "value of true"),
        ({"M": {"": {"S": "x"}}}, "name cannot be empty"),
        ({"L": "not a list"}, "must be a list"),
        ({"M": ["not", "a", "map"]}, "map of attribute values"),
    ],
)
def test_malformed_values(value: Any, match: str) -> None:
    with pytest.raises(ValidationException, match=match):
        check_value(value, "Attr")


@pytest.mark.parametrize(
    "value",
    [
        {"S": ""},
        {"N": "0"},
        {"N": "-1.5e125"},
        {"N": "1E-130"},
        {"N": "12345678901234567890123456789012345678"},
        {"BOOL": False},
        {"NULL": True},
        {"SS": ["b", "a"]},
        {"NS": ["1", "2.5"]},
        {"L": []},
        {"M": {}},
        {"M": {"Deep": {"L": [{"M": {"X": {"N": "1"}}}]}}},
    ],
)
def test_well_formed_values(value: Any) -> None:
    check_value(value, "Attr")


def test_keys() -> None:
    assert key_id(FACES, {"FaceId": {"S": FACE_ID}}) == FACE_ID
    for key in (
        {"UserId": {"S": FACE_ID}},
        {"FaceId": {"S": FACE_ID}, "Name": {"S": "x"}},
        {"FaceId": {"N": "1"}},
        {"FaceId": FACE_ID},
        {},
        None,
    ):
        with pytest.raises(ValidationException, match=KEY_MISMATCH):
            key_id(FACES, key)
    with pytest.raises(ValidationException, match="cannot contain an empty string"):
        key_id(FACES, {"FaceId": {"S": ""}})


def test_items_to_plain_values() -> None:
    profile_id, attributes = item_id(
        FACES,
        {
            "FaceId": {"S": FACE_ID},
            "Big": {"N": "123456789012345678901234567890"},
            "Half": {"N": "0.5"},
            "Tags": {"SS": ["b", "a"]},
            "Scores": {"NS": ["2", "1.5"]},
        },
    )
    assert profile_id == FACE_ID
    assert attributes == {
        "FaceId": FACE_ID,
        "Big": 123456789012345678901234567890,  # integers stay exact
        "Half": 0.5,
        "Tags": ["a", "b"],  # sets become sorted lists
        "Scores": [1.5, 2],
    }
    with pytest.raises(ValidationException, match="Missing the key FaceId"):
        item_id(FACES, {"Name": {"S": "x"}})
    with pytest.raises(ValidationException, match="Type mismatch for key FaceId expected: S"):
        item_id(FACES, {"FaceId": {"N": "7"}})
    with pytest.raises(ValidationException, match="empty string"):
        item_id(FACES, {"FaceId": {"S": ""}})


@pytest.fixture
def store(tmp_path: Path) -> Iterator[ProfileStore]:
    opened = open_profile_store(f"sqlite:///{tmp_path / 'profiles.db'}")
    yield opened
    opened.close()


def test_an_item_read_through_a_table_carries_its_key(store: ProfileStore) -> None:
    profile = store.put("anna", {"Name": "Anna"})
    assert typed_item(PEOPLE, profile) == {"UserId": {"S": "anna"}, "Name": {"S": "Anna"}}
    # Through a table keyed FaceId the same profile has a FaceId too (every table is a view).
    assert typed_item(FACES, profile)["FaceId"] == {"S": "anna"}
    assert typed_item(FACES, profile)["UserId"] == {"S": "anna"}


def test_scan_pages_resume_from_any_key(store: ProfileStore, tmp_path: Path) -> None:
    tables = ProfileTables(TableCatalogue(tmp_path / "tables.db"), store, region="us-east-1")
    ids = [f"p{n:03d}" for n in range(25)]
    for profile_id in reversed(ids):
        store.put(profile_id, {"N": 1})
    assert tables.counts()[0] == 25

    seen: list[str] = []
    after: str | None = None
    while True:
        page = tables.scan(after=after, limit=10)
        seen += [p.profile_id for p in page.profiles]
        if page.last_id is None:
            break
        after = page.last_id
    assert seen == ids

    fresh = ProfileTables(TableCatalogue(tmp_path / "tables.db"), store, region="us-east-1")
    page = fresh.scan(after="p009", limit=3)  # a key this instance never handed out
    assert [p.profile_id for p in page.profiles] == ["p010", "p011", "p012"]
    assert page.last_id == "p012"
    page = fresh.scan(after="p0105", limit=None)  # a key of no profile at all
    assert [p.profile_id for p in page.profiles] == ids[11:]
    assert page.last_id is None
    assert fresh.scan(after="p024", limit=5).profiles == ()


def test_scan_pages_stop_at_one_megabyte(store: ProfileStore, tmp_path: Path) -> None:
    tables = ProfileTables(TableCatalogue(tmp_path / "tables.db"), store, region="us-east-1")
    for n in range(6):
        store.put(f"big-{n}", {"Blob": "x" * 300_000})
    first = tables.scan(after=None, limit=None)
    assert len(first.profiles) == 4  # 4 x 300 KB reaches 1 MB
    assert first.last_id == "big-3"
    rest = tables.scan(after=first.last_id, limit=None)
    assert [p.profile_id for p in rest.profiles] == ["big-4", "big-5"]
    assert rest.last_id is None

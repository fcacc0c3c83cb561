"""Profiles nested too deep or grown too large are refused by every store and front end.

The limits are DynamoDB's (32 levels counting the attribute, 400 KB), checked
where items enter the store, so no path can store what later breaks reading:
a profile nested 300 deep once made every listing answer 500. Each store is
real: SQLite files, a PostgreSQL server, DynamoDB (moto in server mode); the
CLI runs as a subprocess.
"""

from __future__ import annotations

from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest

from facelens.config import Settings
from facelens.enrolment import Photo, enrol_person
from facelens.errors import InvalidParameterException, ResourceNotFoundException
from facelens.history.audit import cli_actor
from facelens.profiles.store import ProfileStore
from facelens.profiles.types import MAX_ITEM_BYTES
from facelens.wiring.people import enrolment
from facelens.wiring.stores import open_audit, open_collections, open_profiles
from tests.integration.test_cli import error, facelens, out
from tests.integration.test_dynamodb_profiles import dynamodb_table_url  # noqa: F401  (fixture)
from tests.integration.test_profile_stores import store  # noqa: F401  (fixture)


def nested(levels: int) -> Any:
    value: Any = "leaf"
    for _ in range(levels):
        value = {"a": value}
    return value


def test_values_nested_past_32_levels_are_refused(store: ProfileStore) -> None:  # noqa: F811
    with pytest.raises(InvalidParameterException, match="32 levels"):
        store.put("p1", {"Name": "Ada", "deep": nested(32)})
    assert store.get("p1") is None
    with pytest.raises(InvalidParameterException, match="32 levels"):
        store.update("p1", {"deep": [nested(31)]})
    assert store.get("p1") is None
    store.put("p1", {"deep": nested(31), "list": [[[1]]]})
    fetched = store.get("p1")
    assert fetched is not None
    same = fetched.attributes == {"deep": nested(31), "list": [[[1]]]}
    assert same


def test_a_merge_past_400_kb_is_refused_and_changes_nothing(store: ProfileStore) -> None:  # noqa: F811
    half = "x" * (MAX_ITEM_BYTES // 2 + 1024)
    store.put("p1", {"A": half})
    with pytest.raises(InvalidParameterException):
        store.update("p1", {"B": half})
    fetched = store.get("p1")
    assert fetched is not None
    assert sorted(fetched.attributes) == ["A"]


def test_the_cli_refuses_items_nested_too_deep(cli_env: dict[str, str]) -> None:
    deep_value = '{"M": {"a": ' * 40 + '{"S": "x"}' + "}}" * 40  # 40 levels of typed maps
    typed_deep = '{"UserId": {"S": "p1"}, "deep": ' + deep_value + "}"
    for args in (
        ("--item", "[" * 100_000),
        ("--item", typed_deep),
        ("p1", "--attr", "deep:=" + "[" * 100_000),
        ("p1", "--attr", "deep:=" + "[" * 32 + "]" * 32),
    ):
        done = facelens("profiles", "put", *args, env=cli_env, check=False)
        assert error(done)["Code"] == "InvalidParameterException", done.stderr[-500:]
    assert out(facelens("profiles", "list", env=cli_env))["Items"] == []


@pytest.mark.parametrize("attributes", [{"deep": nested(40)}, {"Name": "\ud800"}])
def test_enrolling_with_a_profile_the_store_refuses_enrols_nothing(
    tmp_path: Path, models_dir: Path, testdata: Path, attributes: dict[str, Any]
) -> None:
    """The refusal came after the faces were indexed and the user made: `facelens enrol
    --attr` then reported "No face was enrolled" (and audited nothing) for a person who was."""
    settings = Settings(home=tmp_path / "home", models_dir=models_dir)
    photo = testdata / "people" / "obama" / "obama_1.jpg"
    with ExitStack() as stack:
        own, profiles = open_collections(settings, stack), open_profiles(settings, stack)
        audit = open_audit(settings, stack)
        with pytest.raises(InvalidParameterException):
            enrol_person(
                enrolment(own, profiles, audit),
                cli_actor(),
                "staff",
                "Ada",
                [Photo(photo.name, photo.read_bytes())],
                attributes=attributes,
            )
        assert profiles.get("ada") is None
        assert audit.entries().entries == []  # nothing enrolled, nothing recorded
        with pytest.raises(ResourceNotFoundException):
            own.collections.describe_collection("staff")

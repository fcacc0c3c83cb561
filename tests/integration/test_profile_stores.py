"""One set of profile-store tests, run on SQLite, in-memory SQLite, a real PostgreSQL and
DynamoDB (moto in server mode, a fresh table per test)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from facelens.errors import InvalidParameterException, ServiceUnavailableException
from facelens.profiles.dynamodb_store import DynamoDBProfileStore
from facelens.profiles.postgres_store import PostgresProfileStore
from facelens.profiles.registry import open_profile_store
from facelens.profiles.store import ProfileStore
from tests.integration.test_dynamodb_profiles import dynamodb_table_url  # noqa: F401  (fixture)

FACE = "11111111-2222-4333-8444-555555555555"


@pytest.fixture(params=["sqlite", "memory", "postgres", "dynamodb"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ProfileStore]:
    if request.param == "postgres":
        url = request.getfixturevalue("postgres_db")
    elif request.param == "dynamodb":
        url = request.getfixturevalue("dynamodb_table_url")
    elif request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'profiles.db'}"
    else:
        url = "memory://"
    opened = open_profile_store(url)
    yield opened
    opened.close()


def test_put_get_by_face_id_and_user_id(store: ProfileStore) -> None:
    face = store.put(FACE, {"Name": "Barack Obama", "Role": "President", "Terms": [2009, 2013]})
    assert face.item == {
        "FaceId": FACE,
        "Name": "Barack Obama",
        "Role": "President",
        "Terms": [2009, 2013],
    }
    assert face.attributes == {"Name": "Barack Obama", "Role": "President", "Terms": [2009, 2013]}
    store.put("obama", {"Bio": {"born": 1961, "city": "Honolulu"}, "Score": 9.5, "Vip": True})
    got = store.get("obama")
    assert got is not None
    assert got.item == {
        "UserId": "obama",
        "Bio": {"born": 1961, "city": "Honolulu"},
        "Score": 9.5,
        "Vip": True,
    }
    fetched = store.get(FACE)
    assert fetched is not None
    assert fetched.item == face.item
    assert store.get("nobody") is None


def test_put_replaces_and_update_merges(store: ProfileStore) -> None:
    store.put("anna", {"Name": "Anna", "Role": "Engineer"})
    store.put("anna", {"Name": "Anna K."})
    replaced = store.get("anna")
    assert replaced is not None
    assert replaced.attributes == {"Name": "Anna K."}
    store.update("anna", {"Role": "Lead"})
    merged = store.get("anna")
    assert merged is not None
    assert merged.attributes == {"Name": "Anna K.", "Role": "Lead"}
    created = store.update("bob", {"Name": "Bob"})
    assert created.attributes == {"Name": "Bob"}


def test_delete(store: ProfileStore) -> None:
    store.put("anna", {"Name": "Anna"})
    assert store.delete("anna") is True
    assert store.get("anna") is None
    assert store.delete("anna") is False


def test_list_pages_in_id_order(store: ProfileStore) -> None:
    ids = sorted([f"user-{i:03d}" for i in range(25)] + [str(uuid.uuid4()) for _ in range(5)])
    for profile_id in reversed(ids):
        store.put(profile_id, {"N": profile_id})
    seen: list[str] = []
    token = None
    while True:
        page = store.list(max_results=7, next_token=token)
        assert len(page.profiles) <= 7
        seen.extend(p.profile_id for p in page.profiles)
        token = page.next_token
        if token is None:
            break
        assert [p.profile_id for p in page.profiles] == sorted(p.profile_id for p in page.profiles)
    if isinstance(store, DynamoDBProfileStore):
        # A Scan goes in hash order: each page is sorted, the pages are not (see the store).
        assert sorted(seen) == ids
    else:
        assert seen == ids


def test_update_reports_the_merged_item(store: ProfileStore) -> None:
    store.put("obama", {"Name": "Barack", "Terms": [2009, 2013]})
    updated = store.update("obama", {"Role": "President", "Name": "Barack Obama"})
    assert updated.profile_id == "obama"
    assert updated.item == {
        "UserId": "obama",
        "Name": "Barack Obama",
        "Terms": [2009, 2013],
        "Role": "President",
    }
    face = store.update(FACE, {"Name": "Face"})
    assert face.item == {"FaceId": FACE, "Name": "Face"}
    assert face.updated_at >= updated.updated_at


def test_updated_at_round_trips(store: ProfileStore) -> None:
    put = store.put("anna", {"Name": "Anna"})
    got = store.get("anna")
    assert got is not None
    assert got.updated_at == put.updated_at
    assert got.updated_at.utcoffset() is not None
    (listed,) = store.list().profiles
    assert listed.updated_at == put.updated_at
    assert listed.item == put.item


def test_empty_store_lists_nothing(store: ProfileStore) -> None:
    page = store.list(max_results=5)
    assert page.profiles == ()
    assert page.next_token is None
    with pytest.raises(InvalidParameterException):
        store.list(max_results=0)


@pytest.mark.parametrize(
    ("profile_id", "attributes"),
    [
        ("", {}),
        ("x" * 1025, {}),
        ("bad\nid", {}),
        ("anna", {"UserId": "someone-else"}),
        ("anna", {"": 1}),
        ("anna", {"Score": float("nan")}),
        ("anna", {"Raw": b"bytes"}),
        ("anna", {"Big": "x" * (400 * 1024)}),
    ],
)
def test_bad_items_are_refused(
    store: ProfileStore, profile_id: str, attributes: dict[str, object]
) -> None:
    with pytest.raises(InvalidParameterException):
        store.put(profile_id, attributes)


def test_bad_page_token_is_refused(store: ProfileStore) -> None:
    with pytest.raises(InvalidParameterException):
        store.list(next_token="not-a-token")


def test_unicode_round_trips(store: ProfileStore) -> None:
    store.put("zoë", {"Bio": "Ingeniera de visión 👁", "Name": "Zoë"})
    got = store.get("zoë")
    assert got is not None
    assert got.attributes == {"Bio": "Ingeniera de visión 👁", "Name": "Zoë"}


def test_postgres_down_is_service_unavailable() -> None:
    store = PostgresProfileStore("postgresql://127.0.0.1:1/none", connect_timeout=2)
    with pytest.raises(ServiceUnavailableException):
        store.get("anna")


def test_postgres_connection_lost_while_idle_is_replaced(postgres_db: str) -> None:
    """A server restart or failover between two calls costs nothing but a reconnect."""
    store = PostgresProfileStore(postgres_db)
    store.put("anna", {"Name": "Anna"})
    with psycopg.connect(postgres_db, autocommit=True) as admin:
        killed = admin.execute(
            "SELECT pg_terminate_backend(pid, 10000) FROM pg_stat_activity"  # waits, up to 10 s
            " WHERE datname = current_database() AND pid <> pg_backend_pid()"
        ).fetchall()
    assert killed == [(True,)]
    got = store.get("anna")
    assert got is not None
    assert got.attributes == {"Name": "Anna"}
    store.close()

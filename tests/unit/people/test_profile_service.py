"""ProfileService records each read and write itself: a memory profile store, a real SQLite
audit log, and the entries read back as the API and the CLI print them."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from facelens.history.audit import Actor, AuditAction, AuditEntry
from facelens.history.sqlite import SqliteAuditLog
from facelens.people.profiles import EVERYONE, ProfileService
from facelens.profiles.registry import open_profile_store

ANNA = Actor("api-key", "anna")


@pytest.fixture
def audit(tmp_path: Path) -> Iterator[SqliteAuditLog]:
    log = SqliteAuditLog(tmp_path / "audit.db")
    yield log
    log.close()


@pytest.fixture
def service(audit: SqliteAuditLog) -> Iterator[ProfileService]:
    store = open_profile_store("memory://")
    yield ProfileService(store, audit)
    store.close()


def entries(audit: SqliteAuditLog) -> list[AuditEntry]:
    """Oldest first."""
    return list(reversed(audit.entries().entries))


def test_writes_and_reads_are_recorded_as_the_actor(
    service: ProfileService, audit: SqliteAuditLog
) -> None:
    service.put(ANNA, "ben", {"Name": "Ben", "Role": "Neighbour"})
    service.put(ANNA, "ben", {"Age": 40}, merge=True)
    profile = service.get(ANNA, "ben")
    assert profile is not None
    assert profile.attributes == {"Name": "Ben", "Role": "Neighbour", "Age": 40}
    assert service.delete(ANNA, "ben") is True

    got = [(e.actor, e.action, e.target, dict(e.details)) for e in entries(audit)]
    assert got == [
        (
            "api-key:anna",
            AuditAction.PROFILE_WRITE,
            "ben",
            {"Attributes": ["Name", "Role"], "Merge": False},
        ),
        ("api-key:anna", AuditAction.PROFILE_WRITE, "ben", {"Attributes": ["Age"], "Merge": True}),
        ("api-key:anna", AuditAction.PROFILE_READ, "ben", {}),
        ("api-key:anna", AuditAction.PROFILE_DELETE, "ben", {}),
    ]


def test_nothing_read_or_deleted_is_not_recorded_unless_a_miss_is_an_answer(
    service: ProfileService, audit: SqliteAuditLog
) -> None:
    assert service.get(ANNA, "nobody") is None
    assert service.delete(ANNA, "nobody") is False
    assert service.list(ANNA).profiles == ()
    assert entries(audit) == []

    dynamo = {"Table": "people", "Via": "GetItem"}
    assert service.get(ANNA, "nobody", context=dynamo, record_miss=True) is None
    service.delete(ANNA, "nobody", context={"Via": "DeleteItem"}, record_miss=True)
    [read, deleted] = entries(audit)
    assert (read.action, read.target, dict(read.details)) == (
        AuditAction.PROFILE_READ,
        "nobody",
        {"Table": "people", "Via": "GetItem", "Found": False},
    )
    assert dict(deleted.details) == {"Via": "DeleteItem", "Found": False}


def test_a_listing_is_one_entry_naming_every_profile_read(
    service: ProfileService, audit: SqliteAuditLog
) -> None:
    for person in ("anna", "ben", "cleo"):
        service.store.put(person, {"Name": person})  # straight into the store: not recorded
    page = service.list(ANNA, max_results=2)
    assert [p.profile_id for p in page.profiles] == ["anna", "ben"]
    [listed] = entries(audit)
    assert (listed.action, listed.target) == (AuditAction.PROFILE_READ, EVERYONE)
    assert dict(listed.details) == {"ProfileIds": ["anna", "ben"]}


def test_the_entry_points_context_goes_beside_the_operations_own_details(
    service: ProfileService, audit: SqliteAuditLog
) -> None:
    service.store.put("anna", {"Name": "Anna"})
    service.get(ANNA, "anna", collection_id="faces", context={"Via": "identify"})
    # The operation's own details win over a context that names the same field.
    service.put(ANNA, "anna", {"Name": "A"}, context={"Via": "PutItem", "Merge": "?"})
    read, written = entries(audit)
    assert (read.collection_id, dict(read.details)) == ("faces", {"Via": "identify"})
    assert dict(written.details) == {"Via": "PutItem", "Attributes": ["Name"], "Merge": False}


def test_a_page_of_names_is_one_entry_naming_the_profiles_found(
    service: ProfileService, audit: SqliteAuditLog
) -> None:
    for person in ("anna", "ben"):
        service.store.put(person, {"Name": person.title()})
    found = service.get_many(ANNA, ["ben", "nobody", "anna", "ben"], context={"Via": "list"})
    assert {k: p.attributes["Name"] for k, p in found.items()} == {"ben": "Ben", "anna": "Anna"}
    assert service.get_many(ANNA, ["nobody"]) == {}  # nothing read: nothing recorded
    [listed] = entries(audit)
    assert (listed.action, listed.target) == (AuditAction.PROFILE_READ, EVERYONE)
    assert dict(listed.details) == {"Via": "list", "ProfileIds": ["ben", "anna"]}


def test_an_old_profile_handed_back_is_recorded_as_read_after_the_change(
    service: ProfileService, audit: SqliteAuditLog
) -> None:
    put = {"Table": "people", "Via": "PutItem"}
    assert service.put_returning_old(ANNA, "ben", {"Name": "Ben"}, context=put) is None
    old = service.put_returning_old(ANNA, "ben", {"Name": "Benjamin"}, context=put)
    assert old is not None
    assert old.attributes == {"Name": "Ben"}
    delete = {"Table": "people", "Via": "DeleteItem"}
    gone = service.delete_returning_old(ANNA, "ben", context=delete, record_miss=True)
    assert gone is not None
    assert gone.attributes == {"Name": "Benjamin"}
    assert service.delete_returning_old(ANNA, "ben", context=delete, record_miss=True) is None

    got = [(e.action, e.target, dict(e.details)) for e in entries(audit)]
    assert got == [
        (AuditAction.PROFILE_WRITE, "ben", {**put, "Attributes": ["Name"], "Merge": False}),
        (AuditAction.PROFILE_WRITE, "ben", {**put, "Attributes": ["Name"], "Merge": False}),
        (AuditAction.PROFILE_READ, "ben", put),
        (AuditAction.PROFILE_DELETE, "ben", {**delete, "Found": True}),
        (AuditAction.PROFILE_READ, "ben", delete),
        (AuditAction.PROFILE_DELETE, "ben", {**delete, "Found": False}),
    ]

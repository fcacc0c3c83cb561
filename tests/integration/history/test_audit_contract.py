"""The audit log's contract, on each adapter: recording, paging, filters, redaction, and
two writers at once (``log`` and ``open_audit_on``: tests/integration/history/conftest.py)."""

from __future__ import annotations

import hashlib
import multiprocessing
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from facelens.errors import InvalidParameterException, StorageError
from facelens.history.audit import (
    MAX_ENTRY_ID,
    AuditAction,
    AuditLog,
    cli_actor,
    faces_target,
    pseudonym,
)
from facelens.history.registry import open_audit_log
from tests.integration.history.conftest import OpenAudit

NUL = "a\x00b"
"""Text holding U+0000: PostgreSQL cannot bind it, so no adapter stores it
(:mod:`facelens.history.nul`)."""


def test_record_returns_and_stores_the_entry(log: AuditLog) -> None:
    at = datetime(2024, 5, 1, 8, 0, tzinfo=UTC)
    entry = log.record(
        "api-key:alice",
        AuditAction.ENROL,
        "anna",
        collection_id="staff",
        details={"FaceIds": ["f1", "f2"]},
        at=at,
    )
    (stored,) = log.entries().entries
    assert stored == entry
    assert stored.at == at
    assert stored.action is AuditAction.ENROL
    assert stored.details == {"FaceIds": ["f1", "f2"]}
    assert stored.as_json()["Action"] == "enrol"
    assert stored.as_json()["CollectionId"] == "staff"


def test_actions_may_be_given_as_strings_and_unknown_ones_are_refused(log: AuditLog) -> None:
    assert log.record("local", "profile-read", "anna").action is AuditAction.PROFILE_READ
    with pytest.raises(InvalidParameterException):
        log.record("local", "look", "anna")
    with pytest.raises(InvalidParameterException):
        log.entries(action="look")


def test_bad_entries_are_refused(log: AuditLog) -> None:
    with pytest.raises(InvalidParameterException):
        log.record("", AuditAction.ENROL, "anna")
    with pytest.raises(InvalidParameterException):
        log.record("local", AuditAction.ENROL, "anna", details={"Photo": b"\xff"})
    with pytest.raises(InvalidParameterException):
        log.entries(limit=0)


def test_pages_run_newest_first_without_gaps_or_repeats(log: AuditLog) -> None:
    for n in range(7):
        log.record("local", AuditAction.PROFILE_READ, f"p{n}")
    seen: list[str] = []
    before = None
    pages = 0
    while True:
        page = log.entries(limit=3, before=before)
        seen += [e.target for e in page.entries]
        pages += 1
        before = page.next_before
        if before is None:
            break
    assert seen == [f"p{n}" for n in reversed(range(7))]
    assert pages == 3


def test_filters_combine(log: AuditLog) -> None:
    t0 = datetime(2024, 1, 1, tzinfo=UTC)
    log.record("api-key:a", AuditAction.ENROL, "anna", at=t0)
    log.record("api-key:a", AuditAction.PROFILE_READ, "anna", at=t0 + timedelta(hours=1))
    log.record("cli:bob", AuditAction.PROFILE_READ, "anna", at=t0 + timedelta(hours=2))
    log.record("cli:bob", AuditAction.PROFILE_READ, "ben", at=t0 + timedelta(hours=3))
    log.record(
        "cli:bob", AuditAction.MERGE_STRANGERS, "stranger-1", details={"Into": "anna"}, at=t0
    )

    def targets(**filters: object) -> list[str]:
        return [e.target for e in log.entries(**filters).entries]  # type: ignore[arg-type]

    assert targets(actor="cli:bob", action=AuditAction.PROFILE_READ) == ["ben", "anna"]
    assert targets(since=t0 + timedelta(minutes=90)) == ["ben", "anna"]
    assert targets(since=datetime(2024, 1, 1, 2, 30)) == ["ben"]  # naive: UTC
    # A target is found where it is the target and where the details name it.
    assert targets(target="anna") == ["stranger-1", "anna", "anna", "anna"]
    assert targets(target="ann") == []


def test_redact_replaces_the_id_in_targets_and_details(log: AuditLog) -> None:
    log.record("api-key:a", AuditAction.ENROL, "anna", details={"FaceIds": ["f1"]})
    log.record("cli:b", AuditAction.ENROL, "f1", collection_id="staff", details={"Other": "ben"})
    log.record("cli:b", AuditAction.MERGE_STRANGERS, "s-1", details={"Into": {"anna": ["anna"]}})
    log.record("cli:b", AuditAction.PROFILE_READ, "joanna")

    assert log.redact("anna") == 2
    assert log.redact("f1") == 2
    alias, face_alias = pseudonym("anna"), pseudonym("f1")
    assert alias == "forgotten:" + hashlib.sha256(b"anna").hexdigest()[:12]
    entries = {e.entry_id: e for e in log.entries().entries}
    assert entries[1].target == alias
    assert entries[1].details == {"FaceIds": [face_alias]}
    assert entries[2].target == face_alias
    assert entries[2].details == {"Other": "ben"}
    assert entries[3].details == {"Into": {alias: [alias]}}
    assert entries[4].target == "joanna"  # only whole ids, never parts of others
    assert log.entries(target="anna").entries == []
    assert len(log.entries(target=alias).entries) == 2
    # Who did it stays.
    assert entries[1].actor == "api-key:a"
    assert log.redact("anna") == 0


def test_record_forget_records_the_pseudonym_and_redacts_every_id(log: AuditLog) -> None:
    log.record("api-key:a", AuditAction.ENROL, "anna", details={"FaceIds": ["f1", "f2"]})
    log.record("api-key:a", AuditAction.PROFILE_READ, "f2")
    entry = log.record_forget("cli:root", "anna", also=["f1", "f2"], details={"Faces": 2})
    assert entry.action is AuditAction.FORGET
    assert entry.target == pseudonym("anna")
    entries = log.entries().entries
    assert [e.target for e in entries] == [pseudonym("anna"), pseudonym("f2"), pseudonym("anna")]
    assert entries[2].details == {"FaceIds": [pseudonym("f1"), pseudonym("f2")]}
    for forgotten in ("anna", "f1", "f2"):
        assert log.entries(target=forgotten).entries == []
    log.purge_deleted()  # True only where verifiable (SQLite); it must not fail on either


def test_faces_target_and_cli_actor() -> None:
    assert faces_target("staff", ["f1"]) == "f1"
    assert faces_target("staff", ["f1", "f2"]) == "staff"
    assert faces_target("staff", []) == "staff"
    assert cli_actor().label.startswith("cli:")


def test_a_write_that_fails_raises(open_audit_on: OpenAudit) -> None:
    log = open_audit_on()
    log.close()
    with pytest.raises(StorageError):
        log.record("local", AuditAction.ENROL, "anna")


def test_two_threads_write_without_losing_entries(log: AuditLog) -> None:
    def write(actor: str) -> None:
        for n in range(50):
            log.record(actor, AuditAction.PROFILE_READ, f"{actor}-{n}")

    threads = [threading.Thread(target=write, args=(f"t{i}",)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    entries = log.entries(limit=1000).entries
    assert len(entries) == 100
    assert len({e.entry_id for e in entries}) == 100


def _write_from_process(database_url: str, home: str, actor: str, count: int) -> None:
    log = open_audit_log(database_url, Path(home))
    try:
        for n in range(count):
            log.record(actor, AuditAction.PROFILE_READ, f"{actor}-{n}")
    finally:
        log.close()


def test_two_processes_write_one_log(
    database_url: str, tmp_path: Path, open_audit_on: OpenAudit
) -> None:
    context = multiprocessing.get_context("spawn")
    writers = [
        context.Process(
            target=_write_from_process,
            args=(database_url, str(tmp_path / "home"), f"cli:p{i}", 40),
        )
        for i in range(2)
    ]
    for w in writers:
        w.start()
    for w in writers:
        w.join(timeout=60)
        assert w.exitcode == 0
    entries = open_audit_on().entries(limit=1000).entries
    for i in range(2):
        mine = [e.target for e in entries if e.actor == f"cli:p{i}"]
        assert mine == [f"cli:p{i}-{n}" for n in reversed(range(40))]  # in order, all there


@pytest.mark.parametrize("before", [2**63, 10**21, 0, -5])
def test_a_before_outside_64_bit_integers_is_refused(log: AuditLog, before: int) -> None:
    log.record("cli:ada", AuditAction.ENROL, "p1")
    with pytest.raises(InvalidParameterException, match="before"):
        log.entries(before=before)
    assert [e.target for e in log.entries(before=MAX_ENTRY_ID).entries] == ["p1"]


def test_two_instances_share_one_log(open_audit_on: OpenAudit) -> None:
    """Two processes (SQLite) or two hosts (PostgreSQL) on one database: one trail."""
    first, second = open_audit_on(), open_audit_on()
    first.record("api-key:a", AuditAction.ENROL, "anna", details={"FaceIds": ["f1"]})
    second.record("cli:b", AuditAction.PROFILE_READ, "anna")
    assert [e.actor for e in first.entries(target="anna").entries] == ["cli:b", "api-key:a"]
    assert second.redact("anna") == 2
    assert first.entries(target="anna").entries == []


@pytest.mark.parametrize("field", ["actor", "target", "collection_id"])
def test_an_entry_holding_nul_is_refused_and_nothing_is_stored(log: AuditLog, field: str) -> None:
    """InvalidParameterException on both adapters (was a StorageError, a 500, on PostgreSQL)."""
    fields = {"actor": "cli:ada", "target": "anna", "collection_id": "staff", field: NUL}
    with pytest.raises(InvalidParameterException, match="NUL"):
        log.record(
            fields["actor"],
            AuditAction.ENROL,
            fields["target"],
            collection_id=fields["collection_id"],
        )
    assert log.entries().entries == []


def test_nul_in_details_is_kept_and_filters_holding_nul_match_only_details(log: AuditLog) -> None:
    """Details are JSON text, where NUL is the escape ``\\u0000``: both databases keep it. A
    filter holding NUL matches no actor or target (none holds it), and finds the details
    that name it, as :meth:`AuditLog.redact` does."""
    log.record("cli:ada", AuditAction.MERGE_STRANGERS, "s-1", details={"Into": NUL, NUL: 1})
    log.record("cli:ada", AuditAction.PROFILE_READ, "anna")
    (first, _) = reversed(log.entries().entries)
    assert first.details == {"Into": NUL, NUL: 1}
    assert log.entries(actor=NUL).entries == []
    assert [e.target for e in log.entries(target=NUL).entries] == ["s-1"]
    assert log.entries(target=NUL, actor="cli:ada", action=AuditAction.PROFILE_READ).entries == []
    assert log.redact(NUL) == 1
    assert log.entries(target=NUL).entries == []
    alias = pseudonym(NUL)
    assert log.entries(target=alias).entries[0].details == {"Into": alias, alias: 1}
    entry = log.record_forget("cli:ada", NUL)
    assert entry.target == alias

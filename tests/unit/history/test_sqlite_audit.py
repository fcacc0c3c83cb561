"""What only the SQLite audit log promises: a forgotten id is in none of its files.

(The contract both adapters keep is tests/integration/history/test_audit_contract.py.)
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from facelens.history.audit import AuditAction, pseudonym
from facelens.history.sqlite import SqliteAuditLog


@pytest.fixture
def log(tmp_path: Path) -> Iterator[SqliteAuditLog]:
    audit = SqliteAuditLog(tmp_path / "audit.db")
    yield audit
    audit.close()


def test_record_forget_never_writes_the_id_in_clear(log: SqliteAuditLog, tmp_path: Path) -> None:
    log.record("api-key:a", AuditAction.ENROL, "anna", details={"FaceIds": ["f1", "f2"]})
    log.record("api-key:a", AuditAction.PROFILE_READ, "f2")
    entry = log.record_forget("cli:root", "anna", also=["f1", "f2"], details={"Faces": 2})
    assert entry.action is AuditAction.FORGET
    assert entry.target == pseudonym("anna")
    # While the log is open too: neither the file nor its write-ahead log holds them.
    raw = (tmp_path / "audit.db").read_bytes() + _wal(tmp_path / "audit.db")
    for forgotten in (b"anna", b"f1", b"f2"):
        assert forgotten not in raw.replace(b"forgotten", b"")
    assert log.purge_deleted()


def _wal(path: Path) -> bytes:
    wal = path.with_name(path.name + "-wal")
    return wal.read_bytes() if wal.exists() else b""

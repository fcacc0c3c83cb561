"""Audit paging with a ``before`` SQLite cannot hold is refused, not an OverflowError."""

from __future__ import annotations

from pathlib import Path

import pytest

from facelens.errors import InvalidParameterException
from facelens.people.audit import MAX_ENTRY_ID, AuditAction, AuditLog


@pytest.mark.parametrize("before", [2**63, 10**21, 0, -5])
def test_a_before_outside_sqlite_s_integers_is_refused(tmp_path: Path, before: int) -> None:
    log = AuditLog(tmp_path / "audit.db")
    try:
        log.record("cli:ada", AuditAction.ENROL, "p1")
        with pytest.raises(InvalidParameterException, match="before"):
            log.entries(before=before)
        assert [e.target for e in log.entries(before=MAX_ENTRY_ID).entries] == ["p1"]
    finally:
        log.close()

"""The collections URL picks where history lives; an existing home keeps its files."""

from __future__ import annotations

from pathlib import Path

import pytest

from facelens.errors import ConfigurationError
from facelens.history.postgres import PostgresAuditLog, PostgresLedger
from facelens.history.registry import open_audit_log, open_ledger
from facelens.history.sqlite import SqliteAuditLog, SqliteLedger


@pytest.mark.parametrize(
    "url", ["sqlite:///elsewhere/facelens.db", "memory://", "rekognition://us-east-1"]
)
def test_local_collections_keep_history_in_the_home(tmp_path: Path, url: str) -> None:
    ledger, audit = open_ledger(url, tmp_path), open_audit_log(url, tmp_path)
    try:
        assert isinstance(ledger, SqliteLedger)
        assert isinstance(audit, SqliteAuditLog)
        assert not (tmp_path / "recognizer.db").exists()  # opened on first use only
        assert ledger.count() == 0
        audit.record("cli:test", "profile-read", "anna")
        assert (tmp_path / "recognizer.db").is_file()
        assert (tmp_path / "audit.db").is_file()
    finally:
        ledger.close()
        audit.close()


@pytest.mark.parametrize("url", ["postgresql://u@db.invalid/f", "postgres://u@db.invalid/f"])
def test_postgresql_collections_share_history_in_their_database(tmp_path: Path, url: str) -> None:
    # Nothing connects until first use: opening names no server.
    ledger, audit = open_ledger(url, tmp_path), open_audit_log(url, tmp_path)
    assert isinstance(ledger, PostgresLedger)
    assert isinstance(audit, PostgresAuditLog)
    ledger.close()
    audit.close()
    assert list(tmp_path.iterdir()) == []


def test_an_unknown_scheme_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="unknown collections URL scheme"):
        open_ledger("mysql://db/f", tmp_path)
    with pytest.raises(ConfigurationError, match="unknown collections URL scheme"):
        open_audit_log("mysql://db/f", tmp_path)

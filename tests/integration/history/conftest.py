"""The history adapters on one fresh database per test, each back end in turn: SQLite, PostgreSQL.

Why parametrized fixtures: the ledger, the visits and the audit log must answer alike
whichever database holds them (the same pages, times, JSON and idempotency),
so every contract test runs once per adapter, without a copy per adapter.
``open_ledger_on`` / ``open_audit_on`` / ``open_visits_on`` open several instances on the
same database, as several processes (SQLite) or hosts (PostgreSQL) do. PostgreSQL comes from
tests/servers/postgres.py (skipped without its binaries on a laptop, failed
in CI).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from facelens.history.audit import AuditLog
from facelens.history.ledger import RecognitionLedger
from facelens.history.registry import open_audit_log, open_ledger, open_visits
from facelens.history.visits import VisitLedger

OpenLedger = Callable[[], RecognitionLedger]
OpenAudit = Callable[[], AuditLog]
OpenVisits = Callable[[], VisitLedger]


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The collections URL that picks the adapter (history goes where it points)."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'home' / 'facelens.db'}"
    url: str = request.getfixturevalue("postgres_db")
    return url


@pytest.fixture
def open_ledger_on(database_url: str, tmp_path: Path) -> Iterator[OpenLedger]:
    opened: list[RecognitionLedger] = []

    def opener() -> RecognitionLedger:
        opened.append(open_ledger(database_url, tmp_path / "home"))
        return opened[-1]

    yield opener
    for ledger in opened:
        ledger.close()


@pytest.fixture
def ledger(open_ledger_on: OpenLedger) -> RecognitionLedger:
    return open_ledger_on()


@pytest.fixture
def open_audit_on(database_url: str, tmp_path: Path) -> Iterator[OpenAudit]:
    opened: list[AuditLog] = []

    def opener() -> AuditLog:
        opened.append(open_audit_log(database_url, tmp_path / "home"))
        return opened[-1]

    yield opener
    for log in opened:
        log.close()


@pytest.fixture
def log(open_audit_on: OpenAudit) -> AuditLog:
    return open_audit_on()


@pytest.fixture
def open_visits_on(database_url: str, tmp_path: Path) -> Iterator[OpenVisits]:
    opened: list[VisitLedger] = []

    def opener() -> VisitLedger:
        opened.append(open_visits(database_url, tmp_path / "home"))
        return opened[-1]

    yield opener
    for visits in opened:
        visits.close()


@pytest.fixture
def visits(open_visits_on: OpenVisits) -> VisitLedger:
    return open_visits_on()

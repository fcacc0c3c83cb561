"""Opens the ledger, the visits and the audit log where the collections URL says.

History goes where the collections are, so that hosts sharing collections
share what happened to them: ``postgresql://`` (or ``postgres://``) puts both
in that database; ``sqlite://`` and ``memory://`` keep them in files under the
home, as does ``rekognition://`` (the collections are in AWS, the history
stays on the host). The home's files keep their names (``recognizer.db``,
``audit.db``), so an existing home keeps its history.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlparse

from facelens.errors import ConfigurationError
from facelens.history.audit import AuditLog
from facelens.history.ledger import RecognitionLedger
from facelens.history.visits import VisitLedger

LEDGER_FILE = "recognizer.db"
AUDIT_FILE = "audit.db"
SHARED_SCHEMES = frozenset({"postgresql", "postgres"})
"""Collections URL schemes whose database holds the history too."""
LOCAL_SCHEMES = frozenset({"sqlite", "memory", "rekognition"})
"""Collections URL schemes whose history is in SQLite files under the home."""


def open_ledger(database_url: str, home: Path) -> RecognitionLedger:
    """The ledger for collections at ``database_url`` on a host whose home is ``home``."""
    if _shared(database_url):
        from facelens.history.postgres import PostgresLedger

        return PostgresLedger(database_url)
    from facelens.history.sqlite import SqliteLedger

    return SqliteLedger(home / LEDGER_FILE)


def open_visits(database_url: str, home: Path) -> VisitLedger:
    """The visits for collections at ``database_url``: beside the ledger (in its SQLite file,
    or in the same PostgreSQL database), so the looks of one visit that reach different
    workers, or hosts, are fused together."""
    if _shared(database_url):
        from facelens.history.postgres import PostgresVisitLedger

        return PostgresVisitLedger(database_url)
    from facelens.history.sqlite import SqliteVisitLedger

    return SqliteVisitLedger(home / LEDGER_FILE)


def open_audit_log(database_url: str, home: Path) -> AuditLog:
    """The audit log for collections at ``database_url`` on a host whose home is ``home``."""
    if _shared(database_url):
        from facelens.history.postgres import PostgresAuditLog

        return PostgresAuditLog(database_url)
    from facelens.history.sqlite import SqliteAuditLog

    return SqliteAuditLog(home / AUDIT_FILE)


def _shared(database_url: str) -> bool:
    scheme = urlparse(database_url).scheme
    if scheme in SHARED_SCHEMES:
        return True
    if scheme in LOCAL_SCHEMES:
        return False
    known = ", ".join(f"{s}://" for s in sorted(SHARED_SCHEMES | LOCAL_SCHEMES))
    raise ConfigurationError(f"unknown collections URL scheme in {database_url!r}; known: {known}")

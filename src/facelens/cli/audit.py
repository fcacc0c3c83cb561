"""`facelens audit`: who enrolled, deleted, corrected or read whose data, newest first.

Reads the log directly (``<home>/audit.db``, or the PostgreSQL database that
holds the collections: see :mod:`facelens.history.audit`), so it needs this
host's facelens settings and home, as every other local command does; over
HTTP the same entries are ``GET /api/v1/audit`` (admin role).
"""

from __future__ import annotations

from contextlib import ExitStack
from datetime import datetime
from typing import Annotated, Any

import typer

from facelens.cli.output import run
from facelens.config import Settings
from facelens.errors import InvalidParameterException
from facelens.history.audit import MAX_PAGE, AuditAction
from facelens.wiring.stores import open_audit


def audit(
    actor: Annotated[
        str | None, typer.Option("--actor", help="e.g. api-key:alice, cli:bob, local.")
    ] = None,
    action: Annotated[
        AuditAction | None, typer.Option("--action", case_sensitive=False, help="One action.")
    ] = None,
    target: Annotated[
        str | None,
        typer.Option("--target", help="A person, face or collection id (also found in details)."),
    ] = None,
    since: Annotated[
        str | None,
        typer.Option("--since", help="ISO 8601 time, e.g. 2024-05-01T08:00 (UTC unless +hh:mm)."),
    ] = None,
    limit: Annotated[
        int, typer.Option("--limit", min=1, max=MAX_PAGE, help="Most entries to print.")
    ] = 50,
    before: Annotated[
        int | None, typer.Option("--before", help="Only entries older than this EntryId (paging).")
    ] = None,
) -> None:
    """Prints audit entries, newest first; all given filters must match."""
    settings = Settings()

    def action_(stack: ExitStack) -> dict[str, Any]:
        page = open_audit(settings, stack).entries(
            limit=limit,
            before=before,
            actor=actor,
            action=action,
            target=target,
            since=_time(since),
        )
        out: dict[str, Any] = {"Entries": [e.as_json() for e in page.entries]}
        if page.next_before is not None:
            out["NextBefore"] = page.next_before
        return out

    run(action_)


def _time(text: str | None) -> datetime | None:
    if text is None:
        return None
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        raise InvalidParameterException(f"--since {text!r} is not an ISO 8601 time") from None

"""`facelens retention run`: delete the crops that are due now, once (for cron).

``facelens recognizer`` and ``facelens up`` run the same job every
``retention.interval_seconds``; this command is for hosts that run neither
(an API-only server, a store shared by Lambda recognizers) or for a check.
"""

from __future__ import annotations

from contextlib import ExitStack
from typing import Annotated, Any

import typer

from facelens.cli.output import run as run_action
from facelens.config import Settings
from facelens.wiring.people import open_retention

app = typer.Typer(help="Retention: crops are deleted once older than settings.retention allows.")


@app.command("run")
def run(
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Report what is due without deleting anything.")
    ] = False,
) -> None:
    """Deletes the crops due now and prints the counts and keys as JSON."""
    settings = Settings()

    def action(stack: ExitStack) -> dict[str, Any]:
        return open_retention(settings, stack).run_once(dry_run=dry_run).as_json()

    run_action(action)

"""`facelens recognizer`: the worker that names the face in every new crop.

``facelens recognizer`` runs until SIGINT/SIGTERM (finishing the event in
hand); ``--drain`` stops once no event has arrived for a second, for
scripts and tests. ``recent`` and ``dead-letters`` read the ledger. A
long-running recognizer also runs the retention job (``settings.retention``)
on a thread of its own.
"""

from __future__ import annotations

import logging
import signal
import threading
from typing import Annotated, Any

import typer

from facelens.cli.context import Context
from facelens.cli.output import run
from facelens.history.ledger import Recognition, Status
from facelens.people.retention import start_retention
from facelens.recognizer.worker import RecognizerWorker

app = typer.Typer(help="The recognizer: crops in, identifications out.")

Limit = Annotated[int, typer.Option("--limit", min=1, max=10_000, help="Most records.")]


@app.callback(invoke_without_command=True)
def main(
    typer_ctx: typer.Context,
    drain: Annotated[
        bool, typer.Option("--drain", help="Exit once the queue has been empty for a second.")
    ] = False,
) -> None:
    """Consumes ObjectCreated events and publishes who was seen."""
    if typer_ctx.invoked_subcommand is not None:
        return
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    ctx = Context()
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())

    def action() -> dict[str, Any]:
        ctx.recognizer.prepare()
        worker = RecognizerWorker(ctx.event_source, ctx.recognizer, wait_seconds=1.0)
        logging.getLogger(__name__).info("recognizer %s started", ctx.settings.recognizer.worker_id)
        retention = None if drain else start_retention(ctx.retention, ctx.settings.retention)
        try:
            while not stop.is_set():
                if worker.run_once() == 0 and drain:
                    break
        finally:
            if retention is not None:
                retention.stop()
            ctx.close()  # stops the publisher, which first sends what is spooled
        s = worker.stats
        return {
            "Events": s.events,
            "Identified": s.identified,
            "Unknown": s.unknown,
            "DeadLetters": s.dead_letters,
            "Duplicates": s.duplicates,
            "Skipped": s.skipped,
            "Retried": s.retried,
        }

    run(action)


def _record(r: Recognition) -> dict[str, Any]:
    return {"RecognitionId": r.recognition_id, "Topic": r.topic, "Message": dict(r.message)}


@app.command()
def recent(limit: Limit = 20) -> None:
    """The latest identifications, unknowns and dead letters, newest first."""
    ctx = Context()
    run(lambda: {"Recognitions": [_record(r) for r in ctx.ledger.recent(limit=limit)]})


@app.command("dead-letters")
def dead_letters(limit: Limit = 20) -> None:
    """Events that could not be processed, with the reason."""
    ctx = Context()
    run(
        lambda: {
            "DeadLetters": [_record(r) for r in ctx.ledger.recent(limit=limit, status=Status.ERROR)]
        }
    )

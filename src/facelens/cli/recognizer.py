"""`facelens recognizer`: the worker that names the face in every new crop.

``facelens recognizer`` runs until SIGINT/SIGTERM (finishing the event in
hand); ``--drain`` stops once no event has arrived for a second, for
scripts and tests. ``recent`` reads the visits and the ledger, ``dead-letters``
the ledger. A long-running recognizer also runs the retention job
(``settings.retention``) on a thread of its own.
"""

from __future__ import annotations

import logging
import signal
import threading
from contextlib import ExitStack
from typing import Annotated, Any

import typer

from facelens.cli.output import run
from facelens.config import Settings
from facelens.history.ledger import Recognition, Status
from facelens.rendering.visits import visit_json
from facelens.wiring.bus import open_publication
from facelens.wiring.people import people_of
from facelens.wiring.process import process_role
from facelens.wiring.recognizer import open_recognizer, start_worker
from facelens.wiring.stores import open_ledger, open_stores, open_visits

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
    settings = Settings()
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())

    def action(stack: ExitStack) -> dict[str, Any]:
        # Opened first, so closed last: the publisher sends what is spooled before it goes.
        publication = open_publication(settings, stack, process_role(settings))
        stores = open_stores(settings, stack)
        parts = open_recognizer(settings, stack, stores, people_of(settings, stores), publication)
        worker = start_worker(settings, stack, parts, wait_seconds=1.0, retention=not drain)
        logging.getLogger(__name__).info("recognizer %s started", settings.recognizer.worker_id)
        while not stop.is_set():
            if worker.run_once() == 0 and drain:
                break
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
    """The latest visits, one row each with its current answer (``Visits``: who, camera,
    revision, looks; the most recently updated first), and the latest outcomes of single
    objects (``Recognitions``: every look's record and the dead letters, newest first)."""
    settings = Settings()

    def action(stack: ExitStack) -> dict[str, Any]:
        visits = open_visits(settings, stack).visits(limit=limit)
        recent = open_ledger(settings, stack).recent(limit=limit)
        return {
            "Visits": [visit_json(v) for v in visits],
            "Recognitions": [_record(r) for r in recent],
        }

    run(action)


@app.command("dead-letters")
def dead_letters(limit: Limit = 20) -> None:
    """Events that could not be processed, with the reason."""
    settings = Settings()

    def action(stack: ExitStack) -> dict[str, Any]:
        errors = open_ledger(settings, stack).recent(limit=limit, status=Status.ERROR)
        return {"DeadLetters": [_record(r) for r in errors]}

    run(action)

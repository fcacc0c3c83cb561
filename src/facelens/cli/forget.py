"""`facelens forget PERSON`: erase a person's faces, crops, profile and history in one step.

PERSON is a UserId, a FaceId or a stranger id (``stranger-<n>``); see
:mod:`facelens.people.forget` for what goes and what cannot be reached.
It asks before deleting unless ``--yes`` (or stdin is not a terminal: scripts).
"""

from __future__ import annotations

import sys
from contextlib import ExitStack
from typing import Annotated, Any

import typer

from facelens.cli.output import run
from facelens.config import Settings
from facelens.history.audit import cli_actor
from facelens.rendering.forget import forget_json
from facelens.wiring.people import forgetter
from facelens.wiring.stores import open_collections, open_history, open_profiles, open_raw_objects


def forget(
    person: Annotated[str, typer.Argument(help="UserId, FaceId or stranger id (stranger-<n>).")],
    collection_id: Annotated[
        str | None,
        typer.Option(
            "--collection-id", help="The collection (default: the recognizer's collection)."
        ),
    ] = None,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
) -> None:
    """Deletes PERSON's faces, embeddings, negative examples, crops, profiles and records,
    and prints what was deleted as JSON."""
    if not yes and sys.stdin.isatty():
        typer.confirm(f"Forget {person} and everything of theirs, for good?", abort=True)
    settings = Settings()

    def action(stack: ExitStack) -> dict[str, Any]:
        forget_ = forgetter(
            settings,
            open_collections(settings, stack),
            open_profiles(settings, stack),
            open_history(settings, stack),
            open_raw_objects(settings, stack),
        )
        report = forget_.forget(person, actor=cli_actor(), collection_id=collection_id)
        return forget_json(report)

    run(action)

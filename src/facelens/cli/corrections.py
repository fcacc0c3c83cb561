"""`facelens corrections reject|undo|list` and `facelens thresholds set|get`.

Both act on the recognizer's collection (``recognizer.collection_id``), the one
whose identifications the ledger holds. Changes are recorded in the audit log
as ``cli:<os user>``.
"""

from __future__ import annotations

from contextlib import ExitStack
from typing import Annotated, Any

import typer

from facelens.cli.output import run
from facelens.config import Settings
from facelens.errors import InvalidParameterException
from facelens.history.audit import cli_actor
from facelens.people.corrections import CorrectionService
from facelens.wiring.people import correction_service
from facelens.wiring.stores import open_collections, open_history, open_profiles, open_raw_objects

app = typer.Typer(
    help="Corrections: 'this is not that person', kept as negative examples; undo.",
    no_args_is_help=True,
)
thresholds_app = typer.Typer(
    help="Per-person match thresholds (profile attribute FaceMatchThreshold).",
    no_args_is_help=True,
)

Person = Annotated[str, typer.Argument(help="UserId, or FaceId of a face without a user.")]


def _corrections(settings: Settings, stack: ExitStack) -> CorrectionService:
    return correction_service(
        settings,
        open_collections(settings, stack),
        open_profiles(settings, stack),
        open_history(settings, stack),
        open_raw_objects(settings, stack),
    )


@app.command()
def reject(
    recognition_id: Annotated[str, typer.Argument(help="RecognitionId of the wrong match.")],
    person: Annotated[
        str | None,
        typer.Option("--person", help="Who the face is not (default: whom it was matched to)."),
    ] = None,
) -> None:
    """The face of that identification is not that person: keep it as a negative example."""
    settings = Settings()

    def action(stack: ExitStack) -> dict[str, Any]:
        correction = _corrections(settings, stack).reject(
            recognition_id, actor=cli_actor(), person=person
        )
        return {"Correction": correction.as_json()}

    run(action)


@app.command()
def undo(
    correction_id: Annotated[str, typer.Argument(help="CorrectionId from reject or list.")],
) -> None:
    """Deletes that negative example: the person can be matched to such faces again."""
    settings = Settings()

    def action(stack: ExitStack) -> dict[str, Any]:
        correction = _corrections(settings, stack).undo(correction_id, actor=cli_actor())
        return {"Correction": correction.as_json()}

    run(action)


@app.command("list")
def list_(
    person: Annotated[str | None, typer.Option("--person", help="Only this person's.")] = None,
    collection_id: Annotated[
        str | None,
        typer.Option("--collection-id", help="Default: the recognizer's collection."),
    ] = None,
) -> None:
    """The corrections in force, newest first."""
    settings = Settings()

    def action(stack: ExitStack) -> dict[str, Any]:
        found = _corrections(settings, stack).list(collection_id, person=person)
        return {"Corrections": [c.as_json() for c in found]}

    run(action)


@thresholds_app.command("set")
def set_(
    person: Person,
    value: Annotated[
        float | None,
        typer.Argument(help="Similarity 50-100 this person's matches must reach."),
    ] = None,
    clear: Annotated[
        bool, typer.Option("--clear", help="Remove the override: the global threshold applies.")
    ] = False,
) -> None:
    """Sets (VALUE) or removes (--clear) the person's own match threshold."""
    settings = Settings()

    def action(stack: ExitStack) -> dict[str, Any]:
        if (value is not None) == clear:
            raise InvalidParameterException("Give either a VALUE or --clear")
        corrections = _corrections(settings, stack)
        return corrections.set_threshold(person, value, actor=cli_actor()).as_json()

    run(action)


@thresholds_app.command("get")
def get(person: Person) -> None:
    """The person's override (null if none) and the threshold that applies to them."""
    settings = Settings()
    run(lambda stack: _corrections(settings, stack).threshold(person).as_json())

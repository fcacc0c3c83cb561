"""`facelens strangers list|show|name|merge|split`: the anonymous persons unknown faces form.

They act on the recognizer's collection (``recognizer.collection_id``) unless
``--collection-id`` says otherwise. Changes go through
:class:`facelens.people.stranger_curation.StrangerCuration`, which records them
in the audit log as ``cli:<os user>``.
"""

from __future__ import annotations

import json
from contextlib import ExitStack
from typing import Annotated, Any

import typer

from facelens.cli.options import FaceIds, split_ids
from facelens.cli.output import run
from facelens.config import Settings
from facelens.errors import InvalidParameterException
from facelens.history.audit import cli_actor
from facelens.people.stranger_curation import StrangerCuration
from facelens.people.strangers import StrangerService
from facelens.rendering.strangers import named_json, stranger_json
from facelens.wiring.people import stranger_curation, stranger_service
from facelens.wiring.stores import open_audit, open_collections, open_ledger, open_profiles

app = typer.Typer(
    help="Strangers: unknown faces grouped into anonymous persons; name, merge, split them.",
    no_args_is_help=True,
)

StrangerId = Annotated[str, typer.Argument(help="The stranger's id (stranger-<n>).")]
Collection = Annotated[
    str | None,
    typer.Option("--collection-id", help="Collection (default: the recognizer's)."),
]


def _collection(settings: Settings, collection_id: str | None) -> str:
    return collection_id or settings.recognizer.collection_id


def _strangers(settings: Settings, stack: ExitStack) -> StrangerService:
    return stranger_service(
        settings,
        open_collections(settings, stack),
        open_profiles(settings, stack),
        open_ledger(settings, stack),
    )


def _curation(settings: Settings, stack: ExitStack) -> StrangerCuration:
    return stranger_curation(_strangers(settings, stack), open_audit(settings, stack))


@app.command("list")
def list_(collection_id: Collection = None) -> None:
    """Every stranger: faces, sightings, first and last seen, best crops."""
    settings = Settings()

    def action(stack: ExitStack) -> dict[str, Any]:
        strangers = _strangers(settings, stack).list(_collection(settings, collection_id))
        return {"Strangers": [stranger_json(s) for s in strangers]}

    run(action)


@app.command()
def show(stranger_id: StrangerId, collection_id: Collection = None) -> None:
    """One stranger."""
    settings = Settings()
    run(
        lambda stack: {
            "Stranger": stranger_json(
                _strangers(settings, stack).get(_collection(settings, collection_id), stranger_id)
            )
        }
    )


@app.command()
def name(
    stranger_id: StrangerId,
    user_id: Annotated[str, typer.Option("--user-id", help="The user the stranger becomes.")],
    display_name: Annotated[
        str | None, typer.Option("--name", help="Profile attribute Name (default: the user id).")
    ] = None,
    profile: Annotated[
        str | None,
        typer.Option("--profile", help='More profile attributes, a JSON object: {"Role": "..."}.'),
    ] = None,
    extend: Annotated[
        bool, typer.Option("--extend", help="Add the faces to a user that exists already.")
    ] = False,
    collection_id: Collection = None,
) -> None:
    """Turns the stranger into a user with its faces enrolled: later sightings are identified."""
    settings = Settings()

    def action(stack: ExitStack) -> dict[str, Any]:
        attributes = _profile(profile)
        if display_name is not None:
            attributes["Name"] = display_name
        collection = _collection(settings, collection_id)
        named = _curation(settings, stack).name(
            cli_actor(), collection, stranger_id, user_id, profile=attributes, extend=extend
        )
        return named_json(named)

    run(action)


@app.command()
def merge(
    into: Annotated[str, typer.Argument(help="The stranger that remains.")],
    other: Annotated[str, typer.Argument(help="The stranger merged into it (then gone).")],
    collection_id: Collection = None,
) -> None:
    """Two strangers are one person: OTHER's faces and sightings go to INTO."""
    settings = Settings()

    def action(stack: ExitStack) -> dict[str, Any]:
        collection = _collection(settings, collection_id)
        merged = _curation(settings, stack).merge(cli_actor(), collection, into, other)
        return {"Stranger": stranger_json(merged)}

    run(action)


@app.command()
def split(stranger_id: StrangerId, face_ids: FaceIds, collection_id: Collection = None) -> None:
    """Some of the stranger's faces are someone else: they become a new stranger."""
    settings = Settings()

    def action(stack: ExitStack) -> dict[str, Any]:
        collection = _collection(settings, collection_id)
        curation = _curation(settings, stack)
        strangers = curation.strangers
        new_id = curation.split(cli_actor(), collection, stranger_id, split_ids(face_ids))
        return {
            "StrangerId": new_id,
            "Stranger": stranger_json(strangers.get(collection, new_id)),
            "From": stranger_json(strangers.get(collection, stranger_id)),
        }

    run(action)


def _profile(text: str | None) -> dict[str, Any]:
    if text is None:
        return {}
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidParameterException(f"--profile is not JSON: {exc}") from exc
    if not isinstance(value, dict):
        raise InvalidParameterException("--profile must be a JSON object")
    return value

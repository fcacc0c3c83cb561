"""`facelens collections create|describe|list|delete|reindex`.

Deleting a collection, and the faces ``reindex --drop-unsourced`` deletes, go through
:class:`facelens.people.gallery.Gallery`, which records them in the audit log as
``cli:<os user>``.
"""

from __future__ import annotations

import sys
from contextlib import ExitStack
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from facelens.cli.options import CollectionId, MaxResults, NextToken
from facelens.cli.output import run
from facelens.collection.reindex import ReindexPlan, ReindexResult, plan_reindex
from facelens.collection.service import CollectionService
from facelens.config import Settings
from facelens.errors import ResourceNotFoundException
from facelens.history.audit import cli_actor
from facelens.people.matching import negatives_collection
from facelens.people.stranger_model import companion_id
from facelens.rendering import rekognition_json
from facelens.rendering.rule import describe_json
from facelens.wiring.people import match_policy, open_gallery
from facelens.wiring.stores import open_collections, open_profiles

app = typer.Typer(
    help="Face collections: create, describe, list, delete, reindex.", no_args_is_help=True
)


@app.command()
def create(collection_id: CollectionId) -> None:
    """CreateCollection."""
    settings = Settings()
    run(
        lambda stack: rekognition_json.create_collection(
            open_collections(settings, stack).collections.create_collection(collection_id)
        )
    )


@app.command()
def describe(collection_id: CollectionId) -> None:
    """DescribeCollection: face and user counts, model version, creation time, and Rule: how
    often strangers get a name and enrolled people do not, and who has one photo."""
    settings = Settings()

    def action(stack: ExitStack) -> dict[str, Any]:
        policy = match_policy(open_collections(settings, stack), open_profiles(settings, stack))
        return describe_json(policy, settings.recognizer, collection_id)

    run(action)


@app.command("list")
def list_(max_results: MaxResults = 1000, next_token: NextToken = None) -> None:
    """ListCollections."""
    settings = Settings()
    run(
        lambda stack: rekognition_json.list_collections(
            open_collections(settings, stack).collections.list_collections(
                max_results=max_results, next_token=next_token
            )
        )
    )


@app.command()
def delete(collection_id: CollectionId) -> None:
    """DeleteCollection, with every face and user in it."""
    settings = Settings()

    def action(stack: ExitStack) -> dict[str, int]:
        open_gallery(settings, stack).delete_collection(cli_actor(), collection_id)
        return {"StatusCode": 200}

    run(action)


@app.command("reindex")
def reindex_(
    collection: Annotated[str, typer.Argument(help="The collection to re-embed.")],
    drop_unsourced: Annotated[
        bool,
        typer.Option(
            "--drop-unsourced",
            help="Delete the faces that have no source (they cannot be re-embedded).",
        ),
    ] = False,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
) -> None:
    """Re-embeds COLLECTION (and its .strangers and .rejected companions) with the engine the
    settings choose now, from the face crops kept with each face; prints what changed as JSON.

    Faces stored without a crop (before crops were kept, or with keep_face_sources off)
    cannot be re-embedded: the command then changes nothing and names whose they are, unless
    --drop-unsourced deletes them. It asks before changing anything unless --yes (or stdin
    is not a terminal: scripts).
    """
    settings = Settings()

    def action(stack: ExitStack) -> dict[str, Any]:
        gallery = open_gallery(settings, stack)
        collections = gallery.collections
        ids = [collection, *_companions(collections, collection)]
        plan = plan_reindex(collections, ids)
        if not plan.todo:
            return _as_json(ReindexResult(plan.face_model_version, (), plan.current))
        if not yes and sys.stdin.isatty():
            typer.confirm(_question(plan, drop_unsourced=drop_unsourced), abort=True)
        with Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeRemainingColumn(),
            console=Console(stderr=True),
            transient=True,
        ) as progress:
            task = progress.add_task(f"Re-embedding {collection}", total=max(plan.face_count, 1))
            result = gallery.reindex(
                cli_actor(),
                plan,
                drop_unsourced=drop_unsourced,
                progress=lambda n: progress.advance(task, n),
            )
        return _as_json(result)

    run(action)


def _companions(collections: CollectionService, collection: str) -> list[str]:
    """The collection's strangers and negative examples, where they exist."""
    found = []
    for companion in (companion_id(collection), negatives_collection(collection)):
        try:
            collections.describe_collection(companion)
        except ResourceNotFoundException:
            continue
        found.append(companion)
    return found


def _question(plan: ReindexPlan, *, drop_unsourced: bool) -> str:
    names = ", ".join(c.collection_id for c in plan.todo)
    question = f"Re-embed {plan.face_count} face(s) of {names} for {plan.face_model_version}"
    if drop_unsourced and plan.unsourced_count:
        question += f", deleting {plan.unsourced_count} face(s) that have no source"
    return question + "?"


def _as_json(result: ReindexResult) -> dict[str, Any]:
    out: dict[str, Any] = {
        "FaceModelVersion": result.face_model_version,
        "Collections": [
            {
                "CollectionId": c.collection_id,
                "PreviousFaceModelVersion": c.from_version,
                "ReindexedFaces": c.reindexed,
                "DroppedFaces": list(c.dropped),
                "UsersLosingFaces": list(c.dropped_users),
            }
            for c in result.reindexed
        ],
        "AlreadyCurrent": list(result.current),
    }
    if not result.reindexed:
        out["Message"] = (
            f"{', '.join(result.current)}: already at {result.face_model_version}; nothing to do"
        )
    return out

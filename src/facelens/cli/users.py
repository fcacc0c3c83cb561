"""`facelens users create|associate|disassociate|list|delete|search`.

Creating a user, associating and disassociating faces and deleting a user go through
:class:`facelens.people.gallery.Gallery`,
``delete --delete-faces`` through :class:`facelens.people.forget.Forgetter`; both record
what they did in the audit log as ``cli:<os user>``.
"""

from __future__ import annotations

from contextlib import ExitStack
from typing import Annotated, Any

import typer

from facelens.cli.images import read_image
from facelens.cli.options import CollectionId, FaceIds, NextToken, Quality, UserIdOpt, split_ids
from facelens.cli.output import run
from facelens.collection.models import QualityFilter
from facelens.collection.users import DEFAULT_USER_MATCH_THRESHOLD
from facelens.config import Settings
from facelens.history.audit import cli_actor
from facelens.rendering import rekognition_json
from facelens.rendering.forget import forget_json
from facelens.wiring.people import forgetter, open_gallery
from facelens.wiring.stores import (
    open_collections,
    open_history,
    open_profiles,
    open_raw_objects,
)

app = typer.Typer(help="Users: one person, several faces.", no_args_is_help=True)

UserThreshold = Annotated[
    float,
    typer.Option("--user-match-threshold", min=0, max=100, help="Lowest similarity (0-100)."),
]


@app.command()
def create(collection_id: CollectionId, user_id: UserIdOpt) -> None:
    """CreateUser."""
    settings = Settings()

    def action(stack: ExitStack) -> dict[str, Any]:
        open_gallery(settings, stack).create_user(cli_actor(), collection_id, user_id)
        return {}

    run(action)


@app.command()
def associate(
    collection_id: CollectionId,
    user_id: UserIdOpt,
    face_ids: FaceIds,
    user_match_threshold: UserThreshold = DEFAULT_USER_MATCH_THRESHOLD,
) -> None:
    """AssociateFaces: each face must match the user's faces at the threshold."""
    settings = Settings()

    def action(stack: ExitStack) -> dict[str, Any]:
        result = open_gallery(settings, stack).associate_faces(
            cli_actor(),
            collection_id,
            user_id,
            split_ids(face_ids),
            user_match_threshold=user_match_threshold,
        )
        return rekognition_json.associate_faces(result)

    run(action)


@app.command()
def disassociate(collection_id: CollectionId, user_id: UserIdOpt, face_ids: FaceIds) -> None:
    """DisassociateFaces."""
    settings = Settings()
    run(
        lambda stack: rekognition_json.disassociate_faces(
            open_gallery(settings, stack).disassociate_faces(
                cli_actor(), collection_id, user_id, split_ids(face_ids)
            )
        )
    )


@app.command("list")
def list_(
    collection_id: CollectionId,
    max_results: Annotated[int, typer.Option("--max-results", min=1, max=500)] = 500,
    next_token: NextToken = None,
) -> None:
    """ListUsers."""
    settings = Settings()
    run(
        lambda stack: rekognition_json.list_users(
            open_collections(settings, stack).users.list_users(
                collection_id, max_results=max_results, next_token=next_token
            )
        )
    )


@app.command()
def delete(
    collection_id: CollectionId,
    user_id: UserIdOpt,
    delete_faces: Annotated[
        bool,
        typer.Option(
            "--delete-faces",
            help="Forget the person: also their faces, profiles, crops and identification records.",
        ),
    ] = False,
) -> None:
    """DeleteUser. Its faces stay in the collection unless --delete-faces."""
    settings = Settings()

    def action(stack: ExitStack) -> dict[str, Any]:
        if not delete_faces:
            open_gallery(settings, stack).delete_user(cli_actor(), collection_id, user_id)
            return {}
        forget = forgetter(
            settings,
            open_collections(settings, stack),
            open_profiles(settings, stack),
            open_history(settings, stack),
            open_raw_objects(settings, stack),
        )
        # As DeleteUser: only a user of the collection (a FaceId or stranger id is not found).
        report = forget.forget(
            user_id, actor=cli_actor(), collection_id=collection_id, users_only=True
        )
        return forget_json(report)

    run(action)


@app.command()
def search(
    image: Annotated[str, typer.Argument(help="Image file (fileb:// prefix accepted).")],
    collection_id: CollectionId,
    max_users: Annotated[int, typer.Option("--max-users", min=1, max=500)] = 10,
    user_match_threshold: UserThreshold = DEFAULT_USER_MATCH_THRESHOLD,
    quality_filter: Quality = QualityFilter.NONE,
) -> None:
    """SearchUsersByImage: the largest face in IMAGE against every user's combined template."""
    settings = Settings()
    run(
        lambda stack: rekognition_json.search_users_by_image(
            open_collections(settings, stack).users.search_users_by_image(
                collection_id,
                read_image(settings, image),
                max_users=max_users,
                user_match_threshold=user_match_threshold,
                quality_filter=quality_filter,
            )
        )
    )

"""`facelens faces index|search|search-by-id|list|delete`.

Indexing and deleting go through :class:`facelens.people.gallery.Gallery`, which records
them in the audit log as ``cli:<os user>``.
"""

from __future__ import annotations

from contextlib import ExitStack
from functools import partial
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import Progress

from facelens.cli.images import read_image
from facelens.cli.options import (
    CollectionId,
    FaceIds,
    MaxFaces,
    MaxResults,
    NextToken,
    Quality,
    Threshold,
    split_ids,
)
from facelens.cli.output import ERROR_EXIT, aws_errors, emit, run
from facelens.collection import enroll
from facelens.collection.models import QualityFilter
from facelens.collection.service import DEFAULT_FACE_MATCH_THRESHOLD, DEFAULT_SEARCH_MAX_FACES
from facelens.config import Settings
from facelens.history.audit import cli_actor
from facelens.rendering import rekognition_json
from facelens.wiring.people import open_gallery
from facelens.wiring.stores import build_analyzer, open_collections

app = typer.Typer(help="Faces: index, search, list, delete.", no_args_is_help=True)

ImagePath = Annotated[str, typer.Argument(help="Image file (fileb:// prefix accepted).")]


@app.command()
def index(
    path: Annotated[str, typer.Argument(help="An image file, or a folder to enrol.")],
    collection_id: CollectionId,
    external_image_id: Annotated[
        str | None, typer.Option("--external-image-id", help="Your id for the image.")
    ] = None,
    max_faces: Annotated[
        int | None, typer.Option("--max-faces", min=1, max=4096, help="Index the largest N.")
    ] = None,
    quality_filter: Quality = QualityFilter.AUTO,
    workers: Annotated[
        int | None,
        typer.Option("--workers", min=1, help="Processes for a folder (default: the setting)."),
    ] = None,
) -> None:
    """IndexFaces. A folder enrols every photo: ExternalImageId from the file name, and
    one user per sub-folder (its photos' largest faces associated to it)."""
    settings = Settings()
    folder = Path(path.removeprefix("fileb://"))
    if folder.is_dir():
        _index_folder(settings, folder, collection_id, quality_filter, workers or settings.workers)
        return

    def action(stack: ExitStack) -> dict[str, Any]:
        result = open_gallery(settings, stack).index_faces(
            cli_actor(),
            collection_id,
            read_image(settings, path),
            external_image_id=external_image_id,
            max_faces=max_faces,
            quality_filter=quality_filter,
        )
        return rekognition_json.index_faces(result)

    run(action)


def _index_folder(
    settings: Settings, folder: Path, collection_id: str, quality: QualityFilter, workers: int
) -> None:
    with aws_errors(), ExitStack() as stack:
        items = enroll.plan(folder)
        gallery = open_gallery(settings, stack)
        with Progress(transient=True) as progress:
            task = progress.add_task(f"Enrolling {folder}", total=len(items))
            outcomes = gallery.index_folder(
                cli_actor(),
                collection_id,
                folder,
                items,
                quality_filter=quality,
                workers=workers,
                make_analyzer=partial(build_analyzer, settings),
                advance=lambda: progress.advance(task),
            )
    images: list[dict[str, Any]] = []
    for o in outcomes:
        entry: dict[str, Any] = {
            "Path": str(o.item.path),
            "ExternalImageId": o.item.external_image_id,
        }
        if o.item.user_id:
            entry["UserId"] = o.item.user_id
            entry["AssociatedFaces"] = o.associated
        if o.result is not None:
            entry["FaceIds"] = [r.face.face_id for r in o.result.face_records]
            entry["UnindexedFaces"] = len(o.result.unindexed_faces)
        if o.error is not None:
            entry.update(o.error.to_dict())
        images.append(entry)
    failed = sum(o.error is not None for o in outcomes)
    emit(
        {
            "Images": images,
            "IndexedFaces": sum(len(e.get("FaceIds", [])) for e in images),
            "FailedImages": failed,
        }
    )
    if failed:
        raise typer.Exit(ERROR_EXIT)


@app.command()
def search(
    image: ImagePath,
    collection_id: CollectionId,
    max_faces: MaxFaces = DEFAULT_SEARCH_MAX_FACES,
    face_match_threshold: Threshold = DEFAULT_FACE_MATCH_THRESHOLD,
    quality_filter: Quality = QualityFilter.NONE,
) -> None:
    """SearchFacesByImage: the largest face in IMAGE against the collection."""
    settings = Settings()
    run(
        lambda stack: rekognition_json.search_faces_by_image(
            open_collections(settings, stack).collections.search_faces_by_image(
                collection_id,
                read_image(settings, image),
                max_faces=max_faces,
                face_match_threshold=face_match_threshold,
                quality_filter=quality_filter,
            )
        )
    )


@app.command("search-by-id")
def search_by_id(
    collection_id: CollectionId,
    face_id: Annotated[str, typer.Option("--face-id", help="A stored face's id.")],
    max_faces: MaxFaces = DEFAULT_SEARCH_MAX_FACES,
    face_match_threshold: Threshold = DEFAULT_FACE_MATCH_THRESHOLD,
) -> None:
    """SearchFaces: stored faces like a stored face."""
    settings = Settings()
    run(
        lambda stack: rekognition_json.search_faces(
            open_collections(settings, stack).collections.search_faces(
                collection_id,
                face_id,
                max_faces=max_faces,
                face_match_threshold=face_match_threshold,
            )
        )
    )


@app.command("list")
def list_(
    collection_id: CollectionId,
    max_results: MaxResults = 1000,
    next_token: NextToken = None,
    user_id: Annotated[
        str | None, typer.Option("--user-id", help="Only this user's faces.")
    ] = None,
) -> None:
    """ListFaces, a page at a time (pass NextToken back for the next)."""
    settings = Settings()

    def action(stack: ExitStack) -> dict[str, Any]:
        collections = open_collections(settings, stack).collections
        return rekognition_json.list_faces(
            collections.list_faces(
                collection_id, max_results=max_results, next_token=next_token, user_id=user_id
            ),
            model_version=collections.face_model_version,
        )

    run(action)


@app.command()
def delete(collection_id: CollectionId, face_ids: FaceIds) -> None:
    """DeleteFaces (faces that belong to a user must be disassociated first)."""
    settings = Settings()

    def action(stack: ExitStack) -> dict[str, Any]:
        result = open_gallery(settings, stack).delete_faces(
            cli_actor(), collection_id, split_ids(face_ids)
        )
        return rekognition_json.delete_faces(result)

    run(action)

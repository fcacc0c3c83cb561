"""`facelens enroll PHOTO_OR_DIR --name NAME`: the one-step enrolment a person wants.

Indexes each photo's largest face into the recognizer's collection (made on
first use), creates or extends the user named after the person, and writes
the profile (``Name`` plus any ``--attr``). A folder shows a progress bar;
a photo without a usable face is reported, not fatal, unless none had one.
The enrolment records itself in the audit log as ``cli:<os user>``, and so
does the read of the profile it prints.
"""

from __future__ import annotations

from contextlib import ExitStack
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import Progress

from facelens.cli.output import run
from facelens.cli.profiles import parse_attrs
from facelens.collection.enroll import IMAGE_SUFFIXES
from facelens.config import Settings
from facelens.enrolment import Photo, enrol_person
from facelens.errors import InvalidParameterException, ResourceNotFoundException
from facelens.history.audit import cli_actor
from facelens.wiring.people import enrolment, profile_service
from facelens.wiring.stores import open_audit, open_collections, open_profiles


def enroll(
    path: Annotated[Path, typer.Argument(help="A photo, or a folder of photos, of one person.")],
    name: Annotated[str, typer.Option("--name", help="The person's name (profile 'Name').")],
    attrs: Annotated[
        list[str] | None,
        typer.Option("--attr", help="Profile attribute NAME=VALUE or NAME:=JSON; repeatable."),
    ] = None,
    collection_id: Annotated[
        str | None,
        typer.Option("--collection-id", help="Default: the recognizer's collection."),
    ] = None,
) -> None:
    """Enrols a person from one or more photos, with a profile, in one step."""
    settings = Settings()
    collection = collection_id or settings.recognizer.collection_id

    def action(stack: ExitStack) -> dict[str, Any]:
        attributes = parse_attrs(attrs or [])
        photos = _photos(path)
        actor = cli_actor()
        profiles = open_profiles(settings, stack)
        audit = open_audit(settings, stack)
        parts = enrolment(open_collections(settings, stack), profiles, audit)
        with Progress(transient=True, disable=len(photos) < 2) as progress:
            task = progress.add_task(f"Enrolling {name}", total=len(photos))
            report = enrol_person(
                parts,
                actor,
                collection,
                name,
                [Photo(label=p.name, body=p) for p in photos],  # each read when its turn comes
                attributes=attributes,
                advance=lambda: progress.advance(task),
            )
        # The profile printed is a read of it, recorded as such (the enrolment is not one).
        profile = profile_service(profiles, audit).get(
            actor, report.user_id, collection_id=collection, context={"Via": "enroll"}
        )
        out: dict[str, Any] = {
            "CollectionId": collection,
            "UserId": report.user_id,
            "FaceIds": list(report.face_ids),
            "Profile": dict(profile.item) if profile else {},
        }
        if report.problems:
            out["Problems"] = list(report.problems)
        return out

    run(action)


def _photos(path: Path) -> list[Path]:
    if path.is_dir():
        found = sorted(
            p for p in path.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
        )
        if not found:
            raise InvalidParameterException(
                f"No photos ({', '.join(sorted(IMAGE_SUFFIXES))}) in {path}"
            )
        return found
    if not path.is_file():
        raise ResourceNotFoundException(f"No such photo or folder: {path}")
    return [path]

"""``POST /api/v1/collections/{id}/identify``: who is in a photo, as the recognizer decides.

The recognizer's rule and settings (:mod:`facelens.people.identify`), on an
uploaded photo (``multipart/form-data``, field ``image``), and nothing recorded:
no identification in the ledger, no MQTT message, no stranger made or grown. The
profiles it returns are read on the caller's behalf, so each is audited as a
profile read, as ``GET /profiles/{id}`` is. Needs the ``read`` role; the engine
runs in the thread pool.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any

from fastapi import APIRouter, Depends, File, Query, Request, UploadFile
from starlette.concurrency import run_in_threadpool

from facelens.access.keys import Principal, Role
from facelens.api.app import ServerContext
from facelens.api.auditing import audit
from facelens.api.security import require
from facelens.errors import InvalidParameterException
from facelens.people.audit import AuditAction
from facelens.people.identify import Identifier
from facelens.rendering.rule import identify_json

router = APIRouter(tags=["facelens"])

Reader = Annotated[Principal, Depends(require(Role.READ))]
Photo = Annotated[UploadFile, File(description="A JPEG or PNG photo.")]


class Faces(StrEnum):
    """Which faces of the photo are identified."""

    LARGEST = "largest"
    ALL = "all"


def identifier(ctx: ServerContext) -> Identifier:
    """The identification parts of the server's components (strangers only when on)."""
    c = ctx.components
    r = c.settings.recognizer
    return Identifier(
        analyzer=c.analyzer,
        collections=c.collections,
        policy=c.match_policy,
        profiles=c.profiles,
        recognizer=r,
        strangers=c.strangers if r.strangers and not c.in_rekognition else None,
    )


@router.post(
    "/collections/{collection_id}/identify",
    summary="Who is in a photo, decided as the recognizer decides; nothing is recorded.",
)
async def identify(
    request: Request,
    _: Reader,
    collection_id: str,
    image: Photo,
    faces: Annotated[
        Faces,
        Query(description="'largest' (the recognizer's choice) or 'all', largest first."),
    ] = Faces.LARGEST,
) -> dict[str, Any]:
    """For each face (largest first): its ``BoundingBox`` (ratios of the photo) and either
    ``Person`` (``UserId``, ``FaceId``, ``ExternalImageId``, ``Profile``, ``Similarity``
    0-100, ``ExpectedFPIR``: the share of strangers 0-1 expected to score as high against
    the ``GallerySize`` people enrolled, null under the similarity rule) or ``Unknown``
    (``StrangerId``: the stranger the recognizer would file the face under, null for a new
    one). ``Rule``: the rule that decided and its setting. A photo without a face is
    InvalidParameterException, like SearchFacesByImage."""
    data = await image.read()
    if not data:
        raise InvalidParameterException("The uploaded image is empty")
    ctx: ServerContext = request.app.state.ctx

    def work() -> dict[str, Any]:
        answer = identifier(ctx).identify_photo(collection_id, data, every_face=faces is Faces.ALL)
        for face in answer.faces:
            if face.profile_id is not None:
                details = {"Via": "identify"}
                audit(
                    request,
                    AuditAction.PROFILE_READ,
                    face.profile_id,
                    collection_id=collection_id,
                    details=details,
                )
        return identify_json(answer)

    return await run_in_threadpool(work)

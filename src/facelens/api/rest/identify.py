"""``POST /api/v1/collections/{id}/identify``: who is in a photo, as the recognizer decides.

The recognizer's rule and settings (:mod:`facelens.people.identify`), on an
uploaded photo (``multipart/form-data``, field ``image``), and nothing recorded:
no identification in the ledger, no MQTT message, no stranger made or grown. The
profiles it returns are read on the caller's behalf, so the identification
records each as a profile read, as ``GET /profiles/{id}`` does. Needs the
``read`` role; the engine runs in the thread pool.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from starlette.concurrency import run_in_threadpool

from facelens.api.actors import request_actor
from facelens.api.context import Identify
from facelens.api.rest import models
from facelens.api.rest.params import Photo, Reader, read_photo
from facelens.rendering.rule import identify_json

router = APIRouter(tags=["facelens"])


class Faces(StrEnum):
    """Which faces of the photo are identified."""

    LARGEST = "largest"
    ALL = "all"


@router.post(
    "/collections/{collection_id}/identify",
    summary="Who is in a photo, decided as the recognizer decides; nothing is recorded.",
    response_model=models.Identification,
    response_model_exclude_unset=True,
)
async def identify(
    request: Request,
    _: Reader,
    identifier: Identify,
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
    data = await read_photo(image)
    actor = request_actor(request)
    answer = await run_in_threadpool(
        lambda: identifier.identify_photo(actor, collection_id, data, every_face=faces is Faces.ALL)
    )
    return identify_json(answer)

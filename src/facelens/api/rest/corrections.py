"""Corrections and per-person thresholds under ``/api/v1``.

* ``POST /identifications/{rid}/reject``: "this is not that person" (body, optional:
  ``{"PersonId": ...}``, default: whom the identification named);
* ``DELETE /corrections/{cid}``: undo; ``GET /corrections``: those in force;
* ``GET|PUT|DELETE /profiles/{id}/threshold``: the person's ``FaceMatchThreshold``.

Changing needs the ``admin`` role, looking ``read``. The services record each
change in the audit log under the caller (:func:`facelens.api.actors.request_actor`).
Routes are plain ``def``: FastAPI runs them in its threadpool, so a rejection's
engine run (the crop is embedded again) never blocks the event loop.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Query, Request

from facelens.api.actors import request_actor
from facelens.api.context import Corrections
from facelens.api.rest import models
from facelens.api.rest.params import Admin, Reader
from facelens.people.matching import THRESHOLD_ATTRIBUTE

router = APIRouter(tags=["corrections"])


@router.post(
    "/identifications/{recognition_id}/reject",
    status_code=201,
    response_model=models.CorrectionAnswer,
)
def reject(
    request: Request,
    _: Admin,
    corrections: Corrections,
    recognition_id: str,
    person_id: Annotated[
        str | None,
        Body(embed=True, alias="PersonId", description="Who the face is not (default: the match)."),
    ] = None,
) -> dict[str, Any]:
    """The identification was wrong: its face becomes a negative example of the person."""
    correction = corrections.reject(recognition_id, actor=request_actor(request), person=person_id)
    return {"Correction": correction.as_json()}


@router.delete("/corrections/{correction_id}", response_model=models.CorrectionAnswer)
def undo(
    request: Request, _: Admin, corrections: Corrections, correction_id: str
) -> dict[str, Any]:
    """Undoes a correction: its negative example is deleted."""
    correction = corrections.undo(correction_id, actor=request_actor(request))
    return {"Correction": correction.as_json()}


@router.get("/corrections", response_model=models.CorrectionList)
def list_corrections(
    _: Reader,
    corrections: Corrections,
    person: Annotated[str | None, Query(description="Only this person's.")] = None,
    collection_id: Annotated[
        str | None, Query(description="Default: the recognizer's collection.")
    ] = None,
) -> dict[str, Any]:
    """The corrections in force, newest first."""
    found = corrections.list(collection_id, person=person)
    return {"Corrections": [c.as_json() for c in found]}


@router.get("/profiles/{person_id}/threshold", response_model=models.Threshold)
def get_threshold(_: Reader, corrections: Corrections, person_id: str) -> dict[str, Any]:
    """The person's override (null: none) and the threshold that applies to them."""
    return corrections.threshold(person_id).as_json()


@router.put("/profiles/{person_id}/threshold", response_model=models.Threshold)
def set_threshold(
    request: Request,
    _: Admin,
    corrections: Corrections,
    person_id: str,
    value: Annotated[float, Body(embed=True, alias=THRESHOLD_ATTRIBUTE, ge=0, le=100)],
) -> dict[str, Any]:
    """Sets the person's own threshold (similarity 50-100)."""
    return corrections.set_threshold(person_id, value, actor=request_actor(request)).as_json()


@router.delete("/profiles/{person_id}/threshold", response_model=models.Threshold)
def clear_threshold(
    request: Request, _: Admin, corrections: Corrections, person_id: str
) -> dict[str, Any]:
    """Removes the override: the global threshold applies again."""
    return corrections.set_threshold(person_id, None, actor=request_actor(request)).as_json()

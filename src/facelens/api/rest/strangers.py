"""Strangers under ``/api/v1/collections/{id}/strangers``: list, show, name, merge, split.

The same JSON as ``facelens strangers`` prints (:mod:`facelens.people.stranger_model`).
Reading needs the ``read`` role, changing ``admin``; changes go through
:class:`facelens.people.stranger_curation.StrangerCuration`, which records
them as the caller's. The routes are plain ``def``: FastAPI runs them in its
threadpool, so the stores' blocking calls never hold the event loop.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Request

from facelens.api.actors import request_actor
from facelens.api.context import Curation, Strangers
from facelens.api.rest import models
from facelens.api.rest.params import Admin, Reader
from facelens.rendering.strangers import named_json, stranger_json

router = APIRouter(tags=["strangers"])

BASE = "/collections/{collection_id}/strangers"


@router.get(BASE, response_model=models.StrangerList)
def list_strangers(_: Reader, strangers: Strangers, collection_id: str) -> dict[str, Any]:
    """Every anonymous person the recognizer formed from unknown faces of the collection."""
    return {"Strangers": [stranger_json(s) for s in strangers.list(collection_id)]}


@router.get(BASE + "/{stranger_id}", response_model=models.StrangerAnswer)
def get_stranger(
    _: Reader, strangers: Strangers, collection_id: str, stranger_id: str
) -> dict[str, Any]:
    return {"Stranger": stranger_json(strangers.get(collection_id, stranger_id))}


@router.post(BASE + "/{stranger_id}/name", response_model=models.NamedStranger)
def name_stranger(
    request: Request,
    _: Admin,
    curation: Curation,
    collection_id: str,
    stranger_id: str,
    user_id: Annotated[str, Body(alias="UserId")],
    profile: Annotated[dict[str, Any] | None, Body(alias="Profile")] = None,
    extend: Annotated[bool, Body(alias="Extend")] = False,
) -> dict[str, Any]:
    """Turns the stranger into user ``UserId`` with its faces enrolled and ``Profile`` merged
    into the user's; an existing user is ConflictException (409) unless ``Extend``."""
    named = curation.name(
        request_actor(request),
        collection_id,
        stranger_id,
        user_id,
        profile=profile,
        extend=extend,
    )
    return named_json(named)


@router.post(BASE + "/{stranger_id}/merge", response_model=models.StrangerAnswer)
def merge_strangers(
    request: Request,
    _: Admin,
    curation: Curation,
    collection_id: str,
    stranger_id: str,
    other: Annotated[str, Body(embed=True, alias="Other")],
) -> dict[str, Any]:
    """``Other`` is the same person: its faces and sightings join this stranger."""
    merged = curation.merge(request_actor(request), collection_id, stranger_id, other)
    return {"Stranger": stranger_json(merged)}


@router.post(BASE + "/{stranger_id}/split", status_code=201, response_model=models.SplitStranger)
def split_stranger(
    request: Request,
    _: Admin,
    curation: Curation,
    strangers: Strangers,
    collection_id: str,
    stranger_id: str,
    face_ids: Annotated[list[str], Body(embed=True, alias="FaceIds")],
) -> dict[str, Any]:
    """``FaceIds`` (some of the stranger's faces) become a new stranger."""
    new_id = curation.split(request_actor(request), collection_id, stranger_id, face_ids)
    return {
        "StrangerId": new_id,
        "Stranger": stranger_json(strangers.get(collection_id, new_id)),
        "From": stranger_json(strangers.get(collection_id, stranger_id)),
    }

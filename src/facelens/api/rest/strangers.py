"""Strangers under ``/api/v1/collections/{id}/strangers``: list, show, name, merge, split.

The same JSON as ``facelens strangers`` prints (:mod:`facelens.people.stranger_types`).
Reading needs the ``read`` role, changing ``admin``; changes are audited with
the caller's key. The routes are plain ``def``: FastAPI runs them in its
threadpool, so the stores' blocking calls never hold the event loop.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Request

from facelens.access.keys import Principal, Role
from facelens.api.app import ServerContext
from facelens.api.auditing import audit
from facelens.api.security import require
from facelens.people.audit import AuditAction
from facelens.people.stranger_types import named_json, stranger_json
from facelens.people.strangers import StrangerService

router = APIRouter(tags=["strangers"])

Reader = Annotated[Principal, Depends(require(Role.READ))]
Admin = Annotated[Principal, Depends(require(Role.ADMIN))]
BASE = "/collections/{collection_id}/strangers"


def _strangers(request: Request) -> StrangerService:
    ctx: ServerContext = request.app.state.ctx
    return ctx.components.strangers


@router.get(BASE)
def list_strangers(request: Request, _: Reader, collection_id: str) -> dict[str, Any]:
    """Every anonymous person the recognizer formed from unknown faces of the collection."""
    strangers = _strangers(request).list(collection_id)
    return {"Strangers": [stranger_json(s) for s in strangers]}


@router.get(BASE + "/{stranger_id}")
def get_stranger(
    request: Request, _: Reader, collection_id: str, stranger_id: str
) -> dict[str, Any]:
    return {"Stranger": stranger_json(_strangers(request).get(collection_id, stranger_id))}


@router.post(BASE + "/{stranger_id}/name")
def name_stranger(
    request: Request,
    _: Admin,
    collection_id: str,
    stranger_id: str,
    user_id: Annotated[str, Body(alias="UserId")],
    profile: Annotated[dict[str, Any] | None, Body(alias="Profile")] = None,
    extend: Annotated[bool, Body(alias="Extend")] = False,
) -> dict[str, Any]:
    """Turns the stranger into user ``UserId`` with its faces enrolled and ``Profile`` merged
    into the user's; an existing user is ConflictException (409) unless ``Extend``."""
    named = _strangers(request).name(
        collection_id, stranger_id, user_id, profile=profile, extend=extend
    )
    details = {"StrangerId": stranger_id, "Faces": len(named.face_ids)}
    audit(request, AuditAction.NAME_STRANGER, user_id, collection_id=collection_id, details=details)
    return named_json(named)


@router.post(BASE + "/{stranger_id}/merge")
def merge_strangers(
    request: Request,
    _: Admin,
    collection_id: str,
    stranger_id: str,
    other: Annotated[str, Body(embed=True, alias="Other")],
) -> dict[str, Any]:
    """``Other`` is the same person: its faces and sightings join this stranger."""
    merged = _strangers(request).merge(collection_id, stranger_id, other)
    details = {"Other": other}
    audit(
        request,
        AuditAction.MERGE_STRANGERS,
        stranger_id,
        collection_id=collection_id,
        details=details,
    )
    return {"Stranger": stranger_json(merged)}


@router.post(BASE + "/{stranger_id}/split", status_code=201)
def split_stranger(
    request: Request,
    _: Admin,
    collection_id: str,
    stranger_id: str,
    face_ids: Annotated[list[str], Body(embed=True, alias="FaceIds")],
) -> dict[str, Any]:
    """``FaceIds`` (some of the stranger's faces) become a new stranger."""
    service = _strangers(request)
    new_id = service.split(collection_id, stranger_id, face_ids)
    details = {"NewStrangerId": new_id, "FaceIds": face_ids}
    action = AuditAction.SPLIT_STRANGER
    audit(request, action, stranger_id, collection_id=collection_id, details=details)
    return {
        "StrangerId": new_id,
        "Stranger": stranger_json(service.get(collection_id, new_id)),
        "From": stranger_json(service.get(collection_id, stranger_id)),
    }

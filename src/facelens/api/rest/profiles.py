"""Profiles under ``/api/v1/profiles``: what facelens knows of a person, published with them.

A profile is keyed by a UserId (or a FaceId, for a person enrolled as one
face) and holds free-form attributes (strings, numbers, lists, maps); the
recognizer attaches it to each identification of that person. Every read
and write goes through :class:`facelens.people.profiles.ProfileService`,
which records it as the caller's: a profile says who someone is.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Request, Response

from facelens.api.actors import request_actor
from facelens.api.context import ProfileAccess
from facelens.api.rest import models
from facelens.api.rest.params import Admin, MaxResults, Reader, Token
from facelens.errors import ResourceNotFoundException

router = APIRouter(tags=["facelens"])

Attributes = Annotated[dict[str, Any], Body()]


@router.get("/profiles", response_model=models.ProfileList, response_model_exclude_unset=True)
def list_profiles(
    request: Request,
    _: Reader,
    profiles: ProfileAccess,
    max_results: MaxResults = 100,
    next_token: Token = None,
) -> dict[str, Any]:
    actor = request_actor(request)
    page = profiles.list(actor, max_results=max_results, next_token=next_token)
    out: dict[str, Any] = {"Items": [dict(p.item) for p in page.profiles]}
    if page.next_token:
        out["NextToken"] = page.next_token
    return out


@router.get("/profiles/{profile_id}", response_model=models.ProfileItem)
def get_profile(
    request: Request, _: Reader, profiles: ProfileAccess, profile_id: str
) -> dict[str, Any]:
    profile = profiles.get(request_actor(request), profile_id)
    if profile is None:
        raise ResourceNotFoundException(f"No profile {profile_id}")
    return {"Item": dict(profile.item)}


@router.put("/profiles/{profile_id}", response_model=models.ProfileItem)
def put_profile(
    request: Request,
    _: Admin,
    profiles: ProfileAccess,
    profile_id: str,
    attributes: Attributes,
) -> dict[str, Any]:
    """Replaces the profile's attributes (strings, numbers, lists, maps)."""
    profile = profiles.put(request_actor(request), profile_id, attributes)
    return {"Item": dict(profile.item)}


@router.patch("/profiles/{profile_id}", response_model=models.ProfileItem)
def update_profile(
    request: Request,
    _: Admin,
    profiles: ProfileAccess,
    profile_id: str,
    attributes: Attributes,
) -> dict[str, Any]:
    """Merges the given attributes into the profile (creating it if needed)."""
    profile = profiles.put(request_actor(request), profile_id, attributes, merge=True)
    return {"Item": dict(profile.item)}


@router.delete("/profiles/{profile_id}", status_code=204)
def delete_profile(
    request: Request, _: Admin, profiles: ProfileAccess, profile_id: str
) -> Response:
    if not profiles.delete(request_actor(request), profile_id):
        raise ResourceNotFoundException(f"No profile {profile_id}")
    return Response(status_code=204)

"""The native REST API under ``/api/v1``: collections, faces, users, profiles, identifications.

Resource-shaped URLs for people and scripts, with Rekognition's field names
in the bodies (the same JSON the CLI prints), so one vocabulary serves
both. Photos are uploaded as ``multipart/form-data`` (``image``), not
base64. Reading needs the ``read`` role, changing ``admin``. The engine
runs in the threadpool: an enrolment never blocks the event loop.
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, File, Form, Query, Request, Response, UploadFile
from prometheus_client import CONTENT_TYPE_LATEST
from starlette.concurrency import run_in_threadpool

from facelens import json_limits
from facelens.access.keys import Principal, Role
from facelens.api.app import ServerContext
from facelens.api.auditing import audit, audit_forget
from facelens.api.rest.monitoring import render_metrics
from facelens.api.security import require
from facelens.collection.models import QualityFilter
from facelens.errors import InvalidParameterException, ResourceNotFoundException
from facelens.people.audit import AuditAction, faces_target
from facelens.recognizer.forget import forget_user
from facelens.recognizer.ledger import Recognition, Status, cursor_of
from facelens.rendering import rekognition_json
from facelens.rendering.rule import describe_json

router = APIRouter(tags=["facelens"])

Reader = Annotated[Principal, Depends(require(Role.READ))]
Admin = Annotated[Principal, Depends(require(Role.ADMIN))]
MaxResults = Annotated[int, Query(ge=1, le=1000, alias="max_results")]
Token = Annotated[str | None, Query(alias="next_token")]
Photo = Annotated[UploadFile, File(description="A JPEG or PNG photo.")]


def _ctx(request: Request) -> ServerContext:
    ctx: ServerContext = request.app.state.ctx
    return ctx


async def _read(photo: UploadFile) -> bytes:
    data = await photo.read()
    if not data:
        raise InvalidParameterException("The uploaded image is empty")
    return data


# -- health and metrics --
@router.get("/health", summary="Liveness: the server answers and its stores open.")
def health(request: Request) -> dict[str, Any]:
    ctx = _ctx(request)
    ctx.components.collections.list_collections(max_results=1)
    return {"Status": "ok"}


@router.get("/metrics", summary="Prometheus metrics: identifications by status, collections.")
def metrics(request: Request, _: Reader) -> Response:
    return Response(render_metrics(_ctx(request)), media_type=CONTENT_TYPE_LATEST)


# -- collections --
@router.get("/collections")
def list_collections(
    request: Request, _: Reader, max_results: MaxResults = 100, next_token: Token = None
) -> dict[str, Any]:
    page = _ctx(request).components.collections.list_collections(
        max_results=max_results, next_token=next_token
    )
    return rekognition_json.list_collections(page)


@router.post("/collections", status_code=201)
def create_collection(
    request: Request,
    _: Admin,
    collection_id: Annotated[str, Body(embed=True, alias="CollectionId")],
) -> dict[str, Any]:
    return rekognition_json.create_collection(
        _ctx(request).components.collections.create_collection(collection_id)
    )


@router.get(
    "/collections/{collection_id}",
    summary="DescribeCollection, and what the identification rule means for it now (Rule).",
)
def describe_collection(request: Request, _: Reader, collection_id: str) -> dict[str, Any]:
    """``Rule``: the rule in force, the share of strangers expected to get a name
    (``ExpectedFPIR``, 0-1) and of enrolled people's photos to go unnamed (``ExpectedFNIR``),
    the people with one photo, and the same in words (``Summary``)."""
    c = _ctx(request).components
    return describe_json(c.match_policy, c.settings.recognizer, collection_id)


@router.delete("/collections/{collection_id}", status_code=204)
def delete_collection(request: Request, _: Admin, collection_id: str) -> Response:
    _ctx(request).components.collections.delete_collection(collection_id)
    audit(request, AuditAction.DELETE_COLLECTION, collection_id, collection_id=collection_id)
    return Response(status_code=204)


# -- faces --
@router.post("/collections/{collection_id}/faces", status_code=201)
async def index_faces(
    request: Request,
    _: Admin,
    collection_id: str,
    image: Photo,
    external_image_id: Annotated[str | None, Form(alias="ExternalImageId")] = None,
    max_faces: Annotated[int | None, Form(alias="MaxFaces", ge=1, le=100)] = None,
    quality_filter: Annotated[QualityFilter, Form(alias="QualityFilter")] = QualityFilter.AUTO,
) -> dict[str, Any]:
    """IndexFaces on an uploaded photo: each face gets a FaceId."""
    data = await _read(image)
    service = _ctx(request).components.collections
    result = await run_in_threadpool(
        lambda: service.index_faces(
            collection_id,
            data,
            external_image_id=external_image_id,
            max_faces=max_faces,
            quality_filter=quality_filter,
        )
    )
    ids = [r.face.face_id for r in result.face_records]
    details = {"FaceIds": ids, "ExternalImageId": external_image_id}
    target = faces_target(collection_id, ids)
    await run_in_threadpool(
        audit, request, AuditAction.ENROL, target, collection_id=collection_id, details=details
    )
    return rekognition_json.index_faces(result)


@router.get("/collections/{collection_id}/faces")
def list_faces(
    request: Request,
    _: Reader,
    collection_id: str,
    max_results: MaxResults = 100,
    next_token: Token = None,
    user_id: Annotated[str | None, Query(alias="user_id")] = None,
) -> dict[str, Any]:
    service = _ctx(request).components.collections
    page = service.list_faces(
        collection_id, max_results=max_results, next_token=next_token, user_id=user_id
    )
    return rekognition_json.list_faces(page, model_version=service.face_model_version)


@router.delete("/collections/{collection_id}/faces/{face_id}")
def delete_face(request: Request, _: Admin, collection_id: str, face_id: str) -> dict[str, Any]:
    result = _ctx(request).components.collections.delete_faces(collection_id, [face_id])
    if face_id not in result.deleted_faces:
        raise ResourceNotFoundException(f"No face {face_id} in collection {collection_id}")
    audit(request, AuditAction.DELETE_FACE, face_id, collection_id=collection_id)
    return rekognition_json.delete_faces(result)


@router.post("/collections/{collection_id}/faces/search")
async def search_faces_by_image(
    request: Request,
    _: Reader,
    collection_id: str,
    image: Photo,
    max_faces: Annotated[int, Form(alias="MaxFaces", ge=1, le=4096)] = 80,
    threshold: Annotated[float, Form(alias="FaceMatchThreshold", ge=0, le=100)] = 80.0,
) -> dict[str, Any]:
    """SearchFacesByImage: the largest face of the photo against the collection."""
    data = await _read(image)
    service = _ctx(request).components.collections
    result = await run_in_threadpool(
        lambda: service.search_faces_by_image(
            collection_id, data, max_faces=max_faces, face_match_threshold=threshold
        )
    )
    return rekognition_json.search_faces_by_image(result)


# -- users --
@router.get("/collections/{collection_id}/users")
def list_users(
    request: Request,
    _: Reader,
    collection_id: str,
    max_results: MaxResults = 100,
    next_token: Token = None,
) -> dict[str, Any]:
    page = _ctx(request).components.users.list_users(
        collection_id, max_results=max_results, next_token=next_token
    )
    return rekognition_json.list_users(page)


@router.post("/collections/{collection_id}/users", status_code=201)
def create_user(
    request: Request,
    _: Admin,
    collection_id: str,
    user_id: Annotated[str, Body(embed=True, alias="UserId")],
) -> dict[str, Any]:
    _ctx(request).components.users.create_user(collection_id, user_id)
    return {"UserId": user_id}


@router.post("/collections/{collection_id}/users/{user_id}/faces")
def associate_faces(
    request: Request,
    _: Admin,
    collection_id: str,
    user_id: str,
    face_ids: Annotated[list[str], Body(embed=True, alias="FaceIds")],
) -> dict[str, Any]:
    result = _ctx(request).components.users.associate_faces(collection_id, user_id, face_ids)
    details = {"FaceIds": list(result.associated_face_ids)}
    audit(request, AuditAction.ENROL, user_id, collection_id=collection_id, details=details)
    return rekognition_json.associate_faces(result)


@router.delete("/collections/{collection_id}/users/{user_id}")
def delete_user(
    request: Request,
    _: Admin,
    collection_id: str,
    user_id: str,
    forget: Annotated[
        bool, Query(description="Also delete faces, profiles, crops, history.")
    ] = False,
) -> dict[str, Any]:
    """DeleteUser; with ``forget=true`` the person is erased: faces, profiles, crops, records."""
    c = _ctx(request).components
    if not forget:
        c.users.delete_user(collection_id, user_id)
        audit(request, AuditAction.DELETE_USER, user_id, collection_id=collection_id)
        return {}
    report = forget_user(
        collection_id,
        user_id,
        users=c.users,
        profiles=c.profiles,
        ledger=c.ledger,
        objects=c.raw_objects,
    )
    crops, records = len(report.deleted_crops), report.deleted_records
    audit_forget(
        request, collection_id, user_id, report.deleted_faces, Crops=crops, Records=records
    )
    return rekognition_json.forget_report(report)


@router.post("/collections/{collection_id}/users/search")
async def search_users_by_image(
    request: Request,
    _: Reader,
    collection_id: str,
    image: Photo,
    max_users: Annotated[int, Form(alias="MaxUsers", ge=1, le=500)] = 10,
    threshold: Annotated[float, Form(alias="UserMatchThreshold", ge=0, le=100)] = 80.0,
) -> dict[str, Any]:
    data = await _read(image)
    users = _ctx(request).components.users
    result = await run_in_threadpool(
        lambda: users.search_users_by_image(
            collection_id, data, max_users=max_users, user_match_threshold=threshold
        )
    )
    return rekognition_json.search_users_by_image(result)


# -- profiles --
@router.get("/profiles")
def list_profiles(
    request: Request, _: Reader, max_results: MaxResults = 100, next_token: Token = None
) -> dict[str, Any]:
    page = _ctx(request).components.profiles.list(max_results=max_results, next_token=next_token)
    if page.profiles:
        read = [p.profile_id for p in page.profiles]
        audit(request, AuditAction.PROFILE_READ, "*", details={"ProfileIds": read})
    out: dict[str, Any] = {"Items": [dict(p.item) for p in page.profiles]}
    if page.next_token:
        out["NextToken"] = page.next_token
    return out


@router.get("/profiles/{profile_id}")
def get_profile(request: Request, _: Reader, profile_id: str) -> dict[str, Any]:
    profile = _ctx(request).components.profiles.get(profile_id)
    if profile is None:
        raise ResourceNotFoundException(f"No profile {profile_id}")
    audit(request, AuditAction.PROFILE_READ, profile_id)
    return {"Item": dict(profile.item)}


@router.put("/profiles/{profile_id}")
def put_profile(
    request: Request, _: Admin, profile_id: str, attributes: Annotated[dict[str, Any], Body()]
) -> dict[str, Any]:
    """Replaces the profile's attributes (strings, numbers, lists, maps)."""
    profile = _ctx(request).components.profiles.put(profile_id, attributes)
    audit(
        request, AuditAction.PROFILE_WRITE, profile_id, details={"Attributes": sorted(attributes)}
    )
    return {"Item": dict(profile.item)}


@router.patch("/profiles/{profile_id}")
def update_profile(
    request: Request, _: Admin, profile_id: str, attributes: Annotated[dict[str, Any], Body()]
) -> dict[str, Any]:
    """Merges the given attributes into the profile (creating it if needed)."""
    profile = _ctx(request).components.profiles.update(profile_id, attributes)
    details = {"Attributes": sorted(attributes), "Merge": True}
    audit(request, AuditAction.PROFILE_WRITE, profile_id, details=details)
    return {"Item": dict(profile.item)}


@router.delete("/profiles/{profile_id}", status_code=204)
def delete_profile(request: Request, _: Admin, profile_id: str) -> Response:
    if not _ctx(request).components.profiles.delete(profile_id):
        raise ResourceNotFoundException(f"No profile {profile_id}")
    audit(request, AuditAction.PROFILE_DELETE, profile_id)
    return Response(status_code=204)


# -- identifications --
@router.get("/identifications")
def identifications(
    request: Request,
    _: Reader,
    status: Annotated[Status | None, Query()] = None,
    camera: Annotated[str | None, Query()] = None,
    user_id: Annotated[str | None, Query()] = None,
    max_results: MaxResults = 50,
    next_token: Token = None,
) -> dict[str, Any]:
    """History, newest first: identified, unknown and error outcomes with their messages."""
    records = _ctx(request).components.ledger.history(
        limit=max_results + 1,
        status=status,
        camera=camera,
        user_id=user_id,
        before=_decode_token(next_token),
    )
    page, more = records[:max_results], len(records) > max_results
    out: dict[str, Any] = {"Identifications": [_record(r) for r in page]}
    if more:
        out["NextToken"] = _encode_token(cursor_of(page[-1]))
    return out


@router.get("/identifications/unknown")
def unknown_faces(
    request: Request, _: Reader, max_results: MaxResults = 50, next_token: Token = None
) -> dict[str, Any]:
    """Faces the recognizer could not name, newest first (their crops are in ``Key``)."""
    return identifications(
        request, _, status=Status.UNKNOWN, max_results=max_results, next_token=next_token
    )


def _record(r: Recognition) -> dict[str, Any]:
    return {
        "RecognitionId": r.recognition_id,
        "Status": r.status.value,
        "RecognizedAt": r.recognized_at.isoformat(),
        "Message": dict(r.message),
    }


def _encode_token(cursor: tuple[str, str]) -> str:
    return base64.urlsafe_b64encode(json.dumps(cursor).encode()).decode()


def _decode_token(token: str | None) -> tuple[str, str] | None:
    """The ledger cursor a ``NextToken`` of ours holds: ``[recognized_at, recognition_id]``
    (one level of JSON; the time is checked by the ledger)."""
    if token is None:
        return None
    try:
        at, rid = json_limits.loads(base64.urlsafe_b64decode(token.encode()), max_depth=1)
    except (ValueError, TypeError, binascii.Error) as exc:  # TooDeepError is a ValueError
        raise InvalidParameterException("Invalid next_token") from exc
    return str(at), str(rid)

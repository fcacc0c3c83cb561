"""Collections, their faces and users under ``/api/v1/collections``: Rekognition as resources.

Resource-shaped URLs for people and scripts, with Rekognition's field names
in the bodies (the same JSON the CLI prints, :mod:`facelens.rendering.rekognition_json`),
so one vocabulary serves both. Photos are uploaded as ``multipart/form-data``
(``image``), not base64. Reading needs the ``read`` role, changing ``admin``;
changes go through :class:`facelens.people.gallery.Gallery` (and forgetting
through :class:`facelens.people.forget.Forgetter`), which record them as the
caller's. The engine runs in the threadpool: an enrolment never blocks the
event loop.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Form, Query, Request, Response
from starlette.concurrency import run_in_threadpool

from facelens.api.actors import request_actor
from facelens.api.context import Collections, Context, Forget, GalleryChanges, Policy, Users
from facelens.api.rest import models
from facelens.api.rest.params import Admin, MaxResults, Photo, Reader, Token, read_photo
from facelens.collection.models import QualityFilter
from facelens.errors import ResourceNotFoundException
from facelens.rendering import rekognition_json
from facelens.rendering.forget import forget_json
from facelens.rendering.rule import describe_json

router = APIRouter(tags=["facelens"])

_ANSWER: Any = {"response_model_exclude_unset": True}
"""Each answer's fields as the renderer set them: those it leaves out stay out."""


# -- collections --
@router.get("/collections", response_model=models.CollectionList, **_ANSWER)
def list_collections(
    _: Reader, collections: Collections, max_results: MaxResults = 100, next_token: Token = None
) -> dict[str, Any]:
    page = collections.list_collections(max_results=max_results, next_token=next_token)
    return rekognition_json.list_collections(page)


@router.post("/collections", status_code=201, response_model=models.CreatedCollection, **_ANSWER)
def create_collection(
    _: Admin,
    collections: Collections,
    collection_id: Annotated[str, Body(embed=True, alias="CollectionId")],
) -> dict[str, Any]:
    return rekognition_json.create_collection(collections.create_collection(collection_id))


@router.get(
    "/collections/{collection_id}",
    summary="DescribeCollection, and what the identification rule means for it now (Rule).",
    response_model=models.CollectionDescription,
    **_ANSWER,
)
def describe_collection(
    _: Reader, ctx: Context, policy: Policy, collection_id: str
) -> dict[str, Any]:
    """``Rule``: the rule in force, the share of strangers expected to get a name
    (``ExpectedFPIR``, 0-1) and of enrolled people's photos to go unnamed (``ExpectedFNIR``),
    the people with one photo, and the same in words (``Summary``)."""
    return describe_json(policy, ctx.recognizer, collection_id)


@router.delete("/collections/{collection_id}", status_code=204)
def delete_collection(
    request: Request, _: Admin, gallery: GalleryChanges, collection_id: str
) -> Response:
    gallery.delete_collection(request_actor(request), collection_id)
    return Response(status_code=204)


# -- faces --
@router.post(
    "/collections/{collection_id}/faces",
    status_code=201,
    response_model=models.IndexedFaces,
    **_ANSWER,
)
async def index_faces(
    request: Request,
    _: Admin,
    gallery: GalleryChanges,
    collection_id: str,
    image: Photo,
    external_image_id: Annotated[str | None, Form(alias="ExternalImageId")] = None,
    max_faces: Annotated[int | None, Form(alias="MaxFaces", ge=1, le=100)] = None,
    quality_filter: Annotated[QualityFilter, Form(alias="QualityFilter")] = QualityFilter.AUTO,
) -> dict[str, Any]:
    """IndexFaces on an uploaded photo: each face gets a FaceId."""
    data = await read_photo(image)
    actor = request_actor(request)
    result = await run_in_threadpool(
        lambda: gallery.index_faces(
            actor,
            collection_id,
            data,
            external_image_id=external_image_id,
            max_faces=max_faces,
            quality_filter=quality_filter,
        )
    )
    return rekognition_json.index_faces(result)


@router.get("/collections/{collection_id}/faces", response_model=models.FaceList, **_ANSWER)
def list_faces(
    _: Reader,
    collections: Collections,
    collection_id: str,
    max_results: MaxResults = 100,
    next_token: Token = None,
    user_id: Annotated[str | None, Query(alias="user_id")] = None,
) -> dict[str, Any]:
    page = collections.list_faces(
        collection_id, max_results=max_results, next_token=next_token, user_id=user_id
    )
    return rekognition_json.list_faces(page, model_version=collections.face_model_version)


@router.delete(
    "/collections/{collection_id}/faces/{face_id}",
    response_model=models.DeletedFaces,
    **_ANSWER,
)
def delete_face(
    request: Request,
    _: Admin,
    gallery: GalleryChanges,
    collection_id: str,
    face_id: str,
) -> dict[str, Any]:
    result = gallery.delete_faces(request_actor(request), collection_id, [face_id])
    if face_id not in result.deleted_faces:
        raise ResourceNotFoundException(f"No face {face_id} in collection {collection_id}")
    return rekognition_json.delete_faces(result)


@router.post(
    "/collections/{collection_id}/faces/search", response_model=models.FaceSearch, **_ANSWER
)
async def search_faces_by_image(
    _: Reader,
    collections: Collections,
    collection_id: str,
    image: Photo,
    max_faces: Annotated[int, Form(alias="MaxFaces", ge=1, le=4096)] = 80,
    threshold: Annotated[float, Form(alias="FaceMatchThreshold", ge=0, le=100)] = 80.0,
) -> dict[str, Any]:
    """SearchFacesByImage: the largest face of the photo against the collection."""
    data = await read_photo(image)
    result = await run_in_threadpool(
        lambda: collections.search_faces_by_image(
            collection_id, data, max_faces=max_faces, face_match_threshold=threshold
        )
    )
    return rekognition_json.search_faces_by_image(result)


# -- users --
@router.get("/collections/{collection_id}/users", response_model=models.UserList, **_ANSWER)
def list_users(
    _: Reader,
    users: Users,
    collection_id: str,
    max_results: MaxResults = 100,
    next_token: Token = None,
) -> dict[str, Any]:
    page = users.list_users(collection_id, max_results=max_results, next_token=next_token)
    return rekognition_json.list_users(page)


@router.post(
    "/collections/{collection_id}/users",
    status_code=201,
    response_model=models.CreatedUser,
    **_ANSWER,
)
def create_user(
    request: Request,
    _: Admin,
    gallery: GalleryChanges,
    collection_id: str,
    user_id: Annotated[str, Body(embed=True, alias="UserId")],
) -> dict[str, Any]:
    gallery.create_user(request_actor(request), collection_id, user_id)
    return {"UserId": user_id}


@router.post(
    "/collections/{collection_id}/users/{user_id}/faces",
    response_model=models.AssociatedFaces,
    **_ANSWER,
)
def associate_faces(
    request: Request,
    _: Admin,
    gallery: GalleryChanges,
    collection_id: str,
    user_id: str,
    face_ids: Annotated[list[str], Body(embed=True, alias="FaceIds")],
) -> dict[str, Any]:
    result = gallery.associate_faces(request_actor(request), collection_id, user_id, face_ids)
    return rekognition_json.associate_faces(result)


@router.delete(
    "/collections/{collection_id}/users/{user_id}",
    response_model=models.DeletedUser | models.ForgetReport,
    **_ANSWER,
)
def delete_user(
    request: Request,
    _: Admin,
    gallery: GalleryChanges,
    forgetter: Forget,
    collection_id: str,
    user_id: str,
    forget: Annotated[
        bool, Query(description="Also delete faces, profiles, crops, history.")
    ] = False,
) -> dict[str, Any]:
    """DeleteUser; with ``forget=true`` the person is erased (faces, profiles, crops,
    records) and the answer says what went, as ``DELETE /people/{person}``'s does."""
    actor = request_actor(request)
    if not forget:
        gallery.delete_user(actor, collection_id, user_id)
        return {}
    # As DeleteUser: only a user of the collection (a FaceId or stranger id is not found).
    report = forgetter.forget(user_id, actor=actor, collection_id=collection_id, users_only=True)
    return forget_json(report)


@router.post(
    "/collections/{collection_id}/users/search", response_model=models.UserSearch, **_ANSWER
)
async def search_users_by_image(
    _: Reader,
    users: Users,
    collection_id: str,
    image: Photo,
    max_users: Annotated[int, Form(alias="MaxUsers", ge=1, le=500)] = 10,
    threshold: Annotated[float, Form(alias="UserMatchThreshold", ge=0, le=100)] = 80.0,
) -> dict[str, Any]:
    data = await read_photo(image)
    result = await run_in_threadpool(
        lambda: users.search_users_by_image(
            collection_id, data, max_users=max_users, user_match_threshold=threshold
        )
    )
    return rekognition_json.search_users_by_image(result)

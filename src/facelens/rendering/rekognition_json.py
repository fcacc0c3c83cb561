"""Rekognition-shaped JSON for facelens' results: the only place AWS dicts are built.

Field names and nesting follow the Rekognition API reference so that code
written against boto3's responses reads ours unchanged. Floats keep full
precision; boxes and landmarks are ratios of the image's width and height.
"""

from __future__ import annotations

from typing import Any

from facelens.collection.compare import CompareFacesResult
from facelens.collection.models import (
    AssociateFacesResult,
    CollectionInfo,
    CollectionPage,
    DeleteFacesResult,
    DisassociateFacesResult,
    FaceAssociationFailure,
    FaceMatch,
    FacePage,
    IndexFacesResult,
    SearchByIdResult,
    SearchByImageResult,
    SearchUsersResult,
    StoredFace,
    UnindexedFace,
    UserInfo,
    UserMatch,
    UserPage,
)
from facelens.engine.types import FaceDetail
from facelens.values.boxes import BoundingBox

Json = dict[str, Any]

ARN_PREFIX = "aws:rekognition:local:000000000000:collection/"


def bounding_box(box: BoundingBox) -> Json:
    return {"Width": box.width, "Height": box.height, "Left": box.left, "Top": box.top}


def face_detail(detail: FaceDetail) -> Json:
    w, h = detail.image_width, detail.image_height
    return {
        "BoundingBox": bounding_box(detail.bounding_box),
        "Landmarks": [
            {"Type": name, "X": point.x / w, "Y": point.y / h}
            for name, point in detail.face.landmarks.as_named().items()
        ],
        "Pose": {"Roll": detail.pose.roll, "Yaw": detail.pose.yaw, "Pitch": detail.pose.pitch},
        "Quality": {
            "Brightness": detail.quality.brightness,
            "Sharpness": detail.quality.sharpness,
        },
        "Confidence": detail.confidence,
    }


def face(stored: StoredFace, *, model_version: str | None = None) -> Json:
    out: Json = {
        "FaceId": stored.face_id,
        "BoundingBox": bounding_box(stored.bounding_box),
        "ImageId": stored.image_id,
        "Confidence": stored.confidence,
    }
    if stored.external_image_id is not None:
        out["ExternalImageId"] = stored.external_image_id
    if stored.user_id is not None:
        out["UserId"] = stored.user_id
    if model_version is not None:
        out["IndexFacesModelVersion"] = model_version
    return out


def _face_match(match: FaceMatch) -> Json:
    return {"Similarity": match.similarity, "Face": face(match.face)}


def _unindexed(item: UnindexedFace) -> Json:
    return {"Reasons": [r.value for r in item.reasons], "FaceDetail": face_detail(item.detail)}


def create_collection(info: CollectionInfo) -> Json:
    return {
        "StatusCode": 200,
        "CollectionArn": ARN_PREFIX + info.collection_id,
        "FaceModelVersion": info.face_model_version,
    }


def describe_collection(info: CollectionInfo) -> Json:
    return {
        "FaceCount": info.face_count,
        "UserCount": info.user_count,
        "FaceModelVersion": info.face_model_version,
        "CollectionARN": ARN_PREFIX + info.collection_id,
        "CreationTimestamp": info.created_at.isoformat(),
    }


def list_collections(page: CollectionPage) -> Json:
    out: Json = {
        "CollectionIds": page.collection_ids,
        "FaceModelVersions": page.face_model_versions,
    }
    if page.next_token:
        out["NextToken"] = page.next_token
    return out


def index_faces(result: IndexFacesResult) -> Json:
    return {
        "FaceRecords": [
            {
                "Face": face(r.face, model_version=result.face_model_version),
                "FaceDetail": face_detail(r.detail),
            }
            for r in result.face_records
        ],
        "FaceModelVersion": result.face_model_version,
        "UnindexedFaces": [_unindexed(u) for u in result.unindexed_faces],
    }


def search_faces_by_image(result: SearchByImageResult) -> Json:
    return {
        "SearchedFaceBoundingBox": bounding_box(result.searched_face.bounding_box),
        "SearchedFaceConfidence": result.searched_face.confidence,
        "FaceMatches": [_face_match(m) for m in result.face_matches],
        "FaceModelVersion": result.face_model_version,
    }


def search_faces(result: SearchByIdResult) -> Json:
    return {
        "SearchedFaceId": result.searched_face_id,
        "FaceMatches": [_face_match(m) for m in result.face_matches],
        "FaceModelVersion": result.face_model_version,
    }


def list_faces(page: FacePage, *, model_version: str) -> Json:
    out: Json = {
        "Faces": [face(f, model_version=model_version) for f in page.faces],
        "FaceModelVersion": model_version,
    }
    if page.next_token:
        out["NextToken"] = page.next_token
    return out


def delete_faces(result: DeleteFacesResult) -> Json:
    return {
        "DeletedFaces": result.deleted_faces,
        "UnsuccessfulFaceDeletions": [
            {
                "FaceId": f.face_id,
                **({"UserId": f.user_id} if f.user_id else {}),
                "Reasons": list(f.reasons),
            }
            for f in result.unsuccessful
        ],
    }


def _association_failure(f: FaceAssociationFailure) -> Json:
    out: Json = {"FaceId": f.face_id, "Reasons": list(f.reasons)}
    if f.user_id is not None:
        out["UserId"] = f.user_id
    if f.confidence is not None:
        out["Confidence"] = f.confidence
    return out


def associate_faces(result: AssociateFacesResult) -> Json:
    return {
        "AssociatedFaces": [{"FaceId": f} for f in result.associated_face_ids],
        "UnsuccessfulFaceAssociations": [_association_failure(f) for f in result.unsuccessful],
        "UserStatus": result.user_status.value,
    }


def disassociate_faces(result: DisassociateFacesResult) -> Json:
    return {
        "DisassociatedFaces": [{"FaceId": f} for f in result.disassociated_face_ids],
        "UnsuccessfulFaceDisassociations": [_association_failure(f) for f in result.unsuccessful],
        "UserStatus": result.user_status.value,
    }


def user(info: UserInfo) -> Json:
    return {"UserId": info.user_id, "UserStatus": info.status.value}


def list_users(page: UserPage) -> Json:
    out: Json = {"Users": [user(u) for u in page.users]}
    if page.next_token:
        out["NextToken"] = page.next_token
    return out


def _user_match(match: UserMatch) -> Json:
    return {"Similarity": match.similarity, "User": user(match.user)}


def search_users_by_image(result: SearchUsersResult) -> Json:
    return {
        "UserMatches": [_user_match(m) for m in result.user_matches],
        "FaceModelVersion": result.face_model_version,
        "SearchedFace": {"FaceDetail": face_detail(result.searched_face)},
        "UnsearchedFaces": [
            {"Reasons": [r.value for r in u.reasons], "FaceDetails": face_detail(u.detail)}
            for u in result.unsearched_faces
        ],
    }


def delete_collection() -> Json:
    return {"StatusCode": 200}


def detect_faces(details: list[FaceDetail]) -> Json:
    """FaceDetails with the DEFAULT attributes (facelens computes no others, even for ALL)."""
    return {"FaceDetails": [face_detail(d) for d in details]}


def compare_faces(result: CompareFacesResult) -> Json:
    """Each compared face is a Rekognition ComparedFace: a FaceDetail's default fields."""
    source = result.source_face
    return {
        "SourceImageFace": {
            "BoundingBox": bounding_box(source.bounding_box),
            "Confidence": source.confidence,
        },
        "FaceMatches": [
            {"Similarity": m.similarity, "Face": face_detail(m.detail)} for m in result.face_matches
        ],
        "UnmatchedFaces": [face_detail(u.detail) for u in result.unmatched_faces],
    }


def search_users(
    matches: list[UserMatch],
    *,
    face_model_version: str,
    searched_face_id: str | None = None,
    searched_user_id: str | None = None,
) -> Json:
    """SearchUsers' answer: ``SearchedFace`` or ``SearchedUser`` names what was searched with."""
    out: Json = {
        "UserMatches": [_user_match(m) for m in matches],
        "FaceModelVersion": face_model_version,
    }
    if searched_face_id is not None:
        out["SearchedFace"] = {"FaceId": searched_face_id}
    if searched_user_id is not None:
        out["SearchedUser"] = {"UserId": searched_user_id}
    return out

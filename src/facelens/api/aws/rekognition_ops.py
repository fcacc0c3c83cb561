"""The Rekognition operations: request JSON in, service call, Rekognition JSON out.

One function per operation, each a thin adapter: read the parameters with
Rekognition's names and types (:class:`Params`), call
:class:`~facelens.collection.service.CollectionService` or
:class:`~facelens.collection.users.UserService` (the :class:`RekognitionParts`
the route hands them), or, for a change the audit log records (IndexFaces,
DeleteFaces, CreateUser, AssociateFaces, DisassociateFaces, DeleteUser,
DeleteCollection), the
:class:`~facelens.people.gallery.Gallery` acting for the :class:`Caller`,
and shape the answer with :mod:`facelens.rendering.rekognition_json`.
They are synchronous and CPU-bound (decoding, detection, embedding): the
router runs them on a worker thread.

Images come as ``{"Bytes": base64}`` or ``{"S3Object": {"Bucket", "Name"}}``,
the latter read from facelens' own object store (the one cameras upload
crops to), not from AWS. Which role an operation needs is in
:data:`OPERATIONS`: looking and searching need ``read``, changing needs ``admin``.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from facelens.access.keys import Role
from facelens.collection import compare, validation
from facelens.collection.analysis import FaceAnalyzer
from facelens.collection.models import QualityFilter
from facelens.collection.service import (
    DEFAULT_FACE_MATCH_THRESHOLD,
    DEFAULT_SEARCH_MAX_FACES,
    CollectionService,
)
from facelens.collection.stores.store import CollectionStore
from facelens.collection.users import DEFAULT_USER_MATCH_THRESHOLD, UserService, template
from facelens.engine.types import Embedding
from facelens.errors import (
    InvalidParameterException,
    InvalidS3ObjectException,
    ResourceNotFoundException,
)
from facelens.history.audit import Actor
from facelens.people.gallery import Gallery
from facelens.rendering import rekognition_json
from facelens.storage.protocol import ObjectStore

Json = dict[str, Any]


@dataclass(frozen=True)
class RekognitionParts:
    """What the operations on collections use: the collection services, the store they
    search by FaceId or UserId, and facelens' object store, where an image given as
    ``S3Object`` is read."""

    collections: CollectionService
    users: UserService
    store: CollectionStore
    objects: ObjectStore


@dataclass(frozen=True)
class ImageParts:
    """What the operations that only look at the images given use (DetectFaces,
    CompareFaces): the engine and facelens' object store. No collection: so they work on a
    server whose collections are in AWS Rekognition (``rekognition://``), where the
    collection parts cannot be opened and the other operations are refused."""

    analyzer: FaceAnalyzer
    objects: ObjectStore


@dataclass(frozen=True)
class Caller:
    """Who signed the call (the audit log's actor) and the gallery acting for them, which
    records the changes (the caller's key as actor, the operation as ``Via``)."""

    actor: Actor
    gallery: Gallery


_ATTRIBUTE_NAMES = (
    "DEFAULT ALL AGE_RANGE BEARD EMOTIONS EYE_DIRECTION EYEGLASSES EYES_OPEN GENDER "
    "MOUTH_OPEN MUSTACHE FACE_OCCLUDED SMILE SUNGLASSES"
)
ATTRIBUTES = frozenset(_ATTRIBUTE_NAMES.split())
"""Attribute names Rekognition accepts; facelens computes the DEFAULT set for any of them."""


class Params:
    """A request's JSON object, read by Rekognition's parameter names.

    A missing required parameter or a value of the wrong JSON type is
    InvalidParameterException (a modeled error, so SDKs raise their own class).
    """

    def __init__(self, raw: dict[str, Any]) -> None:
        self.raw = raw

    def _get(self, name: str, kind: type | tuple[type, ...], what: str) -> Any:
        value = self.raw.get(name)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, kind):
            raise InvalidParameterException(f"{name} must be {what}")
        return value

    def required(self, name: str) -> Any:
        value = self.raw.get(name)
        if value is None:
            raise InvalidParameterException(f"{name} is required")
        return value

    def string(self, name: str) -> str:
        self.required(name)
        value: str = self._get(name, str, "a string")
        return value

    def optional_string(self, name: str) -> str | None:
        value: str | None = self._get(name, str, "a string")
        return value

    def integer(self, name: str, default: int) -> int:
        value = self._get(name, int, "an integer")
        return default if value is None else int(value)

    def optional_integer(self, name: str) -> int | None:
        value = self._get(name, int, "an integer")
        return None if value is None else int(value)

    def number(self, name: str, default: float) -> float:
        value = self._get(name, (int, float), "a number")
        try:
            return default if value is None else float(value)
        except OverflowError:  # an integer past 1e308: no float holds it
            raise InvalidParameterException(f"{name} is out of range") from None

    def strings(self, name: str) -> list[str]:
        self.required(name)
        value = self.optional_strings(name)
        return value or []

    def optional_strings(self, name: str) -> list[str] | None:
        value: list[str] | None = self._get(name, list, "a list of strings")
        if value is not None and not all(isinstance(v, str) for v in value):
            raise InvalidParameterException(f"{name} must be a list of strings")
        return value

    def quality_filter(self, default: QualityFilter) -> QualityFilter:
        value = self.optional_string("QualityFilter")
        return default if value is None else validation.quality_filter(value)

    def attributes(self, name: str) -> list[str]:
        values = self.optional_strings(name) or ["DEFAULT"]
        unknown = sorted(set(values) - ATTRIBUTES)
        if unknown:
            raise InvalidParameterException(f"{name} has unknown attributes: {', '.join(unknown)}")
        return values

    def image(self, name: str, objects: ObjectStore) -> bytes:
        """The bytes of image parameter ``name``: exactly one of Bytes or S3Object."""
        image = self._get(name, dict, "an object with Bytes or S3Object")
        if image is None:
            raise InvalidParameterException(f"{name} is required")
        has_bytes, has_object = image.get("Bytes") is not None, image.get("S3Object") is not None
        if has_bytes == has_object:
            raise InvalidParameterException(f"{name} needs exactly one of Bytes and S3Object")
        if has_bytes:
            encoded = image["Bytes"]
            if not isinstance(encoded, str):
                raise InvalidParameterException(f"{name}.Bytes must be a base64 string")
            try:
                return base64.b64decode(encoded, validate=True)
            except (binascii.Error, ValueError):
                raise InvalidParameterException(f"{name}.Bytes is not valid base64") from None
        return _s3_object(Params(image).required_object("S3Object"), name, objects)

    def required_object(self, name: str) -> Params:
        value = self._get(name, dict, "an object")
        if value is None:
            raise InvalidParameterException(f"{name} is required")
        return Params(value)


def _s3_object(location: Params, name: str, objects: ObjectStore) -> bytes:
    """An object of facelens' store; any failure to find it is InvalidS3ObjectException."""
    bucket, key = location.string("Bucket"), location.string("Name")
    if location.optional_string("Version") is not None:
        raise InvalidS3ObjectException(
            f"{name}.S3Object.Version: facelens' object store keeps one version per object"
        )
    try:
        return objects.get_object(bucket, key).body
    except (ResourceNotFoundException, InvalidParameterException) as exc:
        raise InvalidS3ObjectException(
            f"Unable to get object metadata from S3. Check object key, region and/or access "
            f"permissions. ({exc.message})"
        ) from exc


# -- collections --


def create_collection(c: RekognitionParts, p: Params, _caller: Caller) -> Json:
    return rekognition_json.create_collection(
        c.collections.create_collection(p.string("CollectionId"))
    )


def describe_collection(c: RekognitionParts, p: Params, _caller: Caller) -> Json:
    return rekognition_json.describe_collection(
        c.collections.describe_collection(p.string("CollectionId"))
    )


def list_collections(c: RekognitionParts, p: Params, _caller: Caller) -> Json:
    page = c.collections.list_collections(
        max_results=p.integer("MaxResults", 1000), next_token=p.optional_string("NextToken")
    )
    return rekognition_json.list_collections(page)


def delete_collection(c: RekognitionParts, p: Params, caller: Caller) -> Json:
    caller.gallery.delete_collection(caller.actor, p.string("CollectionId"))
    return rekognition_json.delete_collection()


# -- faces --


def index_faces(c: RekognitionParts, p: Params, caller: Caller) -> Json:
    collection_id = p.string("CollectionId")
    p.attributes("DetectionAttributes")
    c.collections.require_compatible(collection_id)  # before any engine time
    result = caller.gallery.index_faces(
        caller.actor,
        collection_id,
        p.image("Image", c.objects),
        external_image_id=p.optional_string("ExternalImageId"),
        max_faces=p.optional_integer("MaxFaces"),
        quality_filter=p.quality_filter(QualityFilter.AUTO),
        context={"Via": "IndexFaces"},
    )
    return rekognition_json.index_faces(result)


def search_faces_by_image(c: RekognitionParts, p: Params, _caller: Caller) -> Json:
    collection_id = p.string("CollectionId")
    c.collections.require_compatible(collection_id)
    result = c.collections.search_faces_by_image(
        collection_id,
        p.image("Image", c.objects),
        max_faces=p.integer("MaxFaces", DEFAULT_SEARCH_MAX_FACES),
        face_match_threshold=p.number("FaceMatchThreshold", DEFAULT_FACE_MATCH_THRESHOLD),
        quality_filter=p.quality_filter(QualityFilter.NONE),
    )
    return rekognition_json.search_faces_by_image(result)


def search_faces(c: RekognitionParts, p: Params, _caller: Caller) -> Json:
    result = c.collections.search_faces(
        p.string("CollectionId"),
        p.string("FaceId"),
        max_faces=p.integer("MaxFaces", DEFAULT_SEARCH_MAX_FACES),
        face_match_threshold=p.number("FaceMatchThreshold", DEFAULT_FACE_MATCH_THRESHOLD),
    )
    return rekognition_json.search_faces(result)


def list_faces(c: RekognitionParts, p: Params, _caller: Caller) -> Json:
    page = c.collections.list_faces(
        p.string("CollectionId"),
        max_results=p.integer("MaxResults", 1000),
        next_token=p.optional_string("NextToken"),
        user_id=p.optional_string("UserId"),
        face_ids=p.optional_strings("FaceIds"),
    )
    return rekognition_json.list_faces(page, model_version=c.collections.face_model_version)


def delete_faces(c: RekognitionParts, p: Params, caller: Caller) -> Json:
    result = caller.gallery.delete_faces(
        caller.actor, p.string("CollectionId"), p.strings("FaceIds")
    )
    return rekognition_json.delete_faces(result)


def detect_faces(i: ImageParts, p: Params) -> Json:
    p.attributes("Attributes")
    return rekognition_json.detect_faces(
        compare.detect_faces(i.analyzer, p.image("Image", i.objects))
    )


def compare_faces(i: ImageParts, p: Params) -> Json:
    result = compare.compare_faces(
        i.analyzer,
        p.image("SourceImage", i.objects),
        p.image("TargetImage", i.objects),
        similarity_threshold=p.number("SimilarityThreshold", compare.DEFAULT_SIMILARITY_THRESHOLD),
        quality_filter=p.quality_filter(QualityFilter.NONE),
    )
    return rekognition_json.compare_faces(result)


# -- users --


def create_user(c: RekognitionParts, p: Params, caller: Caller) -> Json:
    caller.gallery.create_user(
        caller.actor, p.string("CollectionId"), p.string("UserId"), context={"Via": "CreateUser"}
    )
    return {}


def delete_user(c: RekognitionParts, p: Params, caller: Caller) -> Json:
    caller.gallery.delete_user(caller.actor, p.string("CollectionId"), p.string("UserId"))
    return {}


def list_users(c: RekognitionParts, p: Params, _caller: Caller) -> Json:
    page = c.users.list_users(
        p.string("CollectionId"),
        max_results=p.integer("MaxResults", 500),
        next_token=p.optional_string("NextToken"),
    )
    return rekognition_json.list_users(page)


def associate_faces(c: RekognitionParts, p: Params, caller: Caller) -> Json:
    result = caller.gallery.associate_faces(
        caller.actor,
        p.string("CollectionId"),
        p.string("UserId"),
        p.strings("FaceIds"),
        user_match_threshold=p.number("UserMatchThreshold", DEFAULT_USER_MATCH_THRESHOLD),
        context={"Via": "AssociateFaces"},
    )
    return rekognition_json.associate_faces(result)


def disassociate_faces(c: RekognitionParts, p: Params, caller: Caller) -> Json:
    result = caller.gallery.disassociate_faces(
        caller.actor,
        p.string("CollectionId"),
        p.string("UserId"),
        p.strings("FaceIds"),
        context={"Via": "DisassociateFaces"},
    )
    return rekognition_json.disassociate_faces(result)


def search_users_by_image(c: RekognitionParts, p: Params, _caller: Caller) -> Json:
    collection_id = p.string("CollectionId")
    c.collections.require_compatible(collection_id)
    result = c.users.search_users_by_image(
        collection_id,
        p.image("Image", c.objects),
        max_users=p.integer("MaxUsers", 10),
        user_match_threshold=p.number("UserMatchThreshold", DEFAULT_USER_MATCH_THRESHOLD),
        quality_filter=p.quality_filter(QualityFilter.NONE),
    )
    return rekognition_json.search_users_by_image(result)


def search_users(c: RekognitionParts, p: Params, _caller: Caller) -> Json:
    """Users like a stored face (FaceId) or like a user's combined template (UserId).

    Searching by UserId leaves that user itself out, as SearchFaces leaves out its face.
    """
    collection_id = p.string("CollectionId")
    user_id, face_id = p.optional_string("UserId"), p.optional_string("FaceId")
    if (user_id is None) == (face_id is None):
        raise InvalidParameterException("SearchUsers needs exactly one of UserId and FaceId")
    max_users = p.integer("MaxUsers", 10)
    threshold = p.number("UserMatchThreshold", DEFAULT_USER_MATCH_THRESHOLD)
    validation.in_range(max_users, "MaxUsers", 1, 500)
    validation.in_range(threshold, "UserMatchThreshold", 0, 100)
    c.collections.require_compatible(collection_id)
    if face_id is not None:
        validation.face_ids([face_id], limit=1)
        probe = c.store.get_embeddings(collection_id, [face_id]).get(face_id)
        if probe is None:
            raise ResourceNotFoundException(f"face {face_id} does not exist in {collection_id}")
        matches = c.users.match_embedding(
            collection_id, probe, limit=max_users, threshold=threshold
        )
    else:
        probe = _user_template(c, collection_id, validation.user_id(str(user_id)))
        matches = c.users.match_embedding(
            collection_id, probe, limit=max_users + 1, threshold=threshold
        )
        matches = [m for m in matches if m.user.user_id != user_id][:max_users]
    return rekognition_json.search_users(
        matches,
        face_model_version=c.collections.face_model_version,
        searched_face_id=face_id,
        searched_user_id=user_id,
    )


def _user_template(c: RekognitionParts, collection_id: str, user_id: str) -> Embedding:
    """The renormalised mean of the user's faces (what the store searches users by)."""
    c.store.get_user(collection_id, user_id)
    face_ids = c.users.face_ids(collection_id, user_id)
    if not face_ids:
        raise InvalidParameterException(f"user {user_id} has no faces to search with")
    return template(list(c.store.get_embeddings(collection_id, face_ids).values()))


# -- the table the router dispatches on --

Handler = Callable[[RekognitionParts, Params, Caller], Json]
ImageHandler = Callable[[ImageParts, Params], Json]


@dataclass(frozen=True)
class Operation:
    """An operation on collections: run on the :class:`RekognitionParts`, for the caller."""

    role: Role
    handler: Handler


@dataclass(frozen=True)
class ImageOperation:
    """An operation that only looks at the images given: run on the :class:`ImageParts`."""

    role: Role
    handler: ImageHandler


OPERATIONS: dict[str, Operation | ImageOperation] = {
    "CreateCollection": Operation(Role.ADMIN, create_collection),
    "DescribeCollection": Operation(Role.READ, describe_collection),
    "ListCollections": Operation(Role.READ, list_collections),
    "DeleteCollection": Operation(Role.ADMIN, delete_collection),
    "IndexFaces": Operation(Role.ADMIN, index_faces),
    "SearchFacesByImage": Operation(Role.READ, search_faces_by_image),
    "SearchFaces": Operation(Role.READ, search_faces),
    "ListFaces": Operation(Role.READ, list_faces),
    "DeleteFaces": Operation(Role.ADMIN, delete_faces),
    "DetectFaces": ImageOperation(Role.READ, detect_faces),
    "CompareFaces": ImageOperation(Role.READ, compare_faces),
    "CreateUser": Operation(Role.ADMIN, create_user),
    "DeleteUser": Operation(Role.ADMIN, delete_user),
    "ListUsers": Operation(Role.READ, list_users),
    "AssociateFaces": Operation(Role.ADMIN, associate_faces),
    "DisassociateFaces": Operation(Role.ADMIN, disassociate_faces),
    "SearchUsersByImage": Operation(Role.READ, search_users_by_image),
    "SearchUsers": Operation(Role.READ, search_users),
}
"""Rekognition operation name (``X-Amz-Target`` after ``RekognitionService.``) -> handler."""

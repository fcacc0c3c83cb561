"""Collections kept by AWS Rekognition: the back-end for running facelens on AWS.

On AWS the faces stay in Rekognition (a collection made by
``deploy/aws/template.yaml``, enrolled with ``aws rekognition index-faces``),
and the recognizer asks Rekognition instead of running its own engine. So
this adapter speaks Rekognition through boto3 and answers in facelens' own
values: :class:`~facelens.collection.models.CollectionInfo`, and
:class:`RemoteFace` for a face, since Rekognition never hands out
embeddings (which is why it is not a :class:`CollectionStore`: that port
stores and searches vectors).

Images travel as ``Bytes`` (Rekognition's limit is 5 MB; crops are tens of
KB), so Rekognition needs no access to the bucket: the function reads the
crop, Rekognition only sees its pixels.

Errors, mapped where they enter facelens: what no retry can fix keeps its
code (``InvalidParameterException`` also means "no face in the image",
``InvalidImageFormatException``, ``ImageTooLargeException``,
``ResourceNotFoundException``, ``ResourceAlreadyExistsException``);
throttling, Rekognition's own failures and an unreachable endpoint are
``ServiceUnavailableException``; anything else, including
``AccessDeniedException`` (a missing IAM permission is fixed by its owner,
and the event must wait for that rather than be dead-lettered) is
``StorageError``. Both of those are retried by the recognizer's worker.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from facelens.aws_clients import DEFAULT_OPTIONS, AwsClient, AwsClientOptions
from facelens.collection import validation
from facelens.collection.models import CollectionInfo, CollectionPage, QualityFilter
from facelens.errors import (
    ConfigurationError,
    FacelensError,
    ImageTooLargeException,
    InvalidImageFormatException,
    InvalidParameterException,
    ResourceAlreadyExistsException,
    ResourceNotFoundException,
    ServiceUnavailableException,
    StorageError,
)
from facelens.values.boxes import BoundingBox

MAX_IMAGE_BYTES = 5 * 1024 * 1024
"""Rekognition's limit for an image passed as Bytes."""

_KEPT_CODES: dict[str, type[FacelensError]] = {
    "InvalidParameterException": InvalidParameterException,
    "InvalidImageFormatException": InvalidImageFormatException,
    "ImageTooLargeException": ImageTooLargeException,
    "ResourceNotFoundException": ResourceNotFoundException,
    "ResourceAlreadyExistsException": ResourceAlreadyExistsException,
}
"""Rekognition's codes that mean the same in facelens (and that no retry can fix)."""

_UNAVAILABLE_CODES = frozenset(
    {
        "ThrottlingException",
        "ProvisionedThroughputExceededException",
        "LimitExceededException",
        "InternalServerError",
        "ServiceUnavailableException",
    }
)
"""Codes that say "later", after botocore's own retries."""


@dataclass(frozen=True, slots=True)
class RemoteFace:
    """A face in a Rekognition collection; ``bounding_box`` is where it was in its photo."""

    face_id: str
    image_id: str | None
    external_image_id: str | None
    user_id: str | None
    bounding_box: BoundingBox | None
    confidence: float | None


@dataclass(frozen=True, slots=True)
class RemoteMatch:
    """similarity: 0-100, Rekognition's own calibration (its FaceMatchThreshold scale)."""

    similarity: float
    face: RemoteFace


@dataclass(frozen=True, slots=True)
class RemoteSearch:
    """The largest face of the image (``searched_box``) and the faces like it, best first."""

    searched_box: BoundingBox
    searched_confidence: float
    matches: tuple[RemoteMatch, ...]
    face_model_version: str


@dataclass(frozen=True, slots=True)
class RemoteIndexResult:
    """Faces stored by one IndexFaces call, and the reasons for each face left out."""

    faces: tuple[RemoteFace, ...]
    unindexed_reasons: tuple[tuple[str, ...], ...]
    face_model_version: str


@dataclass(frozen=True, slots=True)
class RemoteFacePage:
    faces: tuple[RemoteFace, ...]
    next_token: str | None


class RekognitionCollections:
    """Rekognition's collection operations, called through one boto3 client.

    ``aws``: where Rekognition is (region and endpoint None: boto3's chain,
    e.g. ``AWS_REGION`` in Lambda, ``AWS_ENDPOINT_URL_REKOGNITION``), and
    the timeouts and attempts (see :mod:`facelens.aws_clients`).
    ``client``: a ready boto3 client (tests with botocore's Stubber); it is
    then not closed here.
    """

    def __init__(self, *, aws: AwsClientOptions = DEFAULT_OPTIONS, client: Any = None) -> None:
        self.aws = AwsClient("rekognition", aws, client=client)

    # -- collections --

    def create_collection(self, collection_id: str) -> CollectionInfo:
        validation.collection_id(collection_id)
        response = self._call("create_collection", CollectionId=collection_id)
        now = datetime.now(UTC)
        return CollectionInfo(collection_id, str(response.get("FaceModelVersion", "")), now, 0, 0)

    def describe_collection(self, collection_id: str) -> CollectionInfo:
        validation.collection_id(collection_id)
        response = self._call("describe_collection", CollectionId=collection_id)
        created = response.get("CreationTimestamp")
        return CollectionInfo(
            collection_id,
            str(response.get("FaceModelVersion", "")),
            _utc(created) if isinstance(created, datetime) else datetime.now(UTC),
            int(response.get("FaceCount", 0)),
            int(response.get("UserCount", 0)),
        )

    def list_collections(
        self, *, max_results: int = 1000, next_token: str | None = None
    ) -> CollectionPage:
        validation.in_range(max_results, "MaxResults", 1, 4096)
        response = self._call("list_collections", MaxResults=max_results, **_token(next_token))
        return CollectionPage(
            [str(c) for c in response.get("CollectionIds", [])],
            [str(v) for v in response.get("FaceModelVersions", [])],
            response.get("NextToken"),
        )

    def delete_collection(self, collection_id: str) -> None:
        self._call("delete_collection", CollectionId=validation.collection_id(collection_id))

    # -- faces --

    def index_faces(
        self,
        collection_id: str,
        image: bytes,
        *,
        external_image_id: str | None = None,
        max_faces: int | None = None,
        quality_filter: QualityFilter = QualityFilter.AUTO,
    ) -> RemoteIndexResult:
        validation.collection_id(collection_id)
        validation.external_image_id(external_image_id)
        options: dict[str, Any] = {"QualityFilter": quality_filter.value}
        if external_image_id is not None:
            options["ExternalImageId"] = external_image_id
        if max_faces is not None:
            validation.in_range(max_faces, "MaxFaces", 1, 4096)
            options["MaxFaces"] = max_faces
        response = self._call(
            "index_faces", CollectionId=collection_id, Image=_image(image), **options
        )
        return RemoteIndexResult(
            tuple(_face(record.get("Face", {})) for record in response.get("FaceRecords", [])),
            tuple(
                tuple(str(r) for r in unindexed.get("Reasons", []))
                for unindexed in response.get("UnindexedFaces", [])
            ),
            str(response.get("FaceModelVersion", "")),
        )

    def search_faces_by_image(
        self,
        collection_id: str,
        image: bytes,
        *,
        max_faces: int = 10,
        face_match_threshold: float = 80.0,
        quality_filter: QualityFilter = QualityFilter.NONE,
    ) -> RemoteSearch:
        """Searches with the largest face; an image without one is InvalidParameterException."""
        validation.collection_id(collection_id)
        validation.in_range(max_faces, "MaxFaces", 1, 4096)
        validation.in_range(face_match_threshold, "FaceMatchThreshold", 0, 100)
        response = self._call(
            "search_faces_by_image",
            CollectionId=collection_id,
            Image=_image(image),
            MaxFaces=max_faces,
            FaceMatchThreshold=face_match_threshold,
            QualityFilter=quality_filter.value,
        )
        box = _box(response.get("SearchedFaceBoundingBox"))
        if box is None:
            raise StorageError("Rekognition answered a search without SearchedFaceBoundingBox")
        matches = sorted(
            (
                RemoteMatch(float(m.get("Similarity", 0.0)), _face(m.get("Face", {})))
                for m in response.get("FaceMatches", [])
            ),
            key=lambda match: -match.similarity,
        )
        return RemoteSearch(
            box,
            float(response.get("SearchedFaceConfidence", 0.0)),
            tuple(matches),
            str(response.get("FaceModelVersion", "")),
        )

    def list_faces(
        self,
        collection_id: str,
        *,
        max_results: int = 1000,
        next_token: str | None = None,
        user_id: str | None = None,
    ) -> RemoteFacePage:
        validation.collection_id(collection_id)
        validation.in_range(max_results, "MaxResults", 1, 4096)
        options: dict[str, Any] = _token(next_token)
        if user_id is not None:
            options["UserId"] = validation.user_id(user_id)
        response = self._call(
            "list_faces", CollectionId=collection_id, MaxResults=max_results, **options
        )
        faces = tuple(_face(face) for face in response.get("Faces", []))
        return RemoteFacePage(faces, response.get("NextToken"))

    def delete_faces(self, collection_id: str, face_ids: Sequence[str]) -> list[str]:
        """Deletes the faces; returns the ids Rekognition deleted (unknown ids are not)."""
        validation.collection_id(collection_id)
        ids = validation.face_ids(face_ids, limit=4096)
        response = self._call("delete_faces", CollectionId=collection_id, FaceIds=ids)
        return [str(face_id) for face_id in response.get("DeletedFaces", [])]

    def close(self) -> None:
        self.aws.close()

    # -- plumbing --

    def _call(self, operation: str, **kwargs: Any) -> dict[str, Any]:
        with self._errors(operation):
            result: dict[str, Any] = getattr(self.aws.get(), operation)(**kwargs)
        return result

    @contextmanager
    def _errors(self, operation: str) -> Iterator[None]:
        from botocore.exceptions import BotoCoreError, ClientError, HTTPClientError
        from botocore.exceptions import ConnectionError as BotoConnectionError

        try:
            yield
        except (BotoConnectionError, HTTPClientError) as exc:
            raise ServiceUnavailableException(f"Rekognition is unreachable: {exc}") from exc
        except ClientError as exc:
            error = exc.response.get("Error", {})
            code = str(error.get("Code", "Unknown"))
            message = str(error.get("Message") or exc)
            kept = _KEPT_CODES.get(code)
            if kept is not None:
                raise kept(message) from exc
            if code in _UNAVAILABLE_CODES:
                raise ServiceUnavailableException(
                    f"Rekognition is unavailable ({operation}): {code}: {message}"
                ) from exc
            raise StorageError(f"Rekognition {operation} failed: {code}: {message}") from exc
        except BotoCoreError as exc:
            raise StorageError(f"Rekognition {operation} failed: {exc}") from exc


def _image(image: bytes) -> dict[str, bytes]:
    if not image:
        raise InvalidImageFormatException("The image is empty (0 bytes)")
    if len(image) > MAX_IMAGE_BYTES:
        raise ImageTooLargeException(
            f"The image is {len(image)} bytes; Rekognition takes at most {MAX_IMAGE_BYTES} as Bytes"
        )
    return {"Bytes": image}


def _token(next_token: str | None) -> dict[str, str]:
    return {} if next_token is None else {"NextToken": next_token}


def _face(face: Mapping[str, Any]) -> RemoteFace:
    confidence = face.get("Confidence")
    return RemoteFace(
        face_id=str(face.get("FaceId", "")),
        image_id=face.get("ImageId"),
        external_image_id=face.get("ExternalImageId"),
        user_id=face.get("UserId"),
        bounding_box=_box(face.get("BoundingBox")),
        confidence=None if confidence is None else float(confidence),
    )


def _box(box: Any) -> BoundingBox | None:
    if not isinstance(box, Mapping):
        return None
    return BoundingBox(
        width=float(box.get("Width", 0.0)),
        height=float(box.get("Height", 0.0)),
        left=float(box.get("Left", 0.0)),
        top=float(box.get("Top", 0.0)),
    )


def _utc(value: datetime) -> datetime:
    return value.astimezone(UTC) if value.tzinfo is not None else value.replace(tzinfo=UTC)


def open_rekognition(url: str) -> RekognitionCollections:
    """The back-end for 'rekognition://' with optional '?region=...&endpoint_url=...'.

    Without options the region and endpoint come from boto3's chain (in
    Lambda: ``AWS_REGION``; elsewhere also ``AWS_ENDPOINT_URL_REKOGNITION``).
    """
    from urllib.parse import urlsplit

    from facelens.urls import url_options

    parts = urlsplit(url)
    if parts.scheme != "rekognition" or parts.netloc or parts.path not in ("", "/"):
        raise ConfigurationError(
            f"rekognition URL {url!r} must be 'rekognition://' with an optional "
            "'?region=...&endpoint_url=...'"
        )
    options = url_options(url, known=("region", "endpoint_url"))
    return RekognitionCollections(
        aws=AwsClientOptions(region=options.get("region"), endpoint_url=options.get("endpoint_url"))
    )

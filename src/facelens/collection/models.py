"""Values that cross the collection boundary.

Rekognition-shaped dicts are built only by facelens.rendering.rekognition_json.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from facelens.collection.sources import FaceSource
from facelens.engine.types import Embedding, FaceDetail
from facelens.values.boxes import BoundingBox


class UserStatus(StrEnum):
    """Rekognition's user states: CREATED until a face is associated, then ACTIVE."""

    CREATED = "CREATED"
    ACTIVE = "ACTIVE"


class QualityFilter(StrEnum):
    NONE = "NONE"
    AUTO = "AUTO"
    LOW = "LOW"
    MEDIUM = "MEDIUM"
    HIGH = "HIGH"


class UnindexedReason(StrEnum):
    """Why a face was not indexed (IndexFaces) or not searched (SearchUsersByImage)."""

    FACE_NOT_LARGEST = "FACE_NOT_LARGEST"
    EXCEEDS_MAX_FACES = "EXCEEDS_MAX_FACES"
    EXTREME_POSE = "EXTREME_POSE"
    LOW_BRIGHTNESS = "LOW_BRIGHTNESS"
    LOW_SHARPNESS = "LOW_SHARPNESS"
    LOW_CONFIDENCE = "LOW_CONFIDENCE"
    SMALL_BOUNDING_BOX = "SMALL_BOUNDING_BOX"


@dataclass(frozen=True, slots=True)
class CollectionInfo:
    collection_id: str
    face_model_version: str
    created_at: datetime
    face_count: int
    user_count: int


@dataclass(frozen=True, slots=True)
class CollectionPage:
    collection_ids: list[str]
    face_model_versions: list[str]
    next_token: str | None


@dataclass(frozen=True, slots=True)
class NewFace:
    """A face about to be stored; ids are minted by the service (UUID4 strings).

    ``source``: the crop it can be embedded again from (stored with it); None when
    there are no pixels at hand or ``keep_face_sources`` is off.
    """

    face_id: str
    image_id: str
    external_image_id: str | None
    bounding_box: BoundingBox
    confidence: float
    embedding: Embedding
    source: FaceSource | None = None


@dataclass(frozen=True, slots=True)
class StoredFace:
    """A face as stored in a collection (without its embedding)."""

    face_id: str
    image_id: str
    external_image_id: str | None
    bounding_box: BoundingBox
    confidence: float
    user_id: str | None
    indexed_at: datetime


@dataclass(frozen=True, slots=True)
class FacePage:
    faces: list[StoredFace]
    next_token: str | None


@dataclass(frozen=True, slots=True)
class UserInfo:
    user_id: str
    status: UserStatus
    face_count: int


@dataclass(frozen=True, slots=True)
class UserPage:
    users: list[UserInfo]
    next_token: str | None


@dataclass(frozen=True, slots=True)
class FaceNeighbor:
    """A stored face near a query; distance is Euclidean between unit vectors (0-2)."""

    face: StoredFace
    distance: float


@dataclass(frozen=True, slots=True)
class UserNeighbor:
    """A user near a query, by distance to the user's combined template (0-2)."""

    user: UserInfo
    distance: float


# --- results of the service operations (converted to Rekognition JSON at the edge) ---


@dataclass(frozen=True, slots=True)
class FaceMatch:
    """similarity: 0-100, calibrated (see facelens.collection.similarity)."""

    similarity: float
    face: StoredFace


@dataclass(frozen=True, slots=True)
class UserMatch:
    similarity: float
    user: UserInfo


@dataclass(frozen=True, slots=True)
class IndexedFace:
    face: StoredFace
    detail: FaceDetail


@dataclass(frozen=True, slots=True)
class UnindexedFace:
    reasons: tuple[UnindexedReason, ...]
    detail: FaceDetail


@dataclass(frozen=True, slots=True)
class IndexFacesResult:
    face_records: list[IndexedFace]
    unindexed_faces: list[UnindexedFace]
    face_model_version: str


@dataclass(frozen=True, slots=True)
class SearchByImageResult:
    searched_face: FaceDetail
    face_matches: list[FaceMatch]
    face_model_version: str


@dataclass(frozen=True, slots=True)
class SearchByIdResult:
    searched_face_id: str
    face_matches: list[FaceMatch]
    face_model_version: str


@dataclass(frozen=True, slots=True)
class SearchUsersResult:
    searched_face: FaceDetail
    user_matches: list[UserMatch]
    unsearched_faces: list[UnindexedFace]
    face_model_version: str


@dataclass(frozen=True, slots=True)
class FaceDeletionFailure:
    face_id: str
    user_id: str | None
    reasons: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class DeleteFacesResult:
    deleted_faces: list[str]
    unsuccessful: list[FaceDeletionFailure]


@dataclass(frozen=True, slots=True)
class FaceAssociationFailure:
    face_id: str
    user_id: str | None
    confidence: float | None
    reasons: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class AssociateFacesResult:
    associated_face_ids: list[str]
    unsuccessful: list[FaceAssociationFailure]
    user_status: UserStatus


@dataclass(frozen=True, slots=True)
class DisassociateFacesResult:
    disassociated_face_ids: list[str]
    unsuccessful: list[FaceAssociationFailure]
    user_status: UserStatus

"""The collection store port: collections, faces, users and nearest-neighbour search.

The store knows nothing of pixels or similarity calibration: it keeps unit
embeddings and answers in Euclidean distance (0-2). The service
(:mod:`facelens.collection.service`) turns images into embeddings and
distances into Rekognition similarities.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol

from facelens.collection.models import (
    CollectionInfo,
    CollectionPage,
    FaceNeighbor,
    FacePage,
    NewFace,
    StoredFace,
    UserInfo,
    UserNeighbor,
    UserPage,
)
from facelens.collection.sources import FaceSource
from facelens.engine.types import Embedding


class CollectionStore(Protocol):
    """Durable collections of faces and users.

    Every method raises ``ResourceNotFoundException`` for an unknown
    collection, and ``StorageError`` when the back end fails underneath.
    """

    def close(self) -> None: ...

    # -- collections --
    def create_collection(self, collection_id: str, *, face_model_version: str) -> CollectionInfo:
        """Raises ResourceAlreadyExistsException when the id is taken."""
        ...

    def describe_collection(self, collection_id: str) -> CollectionInfo: ...

    def list_collections(
        self, *, max_results: int, next_token: str | None = None
    ) -> CollectionPage: ...

    def delete_collection(self, collection_id: str) -> None:
        """Deletes the collection with all its faces and users."""
        ...

    # -- faces --
    def add_faces(
        self,
        collection_id: str,
        faces: Sequence[NewFace],
        *,
        face_model_version: str | None = None,
    ) -> list[StoredFace]:
        """Stores all faces, and the sources of those that have one, in one transaction:
        all or none.

        ``face_model_version``: the model that made the embeddings; when given, a
        collection of another model refuses them (InvalidParameterException), checked
        in the same transaction, so a process still on the old engine cannot add to a
        collection that ``reindex`` has just moved to a new one.
        """
        ...

    def get_faces(self, collection_id: str, face_ids: Sequence[str]) -> dict[str, StoredFace]:
        """The stored faces among ``face_ids`` (unknown ids are simply absent)."""
        ...

    def get_embeddings(
        self, collection_id: str, face_ids: Sequence[str]
    ) -> dict[str, Embedding]: ...

    def get_sources(self, collection_id: str, face_ids: Sequence[str]) -> dict[str, FaceSource]:
        """The sources kept for ``face_ids`` (a face without one, or unknown, is absent)."""
        ...

    def replace_embeddings(
        self,
        collection_id: str,
        embeddings: Mapping[str, Embedding],
        *,
        face_model_version: str,
        delete: Sequence[str] = (),
    ) -> None:
        """Re-embeds the collection in one transaction: deletes the faces ``delete``
        (with their sources), gives every other face its vector from ``embeddings``
        and sets the collection's model version. Users' templates follow, since they
        are means of their faces' vectors.

        ``embeddings`` must cover every face that is left (ids no longer there are
        ignored): ConflictException otherwise, nothing changed, since a face added
        meanwhile would keep a vector of the old model. Vectors must be 1-D and of one
        dimension (InvalidParameterException), which may differ from the old one.
        """
        ...

    def list_faces(
        self,
        collection_id: str,
        *,
        max_results: int,
        next_token: str | None = None,
        user_id: str | None = None,
        face_ids: Sequence[str] | None = None,
    ) -> FacePage:
        """Faces ordered by FaceId; ``next_token`` resumes after the last one returned.

        Raises InvalidParameterException for a token that is not ours.
        """
        ...

    def delete_faces(self, collection_id: str, face_ids: Sequence[str]) -> list[str]:
        """Deletes the faces that exist (associated or not); returns the deleted ids."""
        ...

    def search_faces(
        self, collection_id: str, query: Embedding, *, limit: int, max_distance: float
    ) -> list[FaceNeighbor]:
        """Up to ``limit`` faces within ``max_distance``, nearest first. Exact by default."""
        ...

    # -- users --
    def create_user(self, collection_id: str, user_id: str) -> UserInfo:
        """Raises ConflictException when the user id is taken (as Rekognition does)."""
        ...

    def get_user(self, collection_id: str, user_id: str) -> UserInfo:
        """Raises ResourceNotFoundException for an unknown user."""
        ...

    def list_users(
        self, collection_id: str, *, max_results: int, next_token: str | None = None
    ) -> UserPage: ...

    def delete_user(self, collection_id: str, user_id: str) -> None:
        """Deletes the user; its faces stay in the collection, unassociated (as in Rekognition)."""
        ...

    def associate_faces(self, collection_id: str, user_id: str, face_ids: Sequence[str]) -> None:
        """Sets ``user_id`` on the faces (the service has checked them first)."""
        ...

    def disassociate_faces(
        self, collection_id: str, user_id: str, face_ids: Sequence[str]
    ) -> None: ...

    def search_users(
        self, collection_id: str, query: Embedding, *, limit: int, max_distance: float
    ) -> list[UserNeighbor]:
        """Users by distance to their combined template (the renormalised mean of their faces)."""
        ...

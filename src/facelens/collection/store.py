"""The collection store port: collections, faces, users and nearest-neighbour search.

The store knows nothing of pixels or similarity calibration: it keeps unit
embeddings and answers in Euclidean distance (0-2). The service
(:mod:`facelens.collection.service`) turns images into embeddings and
distances into Rekognition similarities.
"""

from __future__ import annotations

from collections.abc import Sequence
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
    def add_faces(self, collection_id: str, faces: Sequence[NewFace]) -> list[StoredFace]:
        """Stores all faces in one transaction: all or none."""
        ...

    def get_faces(self, collection_id: str, face_ids: Sequence[str]) -> dict[str, StoredFace]:
        """The stored faces among ``face_ids`` (unknown ids are simply absent)."""
        ...

    def get_embeddings(
        self, collection_id: str, face_ids: Sequence[str]
    ) -> dict[str, Embedding]: ...

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

"""Rekognition's users: one person owning several faces, searched as one.

A user is matched through its combined template, the renormalised mean of
its faces' embeddings: averaging cancels lighting, pose and expression that
single photos carry, so a user with several enrolled faces is found more
reliably than by its nearest single face.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from facelens.collection import validation
from facelens.collection.analysis import FaceAnalyzer, ImageInput
from facelens.collection.models import (
    AssociateFacesResult,
    DisassociateFacesResult,
    FaceAssociationFailure,
    QualityFilter,
    SearchUsersResult,
    UnindexedFace,
    UnindexedReason,
    UserInfo,
    UserMatch,
    UserPage,
)
from facelens.collection.service import CollectionService
from facelens.collection.similarity import distance_for_similarity, similarity
from facelens.collection.stores.store import CollectionStore
from facelens.engine.types import Embedding

DEFAULT_USER_MATCH_THRESHOLD = 75.0
MAX_FACES_PER_USER = 100


def template(embeddings: Sequence[Embedding]) -> Embedding:
    """The unit mean of ``embeddings``: a user's combined face (what users are matched on)."""
    mean = np.mean(np.stack(embeddings), axis=0).astype(np.float32)
    unit: Embedding = mean / np.float32(max(float(np.linalg.norm(mean)), 1e-12))
    return unit


class UserService:
    """CreateUser, AssociateFaces, DisassociateFaces, ListUsers, DeleteUser, SearchUsersByImage."""

    def __init__(
        self, collections: CollectionService, analyzer: FaceAnalyzer, store: CollectionStore
    ) -> None:
        self.collections = collections
        self.analyzer = analyzer
        self.store = store

    def create_user(self, collection_id: str, user_id: str) -> UserInfo:
        validation.collection_id(collection_id)
        return self.store.create_user(collection_id, validation.user_id(user_id))

    def list_users(
        self, collection_id: str, *, max_results: int = 500, next_token: str | None = None
    ) -> UserPage:
        validation.in_range(max_results, "MaxResults", 1, 500)
        return self.store.list_users(
            validation.collection_id(collection_id), max_results=max_results, next_token=next_token
        )

    def delete_user(
        self, collection_id: str, user_id: str, *, delete_faces: bool = False
    ) -> list[str]:
        """Deletes the user. Its faces stay, unassociated (Rekognition), unless ``delete_faces``:
        then they are deleted too, so that deleting a person forgets their biometrics.
        Returns the ids of the faces deleted.
        """
        validation.collection_id(collection_id)
        validation.user_id(user_id)
        self.store.get_user(collection_id, user_id)
        face_ids = self.face_ids(collection_id, user_id) if delete_faces else []
        self.store.delete_user(collection_id, user_id)
        return self.store.delete_faces(collection_id, face_ids) if face_ids else []

    def associate_faces(
        self,
        collection_id: str,
        user_id: str,
        face_ids: Sequence[str],
        *,
        user_match_threshold: float = DEFAULT_USER_MATCH_THRESHOLD,
    ) -> AssociateFacesResult:
        """Adds faces to a user; each must match the user's faces at ``user_match_threshold``.

        A user without faces is seeded by the first valid face given; every
        further face is checked against the template of those accepted so far.
        """
        validation.collection_id(collection_id)
        validation.user_id(user_id)
        ids = validation.face_ids(face_ids, limit=100)
        validation.in_range(user_match_threshold, "UserMatchThreshold", 0, 100)
        self.store.get_user(collection_id, user_id)
        owned = self.face_ids(collection_id, user_id)
        members = list(self.store.get_embeddings(collection_id, owned).values()) if owned else []
        faces = self.store.get_faces(collection_id, ids)
        embeddings = self.store.get_embeddings(collection_id, ids)
        max_distance = distance_for_similarity(user_match_threshold)
        accepted: list[str] = []
        failures: list[FaceAssociationFailure] = []
        for face_id in ids:
            face = faces.get(face_id)
            if face is None:
                failures.append(FaceAssociationFailure(face_id, None, None, ("FACE_NOT_FOUND",)))
                continue
            if face.user_id == user_id:
                accepted.append(face_id)
                continue
            if face.user_id is not None:
                failures.append(
                    FaceAssociationFailure(
                        face_id, face.user_id, None, ("ASSOCIATED_TO_A_DIFFERENT_USER",)
                    )
                )
                continue
            if len(owned) + len(accepted) >= MAX_FACES_PER_USER:
                failures.append(
                    FaceAssociationFailure(face_id, None, None, ("USER_FACE_LIMIT_EXCEEDED",))
                )
                continue
            embedding = embeddings[face_id]
            if members:
                distance = float(np.linalg.norm(template(members) - embedding))
                if distance > max_distance:
                    failures.append(
                        FaceAssociationFailure(
                            face_id, None, similarity(distance), ("LOW_MATCH_CONFIDENCE",)
                        )
                    )
                    continue
            members.append(embedding)
            accepted.append(face_id)
        new = [f for f in accepted if faces[f].user_id != user_id]
        if new:
            self.store.associate_faces(collection_id, user_id, new)
        status = self.store.get_user(collection_id, user_id).status
        return AssociateFacesResult(accepted, failures, status)

    def disassociate_faces(
        self, collection_id: str, user_id: str, face_ids: Sequence[str]
    ) -> DisassociateFacesResult:
        validation.collection_id(collection_id)
        validation.user_id(user_id)
        ids = validation.face_ids(face_ids, limit=100)
        self.store.get_user(collection_id, user_id)
        faces = self.store.get_faces(collection_id, ids)
        done: list[str] = []
        failures: list[FaceAssociationFailure] = []
        for face_id in ids:
            face = faces.get(face_id)
            if face is None:
                failures.append(FaceAssociationFailure(face_id, None, None, ("FACE_NOT_FOUND",)))
            elif face.user_id not in (None, user_id):
                failures.append(
                    FaceAssociationFailure(
                        face_id, face.user_id, None, ("ASSOCIATED_TO_A_DIFFERENT_USER",)
                    )
                )
            else:
                done.append(face_id)
        if done:
            self.store.disassociate_faces(collection_id, user_id, done)
        status = self.store.get_user(collection_id, user_id).status
        return DisassociateFacesResult(done, failures, status)

    def search_users_by_image(
        self,
        collection_id: str,
        image: ImageInput,
        *,
        max_users: int = 10,
        user_match_threshold: float = DEFAULT_USER_MATCH_THRESHOLD,
        quality_filter: QualityFilter = QualityFilter.NONE,
    ) -> SearchUsersResult:
        """Searches users with the largest face; the other faces come back as unsearched."""
        validation.in_range(max_users, "MaxUsers", 1, 500)
        validation.in_range(user_match_threshold, "UserMatchThreshold", 0, 100)
        self.collections.require_compatible(collection_id)
        probe = self.analyzer.probe(image, quality_filter)
        matches = self.match_embedding(
            collection_id, probe.embedding, limit=max_users, threshold=user_match_threshold
        )
        unsearched = [
            UnindexedFace((UnindexedReason.FACE_NOT_LARGEST,), other) for other in probe.others
        ]
        return SearchUsersResult(
            probe.detail, matches, unsearched, self.collections.face_model_version
        )

    def match_embedding(
        self, collection_id: str, embedding: Embedding, *, limit: int, threshold: float
    ) -> list[UserMatch]:
        """Users whose template is at ``threshold`` similarity (0-100) or above, best first."""
        neighbors = self.store.search_users(
            collection_id,
            embedding,
            limit=limit,
            max_distance=distance_for_similarity(threshold),
        )
        return [UserMatch(similarity(n.distance), n.user) for n in neighbors]

    def face_ids(self, collection_id: str, user_id: str) -> list[str]:
        """Every FaceId associated with ``user_id`` (read page by page)."""
        ids: list[str] = []
        token: str | None = None
        while True:
            page = self.store.list_faces(
                collection_id, max_results=1000, next_token=token, user_id=user_id
            )
            ids.extend(f.face_id for f in page.faces)
            token = page.next_token
            if token is None:
                return ids

"""Rekognition's collection operations on a face engine and a collection store.

Sizes and defaults follow Rekognition: FaceMatchThreshold 80 (similarity
0-100, see :mod:`facelens.collection.similarity`), MaxFaces 1-4096,
ListFaces MaxResults 1-4096 (default 1000).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from facelens.collection import validation
from facelens.collection.analysis import FaceAnalyzer, ImageInput, IndexPlan
from facelens.collection.models import (
    CollectionInfo,
    CollectionPage,
    DeleteFacesResult,
    FaceDeletionFailure,
    FaceMatch,
    FacePage,
    IndexedFace,
    IndexFacesResult,
    NewFace,
    QualityFilter,
    SearchByIdResult,
    SearchByImageResult,
)
from facelens.collection.similarity import distance_for_similarity, similarity
from facelens.collection.sources import FaceSource
from facelens.collection.stores.store import CollectionStore
from facelens.engine.types import Embedding
from facelens.errors import InvalidParameterException, ResourceNotFoundException

DEFAULT_FACE_MATCH_THRESHOLD = 80.0
DEFAULT_SEARCH_MAX_FACES = 10
MAX_FACES_LIMIT = 4096


class CollectionService:
    """CreateCollection ... DeleteFaces, with Rekognition's semantics."""

    def __init__(self, analyzer: FaceAnalyzer, store: CollectionStore) -> None:
        self.analyzer = analyzer
        self.store = store
        # Collections already checked to hold this engine's embeddings. A model
        # version never changes, and describing counts every face (63 ms at 1M),
        # so the check is paid once per collection, not per call.
        self._compatible: set[str] = set()

    @property
    def face_model_version(self) -> str:
        return self.analyzer.engine.model_version

    # -- collections --

    def create_collection(self, collection_id: str) -> CollectionInfo:
        validation.collection_id(collection_id)
        return self.store.create_collection(
            collection_id, face_model_version=self.face_model_version
        )

    def describe_collection(self, collection_id: str) -> CollectionInfo:
        return self.store.describe_collection(validation.collection_id(collection_id))

    def list_collections(
        self, *, max_results: int = 1000, next_token: str | None = None
    ) -> CollectionPage:
        validation.in_range(max_results, "MaxResults", 1, 4096)
        return self.store.list_collections(max_results=max_results, next_token=next_token)

    def delete_collection(self, collection_id: str) -> None:
        self._compatible.discard(collection_id)
        self.store.delete_collection(validation.collection_id(collection_id))

    def require_compatible(self, collection_id: str) -> None:
        """Checks the collection exists and holds embeddings of this engine's model.

        Raises ResourceNotFoundException or InvalidParameterException; called
        before detection so a bad collection id costs no engine time.
        """
        if collection_id in self._compatible:
            return
        info = self.describe_collection(collection_id)
        if info.face_model_version != self.face_model_version:
            raise InvalidParameterException(
                f"collection {collection_id} holds {info.face_model_version} faces; "
                f"this engine makes {self.face_model_version} embeddings, which do not compare"
            )
        self._compatible.add(collection_id)

    # -- faces --

    def index_faces(
        self,
        collection_id: str,
        image: ImageInput,
        *,
        external_image_id: str | None = None,
        max_faces: int | None = None,
        quality_filter: QualityFilter = QualityFilter.AUTO,
    ) -> IndexFacesResult:
        """Detects faces, stores those that pass the filter (largest first, up to max_faces).

        All faces of one image share one ImageId. An image without faces is not
        an error: both lists come back empty, as in Rekognition.
        """
        validation.external_image_id(external_image_id)
        if max_faces is not None:
            validation.in_range(max_faces, "MaxFaces", 1, MAX_FACES_LIMIT)
        self.require_compatible(collection_id)
        plan = self.analyzer.plan_index(image, max_faces=max_faces, quality_filter=quality_filter)
        return self.store_plan(collection_id, plan, external_image_id=external_image_id)

    def store_plan(
        self, collection_id: str, plan: IndexPlan, *, external_image_id: str | None = None
    ) -> IndexFacesResult:
        """Stores the faces of a plan under fresh FaceIds and one shared ImageId, each with
        its source when the plan has them. A collection that has moved to another model
        since it was checked (``reindex`` by another process) refuses the faces."""
        validation.external_image_id(external_image_id)
        image_id = str(uuid.uuid4())
        sources: list[FaceSource | None] = [*plan.sources] or [None] * len(plan.keep)
        new = [
            NewFace(
                face_id=str(uuid.uuid4()),
                image_id=image_id,
                external_image_id=external_image_id,
                bounding_box=detail.bounding_box,
                confidence=detail.confidence,
                embedding=embedding,
                source=source,
            )
            for detail, embedding, source in zip(plan.keep, plan.embeddings, sources, strict=True)
        ]
        try:
            stored = (
                self.store.add_faces(collection_id, new, face_model_version=self.face_model_version)
                if new
                else []
            )
        except InvalidParameterException:
            self._compatible.discard(collection_id)  # checked afresh next time
            raise
        records = [IndexedFace(face, d) for face, d in zip(stored, plan.keep, strict=True)]
        return IndexFacesResult(records, plan.unindexed, self.face_model_version)

    def search_faces_by_image(
        self,
        collection_id: str,
        image: ImageInput,
        *,
        max_faces: int = DEFAULT_SEARCH_MAX_FACES,
        face_match_threshold: float = DEFAULT_FACE_MATCH_THRESHOLD,
        quality_filter: QualityFilter = QualityFilter.NONE,
    ) -> SearchByImageResult:
        """Searches with the largest face in the image; no face is InvalidParameterException."""
        validation.in_range(max_faces, "MaxFaces", 1, MAX_FACES_LIMIT)
        validation.in_range(face_match_threshold, "FaceMatchThreshold", 0, 100)
        self.require_compatible(collection_id)
        probe = self.analyzer.probe(image, quality_filter)
        matches = self.match_embedding(
            collection_id, probe.embedding, limit=max_faces, threshold=face_match_threshold
        )
        return SearchByImageResult(probe.detail, matches, self.face_model_version)

    def search_faces(
        self,
        collection_id: str,
        face_id: str,
        *,
        max_faces: int = DEFAULT_SEARCH_MAX_FACES,
        face_match_threshold: float = DEFAULT_FACE_MATCH_THRESHOLD,
    ) -> SearchByIdResult:
        """Faces like a stored one (never the face itself)."""
        validation.face_ids([face_id], limit=1)
        validation.in_range(max_faces, "MaxFaces", 1, MAX_FACES_LIMIT)
        validation.in_range(face_match_threshold, "FaceMatchThreshold", 0, 100)
        embedding = self.store.get_embeddings(collection_id, [face_id]).get(face_id)
        if embedding is None:
            raise ResourceNotFoundException(
                f"face {face_id} does not exist in collection {collection_id}"
            )
        matches = self.match_embedding(
            collection_id,
            embedding,
            limit=max_faces + 1,
            threshold=face_match_threshold,
            exclude=face_id,
        )
        return SearchByIdResult(face_id, matches[:max_faces], self.face_model_version)

    def list_faces(
        self,
        collection_id: str,
        *,
        max_results: int = 1000,
        next_token: str | None = None,
        user_id: str | None = None,
        face_ids: Sequence[str] | None = None,
    ) -> FacePage:
        validation.in_range(max_results, "MaxResults", 1, 4096)
        if user_id is not None:
            validation.user_id(user_id)
        ids = validation.face_ids(face_ids, limit=4096) if face_ids else None
        return self.store.list_faces(
            validation.collection_id(collection_id),
            max_results=max_results,
            next_token=next_token,
            user_id=user_id,
            face_ids=ids,
        )

    def delete_faces(self, collection_id: str, face_ids: Sequence[str]) -> DeleteFacesResult:
        """Deletes unassociated faces; a face that belongs to a user must be disassociated first."""
        ids = validation.face_ids(face_ids, limit=4096)
        found = self.store.get_faces(validation.collection_id(collection_id), ids)
        failures = []
        deletable = []
        for face_id in ids:
            face = found.get(face_id)
            if face is None:
                failures.append(FaceDeletionFailure(face_id, None, ("FACE_NOT_FOUND",)))
            elif face.user_id is not None:
                failures.append(
                    FaceDeletionFailure(face_id, face.user_id, ("ASSOCIATED_TO_AN_EXISTING_USER",))
                )
            else:
                deletable.append(face_id)
        deleted = self.store.delete_faces(collection_id, deletable) if deletable else []
        return DeleteFacesResult(deleted, failures)

    def match_embedding(
        self,
        collection_id: str,
        embedding: Embedding,
        *,
        limit: int,
        threshold: float,
        exclude: str | None = None,
    ) -> list[FaceMatch]:
        """Stored faces at ``threshold`` similarity (0-100) or above, most similar first.

        For callers that already hold a probe embedding (the recognizer
        searches faces and users with one embedding, not one engine run each).
        """
        neighbors = self.store.search_faces(
            collection_id,
            embedding,
            limit=limit,
            max_distance=distance_for_similarity(threshold),
        )
        return [
            FaceMatch(similarity(n.distance), n.face)
            for n in neighbors
            if n.face.face_id != exclude
        ]

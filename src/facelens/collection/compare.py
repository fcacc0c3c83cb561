"""Rekognition's collection-free operations: DetectFaces and CompareFaces.

They need no store, only the analyzer, but they belong with the collection
operations because CompareFaces must score faces exactly as a search would:
the same embedding, the same distance, the same calibrated similarity
(:mod:`facelens.collection.similarity`), so that 80 means the same thing in
CompareFaces as in SearchFacesByImage.

Limits follow Rekognition: DetectFaces reports the 100 largest faces;
CompareFaces takes the largest face of the source image and compares it with
the 100 largest faces of the target image.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from facelens.collection import validation
from facelens.collection.analysis import FaceAnalyzer, ImageInput
from facelens.collection.models import QualityFilter
from facelens.collection.quality_filter import quality_reasons
from facelens.collection.similarity import similarity
from facelens.engine.types import FaceDetail

MAX_FACES = 100
"""Faces DetectFaces reports, and target faces CompareFaces compares (largest first)."""

DEFAULT_SIMILARITY_THRESHOLD = 80.0


@dataclass(frozen=True, slots=True)
class ComparedFace:
    """A target face and its similarity (0-100, calibrated) to the source face."""

    detail: FaceDetail
    similarity: float


@dataclass(frozen=True, slots=True)
class CompareFacesResult:
    """``face_matches`` at or above the threshold, most similar first; the rest unmatched,
    largest first. Target faces that fail the quality filter are in neither list."""

    source_face: FaceDetail
    face_matches: list[ComparedFace]
    unmatched_faces: list[ComparedFace]


def detect_faces(analyzer: FaceAnalyzer, image: ImageInput) -> list[FaceDetail]:
    """Every face found, largest first, at most 100 (no embedding is computed)."""
    with analyzer.decoded(image) as decoded:
        return analyzer.detect(decoded)[:MAX_FACES]


def compare_faces(
    analyzer: FaceAnalyzer,
    source: ImageInput,
    target: ImageInput,
    *,
    similarity_threshold: float = DEFAULT_SIMILARITY_THRESHOLD,
    quality_filter: QualityFilter = QualityFilter.NONE,
) -> CompareFacesResult:
    """The source image's largest face against every face of the target image.

    A source without a (passing) face is InvalidParameterException, as in
    Rekognition; a target without faces gives two empty lists. Cost: one
    detection per image and one embedding batch for the target's faces.
    """
    validation.in_range(similarity_threshold, "SimilarityThreshold", 0, 100)
    probe = analyzer.probe(source, quality_filter)
    with analyzer.decoded(target) as decoded:
        found = analyzer.detect(decoded)[:MAX_FACES]
        faces = [f for f in found if not quality_reasons(f, quality_filter)]
        embeddings = analyzer.embed(decoded, faces) if faces else None
    matches: list[ComparedFace] = []
    unmatched: list[ComparedFace] = []
    if embeddings is not None:
        distances = np.linalg.norm(embeddings - probe.embedding, axis=1)
        for detail, distance in zip(faces, distances, strict=True):
            compared = ComparedFace(detail, similarity(float(distance)))
            if compared.similarity >= similarity_threshold:
                matches.append(compared)
            else:
                unmatched.append(compared)
    matches.sort(key=lambda c: c.similarity, reverse=True)
    return CompareFacesResult(probe.detail, matches, unmatched)

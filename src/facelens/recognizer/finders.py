"""Who is in a crop: the recognizer's one question, answered by facelens' engine or by Rekognition.

The recognizer reads the crop, asks a :class:`FaceFinder`, and publishes.
Two finders answer the same way:

* :class:`EngineFinder`: facelens' own engine and collections (the default,
  on hardware the user owns), deciding by the matching rule
  (:meth:`facelens.people.matching.MatchPolicy.identify`: users and faces,
  negative examples, per-person thresholds, the open-set or similarity rule).
* :class:`RekognitionFinder`: a collection kept by AWS Rekognition (facelens
  on AWS). One ``SearchFacesByImage`` call per crop; a matched face's
  ``UserId`` says which user it belongs to, so no second call is paid for.

Both raise the permanent errors the recognizer dead-letters (no face:
``InvalidParameterException``; undecodable: ``InvalidImageFormatException``)
and ``StorageError`` for what a retry may fix.
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import cv2
import numpy as np

from facelens.collection.analysis import FaceAnalyzer
from facelens.collection.models import QualityFilter
from facelens.collection.rekognition import RekognitionCollections
from facelens.collection.service import CollectionService
from facelens.collection.sources import FaceSource
from facelens.engine.types import Embedding
from facelens.errors import InvalidParameterException, ResourceNotFoundException
from facelens.people.matching import MatchPolicy, OpenSetRule
from facelens.values.boxes import BoundingBox
from facelens.values.identity import Identity

_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SearchOptions:
    """collection_id: the collection searched; face_match_threshold: similarity 0-100 a
    match must reach under the similarity rule (higher means fewer false matches, more
    unknowns); max_faces: candidate faces per search; max_false_identification_rate: see
    below (facelens' engine only: Rekognition's search knows only the similarity rule)."""

    collection_id: str = "faces"
    face_match_threshold: float = 80.0
    max_faces: int = 5
    max_false_identification_rate: float | None = 0.01
    """The open-set rule's bound (share of strangers named, 0-1); None: the similarity rule."""


@dataclass(frozen=True)
class Sighting:
    """The largest face of a crop (``box``, Rekognition's ratios) and who it is, if anyone.

    ``embedding``: the face's unit vector when facelens' own engine made one
    (None from Rekognition, which never hands them out); what strangers are
    clustered and corrections compared on.
    """

    box: BoundingBox
    identity: Identity | None
    embedding: Embedding | None = None
    source: FaceSource | None = None
    """The face's source crop (facelens' engine, when the analyzer keeps sources): what an
    unknown face is stored with as a stranger, so ``collections reindex`` can re-embed it."""


class FaceFinder(Protocol):
    def prepare(self) -> None:
        """Makes the first ``find`` fast (loads models) and checks the collection is there."""
        ...

    def find(self, image: bytes) -> Sighting:
        """Who the largest face in ``image`` (encoded bytes) is."""
        ...


@runtime_checkable
class ProbeSearch(Protocol):
    """A finder that can search an embedding of its own making again under a rule of the
    caller's: what a visit's fused looks are judged with (:mod:`facelens.recognizer.visits`).
    facelens' engine can; Rekognition hands out no embeddings, so it cannot."""

    def search_within(
        self, embedding: Embedding, *, max_fpir: float | None, threshold: float
    ) -> Identity | None:
        """Who ``embedding`` is under the open-set rule at bound ``max_fpir`` (share of
        strangers, 0-1), or, when None or the engine is uncalibrated, the similarity rule at
        ``threshold`` (0-100); the same matching rule (corrections, per-person thresholds) as
        :meth:`FaceFinder.find`."""
        ...


class EngineFinder:
    """facelens' own engine and collections, under ``policy``: the one matching rule,
    with corrections (negative examples) and per-person thresholds
    (:class:`facelens.people.matching.MatchPolicy`)."""

    def __init__(
        self,
        analyzer: FaceAnalyzer,
        collections: CollectionService,
        policy: MatchPolicy,
        *,
        options: SearchOptions | None = None,
    ) -> None:
        self.analyzer = analyzer
        self.collections = collections
        self.policy = policy
        self.options = options or SearchOptions()

    def prepare(self) -> None:
        """Loads the engine, makes sure the collection exists (created empty if not) and
        pays the first identification's one-off costs.

        Why the warm-up: the first crop after a start took ~110 ms more than the next
        ones (measured on the stage clip: 135 ms against 27 ms to find), for a person at
        the door right then: PIL registers its format plugins on the first image it
        opens, modules load lazily, and the first search reads the collection's index,
        the rule's calibration and the gallery's size. A blank image through the decoder
        and detector and a search for a random face here cost the same once, at start.
        """
        self.analyzer.engine.prepare()
        try:
            self.collections.describe_collection(self.options.collection_id)
        except ResourceNotFoundException:
            _log.warning("collection %s did not exist: created it", self.options.collection_id)
            self.collections.create_collection(self.options.collection_id)
        self._warm_up()

    def _warm_up(self) -> None:
        ok, blank = cv2.imencode(".jpg", np.full((96, 96, 3), 128, np.uint8))
        if ok:
            with contextlib.suppress(InvalidParameterException):  # no face, as expected
                self.analyzer.probe(blank.tobytes(), QualityFilter.NONE)
        rng = np.random.default_rng(0)
        probe = rng.standard_normal(self.analyzer.engine.dimension).astype(np.float32)
        self.search(probe / np.linalg.norm(probe))

    def find(self, image: bytes) -> Sighting:
        # The source is cut for every crop (0.1-3.5 ms) because whether the face is unknown,
        # and so stored as a stranger, is known only after the search.
        probe = self.analyzer.probe(image, QualityFilter.NONE, with_source=True)
        identity = self.search(probe.embedding)
        return Sighting(probe.detail.bounding_box, identity, probe.embedding, probe.source)

    def search(self, embedding: Embedding) -> Identity | None:
        o = self.options
        return self.search_within(
            embedding, max_fpir=o.max_false_identification_rate, threshold=o.face_match_threshold
        )

    def search_within(
        self, embedding: Embedding, *, max_fpir: float | None, threshold: float
    ) -> Identity | None:
        o = self.options
        rule = None if max_fpir is None else OpenSetRule(max_fpir, o.max_faces)
        return self.policy.identify(
            o.collection_id, embedding, threshold=threshold, max_faces=o.max_faces, rule=rule
        )


class RekognitionFinder:
    """A collection in AWS Rekognition; similarity is on Rekognition's own 0-100 scale."""

    def __init__(
        self, rekognition: RekognitionCollections, *, options: SearchOptions | None = None
    ) -> None:
        self.rekognition = rekognition
        self.options = options or SearchOptions()

    def prepare(self) -> None:
        """Nothing to load. The collection is the deployment's (``deploy/aws``): describing
        it would need a permission the function is not given, and a missing one shows up
        as ResourceNotFoundException on the first search."""

    def find(self, image: bytes) -> Sighting:
        o = self.options
        result = self.rekognition.search_faces_by_image(
            o.collection_id,
            image,
            max_faces=o.max_faces,
            face_match_threshold=o.face_match_threshold,
        )
        if not result.matches:
            return Sighting(result.searched_box, None)
        best = result.matches[0]
        identity = Identity(
            similarity=best.similarity,
            face_id=best.face.face_id or None,
            user_id=best.face.user_id,
            external_image_id=best.face.external_image_id,
        )
        return Sighting(result.searched_box, identity)

"""Who is in a photo, decided exactly as the recognizer decides, and nothing recorded.

The recognizer names the largest face of a crop with
:meth:`facelens.people.matching.MatchPolicy.identify` under the rule its settings
choose (:func:`facelens.people.matching.open_set_rule`), and files an unknown face
under a stranger. :func:`identify_photo` makes the same decisions for a photo a
person or a script sends in, for its largest face or for every face, and stops
there: no ledger record, no MQTT message, no notification, no face stored, no
stranger made or grown. An unknown face is told which stranger it *would* join
(:meth:`facelens.people.strangers.StrangerService.nearest`), so a caller can go
and name that stranger. The one thing kept is accountability: each profile
handed back is read through :class:`facelens.people.profiles.ProfileService`
as the caller's, so it is in the audit log as ``GET /profiles/{id}`` would be.

Blocking (the engine and the stores): call it from a worker thread.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from facelens.collection.analysis import FaceAnalyzer
from facelens.collection.models import QualityFilter
from facelens.collection.service import CollectionService
from facelens.config import RecognizerSettings
from facelens.engine.types import Embedding
from facelens.errors import FacelensError, InvalidParameterException, StorageError
from facelens.history.audit import Actor
from facelens.people.matching import MatchPolicy, open_set_rule
from facelens.people.profiles import ProfileService
from facelens.people.strangers import StrangerService
from facelens.values.boxes import BoundingBox
from facelens.values.identity import Identity

_log = logging.getLogger(__name__)

NO_FACE = "There are no faces in the image. Should be at least 1."
"""SearchFacesByImage's message for a photo without a face (the same InvalidParameterException)."""


@dataclass(frozen=True)
class RuleInForce:
    """The rule that decided: ``name`` "open-set" or "similarity" ("similarity" also when the
    setting says open-set but the engine has no calibration); the setting it used:
    ``max_false_identification_rate`` (share of strangers 0-1, open-set only) or
    ``face_match_threshold`` (similarity 0-100, similarity rule only); the other is None."""

    name: str
    max_false_identification_rate: float | None
    face_match_threshold: float | None


@dataclass(frozen=True)
class FaceAnswer:
    """One face of the photo. ``box``: where, in ratios of the photo's width and height;
    ``identity``: who (None: unknown), with ``profile_id`` and ``profile`` (the stored item,
    key attribute included) of the profile the recognizer would attach, if any;
    ``stranger_id``: for an unknown face, the stranger it would join (None: a new one)."""

    box: BoundingBox
    identity: Identity | None
    profile_id: str | None = None
    profile: Mapping[str, Any] | None = None
    stranger_id: str | None = None


@dataclass(frozen=True)
class PhotoAnswer:
    """Every face asked for, largest first, and the rule that decided them."""

    faces: tuple[FaceAnswer, ...]
    rule: RuleInForce


@dataclass(frozen=True)
class Identifier:
    """The parts an identification reads (the server's bundles have them). ``strangers`` None:
    strangers are off (``recognizer.strangers``), so no StrangerId is looked up."""

    analyzer: FaceAnalyzer
    collections: CollectionService
    policy: MatchPolicy
    profiles: ProfileService
    recognizer: RecognizerSettings
    strangers: StrangerService | None = None

    def rule_in_force(self) -> RuleInForce:
        """What the recognizer's settings and the engine's calibration make of the rule."""
        r = self.recognizer
        if open_set_rule(r) is not None and self.policy.calibration() is not None:
            return RuleInForce("open-set", r.max_false_identification_rate, None)
        return RuleInForce("similarity", None, r.face_match_threshold)

    def identify_photo(
        self, actor: Actor, collection_id: str, image: bytes, *, every_face: bool = False
    ) -> PhotoAnswer:
        """Who the largest face of ``image`` (or, ``every_face``, each face, largest first)
        is in ``collection_id``; each profile in the answer is recorded as read by ``actor``.
        A missing collection is ResourceNotFoundException before any engine work; a photo
        without a face InvalidParameterException; an unreadable one
        InvalidImageFormatException (the analyzer's size and pixel limits apply)."""
        self.collections.require_compatible(collection_id)
        found = self._faces(image, every_face=every_face)
        rule = open_set_rule(self.recognizer)
        r = self.recognizer
        answers = []
        for box, embedding in found:
            identity = self.policy.identify(
                collection_id,
                embedding,
                threshold=r.face_match_threshold,
                max_faces=r.max_faces,
                rule=rule,
            )
            answers.append(self._answer(actor, collection_id, box, embedding, identity))
        return PhotoAnswer(tuple(answers), self.rule_in_force())

    def _faces(self, image: bytes, *, every_face: bool) -> Sequence[tuple[BoundingBox, Embedding]]:
        if not every_face:
            # The recognizer's own detection (EngineFinder.find): the largest face, unfiltered.
            probe = self.analyzer.probe(image, QualityFilter.NONE)
            return [(probe.detail.bounding_box, probe.embedding)]
        with self.analyzer.decoded(image) as decoded:
            details = self.analyzer.detect(decoded)
            if not details:
                raise InvalidParameterException(NO_FACE)
            vectors = self.analyzer.embed(decoded, details)
        return [(d.bounding_box, v) for d, v in zip(details, vectors, strict=True)]

    def _answer(
        self,
        actor: Actor,
        collection_id: str,
        box: BoundingBox,
        embedding: Embedding,
        who: Identity | None,
    ) -> FaceAnswer:
        if who is None:
            return FaceAnswer(box, None, stranger_id=self._stranger(collection_id, embedding))
        # The profile the recognizer attaches to its message: the user's, else the face's.
        for profile_id in (who.user_id, who.face_id):
            if profile_id is None:
                continue
            profile = self.profiles.get(
                actor, profile_id, collection_id=collection_id, context={"Via": "identify"}
            )
            if profile is not None:
                return FaceAnswer(box, who, profile_id, dict(profile.item))
        return FaceAnswer(box, who)

    def _stranger(self, collection_id: str, embedding: Embedding) -> str | None:
        """As the recognizer does: a store that is down fails the request; any other
        trouble with the strangers' collection only leaves the StrangerId out."""
        if self.strangers is None:
            return None
        try:
            return self.strangers.nearest(collection_id, embedding)
        except StorageError:
            raise
        except FacelensError as exc:
            _log.warning("no stranger looked up: %s %s", exc.code, exc.message)
            return None

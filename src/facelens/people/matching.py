"""Who a face is, once corrections and per-person thresholds have their say.

The plain search (:class:`facelens.recognizer.finders.EngineFinder` without a
policy) accepts the best user, else the best face, at one global threshold.
People differ: a person often confused with a relative needs a stricter bar,
one whose photos are poor a more lenient one, and a face a user said "this is
not P" about must not be called P again. The rule, the same for every
surface that names people:

* Candidates come best first: users (matched on their template), then single
  faces (a face of a user speaks for that user, a face without one for itself).
* A candidate person P is accepted when its similarity reaches P's threshold:
  the profile attribute ``FaceMatchThreshold`` (UserId's profile, else FaceId's),
  else the global one.
* ...and P is not vetoed by a negative example: a face rejected as P
  (a face of the companion collection ``<collection>.rejected`` whose
  ``ExternalImageId`` is P) to which the probe is at least as similar as it is
  to P, or at least :data:`VETO_SIMILARITY` similar whatever P scores.
* The search runs at the floor ``min(global, MIN_OVERRIDE)`` so that a lowered
  override can match at all.

Cost: the negatives collection is searched only once a candidate has passed
its threshold (an unknown face costs nothing extra), and is not cached: a
correction made by another process counts from the next crop on. A missing
negatives collection is one primary-key lookup. Threshold overrides are read
per candidate, lazily, from the profile store (usually one read: the winner).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from facelens.collection.models import StoredFace
from facelens.collection.service import CollectionService
from facelens.collection.users import UserService
from facelens.engine.types import Embedding
from facelens.errors import ResourceNotFoundException
from facelens.profiles.store import ProfileStore
from facelens.recognizer.messages import Identity

_log = logging.getLogger(__name__)

THRESHOLD_ATTRIBUTE = "FaceMatchThreshold"
"""The profile attribute holding a person's own threshold (similarity 0-100)."""
MIN_OVERRIDE = 50.0
"""The lowest per-person threshold (similarity): LFW's equal-odds point. Below it a face
matches strangers more often than not, so no override may go lower."""
VETO_SIMILARITY = 90.0
"""A probe this similar (0-100) to a negative of P is the rejected face again (on LFW,
same-person pairs sit at 90-100): P is vetoed whatever P's own similarity."""
NEGATIVES_SUFFIX = ".rejected"
NEGATIVES_LIMIT = 20
"""Negatives read per search: the nearest per person is what counts, and a person has few."""


def negatives_collection(collection_id: str) -> str:
    """The companion collection holding the negative examples of ``collection_id``'s people."""
    return collection_id + NEGATIVES_SUFFIX


@dataclass(frozen=True)
class Candidate:
    """One possible answer. ``person_id``: UserId, else FaceId; ``face``: the matched face
    (None for a user matched on its template); ``similarity`` 0-100."""

    person_id: str
    similarity: float
    user_id: str | None = None
    face: StoredFace | None = None


def choose(
    candidates: Sequence[Candidate],
    *,
    threshold_of: Callable[[Candidate], float],
    negatives_of: Callable[[], Mapping[str, float]],
) -> Candidate | None:
    """The first candidate (in the given order) that passes its threshold and is not vetoed.

    ``threshold_of``: a candidate's threshold (0-100); ``negatives_of``: called at most once,
    only when some candidate passes its threshold: the probe's best similarity to a negative
    of each person (absent: none near). A vetoed person is skipped with all its candidates.
    """
    best: dict[str, float] = {}
    for c in candidates:
        best[c.person_id] = max(best.get(c.person_id, 0.0), c.similarity)
    negatives: Mapping[str, float] | None = None
    for c in candidates:
        if c.similarity < threshold_of(c):
            continue
        if negatives is None:
            negatives = negatives_of()
        vetoed_by = negatives.get(c.person_id)
        if vetoed_by is not None and (
            vetoed_by >= VETO_SIMILARITY or vetoed_by >= best[c.person_id]
        ):
            continue
        return c
    return None


def parse_threshold(value: object) -> float | None:
    """A profile's ``FaceMatchThreshold`` as a usable number, or None when absent or unusable
    (a profile is free-form: anyone may have written a string there)."""
    if value is None or isinstance(value, bool):
        return None
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    if math.isnan(number):
        return None
    return min(100.0, max(MIN_OVERRIDE, number))


class MatchPolicy:
    """The rule above on facelens' collections, profiles and negatives."""

    def __init__(
        self, collections: CollectionService, users: UserService, profiles: ProfileStore
    ) -> None:
        self.collections = collections
        self.users = users
        self.profiles = profiles

    @staticmethod
    def floor(threshold: float) -> float:
        """The similarity the search itself runs at: low enough for any allowed override."""
        return min(threshold, MIN_OVERRIDE)

    def override(self, *profile_ids: str | None) -> float | None:
        """The first usable ``FaceMatchThreshold`` among the profiles of ``profile_ids``."""
        for profile_id in profile_ids:
            if profile_id is None:
                continue
            profile = self.profiles.get(profile_id)
            if profile is None:
                continue
            raw = profile.item.get(THRESHOLD_ATTRIBUTE)
            value = parse_threshold(raw)
            if value is not None:
                return value
            if raw is not None:
                _log.warning("profile %s: unusable %s %r", profile_id, THRESHOLD_ATTRIBUTE, raw)
        return None

    def identify(
        self, collection_id: str, embedding: Embedding, *, threshold: float, max_faces: int
    ) -> Identity | None:
        """Who ``embedding`` is in ``collection_id``; ``threshold`` is the global one (0-100),
        ``max_faces`` the candidate faces (and users) considered."""
        floor = self.floor(threshold)
        faces = self.collections.match_embedding(
            collection_id, embedding, limit=max_faces, threshold=floor
        )
        users = self.users.match_embedding(
            collection_id, embedding, limit=max_faces, threshold=floor
        )
        candidates = [Candidate(u.user.user_id, u.similarity, u.user.user_id) for u in users]
        candidates += [
            Candidate(m.face.user_id or m.face.face_id, m.similarity, m.face.user_id, m.face)
            for m in faces
        ]
        thresholds: dict[str, float] = {}

        def threshold_of(c: Candidate) -> float:
            if c.person_id not in thresholds:
                face_id = c.face.face_id if c.face is not None and c.user_id is None else None
                found = self.override(c.user_id, face_id)
                thresholds[c.person_id] = threshold if found is None else found
            return thresholds[c.person_id]

        chosen = choose(
            candidates,
            threshold_of=threshold_of,
            negatives_of=lambda: self.negatives(collection_id, embedding, floor=floor),
        )
        if chosen is None:
            return None
        face = chosen.face
        if face is None:  # a user: name its best face that passes the person's threshold
            level = thresholds[chosen.person_id]
            own = [m for m in faces if m.face.user_id == chosen.user_id and m.similarity >= level]
            face = own[0].face if own else None
        return Identity(
            similarity=chosen.similarity,
            face_id=face.face_id if face else None,
            user_id=chosen.user_id,
            external_image_id=face.external_image_id if face else None,
        )

    def negatives(
        self, collection_id: str, embedding: Embedding, *, floor: float
    ) -> dict[str, float]:
        """The probe's best similarity (0-100, at ``floor`` or above) to each person's negatives;
        empty when ``collection_id`` has no negatives collection."""
        try:
            matches = self.collections.match_embedding(
                negatives_collection(collection_id),
                embedding,
                limit=NEGATIVES_LIMIT,
                threshold=floor,
            )
        except ResourceNotFoundException:
            return {}
        found: dict[str, float] = {}
        for m in matches:
            person = m.face.external_image_id
            if person is not None and m.similarity > found.get(person, -1.0):
                found[person] = m.similarity
        return found

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

That is the *similarity* rule: FaceMatchThreshold's 1:1 meaning (about one false
match per 1000 pairs of strangers at 80), applied to every enrolled person. With
hundreds enrolled it names most strangers (each person is one more chance), so
the recognizer uses the **open-set** rule (:meth:`MatchPolicy.identify` with an
:class:`OpenSetRule`) instead, which bounds the share of strangers given a name
(FPIR) for the collection's actual number of people:

* Candidates are *people* (a user, or a face of no user), each at the distance
  of the nearer of their template and their faces, nearest first.
* The nearest person is scored as :func:`facelens.engine.open_set.open_set_score`
  scores them (their distance, the probe's next nearest people, the person's own
  nearest others) and named only when the engine's calibration expects at most
  ``BOUND_MARGIN x max_false_identification_rate`` of strangers to score that high
  against this many people. The identity carries that expected FPIR.
* Corrections work as above: a vetoed person gives way to the next nearest,
  scored the same way. A person's own ``FaceMatchThreshold`` is a similarity
  their matches must *also* reach: it can make the rule stricter for them, never
  laxer than the bound (a lenient override would let strangers through).
* An engine without a calibration (a model facelens never measured) falls back to
  the similarity rule and says so once in the log.

Cost: the negatives collection is searched only once a candidate has passed
its threshold (an unknown face costs nothing extra), and is not cached: a
correction made by another process counts from the next crop on. A missing
negatives collection is one primary-key lookup. Threshold overrides are read
per candidate, lazily, from the profile store (usually one read: the winner).
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace

from facelens.collection.models import StoredFace
from facelens.collection.service import CollectionService
from facelens.collection.similarity import similarity
from facelens.collection.users import UserService, template
from facelens.config import RecognizerSettings
from facelens.engine import open_set
from facelens.engine.types import Embedding
from facelens.errors import ResourceNotFoundException
from facelens.profiles.store import ProfileStore
from facelens.values.identity import Identity

_log = logging.getLogger(__name__)

THRESHOLD_ATTRIBUTE = "FaceMatchThreshold"
"""The profile attribute holding a person's own threshold (similarity 0-100)."""
MIN_OVERRIDE = 50.0
"""The lowest per-person threshold (similarity): LFW's equal-odds point. Below it a face
matches strangers more often than not, so no override may go lower."""
VETO_SIMILARITY = 90.0
"""A probe this similar (0-100) to a negative of P is the rejected face again (on LFW,
same-person pairs sit at 90-100): P is vetoed whatever P's own similarity."""
GALLERY_SIZE_SECONDS = 2.0
"""How long a collection's number of people is reused by the open-set rule (seconds)."""
NEGATIVES_SUFFIX = ".rejected"
NEGATIVES_LIMIT = 20
"""Negatives read per search: the nearest per person is what counts, and a person has few."""


@dataclass(frozen=True)
class OpenSetRule:
    """The open-set rule's settings. max_false_identification_rate: the share of strangers
    (people not enrolled, 0-1) that may be given a name, whatever the gallery's size;
    max_faces: candidate faces and users read per search (at least the cohort needs)."""

    max_false_identification_rate: float = 0.01
    max_faces: int = 5


def open_set_rule(recognizer: RecognizerSettings) -> OpenSetRule | None:
    """The rule the recognizer applies under these settings (None: the similarity rule), so
    that every surface that names people (the recognizer, the dashboard's search, the REST
    identify route, describe) decides and reports with the same one."""
    if recognizer.rule != "open-set":
        return None
    return OpenSetRule(recognizer.max_false_identification_rate, recognizer.max_faces)


@dataclass(frozen=True)
class Person:
    """A candidate person: ``person_id`` (UserId, else FaceId), the nearest distance (0-2) to
    their template or faces, and the nearest of their faces among those read (if any)."""

    person_id: str
    distance: float
    user_id: str | None
    face: StoredFace | None
    faces: int | None = 1
    """Faces the person is enrolled with (None: a user met only through one of their faces,
    not yet looked up)."""


@dataclass(frozen=True)
class Assessment:
    """A candidate under the open-set rule: ``score`` (open_set_score: higher is surer) and
    ``expected_fpir``, the share of strangers (0-1) expected to score as high."""

    score: float
    expected_fpir: float


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
        self._sizes: dict[str, tuple[float, int]] = {}
        self._sizes_lock = threading.Lock()

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
        self,
        collection_id: str,
        embedding: Embedding,
        *,
        threshold: float,
        max_faces: int,
        rule: OpenSetRule | None = None,
    ) -> Identity | None:
        """Who ``embedding`` is in ``collection_id``.

        rule: the open-set rule (module docstring) when given and the engine is calibrated;
        otherwise the similarity rule, where ``threshold`` is the global similarity (0-100)
        and ``max_faces`` the candidate faces (and users) considered.
        """
        if rule is not None:
            calibration = self.calibration()
            if calibration is not None:
                return self.identify_open_set(collection_id, embedding, rule, calibration)
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

    def calibration(self) -> open_set.Calibration | None:
        """The engine's open-set calibration; None (logged once) for a model never measured."""
        version = self.collections.face_model_version
        found = open_set.calibration_for(version)
        if found is None and version not in _UNCALIBRATED_WARNED:
            _UNCALIBRATED_WARNED.add(version)
            _log.warning(
                "no open-set calibration for face model %s: the similarity rule decides "
                "(FaceMatchThreshold), and no expected FPIR is reported",
                version,
            )
        return found

    def gallery_size(self, collection_id: str) -> int:
        """People in the collection: its users, or its faces when it has no users (a
        collection filled by IndexFaces alone). Faces of no user beside users are not
        counted: facelens' enrolment always makes users, and counting faces instead would
        count a person once per photo.

        Read at most every GALLERY_SIZE_SECONDS per collection: describing counts the
        collection's faces, about 60 ms a call on SQLite with a million faces, which the
        recognizer would otherwise pay on every crop. A person enrolled or forgotten counts
        within those seconds (a share of strangers barely moves with one person more or less).
        """
        now = time.monotonic()
        with self._sizes_lock:
            known = self._sizes.get(collection_id)
        if known is not None and now - known[0] < GALLERY_SIZE_SECONDS:
            return known[1]
        info = self.collections.describe_collection(collection_id)
        size = info.user_count or info.face_count
        with self._sizes_lock:
            self._sizes[collection_id] = (now, size)
        return size

    def people_near(self, collection_id: str, embedding: Embedding, limit: int) -> list[Person]:
        """The nearest people to ``embedding``, nearest first: users by the nearer of their
        template and their faces among the ``limit`` nearest faces, faces of no user alone."""
        users = self.users.store.search_users(
            collection_id, embedding, limit=limit, max_distance=2.0
        )
        faces = self.collections.store.search_faces(
            collection_id, embedding, limit=limit, max_distance=2.0
        )
        people: dict[str, Person] = {}
        for u in users:
            people[u.user.user_id] = Person(
                u.user.user_id, u.distance, u.user.user_id, None, u.user.face_count
            )
        for f in faces:
            owner = f.face.user_id or f.face.face_id
            known = people.get(owner)
            if known is None:
                count = None if f.face.user_id else 1
                people[owner] = Person(owner, f.distance, f.face.user_id, f.face, count)
            elif f.distance < known.distance or known.face is None:
                people[owner] = replace(
                    known, distance=min(f.distance, known.distance), face=known.face or f.face
                )
        return sorted(people.values(), key=lambda p: p.distance)

    def own_face_ids(self, collection_id: str, person: Person) -> list[str]:
        """The faces ``person`` is enrolled with: a user's, or the lone face itself."""
        if person.user_id is not None:
            return self.users.face_ids(collection_id, person.user_id)
        return [person.face.face_id] if person.face is not None else []

    def person_cohort(self, collection_id: str, person: Person) -> float | None:
        """Mean distance from ``person``'s template (the unit mean of their faces) to their
        COHORT_SIZE nearest other people (None when nobody else is enrolled)."""
        own = self.own_face_ids(collection_id, person)
        vectors = list(self.collections.store.get_embeddings(collection_id, own).values())
        if not vectors:
            return None
        # Their own faces come back too (and are skipped): read past all of them.
        near = self.people_near(
            collection_id, template(vectors), open_set.COHORT_SIZE + 1 + len(own)
        )
        others = [p.distance for p in near if p.person_id != person.person_id]
        others = others[: open_set.COHORT_SIZE]
        return sum(others) / len(others) if others else None

    def assess(
        self,
        collection_id: str,
        embedding: Embedding,
        people: Sequence[Person],
        position: int,
        gallery_size: int,
        calibration: open_set.Calibration,
    ) -> Assessment:
        """How ``people[position]`` scores for this probe, and how often strangers do."""
        person = people[position]
        rest = [p.distance for i, p in enumerate(people) if i != position]
        rest = rest[: open_set.COHORT_SIZE]
        weight = open_set.cohort_weight(gallery_size)
        person_cohort = self.person_cohort(collection_id, person) if weight > 0 else None
        faces = person.faces
        if faces is None and person.user_id is not None:
            faces = self.users.store.get_user(collection_id, person.user_id).face_count
        score = open_set.open_set_score(
            person.distance,
            probe_cohort=sum(rest) / len(rest) if rest else None,
            person_cohort=person_cohort,
            gallery_size=gallery_size,
        ) - calibration.person_offset(gallery_size, faces or 1)
        return Assessment(score, calibration.expected_fpir(score, gallery_size))

    def identify_open_set(
        self,
        collection_id: str,
        embedding: Embedding,
        rule: OpenSetRule,
        calibration: open_set.Calibration,
    ) -> Identity | None:
        """The open-set rule (module docstring): the nearest person not vetoed by a
        correction, named when strangers reach their score rarely enough."""
        gallery = self.gallery_size(collection_id)
        people = self.people_near(
            collection_id, embedding, max(rule.max_faces, open_set.COHORT_SIZE + 2)
        )
        if not people:
            return None
        bound = open_set.BOUND_MARGIN * rule.max_false_identification_rate
        negatives: Mapping[str, float] | None = None
        for position, person in enumerate(people):
            person_similarity = similarity(person.distance)
            expected = self.assess(
                collection_id, embedding, people, position, gallery, calibration
            ).expected_fpir
            if expected > bound:
                return None
            own = self.override(
                person.user_id, person.face.face_id if person.face and not person.user_id else None
            )
            if own is not None and person_similarity < own:
                return None
            if negatives is None:
                negatives = self.negatives(collection_id, embedding, floor=MIN_OVERRIDE)
            veto = negatives.get(person.person_id)
            if veto is not None and (veto >= VETO_SIMILARITY or veto >= person_similarity):
                continue  # "this is not P": the next nearest person is considered instead
            face = person.face
            return Identity(
                similarity=person_similarity,
                face_id=face.face_id if face else None,
                user_id=person.user_id,
                external_image_id=face.external_image_id if face else None,
                expected_fpir=expected,
                gallery_size=gallery,
            )
        return None


_UNCALIBRATED_WARNED: set[str] = set()
"""Model versions already logged as uncalibrated (one warning per process and model)."""


ONE_PHOTO_LISTED = 100
"""At most this many one-photo people are named in a summary (the count is always whole)."""


@dataclass(frozen=True)
class RuleSummary:
    """What the rule in force means for a collection now (``facelens collections describe``).

    gallery_size: people (users, or faces when there are no users). one_photo_people: how
    many of them have a single face (they are missed far more often: enrol two more photos
    of each); one_photo_user_ids: the first ONE_PHOTO_LISTED of them. rule: "open-set" or
    "similarity" (the setting, or "similarity" when the engine has no calibration).
    max_false_identification_rate: the open-set bound. expected_fpir: the share of strangers
    expected to get a name (0-1) at this size, None when unknown (similarity rule or no
    calibration). expected_fnir: the share of enrolled people's photos expected to go
    unnamed, from the calibration's one-photo and three-photo figures weighted by how many
    people have one photo (None when not measured); both are measured on LFW-like photos.
    """

    collection_id: str
    face_model_version: str
    gallery_size: int
    one_photo_people: int
    one_photo_user_ids: tuple[str, ...]
    rule: str
    calibrated: bool
    max_false_identification_rate: float
    expected_fpir: float | None
    expected_fnir: float | None


def summarise(policy: MatchPolicy, collection_id: str, rule: OpenSetRule | None) -> RuleSummary:
    """The :class:`RuleSummary` of ``collection_id`` under ``rule`` (None: the similarity
    rule). Reads every user once (paged); blocking."""
    info = policy.collections.describe_collection(collection_id)
    one_photo: list[str] = []
    count_one = 0
    token: str | None = None
    while True:
        page = policy.users.store.list_users(collection_id, max_results=1000, next_token=token)
        for user in page.users:
            if user.face_count <= 1:
                count_one += 1
                if len(one_photo) < ONE_PHOTO_LISTED:
                    one_photo.append(user.user_id)
        token = page.next_token
        if token is None:
            break
    people = info.user_count or info.face_count
    if not info.user_count:
        count_one = info.face_count
    calibration = open_set.calibration_for(info.face_model_version)
    bound = (rule or OpenSetRule()).max_false_identification_rate
    open_rule = rule is not None and calibration is not None
    expected_fpir = expected_fnir = None
    if open_rule and calibration is not None and people:
        level = open_set.BOUND_MARGIN * bound
        expected_fpir = level
        one = calibration.expected_fnir(people, level, several_photos=False)
        several = calibration.expected_fnir(people, level, several_photos=True)
        if one is not None and several is not None:
            expected_fnir = (count_one * one + (people - count_one) * several) / people
    return RuleSummary(
        collection_id=collection_id,
        face_model_version=info.face_model_version,
        gallery_size=people,
        one_photo_people=count_one,
        one_photo_user_ids=tuple(one_photo),
        rule="open-set" if open_rule else "similarity",
        calibrated=calibration is not None,
        max_false_identification_rate=bound,
        expected_fpir=expected_fpir,
        expected_fnir=expected_fnir,
    )

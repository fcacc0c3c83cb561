"""Strangers: unknown faces grouped into anonymous persons that can be named, merged, split.

Every face the recognizer cannot identify is clustered online: it joins the
stranger whose template (the renormalised mean of its faces) it resembles at
``threshold`` similarity or more, or starts a new one. Strangers are kept in
the shared stores, so several recognizer hosts (PostgreSQL) see the same ones:

* each is a user ``stranger-<n>`` of the companion collection
  ``<collection_id>.strangers`` (created on first use with the main
  collection's face model), its faces the unknown faces' embeddings. A
  face's ``ExternalImageId`` is the stranger it was first clustered into, so
  after a merge the absorbed stranger's sightings still count;
* its sightings are the recognizer's ledger records whose message carries
  its ``StrangerId`` (first and last seen, count, best crops).

Naming a stranger copies its embeddings into the main collection as a user's
faces (no re-detection: the vectors are the engine's own), so the next
sighting is identified, and deletes it from the companion collection.
"""

from __future__ import annotations

import contextlib
import threading
import uuid
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from facelens.collection import validation
from facelens.collection.models import NewFace, StoredFace
from facelens.collection.similarity import distance_for_similarity, similarity
from facelens.collection.sources import FaceSource
from facelens.collection.stores.store import CollectionStore
from facelens.collection.users import DEFAULT_USER_MATCH_THRESHOLD, MAX_FACES_PER_USER, template
from facelens.engine.types import Embedding
from facelens.errors import (
    ConflictException,
    InvalidParameterException,
    ResourceAlreadyExistsException,
    ResourceNotFoundException,
    ServiceQuotaExceededException,
)
from facelens.history.ledger import RecognitionLedger, StrangerSeen
from facelens.people import stranger_faces as sf
from facelens.people.stranger_model import (
    ID_PREFIX,
    Crop,
    NamedStranger,
    Stranger,
    StrangerSettings,
    companion_id,
    stranger_number,
)
from facelens.profiles.store import ProfileStore
from facelens.profiles.types import make_item
from facelens.values.boxes import BoundingBox
from facelens.values.strangers import StrangerMatch


class StrangerService:
    """observe, list, get, name, merge, split.

    Faces kept per stranger are capped (``settings.max_faces``, the most
    recent): a stranger passing every day would otherwise gain a face per
    sighting forever. The cap bounds the biometric data kept about people
    who never agreed to it, the companion collection's size and the cost of
    naming (one copied face each); a mean of 20 faces is already as steady
    as a template gets (its noise falls as 1/sqrt(n)), and the most recent
    faces follow a person's current look. A face is not evicted while it is
    the last one recording a merged stranger's id (see ``merge``).

    Thread-safe within a process (one lock around changes); between
    processes, two that mint the same new id resolve it by the store's
    ConflictException (the loser takes the next number).
    """

    def __init__(
        self,
        store: CollectionStore,
        *,
        profiles: ProfileStore | None = None,
        ledger: RecognitionLedger | None = None,
        settings: StrangerSettings | None = None,
    ) -> None:
        self.store = store
        self.profiles = profiles
        self.ledger = ledger
        self.settings = settings or StrangerSettings()
        validation.in_range(self.settings.threshold, "stranger_threshold", 0, 100)
        validation.in_range(self.settings.max_faces, "max_faces", 1, MAX_FACES_PER_USER)
        self._lock = threading.RLock()
        self._ready: set[str] = set()
        self._next: dict[str, int] = {}

    # -- the recognizer's call --
    def observe(
        self,
        collection_id: str,
        embedding: Embedding,
        *,
        seen_at: datetime | None = None,
        box: BoundingBox | None = None,
        confidence: float = 100.0,
        source: FaceSource | None = None,
    ) -> StrangerMatch:
        """Clusters one unknown face of ``collection_id``; returns the stranger it joined.

        box / confidence describe the face in its crop (ratios; 0-100), stored with it;
        so is ``source``, the face's crop (:mod:`facelens.collection.sources`), without
        which ``facelens collections reindex`` cannot re-embed the face.
        """
        now = seen_at or datetime.now(UTC)
        with self._lock:
            companion = self._ensure_companion(collection_id)
            cut = distance_for_similarity(self.settings.threshold)
            joined, distance = sf.nearest(self.store, companion, embedding, cut)
            stranger_id = joined or self._new_stranger(companion)
            face = sf.new_face(embedding, stranger_id, box, confidence, source)
            try:
                sf.add_faces(self.store, companion, stranger_id, [face])
            except ResourceNotFoundException:  # named or merged away meanwhile
                joined = None
                stranger_id = self._new_stranger(companion)
                face = sf.new_face(embedding, stranger_id, box, confidence, source)
                sf.add_faces(self.store, companion, stranger_id, [face])
            faces = sf.trim(self.store, companion, stranger_id, self.settings.max_faces)
        seen = self._seen(sf.aliases(stranger_id, faces))
        return StrangerMatch(
            stranger_id=stranger_id,
            new=joined is None,
            sightings=(seen.count + 1) if seen else (1 if self.ledger else len(faces)),
            first_seen=min(seen.first_seen, now) if seen else now,
            face_id=face.face_id,
            similarity=similarity(distance) if joined else None,
        )

    def take_back(self, collection_id: str, face_id: str) -> bool:
        """Removes the face ``observe`` added (its ``StrangerMatch.face_id``), wherever a merge
        or split has moved it, and the stranger with it when that was its only face: the
        recognizer's undo, when the visit that face came from turns out to be someone
        enrolled (a look later named them). False when the face is gone already (the
        stranger was named, or the cap evicted it): nothing to take back."""
        with self._lock:
            companion = self._companion(collection_id, create=False)
            if companion is None:
                return False
            face = self.store.get_faces(companion, [face_id]).get(face_id)
            if face is None:
                return False
            self.store.delete_faces(companion, [face_id])
            if face.user_id is not None and not sf.faces_of(self.store, companion, face.user_id):
                # Removed meanwhile (named, merged) by another process: nothing left to do.
                with contextlib.suppress(ResourceNotFoundException):
                    self.store.delete_user(companion, face.user_id)
        return True

    # -- reading --
    def list(self, collection_id: str) -> list[Stranger]:
        """Every stranger of ``collection_id``, by number (none before the first unknown)."""
        companion = self._companion(collection_id, create=False)
        if companion is None:
            return []
        users = sf.all_user_ids(self.store, companion)
        users.sort(key=lambda u: (stranger_number(u) or 0, u))
        return [self._describe(collection_id, companion, u) for u in users]

    def get(self, collection_id: str, stranger_id: str) -> Stranger:
        companion = self._existing(collection_id, stranger_id)
        return self._describe(collection_id, companion, stranger_id)

    def nearest(self, collection_id: str, embedding: Embedding) -> str | None:
        """The stranger ``embedding`` would join if the recognizer saw it now (the decision
        ``observe`` makes, at ``settings.threshold``), or None when it would start a new one.

        Read-only: no face is added, no stranger created, not even the companion collection
        (none yet: no stranger to join). For answering "who is this" without recording it.
        """
        companion = self._companion(collection_id, create=False)
        if companion is None:
            return None
        cut = distance_for_similarity(self.settings.threshold)
        joined, _distance = sf.nearest(self.store, companion, embedding, cut)
        return joined

    # -- changing --
    def name(
        self,
        collection_id: str,
        stranger_id: str,
        user_id: str,
        *,
        profile: Mapping[str, Any] | None = None,
        extend: bool = False,
    ) -> NamedStranger:
        """Makes the stranger user ``user_id`` of ``collection_id``, with its faces enrolled.

        The profile is merged into the user's (``Name`` defaults to the user id). A user
        that exists already is ConflictException unless ``extend``: then the faces are
        added to it, as many as its 100-face limit allows (the most recent first), if the
        stranger looks like them (templates at AssociateFaces' UserMatchThreshold, 75),
        else InvalidParameterException: naming must not teach facelens a wrong face.
        """
        validation.user_id(user_id)
        if profile is not None and not isinstance(profile, Mapping):
            raise InvalidParameterException("Profile must be a JSON object")
        # The profile store's own checks (nesting, Unicode, 400 KB), before anything changes:
        # refused at the end, they left the user made and the stranger's faces copied.
        make_item(user_id, profile or {})
        if self.profiles is None:
            raise InvalidParameterException("Naming strangers needs a profile store")
        with self._lock:
            companion = self._existing(collection_id, stranger_id)
            self.store.describe_collection(collection_id)  # an unknown one fails here, early
            faces = sf.faces_of(self.store, companion, stranger_id)
            stranger = self._describe(collection_id, companion, stranger_id, faces=faces)
            try:
                owned = self.store.get_user(collection_id, user_id).face_count
            except ResourceNotFoundException:
                owned = None
            if owned is not None and not extend:
                raise ConflictException(
                    f"User {user_id} already exists in collection {collection_id}; "
                    "extend it to add this stranger's faces"
                )
            room = MAX_FACES_PER_USER - (owned or 0)
            if room <= 0:
                raise ServiceQuotaExceededException(
                    f"User {user_id} already has {MAX_FACES_PER_USER} faces"
                )
            keep = faces[:room]  # newest first
            vectors = self.store.get_embeddings(companion, [f.face_id for f in keep])
            if owned:
                self._check_resembles(collection_id, user_id, stranger_id, vectors)
            sources = self.store.get_sources(companion, [f.face_id for f in keep])
            image_id = str(uuid.uuid4())
            copies = [
                NewFace(
                    face_id=str(uuid.uuid4()),
                    image_id=image_id,
                    external_image_id=stranger_id,
                    bounding_box=f.bounding_box,
                    confidence=f.confidence,
                    embedding=vectors[f.face_id],
                    source=sources.get(f.face_id),
                )
                for f in keep
                if f.face_id in vectors
            ]
            if owned is None:
                self.store.create_user(collection_id, user_id)
            sf.add_faces(self.store, collection_id, user_id, copies)
            attributes = dict(profile or {})
            existing = self.profiles.get(user_id)
            if "Name" not in attributes and (existing is None or "Name" not in existing.item):
                attributes["Name"] = user_id
            stored = self.profiles.update(user_id, attributes)
            self.store.delete_user(companion, stranger_id)
            self.store.delete_faces(companion, [f.face_id for f in faces])
        return NamedStranger(
            stranger_id=stranger_id,
            collection_id=collection_id,
            user_id=user_id,
            face_ids=tuple(c.face_id for c in copies),
            created=owned is None,
            sightings=stranger.sightings,
            profile=stored.attributes,
        )

    def _check_resembles(
        self,
        collection_id: str,
        user_id: str,
        stranger_id: str,
        vectors: Mapping[str, Embedding],
    ) -> None:
        """Refuses to add the stranger's faces to a user they do not look like."""
        if not vectors:
            return
        near = self.store.search_users(
            collection_id,
            template(list(vectors.values())),
            limit=MAX_FACES_PER_USER,
            max_distance=distance_for_similarity(DEFAULT_USER_MATCH_THRESHOLD),
        )
        if not any(n.user.user_id == user_id for n in near):
            raise InvalidParameterException(
                f"{stranger_id} does not look like {user_id} (below similarity "
                f"{DEFAULT_USER_MATCH_THRESHOLD:.0f}); name them someone else"
            )

    def merge(self, collection_id: str, into: str, other: str) -> Stranger:
        """Moves ``other``'s faces to ``into`` and deletes ``other``; its sightings (ledger
        records under its id) count as ``into``'s from then on."""
        if into == other:
            raise InvalidParameterException("A stranger cannot be merged into itself")
        with self._lock:
            companion = self._existing(collection_id, into)
            self._existing(collection_id, other)
            moved = [f.face_id for f in sf.faces_of(self.store, companion, other)]
            if moved:
                self.store.associate_faces(companion, into, moved)
            self.store.delete_user(companion, other)
            faces = sf.trim(self.store, companion, into, self.settings.max_faces)
            return self._describe(collection_id, companion, into, faces=faces)

    def split(self, collection_id: str, stranger_id: str, face_ids: Sequence[str]) -> str:
        """Moves ``face_ids`` (some of the stranger's faces) to a new stranger; returns its id.

        The faces keep their FaceIds; past sightings stay with the original stranger (the
        ledger keeps what was published), later ones go to whichever template is nearer.
        """
        ids = validation.face_ids(list(face_ids), limit=MAX_FACES_PER_USER)
        with self._lock:
            companion = self._existing(collection_id, stranger_id)
            faces = {f.face_id: f for f in sf.faces_of(self.store, companion, stranger_id)}
            foreign = [i for i in ids if i not in faces]
            if foreign:
                raise InvalidParameterException(f"Not faces of {stranger_id}: {', '.join(foreign)}")
            if len(ids) == len(faces):
                raise InvalidParameterException(
                    "Splitting off every face leaves nothing behind: name or merge instead"
                )
            vectors = self.store.get_embeddings(companion, ids)
            sources = self.store.get_sources(companion, ids)
            new_id = self._new_stranger(companion)
            # Re-stored under the new id, so the faces no longer carry the old one as origin.
            self.store.delete_faces(companion, ids)
            rekeyed = [
                NewFace(
                    face_id=i,
                    image_id=faces[i].image_id,
                    external_image_id=new_id,
                    bounding_box=faces[i].bounding_box,
                    confidence=faces[i].confidence,
                    embedding=vectors[i],
                    source=sources.get(i),
                )
                for i in ids
            ]
            sf.add_faces(self.store, companion, new_id, rekeyed)
        return new_id

    # -- internals --
    def _ensure_companion(self, collection_id: str) -> str:
        companion = self._companion(collection_id, create=True)
        if companion is None:  # create=True always gives one
            raise ResourceNotFoundException(f"No strangers collection for {collection_id}")
        return companion

    def _companion(self, collection_id: str, *, create: bool) -> str | None:
        """The companion collection's id; created with the main one's model when missing
        and ``create`` (else None). The main collection must exist."""
        companion = companion_id(collection_id)
        if companion in self._ready:
            return companion
        validation.collection_id(collection_id)
        validation.collection_id(companion)
        main = self.store.describe_collection(collection_id)
        try:
            info = self.store.describe_collection(companion)
        except ResourceNotFoundException:
            if not create:
                return None
            try:
                info = self.store.create_collection(
                    companion, face_model_version=main.face_model_version
                )
            except ResourceAlreadyExistsException:  # another process was first
                info = self.store.describe_collection(companion)
        if info.face_model_version != main.face_model_version:
            raise InvalidParameterException(
                f"{companion} holds {info.face_model_version} faces, "
                f"{collection_id} {main.face_model_version}: they do not compare"
            )
        self._ready.add(companion)
        return companion

    def _existing(self, collection_id: str, stranger_id: str) -> str:
        """The companion id, after checking the stranger exists (ResourceNotFoundException).

        An id that is not ``stranger-<n>`` names no stranger and never reaches the store: it
        comes from requests and arguments (a merge's ``Other``), and one holding a lone
        surrogate (JSON's ``\\ud800``, the CLI's undecodable bytes) is not even storable text:
        SQLite raised UnicodeEncodeError on it, a 500."""
        if stranger_number(stranger_id) is None:
            raise ResourceNotFoundException(
                f"No stranger {stranger_id!r} in collection {collection_id}: "
                "stranger ids are stranger-<n>"
            )
        companion = self._companion(collection_id, create=False)
        if companion is not None:
            try:
                self.store.get_user(companion, stranger_id)
                return companion
            except ResourceNotFoundException:
                pass
        raise ResourceNotFoundException(f"No stranger {stranger_id} in collection {collection_id}")

    def _new_stranger(self, companion: str) -> str:
        number = self._next.get(companion)
        if number is None:
            number = sf.highest_number(self.store, companion, self.ledger) + 1
        while True:
            stranger_id = f"{ID_PREFIX}{number}"
            try:
                self.store.create_user(companion, stranger_id)
            except (ConflictException, ResourceAlreadyExistsException):
                number += 1  # another process took it
                continue
            self._next[companion] = number + 1
            return stranger_id

    def _seen(self, ids: Sequence[str]) -> StrangerSeen | None:
        """Sightings of a stranger under all its ids, summed (None without any)."""
        if self.ledger is None:
            return None
        seen = [*self.ledger.strangers_seen(ids).values()]
        if not seen:
            return None
        return StrangerSeen(
            sum(s.count for s in seen),
            min(s.first_seen for s in seen),
            max(s.last_seen for s in seen),
        )

    def _describe(
        self,
        collection_id: str,
        companion: str,
        stranger_id: str,
        *,
        faces: Sequence[StoredFace] | None = None,
    ) -> Stranger:
        if faces is None:
            faces = sf.faces_of(self.store, companion, stranger_id)
        ids = sf.aliases(stranger_id, faces)
        seen = self._seen(ids)
        crops: tuple[Crop, ...] = ()
        if self.ledger is not None and self.settings.best_crops > 0:
            best = self.ledger.sightings(ids, limit=self.settings.best_crops, largest_first=True)
            crops = tuple(
                Crop(r.recognition_id, r.bucket, r.key, r.recognized_at, r.message.get("Camera"))
                for r in best
                if r.bucket is not None and r.key is not None
            )
        return Stranger(
            stranger_id=stranger_id,
            collection_id=collection_id,
            face_ids=tuple(f.face_id for f in faces),
            sightings=seen.count if seen else 0,
            first_seen=seen.first_seen if seen else None,
            last_seen=seen.last_seen if seen else None,
            best_crops=crops,
            merged=tuple(ids[1:]),
        )

"""The recognizer: one ObjectCreated event in, one published outcome out.

For a crop under the configured prefix and suffix it reads the object,
asks its face finder who the largest face is (facelens' engine and
collections, or AWS Rekognition: :mod:`facelens.recognizer.finders`), reads
the profile (UserId's, else FaceId's), publishes, and records the outcome
in the ledger. The original function crashed when nothing matched and when a
profile was missing; here both are ordinary outcomes: ``rekognition/unknown``
and an identification without profile attributes.

Failure policy, which the worker relies on: an event that can never
succeed (object gone, not an image, no face) becomes a dead letter,
returned normally; a back end that is down raises ``StorageError`` so the
event is retried later. Nothing else is swallowed here.

Once, across hosts: before anything is read or published the worker claims
the event's recognition id in the ledger, which several hosts may share
(PostgreSQL). Of two workers handed the same event (a duplicate S3
notification delivered to two hosts), one holds the claim and publishes;
the other waits for its outcome and reports a duplicate. The claim is a
lease (``claim_seconds``), not a lock: a worker that dies holding it is
replaced when it runs out, or at once by its own restart (same worker id),
so an event is still done at least once.

Visits: a crop whose metadata carries a visit id is one look of a visit
(one person continuously in view of one camera). Its look is stored in the
visit ledger (:mod:`facelens.history.visits`), and the visit's answer decided
(:mod:`facelens.recognizer.visits`): the first look's answer is published at
once (revision 0); a later look is published only when the fused looks change
the answer (a revision, naming what it revises), else it is recorded with the
visit's standing answer and ``"Published": false``. Answers are set by
compare-and-set on the revision, so looks of one visit handled by several
workers at once publish each revision once: the loser reads the new answer
and decides again. A worker that dies after setting a revision and before
recording it is covered by the claim: whoever handles the look again finds
the visit's answer carries the look's own recognition id and republishes it
(same RecognitionId: consumers deduplicate on it).
"""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

import numpy as np

from facelens.bus.notify import Alert, Notifier
from facelens.bus.publisher import MessagePublisher
from facelens.collection.sources import FaceSource
from facelens.engine.types import Embedding
from facelens.errors import (
    FacelensError,
    ImageTooLargeException,
    InvalidImageFormatException,
    InvalidParameterException,
    ResourceNotFoundException,
    StorageError,
)
from facelens.history.ledger import Recognition, RecognitionLedger, Status
from facelens.history.visits import VisitAnswer, VisitLedger, VisitLook
from facelens.profiles.store import ProfileStore
from facelens.recognizer import messages
from facelens.recognizer import visits as decide
from facelens.recognizer.finders import FaceFinder, ProbeSearch, Sighting
from facelens.recognizer.messages import VisitPart
from facelens.storage.crops import CropMetadata
from facelens.storage.protocol import ObjectStore
from facelens.values.boxes import BoundingBox
from facelens.values.events import ObjectCreated
from facelens.values.identity import Identity
from facelens.values.strangers import StrangerMatch

_log = logging.getLogger(__name__)

_PERMANENT = (
    InvalidImageFormatException,
    ImageTooLargeException,
    InvalidParameterException,
    ResourceNotFoundException,
)
"""Errors no retry can fix: the event becomes a dead letter."""
CLAIM_POLL_S = 0.05
"""Seconds between looks at an event another worker holds (one recognition takes ~0.1-1 s)."""
VISIT_TRIES = 5
"""Decisions one look may make before giving up (each lost compare-and-set means another
worker changed the visit meanwhile); past it the event is retried later (StorageError)."""


@dataclass(frozen=True)
class RecognizerOptions:
    """prefix/suffix: which keys are crops; topic: identifications go here, unknowns to
    '<topic>/unknown', dead letters to '<topic>/errors'. (What is searched, and how
    strictly, is the finder's: :class:`facelens.recognizer.finders.SearchOptions`.)"""

    prefix: str = "faces/"
    suffix: str = ".jpg"
    topic: str = "rekognition"
    collection_id: str = "faces"
    """The collection whose strangers an unknown face joins (the one the finder searches)."""
    worker_id: str = "recognizer-1"
    """This worker's stable name: with the host's name, who holds a claim (see the module's
    docstring), so a restarted worker takes back the events it held."""
    claim_seconds: float = 30.0
    """How long a claim holds before another worker may take the event over: longer than
    the slowest event."""


class StrangerObserver(Protocol):
    """Groups unknown faces into anonymous persons (:class:`facelens.people.strangers.
    StrangerService`)."""

    def observe(
        self,
        collection_id: str,
        embedding: Embedding,
        *,
        seen_at: datetime | None = None,
        box: BoundingBox | None = None,
        confidence: float = 100.0,
        source: FaceSource | None = None,
    ) -> StrangerMatch: ...

    def take_back(self, collection_id: str, face_id: str) -> bool:
        """Removes a face ``observe`` added (a visit later named someone enrolled)."""
        ...


@dataclass(frozen=True)
class Outcome:
    """What one event came to. ``duplicate``: already in the ledger, nothing published.

    ``engine_seconds`` is the time spent finding the face (decode, detect,
    embed and search, or the Rekognition call); the rest of ``total_seconds``
    is the recognizer's own overhead (object store, profile, ledger, publish).
    """

    recognition: Recognition
    duplicate: bool
    engine_seconds: float
    total_seconds: float
    published: bool = True
    """False for a duplicate, and for a look that changed its visit's answer in nothing
    (recorded, not published)."""


class Recognizer:
    def __init__(
        self,
        *,
        objects: ObjectStore,
        finder: FaceFinder,
        profiles: ProfileStore,
        ledger: RecognitionLedger,
        publisher: MessagePublisher,
        notifier: Notifier | None = None,
        options: RecognizerOptions | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        strangers: StrangerObserver | None = None,
        visits: VisitLedger | None = None,
        visit_rules: decide.VisitRules | None = None,
    ) -> None:
        """``strangers``: when given, an unknown face with an embedding joins an anonymous
        person, whose id its message carries. ``visits``: where looks of a visit meet (without
        it, every crop is decided on its own, as a visit of one look); ``visit_rules``: the
        rule in force and the visit's bars (the finder's rule: the wiring builds both from
        the same settings)."""
        self.objects = objects
        self.finder = finder
        self.profiles = profiles
        self.ledger = ledger
        self.publisher = publisher
        self.notifier = notifier
        self.options = options or RecognizerOptions()
        self._clock = clock
        self.strangers = strangers
        self.visits = visits
        self.visit_rules = visit_rules or decide.VisitRules()
        self._owner = f"{self.options.worker_id}@{socket.gethostname()}"

    def prepare(self) -> None:
        """Readies the finder (the engine loads; a local collection is created if missing)."""
        self.finder.prepare()

    def wants(self, event: ObjectCreated) -> bool:
        return event.key.startswith(self.options.prefix) and event.key.endswith(self.options.suffix)

    def handle(self, event: ObjectCreated) -> Outcome:
        """Identifies the face in the event's object and publishes the outcome once."""
        started = time.perf_counter()
        rid = messages.recognition_id(event)
        done = self._claim(rid)
        if done is not None:
            _log.info("%s/%s already handled as %s", event.bucket, event.key, rid)
            return Outcome(done, True, 0.0, time.perf_counter() - started, published=False)
        engine_seconds = 0.0
        crop = CropMetadata()
        publish = True
        try:
            stored = self.objects.get_object(event.bucket, event.key)
            crop = CropMetadata.from_metadata(stored.info.metadata)
            engine_started = time.perf_counter()
            sighting = self.finder.find(stored.body)
            engine_seconds = time.perf_counter() - engine_started
            if crop.visit_id is not None and self.visits is not None:
                recognition, publish = self._look(self.visits, rid, event, crop, sighting)
            else:
                recognition = self._identify(rid, event, crop, sighting)
        except _PERMANENT as exc:
            recognition = self._dead_letter(rid, event, crop, exc)
        if publish:
            self._publish(recognition)
        else:
            self.ledger.record(recognition)
        elapsed = time.perf_counter() - started
        return Outcome(recognition, False, engine_seconds, elapsed, published=publish)

    def reject(
        self, raw: bytes, reason: str, *, code: str = "InvalidEventException"
    ) -> Recognition:
        """Dead-letters a delivery as a whole: a message that is not a readable event
        (``InvalidEventException``), or one the worker gave up on (``code`` says why)."""
        rid = messages.raw_message_id(raw)
        now = self._clock()
        message = messages.failed(rid, None, CropMetadata(), now, code=code, message=reason)
        recognition = Recognition(rid, Status.ERROR, self._errors_topic, message, now, reason=code)
        if self._claim(rid) is None:
            self._publish(recognition)
        return recognition

    def _claim(self, rid: str) -> Recognition | None:
        """Takes ``rid`` for this worker: None when it holds it now (and must publish it),
        else the outcome recorded for it. While another worker holds it, waits (at most
        until that claim's lease runs out) for that worker to record its outcome."""
        lease = self.options.claim_seconds
        while not self.ledger.claim(rid, self._owner, lease_seconds=lease):
            done = self.ledger.get(rid)
            if done is not None:
                return done
            time.sleep(CLAIM_POLL_S)
        return None

    @property
    def _errors_topic(self) -> str:
        return f"{self.options.topic}/errors"

    def _identify(
        self,
        rid: str,
        event: ObjectCreated,
        crop: CropMetadata,
        sighting: Sighting,
    ) -> Recognition:
        """A crop decided on its own (no visit id, or no visit ledger): a visit of one look."""
        now = self._clock()
        return self._answer(rid, event, crop, sighting, now, sighting.identity, None)[0]

    def _answer(
        self,
        rid: str,
        event: ObjectCreated,
        crop: CropMetadata,
        sighting: Sighting,
        now: datetime,
        identity: Identity | None,
        visit: VisitPart | None,
        *,
        embedding: Embedding | None = None,
        first: bool = True,
    ) -> tuple[Recognition, StrangerMatch | None]:
        """The message naming ``identity`` (None: unknown) for this crop, and the stranger an
        unknown face joined (with ``embedding``: the look's own for a first answer, the fused
        looks' for a visit's revision to unknown)."""
        box = sighting.box
        topic = self._topic_of(Status.UNKNOWN if identity is None else Status.IDENTIFIED)
        where = (event.bucket, event.key, event.etag)
        if identity is None:
            probe = sighting.embedding if first else embedding
            stranger = self._stranger(probe, sighting, now)
            message = messages.unknown(
                rid, event, crop, now, box=box, stranger=stranger, visit=visit
            )
            return Recognition(rid, Status.UNKNOWN, topic, message, now, *where), stranger
        message = messages.identified(
            rid,
            event,
            crop,
            now,
            identity=identity,
            profile=self._profile(identity),
            box=box,
            visit=visit,
        )
        return Recognition(rid, Status.IDENTIFIED, topic, message, now, *where), None

    def _topic_of(self, status: Status) -> str:
        if status is Status.IDENTIFIED:
            return self.options.topic
        if status is Status.UNKNOWN:
            return f"{self.options.topic}/unknown"
        return self._errors_topic

    # -- visits --
    def _look(
        self,
        visits: VisitLedger,
        rid: str,
        event: ObjectCreated,
        crop: CropMetadata,
        sighting: Sighting,
    ) -> tuple[Recognition, bool]:
        """One look of a visit (``crop.visit_id``): stored, then the visit's answer decided.
        Returns the recognition and whether it is to be published (False: it changed
        nothing and is only recorded)."""
        visit_id = crop.visit_id or ""
        now = self._clock()
        identity = sighting.identity
        embedding = sighting.embedding
        look = VisitLook(
            recognition_id=rid,
            visit_id=visit_id,
            seen_at=now,
            weight=1.0 if crop.look_quality is None else crop.look_quality,
            embedding=None if embedding is None else embedding.astype(np.float32).tobytes(),
            subject=decide.person_of(identity),
            similarity=None if identity is None else identity.similarity,
        )
        for _ in range(VISIT_TRIES):
            # Stored once (idempotent by rid); read again after a lost compare-and-set, since
            # the worker that won may have brought looks of its own.
            looks = visits.add_look(look, keep=self.visit_rules.max_looks)
            current = visits.answer(visit_id)
            if current is None:
                made = self._first_answer(visits, rid, event, crop, sighting, now, len(looks))
            elif current.recognition_id == rid:
                # This look set the visit's answer and its worker died before recording it:
                # the message may never have gone out. Same RecognitionId, so consumers that
                # did get it drop the repeat.
                made = self._republished(current, event, now), True
            else:
                made = self._next_answer(visits, rid, event, crop, sighting, now, looks, current)
            if made is not None:
                return made
        raise StorageError(
            f"The answer of visit {visit_id} changed {VISIT_TRIES} times while one look was "
            "decided; retrying later"
        )

    def _first_answer(
        self,
        visits: VisitLedger,
        rid: str,
        event: ObjectCreated,
        crop: CropMetadata,
        sighting: Sighting,
        now: datetime,
        stored: int,
    ) -> tuple[Recognition, bool] | None:
        """The visit's first answer: this look's own, as a single crop's (revision 0). None
        when another worker answered the visit first."""
        visit = VisitPart(crop.visit_id, 0, None, looks=1)
        recognition, stranger = self._answer(
            rid, event, crop, sighting, now, sighting.identity, visit
        )
        answer = VisitAnswer(
            visit_id=crop.visit_id or "",
            revision=0,
            recognition_id=rid,
            status=recognition.status,
            message=recognition.message,
            camera=crop.camera,
            looks=max(1, stored),
            first_seen=now,
            updated_at=now,
        )
        if self._revise(visits, answer, None, stranger):
            return recognition, True
        return None

    def _next_answer(
        self,
        visits: VisitLedger,
        rid: str,
        event: ObjectCreated,
        crop: CropMetadata,
        sighting: Sighting,
        now: datetime,
        looks: list[VisitLook],
        current: VisitAnswer,
    ) -> tuple[Recognition, bool] | None:
        """A later look: the visit's answer revised when the fused looks say so
        (:mod:`facelens.recognizer.visits`), else this look recorded with the standing answer.
        None when another worker revised the visit meanwhile."""
        rules = self.visit_rules
        standing = decide.Standing(
            decide.person_of(messages.identity_of(current.message)), current.revision
        )
        probe = decide.fuse(looks)
        fused: Identity | None = None
        if probe is not None and isinstance(self.finder, ProbeSearch):
            fused = self.finder.search_within(
                probe, max_fpir=rules.loose_fpir, threshold=rules.loose_threshold
            )
            change = decide.revise_by_embedding(standing, fused, rules)
        else:
            change = decide.revise_by_scores(standing, sighting.identity, rules)
        if change is None:
            return self._unchanged(rid, event, crop, sighting, now, current, fused, len(looks))
        revision = current.revision + 1
        visit = VisitPart(crop.visit_id, revision, current.message, looks=len(looks))
        recognition, stranger = self._answer(
            rid, event, crop, sighting, now, change.identity, visit, embedding=probe, first=False
        )
        answer = VisitAnswer(
            visit_id=current.visit_id,
            revision=revision,
            recognition_id=rid,
            status=recognition.status,
            message=recognition.message,
            camera=current.camera or crop.camera,
            looks=current.looks,
            first_seen=current.first_seen,
            updated_at=now,
        )
        if not self._revise(visits, answer, current.revision, stranger):
            return None
        replaced_face = current.message.get("StrangerFaceId")
        if change.identity is not None and isinstance(replaced_face, str):
            # The visit was a stranger and is someone enrolled after all: the face it gave
            # the stranger was theirs.
            self._take_back(replaced_face)
        _log.info(
            "visit %s revision %d: %s -> %s",
            current.visit_id,
            revision,
            standing.person or "unknown",
            decide.person_of(change.identity) or "unknown",
        )
        return recognition, True

    def _revise(
        self,
        visits: VisitLedger,
        answer: VisitAnswer,
        expected: int | None,
        stranger: StrangerMatch | None,
    ) -> bool:
        """Compare-and-set; a lost one takes back the stranger face its answer added (the
        winner's answer decides whether the visit is a stranger)."""
        try:
            won = visits.revise(answer, expected=expected)
        except BaseException:
            if stranger is not None:
                self._take_back(stranger.face_id)
            raise
        if not won and stranger is not None:
            self._take_back(stranger.face_id)
        return won

    def _take_back(self, face_id: str) -> None:
        """Best effort: a stranger face left behind is a wrong sighting, not a lost answer."""
        if self.strangers is None:
            return
        try:
            self.strangers.take_back(self.options.collection_id, face_id)
        except FacelensError as exc:
            _log.warning("stranger face %s not taken back: %s %s", face_id, exc.code, exc.message)

    def _unchanged(
        self,
        rid: str,
        event: ObjectCreated,
        crop: CropMetadata,
        sighting: Sighting,
        now: datetime,
        current: VisitAnswer,
        fused: Identity | None,
        looks: int,
    ) -> tuple[Recognition, bool]:
        """This look's record when it changed nothing: the visit's standing answer (with the
        fused looks' figures when they still name the same person), never published."""
        visit = VisitPart(
            current.visit_id,
            current.revision,
            current.message.get("Revises"),
            looks=looks,
            published=False,
        )
        where = (event.bucket, event.key, event.etag)
        named = messages.identity_of(current.message)
        if current.status is not Status.IDENTIFIED or named is None:
            message = messages.unknown(
                rid,
                event,
                crop,
                now,
                box=sighting.box,
                stranger_fields=messages.stranger_of(current.message),
                visit=visit,
            )
            topic = self._topic_of(Status.UNKNOWN)
            return Recognition(rid, Status.UNKNOWN, topic, message, now, *where), False
        person = decide.person_of(named)
        for fresher in (fused, sighting.identity):
            if fresher is not None and decide.person_of(fresher) == person:
                named = fresher
                break
        message = messages.identified(
            rid,
            event,
            crop,
            now,
            identity=named,
            profile=messages.profile_of(current.message),
            box=sighting.box,
            visit=visit,
        )
        topic = self._topic_of(Status.IDENTIFIED)
        return Recognition(rid, Status.IDENTIFIED, topic, message, now, *where), False

    def _republished(
        self, current: VisitAnswer, event: ObjectCreated, now: datetime
    ) -> Recognition:
        return Recognition(
            current.recognition_id,
            current.status,
            self._topic_of(current.status),
            current.message,
            now,
            event.bucket,
            event.key,
            event.etag,
        )

    def _stranger(
        self, embedding: Embedding | None, sighting: Sighting, now: datetime
    ) -> StrangerMatch | None:
        """The anonymous person this unknown face (``embedding``: the look's, or a visit's
        fused looks') joins. A back end that is down raises (the event is retried); any
        other failure only leaves the StrangerId out: the unknown face is still published."""
        if self.strangers is None or embedding is None:
            return None
        try:
            return self.strangers.observe(
                self.options.collection_id,
                embedding,
                seen_at=now,
                box=sighting.box,
                source=sighting.source,
            )
        except StorageError:
            raise
        except FacelensError as exc:
            _log.warning("stranger not recorded: %s %s", exc.code, exc.message)
            return None

    def _profile(self, identity: Identity) -> Mapping[str, Any]:
        for profile_id in (identity.user_id, identity.face_id):
            if profile_id is not None:
                profile = self.profiles.get(profile_id)
                if profile is not None:
                    return profile.attributes
        return {}

    def _dead_letter(
        self, rid: str, event: ObjectCreated, crop: CropMetadata, exc: FacelensError
    ) -> Recognition:
        _log.warning("dead letter %s/%s: %s %s", event.bucket, event.key, exc.code, exc.message)
        now = self._clock()
        message = messages.failed(rid, event, crop, now, code=exc.code, message=exc.message)
        return Recognition(
            rid,
            Status.ERROR,
            self._errors_topic,
            message,
            now,
            event.bucket,
            event.key,
            event.etag,
            reason=exc.code,
        )

    def _publish(self, recognition: Recognition) -> None:
        # Publish (durably spooled) before recording, under the claim: a crash between
        # the two leaves the claim, and whoever takes it next republishes with the same
        # RecognitionId rather than losing the message.
        self.publisher.publish(recognition.topic, recognition.message)
        self.ledger.record(recognition)
        if self.notifier is not None and recognition.status is not Status.ERROR:
            self.notifier.notify(alert_for(recognition))


def alert_for(recognition: Recognition) -> Alert:
    """One alert per visit: its first answer, then a correction for each revision (titled
    so, saying what it replaces); looks that change nothing are never published or alerted."""
    m = recognition.message
    camera = m.get("Camera") or "a camera"
    revises = m.get("Revises")
    correction = "Correction: " if isinstance(revises, Mapping) else ""
    replaced = ""
    if isinstance(revises, Mapping):
        before = revises.get("Name") or revises.get("UserId") or revises.get("FaceId")
        replaced = f" (earlier: {before or 'unknown person'})"
    if recognition.status is Status.UNKNOWN:
        title = f"{correction}Unknown person at {camera}"
        return Alert(person=None, title=title, body=f"Crop: {m['Key']}{replaced}")
    person = m.get("UserId") or m.get("FaceId")
    name = m.get("Name") or person
    body = f"{name} ({m['Similarity']:.1f}% similar) at {camera}{replaced}. Crop: {m['Key']}"
    return Alert(person=str(person), title=f"{correction}{name} at {camera}", body=body)

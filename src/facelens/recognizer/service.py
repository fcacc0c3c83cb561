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
"""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

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
from facelens.profiles.store import ProfileStore
from facelens.recognizer import messages
from facelens.recognizer.finders import FaceFinder, Sighting
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
    ) -> None:
        """``strangers``: when given, an unknown face with an embedding joins an anonymous
        person, whose id its message carries."""
        self.objects = objects
        self.finder = finder
        self.profiles = profiles
        self.ledger = ledger
        self.publisher = publisher
        self.notifier = notifier
        self.options = options or RecognizerOptions()
        self._clock = clock
        self.strangers = strangers
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
            return Outcome(done, True, 0.0, time.perf_counter() - started)
        engine_seconds = 0.0
        crop = CropMetadata()
        try:
            stored = self.objects.get_object(event.bucket, event.key)
            crop = CropMetadata.from_metadata(stored.info.metadata)
            engine_started = time.perf_counter()
            sighting = self.finder.find(stored.body)
            engine_seconds = time.perf_counter() - engine_started
            recognition = self._identify(rid, event, crop, sighting)
        except _PERMANENT as exc:
            recognition = self._dead_letter(rid, event, crop, exc)
        self._publish(recognition)
        return Outcome(recognition, False, engine_seconds, time.perf_counter() - started)

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
        now = self._clock()
        identity, box = sighting.identity, sighting.box
        if identity is None:
            stranger = self._stranger(sighting, now)
            message = messages.unknown(rid, event, crop, now, box=box, stranger=stranger)
            topic = f"{self.options.topic}/unknown"
            return Recognition(
                rid, Status.UNKNOWN, topic, message, now, event.bucket, event.key, event.etag
            )
        message = messages.identified(
            rid, event, crop, now, identity=identity, profile=self._profile(identity), box=box
        )
        return Recognition(
            rid,
            Status.IDENTIFIED,
            self.options.topic,
            message,
            now,
            event.bucket,
            event.key,
            event.etag,
        )

    def _stranger(self, sighting: Sighting, now: datetime) -> StrangerMatch | None:
        """The anonymous person this unknown face joins. A back end that is down raises
        (the event is retried); any other failure only leaves the StrangerId out: the
        unknown face is still published."""
        if self.strangers is None or sighting.embedding is None:
            return None
        try:
            return self.strangers.observe(
                self.options.collection_id,
                sighting.embedding,
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
            self.notifier.notify(_alert(recognition))


def _alert(recognition: Recognition) -> Alert:
    m = recognition.message
    camera = m.get("Camera") or "a camera"
    if recognition.status is Status.UNKNOWN:
        return Alert(person=None, title=f"Unknown person at {camera}", body=f"Crop: {m['Key']}")
    person = m.get("UserId") or m.get("FaceId")
    name = m.get("Name") or person
    body = f"{name} ({m['Similarity']:.1f}% similar) at {camera}. Crop: {m['Key']}"
    return Alert(person=str(person), title=f"{name} at {camera}", body=body)

"""The stores, opened where the settings say: collections, profiles, objects and history.

Each factory opens one store on the caller's ExitStack, so a command opens
only the stores it uses. Collections either live in facelens (a
:class:`CollectionParts`: the engine's analyzer, the store and the services
over it) or in AWS Rekognition (``collections_url`` ``rekognition://``), where
facelens only searches them: then :func:`open_collections` refuses, with a
message that says how to manage them.
"""

from __future__ import annotations

from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from facelens.collection.analysis import FaceAnalyzer, ImageLimits
from facelens.collection.service import CollectionService
from facelens.collection.stores.registry import open_store
from facelens.collection.stores.store import CollectionStore
from facelens.collection.users import UserService
from facelens.config import Settings
from facelens.engine.registry import build_engine
from facelens.errors import ConfigurationError
from facelens.history.audit import AuditLog
from facelens.history.ledger import RecognitionLedger
from facelens.history.registry import open_audit_log
from facelens.history.registry import open_ledger as open_ledger_in
from facelens.history.registry import open_visits as open_visits_in
from facelens.history.visits import VisitLedger
from facelens.profiles.registry import open_profile_store
from facelens.profiles.store import ProfileStore
from facelens.storage.notifications import EventSink, NotificationRule, NotifyingObjectStore
from facelens.storage.protocol import ObjectStore
from facelens.storage.registry import open_object_store
from facelens.wiring.lifetime import close_later
from facelens.wiring.process import make_home

if TYPE_CHECKING:
    from facelens.collection.rekognition import RekognitionCollections

REKOGNITION_SCHEME = "rekognition:"
OUTBOX_RULE = "facelens-recognizer"
"""The notification rule that sends a put crop's ObjectCreated event to the recognizers."""
IN_REKOGNITION = (
    "Collections are in AWS Rekognition (collections_url rekognition://): manage "
    "them with the AWS CLI or SDK (aws rekognition index-faces ...); facelens "
    "only searches them"
)


def build_analyzer(settings: Settings) -> FaceAnalyzer:
    """The analyzer for ``settings``: the engine, not loaded until its first use, and the
    image limits (a plain function, so worker processes can build their own)."""
    limits = ImageLimits(
        max_bytes=settings.max_image_bytes,
        max_pixels=settings.max_image_pixels,
        pixel_budget=settings.image_pixel_budget,
        budget_wait_seconds=settings.image_budget_wait_seconds,
    )
    return FaceAnalyzer(
        build_engine(settings), limits=limits, keep_sources=settings.keep_face_sources
    )


def in_rekognition(settings: Settings) -> bool:
    """Whether collections live in AWS Rekognition (``rekognition://``), not in facelens."""
    return settings.database_url().startswith(REKOGNITION_SCHEME)


@dataclass(frozen=True)
class CollectionParts:
    """facelens' own collections: the engine's analyzer, the store, and the Rekognition-style
    services over them (faces; users)."""

    analyzer: FaceAnalyzer
    store: CollectionStore
    collections: CollectionService
    users: UserService


def open_collections(
    settings: Settings, stack: ExitStack, analyzer: FaceAnalyzer | None = None
) -> CollectionParts:
    """The collection store and its services; ``analyzer`` default: one built from the
    settings (tests pass a loaded one). Refused when collections are in Rekognition."""
    if in_rekognition(settings):
        raise ConfigurationError(IN_REKOGNITION)
    # A PostgreSQL store saves its search indexes under the home (SQLite: beside its file).
    indexes = settings.home / "faceindex"
    store = open_store(_local_url(settings, settings.database_url()), index_directory=indexes)
    close_later(stack, store.close)
    analyzer = analyzer if analyzer is not None else build_analyzer(settings)
    collections = CollectionService(analyzer, store)
    return CollectionParts(analyzer, store, collections, UserService(collections, analyzer, store))


def open_rekognition(settings: Settings, stack: ExitStack) -> RekognitionCollections:
    """The Rekognition back-end, for ``collections_url`` 'rekognition://'."""
    from facelens.collection.rekognition import open_rekognition as open_backend

    backend = open_backend(settings.database_url())
    close_later(stack, backend.close)
    return backend


def open_profiles(settings: Settings, stack: ExitStack) -> ProfileStore:
    store = open_profile_store(_local_url(settings, settings.profile_store_url()))
    close_later(stack, store.close)
    return store


def open_raw_objects(settings: Settings, stack: ExitStack) -> ObjectStore:
    """The object store without event notifications (what the recognizer reads crops from)."""
    url = settings.objects_store_url()
    if url.startswith("file://"):
        Path(url.removeprefix("file://")).mkdir(parents=True, exist_ok=True, mode=0o700)
    store = open_object_store(url)
    close_later(stack, store.close)
    if not url.startswith("s3://"):
        # Embedded stores start empty; an S3 bucket is made by its owner (deploy/aws),
        # since a least-privilege camera or recognizer may not create buckets.
        store.create_bucket(settings.bucket)
    return store


def notifying_objects(
    settings: Settings, objects: ObjectStore, sink: EventSink | None
) -> ObjectStore:
    """``objects`` where a put of a crop sends its ObjectCreated event to the recognizers
    through ``sink``; ``objects`` itself without a sink (source 'sqs': the store itself, S3,
    sends the events). Closing stays with whoever opened ``objects``."""
    if sink is None:
        return objects
    r = settings.recognizer
    rule = NotificationRule(OUTBOX_RULE, "recognizer", prefix=r.prefix, suffix=r.suffix)
    return NotifyingObjectStore(objects, rules=[rule], sinks={"recognizer": sink})


@dataclass(frozen=True)
class History:
    """What happened, where the collections are (PostgreSQL's is every host's), else in the
    home: the recognizer's ledger, the audit log and the visits (their looks and answers,
    beside the ledger)."""

    ledger: RecognitionLedger
    audit: AuditLog
    visits: VisitLedger


def open_ledger(settings: Settings, stack: ExitStack) -> RecognitionLedger:
    make_home(settings)
    ledger = open_ledger_in(settings.database_url(), settings.home)
    close_later(stack, ledger.close)
    return ledger


def open_audit(settings: Settings, stack: ExitStack) -> AuditLog:
    """Who enrolled, deleted, corrected or read whose data."""
    make_home(settings)
    audit = open_audit_log(settings.database_url(), settings.home)
    close_later(stack, audit.close)
    return audit


def open_visits(settings: Settings, stack: ExitStack) -> VisitLedger:
    """The visits, where the ledger is (opened on first use, like it)."""
    make_home(settings)
    visits = open_visits_in(settings.database_url(), settings.home)
    close_later(stack, visits.close)
    return visits


def open_history(settings: Settings, stack: ExitStack) -> History:
    return History(
        open_ledger(settings, stack), open_audit(settings, stack), open_visits(settings, stack)
    )


@dataclass(frozen=True)
class Stores:
    """Every store a recognizer reads and writes. ``collections`` (facelens' own) or
    ``rekognition`` (in AWS Rekognition): one of the two, as the settings say."""

    collections: CollectionParts | None
    rekognition: RekognitionCollections | None
    profiles: ProfileStore
    objects: ObjectStore
    """Without event notifications: crops are read from it."""
    history: History

    def own_collections(self) -> CollectionParts:
        """facelens' collections; refused when they are in Rekognition."""
        if self.collections is None:
            raise ConfigurationError(IN_REKOGNITION)
        return self.collections


def open_stores(
    settings: Settings, stack: ExitStack, analyzer: FaceAnalyzer | None = None
) -> Stores:
    """Every store, opened now (a recognizer uses them all on its first crop)."""
    collections = rekognition = None
    if in_rekognition(settings):
        rekognition = open_rekognition(settings, stack)
    else:
        collections = open_collections(settings, stack, analyzer)
    return Stores(
        collections=collections,
        rekognition=rekognition,
        profiles=open_profiles(settings, stack),
        objects=open_raw_objects(settings, stack),
        history=open_history(settings, stack),
    )


def _local_url(settings: Settings, url: str) -> str:
    if url.startswith("sqlite:///"):
        make_home(settings)
    return url

"""Builds facelens' parts from settings: the one place that chooses adapters.

Every part is built on first use (a cached property), so a command that
lists profiles opens no broker and loads no model. The CLI, and later the
server and ``facelens up``, wire through this class: one code path,
different entry points.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

from facelens.bus.delivery import EventSource
from facelens.bus.notify import Notifier
from facelens.bus.outbox import SqliteOutbox
from facelens.bus.publisher import MemoryPublisher, MessagePublisher, ObservedPublisher, Observer
from facelens.collection.analysis import FaceAnalyzer, ImageLimits
from facelens.collection.service import CollectionService
from facelens.collection.stores.registry import open_store
from facelens.collection.stores.store import CollectionStore
from facelens.collection.users import UserService
from facelens.config import EventSourceKind, Settings
from facelens.engine.registry import build_engine
from facelens.errors import ConfigurationError
from facelens.history.ledger import RecognitionLedger
from facelens.history.registry import open_ledger
from facelens.people_wiring import PeopleParts
from facelens.profiles.registry import open_profile_store
from facelens.profiles.store import ProfileStore
from facelens.recognizer.finders import EngineFinder, FaceFinder, RekognitionFinder, SearchOptions
from facelens.recognizer.service import Recognizer, RecognizerOptions
from facelens.storage.notifications import EventSink, NotificationRule, NotifyingObjectStore
from facelens.storage.protocol import ObjectStore
from facelens.storage.registry import open_object_store

if TYPE_CHECKING:
    from facelens.access.keys import KeyStore
    from facelens.bus.mqtt_config import MqttEndpoint
    from facelens.bus.mqtt_publisher import MqttPublisher
    from facelens.bus.spool import Spool
    from facelens.collection.rekognition import RekognitionCollections
    from facelens.edge.runner import EdgeRunner

OUTBOX_RULE = "facelens-recognizer"
REKOGNITION_SCHEME = "rekognition:"
IOT_DATA_SCHEME = "iotdata:"


def build_analyzer(settings: Settings) -> FaceAnalyzer:
    """The analyzer for ``settings`` (module-level so worker processes can build their own)."""
    limits = ImageLimits(
        max_bytes=settings.max_image_bytes,
        max_pixels=settings.max_image_pixels,
        pixel_budget=settings.image_pixel_budget,
        budget_wait_seconds=settings.image_budget_wait_seconds,
    )
    return FaceAnalyzer(
        build_engine(settings), limits=limits, keep_sources=settings.keep_face_sources
    )


@dataclass
class Components(PeopleParts):
    """``instance`` names this process's role: its MQTT clients, spool file and availability
    topic; default: the recognizer's worker id (``facelens recognizer``). Other front ends
    name their own (``serve``, ``edge-<thing>``, ``up-<thing>``, ``lambda``, ``cli``): two
    live processes sharing one would drain the same spool and speak for each other's status.
    MQTT client ids also carry a random tag per ``Components`` (see :meth:`mqtt_endpoint`)."""

    settings: Settings = field(default_factory=Settings)
    instance: str | None = None
    publish_observers: list[Observer] = field(default_factory=list)
    """Shown every JSON message the publisher takes (``facelens up``); add before first use."""
    _closers: list[Callable[[], None]] = field(default_factory=list, init=False, repr=False)

    @property
    def instance_name(self) -> str:
        return self.instance or self.settings.recognizer.worker_id

    # -- collections --
    @property
    def in_rekognition(self) -> bool:
        """Whether collections live in AWS Rekognition (``rekognition://``), not in facelens."""
        return self.settings.database_url().startswith(REKOGNITION_SCHEME)

    @cached_property
    def store(self) -> CollectionStore:
        if self.in_rekognition:
            raise ConfigurationError(
                "Collections are in AWS Rekognition (collections_url rekognition://): manage "
                "them with the AWS CLI or SDK (aws rekognition index-faces ...); facelens "
                "only searches them"
            )
        # A PostgreSQL store saves its search indexes under the home (SQLite: beside its file).
        indexes = self.settings.home / "faceindex"
        return open_store(self._local_url(self.settings.database_url()), index_directory=indexes)

    @cached_property
    def rekognition(self) -> RekognitionCollections:
        """The Rekognition back-end, for ``collections_url`` 'rekognition://'."""
        from facelens.collection.rekognition import open_rekognition

        return open_rekognition(self.settings.database_url())

    @cached_property
    def analyzer(self) -> FaceAnalyzer:
        return build_analyzer(self.settings)

    @cached_property
    def collections(self) -> CollectionService:
        return CollectionService(self.analyzer, self.store)

    @cached_property
    def users(self) -> UserService:
        return UserService(self.collections, self.analyzer, self.store)

    @cached_property
    def profiles(self) -> ProfileStore:
        return open_profile_store(self._local_url(self.settings.profile_store_url()))

    # -- objects and their events --
    @cached_property
    def raw_objects(self) -> ObjectStore:
        """The object store without event notifications."""
        url = self.settings.objects_store_url()
        if url.startswith("file://"):
            Path(url.removeprefix("file://")).mkdir(parents=True, exist_ok=True, mode=0o700)
        store = open_object_store(url)
        if not url.startswith("s3://"):
            # Embedded stores start empty; an S3 bucket is made by its owner (deploy/aws),
            # since a least-privilege camera or recognizer may not create buckets.
            store.create_bucket(self.settings.bucket)
        return store

    @cached_property
    def objects(self) -> ObjectStore:
        """The object store; a put of a crop sends its ObjectCreated event to the recognizers.

        With source 'sqs' the store itself (S3) sends the events, so none are
        sent from here.
        """
        sink = self.event_sink
        if sink is None:
            return self.raw_objects
        r = self.settings.recognizer
        rule = NotificationRule(OUTBOX_RULE, "recognizer", prefix=r.prefix, suffix=r.suffix)
        return NotifyingObjectStore(self.raw_objects, rules=[rule], sinks={"recognizer": sink})

    @cached_property
    def outbox(self) -> SqliteOutbox:
        e = self.settings.events
        return SqliteOutbox(
            self.home_file("events.db"),
            worker_id=self.settings.recognizer.worker_id,
            visibility_timeout=e.visibility_timeout,
        )

    @cached_property
    def event_sink(self) -> EventSink | None:
        kind = self.settings.events.source
        if kind is EventSourceKind.OUTBOX:
            return self.outbox
        if kind is EventSourceKind.MQTT:
            from facelens.bus.mqtt_events import MqttEventSink

            return MqttEventSink(self.mqtt_publisher, self.settings.events.topic)
        return None

    @cached_property
    def event_source(self) -> EventSource:
        e = self.settings.events
        if e.source is EventSourceKind.OUTBOX:
            return self.outbox
        if e.source is EventSourceKind.MQTT:
            from facelens.bus.mqtt_events import MqttEventSource

            return MqttEventSource(self.mqtt_events_endpoint, topic=e.topic, group=e.group)
        if e.sqs_queue_url is None:
            raise ConfigurationError("events.source 'sqs' needs events.sqs_queue_url")
        from facelens.bus.sqs_events import SqsEventSource

        return SqsEventSource(e.sqs_queue_url, visibility_timeout=e.visibility_timeout)

    # -- publication --
    @cached_property
    def mqtt_tag(self) -> str:
        """Random, fixed for this object's life: sets this process's clean-session MQTT clients
        apart from those of any other process in the same role (a broker keeps one connection
        per client id and drops the older one)."""
        from facelens.bus.mqtt_config import new_process_tag

        return new_process_tag()

    def mqtt_endpoint(self, role: str, *, persistent: bool = False) -> MqttEndpoint:
        """The broker, for a client with id ``<mqtt.client_id>-<role>-<mqtt_tag>``; with
        ``persistent`` (a session that must resume after a restart) ``<mqtt.client_id>-<role>``,
        so ``role`` itself must then be unique among live clients and stable across restarts."""
        from facelens.bus.mqtt_config import MqttEndpoint, make_client_id

        m = self.settings.mqtt
        if m.url is None:
            raise ConfigurationError("This needs an MQTT broker: set mqtt.url (FACELENS_MQTT__URL)")
        return MqttEndpoint.from_url(
            m.url,
            username=m.username,
            password=m.password.get_secret_value() if m.password else None,
            ca_file=m.ca_file,
            cert_file=m.cert_file,
            key_file=m.key_file,
            client_id=make_client_id(m.client_id, role, tag=None if persistent else self.mqtt_tag),
        )

    @property
    def mqtt_publisher_endpoint(self) -> MqttEndpoint:
        """This process's publisher (clean session): ``<prefix>-<instance>-pub-<tag>``."""
        return self.mqtt_endpoint(f"{self.instance_name}-pub")

    @property
    def mqtt_events_endpoint(self) -> MqttEndpoint:
        """The recognizer worker's shared-subscription session, persistent so that the events
        it had not acknowledged come back to it after a restart: ``<prefix>-<worker id>``,
        stable, hence one ``recognizer.worker_id`` per live worker."""
        return self.mqtt_endpoint(self.settings.recognizer.worker_id, persistent=True)

    @property
    def mqtt_names_endpoint(self) -> MqttEndpoint:
        """An edge runner's listener for names (clean session):
        ``<prefix>-<instance>-names-<tag>``."""
        return self.mqtt_endpoint(f"{self.instance_name}-names")

    @cached_property
    def mqtt_spool(self) -> Spool:
        """Messages waiting for the broker, on disk: one file per instance (role), kept across
        restarts so what a stopped process had not sent goes out when it is back."""
        from facelens.bus.spool import Spool

        return Spool(
            self.home_file(f"mqtt-spool-{self.instance_name}.db"),
            max_messages=self.settings.mqtt.spool_max_messages,
        )

    @cached_property
    def mqtt_publisher(self) -> MqttPublisher:
        from facelens.bus.mqtt_publisher import MqttPublisher

        worker = self.instance_name
        topic = f"facelens/status/{worker}"
        publisher = MqttPublisher(
            self.mqtt_publisher_endpoint,
            spool=self.mqtt_spool,
            availability_topic=topic,
        )
        publisher.start()
        return publisher

    @cached_property
    def publisher(self) -> MessagePublisher:
        url = self.settings.mqtt.url
        inner: MessagePublisher
        if url is None:
            inner = MemoryPublisher()
        elif url.startswith(IOT_DATA_SCHEME):
            # AWS IoT Core over HTTPS, one synchronous call per message (AWS Lambda).
            from facelens.bus.iot_data import IotDataPublisher

            inner = IotDataPublisher.from_url(url)
            self._closers.append(inner.close)
        else:
            inner = self.mqtt_publisher
        if self.publish_observers:
            return ObservedPublisher(inner, self.publish_observers)
        return inner

    @cached_property
    def notifier(self) -> Notifier:
        notifier = Notifier(self.settings.notify)
        notifier.start()
        return notifier

    # -- the recognizer --
    @cached_property
    def ledger(self) -> RecognitionLedger:
        """Where the collections are: PostgreSQL's ledger is every host's, else
        ``<home>/recognizer.db``."""
        return open_ledger(self.settings.database_url(), self.settings.home)

    @cached_property
    def finder(self) -> FaceFinder:
        """Who a crop shows: facelens' engine and collections, or Rekognition's collection."""
        r = self.settings.recognizer
        search = SearchOptions(
            collection_id=r.collection_id,
            face_match_threshold=r.face_match_threshold,
            max_faces=r.max_faces,
            max_false_identification_rate=(
                r.max_false_identification_rate if r.rule == "open-set" else None
            ),
        )
        if self.in_rekognition:
            return RekognitionFinder(self.rekognition, options=search)
        return EngineFinder(
            self.analyzer, self.collections, self.users, options=search, policy=self.match_policy
        )

    @cached_property
    def recognizer(self) -> Recognizer:
        r = self.settings.recognizer
        options = RecognizerOptions(
            prefix=r.prefix,
            suffix=r.suffix,
            topic=r.topic,
            collection_id=r.collection_id,
            worker_id=r.worker_id,
            claim_seconds=self.settings.events.visibility_timeout,
        )
        return Recognizer(
            objects=self.raw_objects,
            finder=self.finder,
            profiles=self.profiles,
            ledger=self.ledger,
            publisher=self.publisher,
            notifier=self.notifier if self.settings.notify else None,
            options=options,
            strangers=self.strangers if r.strangers and not self.in_rekognition else None,
        )

    # -- the HTTP server --
    @cached_property
    def keys(self) -> KeyStore:
        from facelens.access.keys import KeyStore

        return KeyStore(self.home_file("keys.db"))

    # -- the edge runner --
    def edge_runner(
        self, *, source: str, thing: str, realtime: bool = False, max_frames: int | None = None
    ) -> EdgeRunner:
        """A runner for one camera, on ``settings.edge``. Build it on
        ``Components(instance=f"edge-{thing}")``: the instance names its MQTT client and spool,
        so two runners on one host do not share them."""
        from facelens.edge_wiring import build_edge_runner

        return build_edge_runner(
            self, source=source, thing=thing, realtime=realtime, max_frames=max_frames
        )

    def on_close(self, closer: Callable[[], None]) -> None:
        """Runs ``closer`` on :meth:`close` (before the stores and publishers close)."""
        self._closers.append(closer)

    def mqtt_connected(self) -> bool | None:
        """Whether the MQTT broker is connected now; None without a broker connection."""
        url = self.settings.mqtt.url
        if url is None or url.startswith(IOT_DATA_SCHEME):
            return None
        return self.mqtt_publisher.connected

    def close(self) -> None:
        """Stops and closes whatever was built, publishers last so they can flush."""
        built = self.__dict__
        for closer in reversed(self._closers):
            with contextlib.suppress(Exception):  # closing is best effort at shutdown
                closer()
        self._closers.clear()
        if "notifier" in built:
            self.notifier.stop()
        names = (
            "event_source",
            "outbox",
            "ledger",
            "profiles",
            "raw_objects",
            "store",
            "rekognition",
            "keys",
            "audit",
        )
        for name in names:
            part = built.get(name)
            if part is not None:
                with contextlib.suppress(Exception):  # closing is best effort at shutdown
                    part.close()
        if "mqtt_publisher" in built:
            self.mqtt_publisher.stop()
        if "mqtt_spool" in built:
            self.mqtt_spool.close()

    def home_file(self, name: str) -> Path:
        """``<home>/name``, the home made (0700) if it is not there yet."""
        self.settings.home.mkdir(parents=True, exist_ok=True, mode=0o700)
        return self.settings.home / name

    def _local_url(self, url: str) -> str:
        if url.startswith("sqlite:///"):
            self.settings.home.mkdir(parents=True, exist_ok=True, mode=0o700)
        return url

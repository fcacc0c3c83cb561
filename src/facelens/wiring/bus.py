"""The bus, opened where the settings say: publication, events and notifications.

Publication goes to an MQTT broker (``mqtt://``, ``mqtts://``), to AWS IoT
Core over HTTPS (``iotdata://``, one synchronous call per message: AWS
Lambda) or, without ``mqtt.url``, to memory. MQTT clients are named
``<mqtt.client_id>-<role>-<tag>`` (:mod:`facelens.wiring.process`): the
recognizer's event session alone is ``<mqtt.client_id>-<worker id>``, stable,
so that it resumes after a restart. Each process role spools what the broker
has not taken in a file of its own, ``<home>/mqtt-spool-<role>.db``.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from typing import TYPE_CHECKING

from facelens.bus.delivery import EventSource
from facelens.bus.notify import Notifier
from facelens.bus.outbox import SqliteOutbox
from facelens.bus.publisher import MemoryPublisher, MessagePublisher, ObservedPublisher, Observer
from facelens.config import EventSourceKind, Settings
from facelens.errors import ConfigurationError
from facelens.storage.notifications import EventSink
from facelens.wiring.lifetime import close_later
from facelens.wiring.process import ProcessRole, home_file

if TYPE_CHECKING:
    from facelens.bus.mqtt_config import MqttEndpoint
    from facelens.bus.mqtt_publisher import MqttPublisher

IOT_DATA_SCHEME = "iotdata:"
NEEDS_BROKER = "This needs an MQTT broker: set mqtt.url (FACELENS_MQTT__URL)"


def mqtt_endpoint(settings: Settings, client_role: str, *, tag: str | None) -> MqttEndpoint:
    """The broker, for a client with id ``<mqtt.client_id>-<client_role>-<tag>``; without
    ``tag`` (a session that must resume after a restart) ``<mqtt.client_id>-<client_role>``,
    so ``client_role`` itself must then be unique among live clients and stable across
    restarts."""
    from facelens.bus.mqtt_config import MqttEndpoint, make_client_id

    m = settings.mqtt
    if m.url is None:
        raise ConfigurationError(NEEDS_BROKER)
    return MqttEndpoint.from_url(
        m.url,
        username=m.username,
        password=m.password.get_secret_value() if m.password else None,
        ca_file=m.ca_file,
        cert_file=m.cert_file,
        key_file=m.key_file,
        client_id=make_client_id(m.client_id, client_role, tag=tag),
    )


def publisher_endpoint(settings: Settings, role: ProcessRole) -> MqttEndpoint:
    """The process's publisher (clean session): ``<prefix>-<role>-pub-<tag>``."""
    return mqtt_endpoint(settings, f"{role.name}-pub", tag=role.mqtt_tag)


def events_endpoint(settings: Settings) -> MqttEndpoint:
    """The recognizer worker's shared-subscription session, persistent so that the events
    it had not acknowledged come back to it after a restart: ``<prefix>-<worker id>``,
    stable, hence one ``recognizer.worker_id`` per live worker."""
    return mqtt_endpoint(settings, settings.recognizer.worker_id, tag=None)


def names_endpoint(settings: Settings, role: ProcessRole) -> MqttEndpoint:
    """An edge runner's listener for names (clean session): ``<prefix>-<role>-names-<tag>``."""
    return mqtt_endpoint(settings, f"{role.name}-names", tag=role.mqtt_tag)


@dataclass(frozen=True)
class Publication:
    """Where this process publishes: ``publisher`` (observed, when observers were given);
    ``broker``: the MQTT session behind it, None for IoT data over HTTPS and for memory."""

    publisher: MessagePublisher
    broker: MqttPublisher | None

    def connected(self) -> bool | None:
        """Whether the MQTT broker is connected now; None without a broker connection."""
        return None if self.broker is None else self.broker.connected


def open_publication(
    settings: Settings, stack: ExitStack, role: ProcessRole, observers: Sequence[Observer] = ()
) -> Publication:
    """The publisher for ``mqtt.url``, started. ``observers`` are shown every JSON message
    it takes (``facelens up``). Open it before what publishes through it: the stack then
    stops it after them, and it sends what is spooled before it goes."""
    url = settings.mqtt.url
    inner: MessagePublisher
    broker = None
    if url is None:
        inner = MemoryPublisher()
    elif url.startswith(IOT_DATA_SCHEME):
        from facelens.bus.iot_data import IotDataPublisher

        iot = IotDataPublisher.from_url(url)
        close_later(stack, iot.close)
        inner = iot
    else:
        inner = broker = _open_broker(settings, stack, role)
    if observers:
        return Publication(ObservedPublisher(inner, list(observers)), broker)
    return Publication(inner, broker)


def _open_broker(settings: Settings, stack: ExitStack, role: ProcessRole) -> MqttPublisher:
    from facelens.bus.mqtt_publisher import MqttPublisher
    from facelens.bus.spool import Spool

    endpoint = publisher_endpoint(settings, role)
    # Messages waiting for the broker, on disk: one file per role, kept across restarts so
    # what a stopped process had not sent goes out when it is back.
    spool = Spool(
        home_file(settings, f"mqtt-spool-{role.name}.db"),
        max_messages=settings.mqtt.spool_max_messages,
    )
    close_later(stack, spool.close)  # after the publisher has stopped
    publisher = MqttPublisher(
        endpoint, spool=spool, availability_topic=f"facelens/status/{role.name}"
    )
    publisher.start()
    close_later(stack, publisher.stop)
    return publisher


def open_notifier(settings: Settings, stack: ExitStack) -> Notifier | None:
    """Alerts on ``settings.notify``'s channels, started; None without channels."""
    if not settings.notify:
        return None
    notifier = Notifier(settings.notify)
    notifier.start()
    close_later(stack, notifier.stop)
    return notifier


def open_outbox(settings: Settings, stack: ExitStack) -> SqliteOutbox | None:
    """The local event queue, ``<home>/events.db``, when events.source is 'outbox' (else
    None): a process that both puts crops and recognizes them (``facelens up``) passes it to
    :func:`open_event_sink` and the worker's source, so a put wakes the worker at once."""
    if settings.events.source is not EventSourceKind.OUTBOX:
        return None
    return _open_outbox(settings, stack)


def _open_outbox(settings: Settings, stack: ExitStack) -> SqliteOutbox:
    outbox = SqliteOutbox(
        home_file(settings, "events.db"),
        worker_id=settings.recognizer.worker_id,
        visibility_timeout=settings.events.visibility_timeout,
    )
    close_later(stack, outbox.close)
    return outbox


def sends_events_by_broker(settings: Settings) -> bool:
    """Whether a put crop's event goes through the MQTT broker (events.source 'mqtt'), so
    whoever puts crops needs this process's publication."""
    return settings.events.source is EventSourceKind.MQTT


def open_event_sink(
    settings: Settings,
    stack: ExitStack,
    publication: Publication | None,
    *,
    outbox: SqliteOutbox | None = None,
) -> EventSink | None:
    """Where a put crop's ObjectCreated event goes: the outbox (``outbox``, this process's
    from :func:`open_outbox` when it also reads it, else one opened here), the broker of
    ``publication`` (this process's: see :func:`sends_events_by_broker`), or None for
    source 'sqs' (S3 itself sends the events)."""
    kind = settings.events.source
    if kind is EventSourceKind.OUTBOX:
        return outbox if outbox is not None else _open_outbox(settings, stack)
    if kind is EventSourceKind.MQTT:
        from facelens.bus.mqtt_events import MqttEventSink

        if publication is None or publication.broker is None:
            raise ConfigurationError(NEEDS_BROKER)
        return MqttEventSink(publication.broker, settings.events.topic)
    return None


def open_event_source(
    settings: Settings, stack: ExitStack, *, outbox: SqliteOutbox | None = None
) -> EventSource:
    """Where a recognizer worker takes its events from: the outbox (``outbox``, this
    process's from :func:`open_outbox` when it also puts crops; else one opened here), the
    broker's shared subscription, or an SQS queue."""
    e = settings.events
    if e.source is EventSourceKind.OUTBOX:
        return outbox if outbox is not None else _open_outbox(settings, stack)
    source: EventSource
    if e.source is EventSourceKind.MQTT:
        from facelens.bus.mqtt_events import MqttEventSource

        source = MqttEventSource(events_endpoint(settings), topic=e.topic, group=e.group)
    else:
        if e.sqs_queue_url is None:
            raise ConfigurationError("events.source 'sqs' needs events.sqs_queue_url")
        from facelens.bus.sqs_events import SqsEventSource

        source = SqsEventSource(e.sqs_queue_url, visibility_timeout=e.visibility_timeout)
    close_later(stack, source.close)
    return source

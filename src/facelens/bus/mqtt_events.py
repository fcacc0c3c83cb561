"""ObjectCreated events over MQTT: a sink for the object store, a source for recognizer workers.

The sink publishes each event as MinIO's notification JSON through the
spool-backed :class:`~facelens.bus.mqtt_publisher.MqttPublisher`, so ``send``
returns once the event is on disk, whatever the broker is doing.

The source makes recognizer workers a consumer group: every worker
subscribes to ``$share/{group}/{topic}`` at QoS 1, so each event goes to one
worker of the group. Its session is persistent (Clean Start 0, a session
expiry, a stable client id) and paho's automatic PUBACK is off: the PUBACK
goes out only when the worker calls :meth:`MqttEventSource.ack`. A worker
killed mid-event leaves the message unacknowledged in its broker session,
and the broker sends it again (DUP set, ``attempt`` 2) when a worker with
the same client id reconnects.

Not hoarding: a broker sends a subscriber as many unacknowledged QoS 1
messages as it allows at once (Mosquitto's ``max_inflight_messages``,
default 20); a slow or stuck worker would sit on all of them. The source
speaks MQTT 5 to set Receive Maximum (default 4, about one batch of work)
so at most that many are in flight to, and held by, one worker. Two limits
we cannot fix from the client, both of Mosquitto 2.0's shared subscriptions:
it picks the group member round-robin when a message is published, without
regard to in-flight counts, so the rest of a slow worker's share waits in
its session queue; and it also picks members that are offline with a live
session, so a worker that is down holds its share until it is back (or its
session expires after ``session_expiry_seconds`` and the broker discards
it). Run workers with stable client ids (one per replica) that come back.

MQTT has no negative acknowledgement, so :meth:`MqttEventSource.release`
publishes the raw payload again to the message's topic (QoS 1, waiting for
the PUBACK) and then acknowledges the original. The copy carries an MQTT 5
user property ``facelens-attempt`` so the attempt count survives; it also
reaches every ordinary (non-shared) subscriber of the topic a second time.
"""

from __future__ import annotations

import collections
import enum
import itertools
import logging
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from facelens.bus.delivery import Delivery
from facelens.bus.mqtt_config import MqttEndpoint
from facelens.bus.mqtt_publisher import MqttPublisher
from facelens.bus.mqtt_session import MqttSession
from facelens.errors import InvalidEventException, InvalidParameterException
from facelens.storage.events import parse_message, to_minio_message
from facelens.values.events import ObjectCreated

if TYPE_CHECKING:
    from paho.mqtt.client import MQTTMessage

_log = logging.getLogger(__name__)

ATTEMPT_PROPERTY = "facelens-attempt"
"""MQTT 5 user property: how many times this event was delivered before this copy."""
DEFAULT_RECEIVE_MAXIMUM = 4
DEFAULT_SESSION_EXPIRY_S = 7 * 24 * 3600
"""How long the broker keeps an absent worker's session (and its share of events): a week."""


class MqttEventSink:
    """:class:`~facelens.storage.notifications.EventSink` publishing MinIO-style event JSON
    at QoS 1."""

    def __init__(self, publisher: MqttPublisher, topic: str) -> None:
        self._publisher = publisher
        self._topic = topic

    def send(self, event: ObjectCreated) -> None:
        """Durable on return: the publisher's spool holds it until the broker acknowledges it."""
        self._publisher.publish(self._topic, to_minio_message(event), qos=1)

    def close(self) -> None:
        """Nothing to do: the publisher belongs to whoever made it, and they stop it."""


class _State(enum.Enum):
    QUEUED = "queued"  # waiting in our local queue
    HANDED = "handed"  # given to the worker in a Delivery
    ACK_PENDING = "ack_pending"  # acked while disconnected: PUBACK the broker's resend


@dataclass(frozen=True)
class _Incoming:
    epoch: int  # broker session the message belongs to; a PUBACK into another is meaningless
    mid: int
    topic: str
    payload: bytes
    qos: int
    attempt: int


class MqttEventSource:
    """:class:`~facelens.bus.delivery.EventSource` on an MQTT shared subscription.

    Connects (in the background, retrying) on construction; :meth:`wait_ready`
    waits for the subscription. ``receive_maximum`` caps the unacknowledged
    messages the broker sends this worker at once (see the module docstring).

    When the connection drops and the session resumes, the broker resends
    what we had not acknowledged. A message this source still holds (queued,
    or handed out and being worked on) is not handed out a second time: the
    worker's ack or release of the first copy answers the resend. An ack made
    while disconnected is sent when the resend arrives. If the broker lost
    the session, acks of older deliveries are ignored: there is nothing left
    to acknowledge.
    """

    def __init__(
        self,
        endpoint: MqttEndpoint,
        *,
        topic: str,
        group: str = "facelens-recognizers",
        receive_maximum: int = DEFAULT_RECEIVE_MAXIMUM,
        session_expiry_seconds: int = DEFAULT_SESSION_EXPIRY_S,
        release_timeout: float = 10.0,
    ) -> None:
        if not group or any(c in group for c in "/+#"):
            raise InvalidParameterException(f"Not a shared-subscription group name: {group!r}")
        if session_expiry_seconds < 1:
            raise InvalidParameterException("session_expiry_seconds must be positive")
        self._release_timeout = release_timeout
        self._queue: collections.deque[_Incoming] = collections.deque()
        self._unacked: dict[int, _State] = {}  # mid -> state, current session only
        self._outstanding: dict[str, _Incoming] = {}  # delivery_id -> message, handed out
        self._ids = itertools.count(1)
        self._epoch = 0
        self._closed = False
        self._session = MqttSession(
            endpoint,
            clean_session=False,
            subscriptions=[(f"$share/{group}/{topic}", 1)],
            on_connected=self._on_connected,
            on_message=self._on_message,
            manual_ack=True,
            mqtt5=True,
            receive_maximum=receive_maximum,
            session_expiry_seconds=session_expiry_seconds,
        )
        self._cond = self._session.condition
        self._session.start()

    # -- EventSource --
    def wait_ready(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for the broker to acknowledge our subscription."""
        return self._session.wait_subscribed(timeout)

    @property
    def connected(self) -> bool:
        return self._session.connected

    def receive(self, *, max_events: int = 10, wait_seconds: float = 1.0) -> list[Delivery]:
        """Up to ``max_events`` deliveries, waiting at most ``wait_seconds`` for the first."""
        deadline = time.monotonic() + wait_seconds
        taken: list[tuple[str, _Incoming]] = []
        with self._cond:
            while not self._queue and not self._closed:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._cond.wait(left)
            while self._queue and len(taken) < max_events:
                incoming = self._queue.popleft()
                delivery_id = f"{next(self._ids)}:{incoming.mid}"
                if incoming.epoch == self._epoch and incoming.mid in self._unacked:
                    self._unacked[incoming.mid] = _State.HANDED
                self._outstanding[delivery_id] = incoming
                taken.append((delivery_id, incoming))
        return [_delivery(delivery_id, incoming) for delivery_id, incoming in taken]

    def ack(self, delivery: Delivery) -> None:
        """Send the PUBACK: the broker forgets the message. Unknown or repeated acks are ignored."""
        with self._cond:
            incoming = self._outstanding.pop(delivery.delivery_id, None)
            if incoming is None or incoming.qos == 0 or incoming.epoch != self._epoch:
                return  # QoS 0 needs no ack; a lost session has nothing to ack
            if incoming.mid not in self._unacked:
                return
            self._unacked[incoming.mid] = _State.ACK_PENDING
            if not self._session.connected:
                return  # the broker resends it on reconnect; _on_message acks it then
        self._session.ack(incoming.mid, incoming.qos)
        with self._cond:
            if (
                incoming.epoch == self._epoch
                and self._unacked.get(incoming.mid) is _State.ACK_PENDING
            ):
                del self._unacked[incoming.mid]

    def release(self, delivery: Delivery) -> None:
        """Publish the message again (for any worker of the group), then ack this copy.

        If the copy gets no PUBACK within ``release_timeout`` the original is
        left unacknowledged: the broker resends it when we reconnect, so it
        comes back either way (possibly twice).
        """
        from paho.mqtt.packettypes import PacketTypes
        from paho.mqtt.properties import Properties

        with self._cond:
            incoming = self._outstanding.get(delivery.delivery_id)
        if incoming is None:
            return
        properties = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
        properties.UserProperty = (ATTEMPT_PROPERTY, str(incoming.attempt + 1))
        started = time.monotonic()
        info = self._session.publish(incoming.topic, incoming.payload, qos=1, properties=properties)
        if info is not None and self._session.wait_acked(info.mid, started, self._release_timeout):
            self.ack(delivery)
        else:
            _log.warning(
                "Re-publishing %s got no PUBACK in %.0f s; it returns on reconnect",
                delivery.delivery_id,
                self._release_timeout,
            )

    def close(self) -> None:
        """Disconnect without acking anything: unacked messages stay in the broker session."""
        with self._cond:
            if self._closed:
                return
            self._closed = True
            self._queue.clear()
            self._cond.notify_all()
        self._session.stop()

    # -- session callbacks (paho's network thread) --
    def _on_connected(self, session_present: bool) -> None:
        """Holding the lock: a new session (nothing resumed) can take no ack of what we hold."""
        if not session_present:
            self._epoch += 1
            self._unacked.clear()

    def _on_message(self, message: MQTTMessage) -> None:
        payload, attempt = bytes(message.payload), _attempt(message)
        ack_now = False
        with self._cond:
            incoming = _Incoming(
                self._epoch, message.mid, message.topic, payload, message.qos, attempt
            )
            if incoming.qos > 0 and incoming.mid in self._unacked:
                # The broker's resend of a message we already hold: keep the one copy.
                ack_now = self._unacked[incoming.mid] is _State.ACK_PENDING
                if ack_now:
                    del self._unacked[incoming.mid]
            else:
                if incoming.qos > 0:
                    self._unacked[incoming.mid] = _State.QUEUED
                self._queue.append(incoming)
                self._cond.notify_all()
        if ack_now:
            self._session.ack(incoming.mid, incoming.qos)


def _attempt(message: MQTTMessage) -> int:
    """Deliveries so far including this one: the re-publish count, plus one for a broker resend."""
    previous = 1
    properties = getattr(message, "properties", None)
    for name, value in getattr(properties, "UserProperty", None) or []:
        # ASCII digits, at most 9: isdigit() passed "²", whose int() raised in paho's
        # callback and ended the network thread. A count is small; anything else is noise.
        if name == ATTEMPT_PROPERTY and value.isascii() and value.isdecimal() and len(value) < 10:
            previous = max(previous, int(value))
    return previous + 1 if message.dup else previous


def _delivery(delivery_id: str, incoming: _Incoming) -> Delivery:
    try:
        events = parse_message(incoming.payload)
    except (InvalidEventException, ValueError) as exc:
        message = exc.message if isinstance(exc, InvalidEventException) else str(exc)
        return Delivery(delivery_id, (), incoming.payload, incoming.attempt, error=message)
    return Delivery(delivery_id, tuple(events), incoming.payload, incoming.attempt)

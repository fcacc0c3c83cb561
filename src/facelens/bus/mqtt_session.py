"""One MQTT connection's life, under the publisher, the event source and the edge's name listener.

All three need the same things from paho, and each once carried its own
copy: a client made by :func:`~facelens.bus.mqtt_config.connect_client`
(TLS, credentials, reconnect back-off) with its network thread; whether we
are connected now; subscriptions made on every (re)connect, since a clean
session forgets them (a resumed one keeps them, and subscribing again is
harmless); PUBACKs matched to the publishes they answer; an availability
topic with a last will; log lines that name the client id (a broker drops a
client when another connects under the same id, and its log names the id);
and a disconnect that leaves no thread running. :class:`MqttSession` is
that. What is its owner's own (a spool, a consumer group's acks, a board of
names) stays with the owner, which the session calls back.

Threads: paho calls back on its network thread. The session's
:attr:`MqttSession.condition` guards its state and is meant to be shared
by its owner, so that one lock covers the connection and the owner's state
(the publisher's sender waits on it for "connected and something spooled").
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any

from facelens.bus.mqtt_config import LastWill, MqttCallbacks, MqttEndpoint, connect_client

if TYPE_CHECKING:
    from paho.mqtt.client import Client, ConnectFlags, DisconnectFlags, MQTTMessage, MQTTMessageInfo
    from paho.mqtt.properties import Properties
    from paho.mqtt.reasoncodes import ReasonCode

_log = logging.getLogger(__name__)

ONLINE = b"online"
"""Retained on the availability topic while we are connected."""
OFFLINE = b"offline"
"""Retained on the availability topic once we are gone: our last will, or a clean stop."""


class MqttSession:
    """One paho client: connected in the background, subscribed on every connect, stopped cleanly.

    ``clean_session``: False keeps the broker-side session (subscriptions,
    unacknowledged QoS 1 messages) across disconnects and restarts; with
    ``mqtt5`` it lasts ``session_expiry_seconds`` after a disconnect, and
    ``receive_maximum`` caps the unacknowledged messages the broker sends us
    at once. ``manual_ack``: QoS 1 messages are acknowledged only by
    :meth:`ack`. ``subscriptions``: (topic filter, QoS) pairs subscribed in
    one SUBSCRIBE on every connect. ``availability_topic``: "online" there
    (QoS 1, retained) on every connect, "offline" as our last will and on
    :meth:`stop`. ``on_connected(session_present)`` runs on every successful
    connect, holding :attr:`condition`, before the subscriptions are sent;
    ``on_message`` gets each message on paho's network thread.

    After :meth:`stop`, :meth:`start` connects again with a new client.
    """

    def __init__(
        self,
        endpoint: MqttEndpoint,
        *,
        clean_session: bool,
        subscriptions: Sequence[tuple[str, int]] = (),
        availability_topic: str | None = None,
        on_connected: Callable[[bool], None] | None = None,
        on_message: Callable[[MQTTMessage], None] | None = None,
        manual_ack: bool = False,
        mqtt5: bool = False,
        receive_maximum: int | None = None,
        session_expiry_seconds: int = 0,
    ) -> None:
        self.endpoint = endpoint
        self.condition = threading.Condition()
        self._clean_session = clean_session
        self._subscriptions = list(subscriptions)
        self._availability_topic = availability_topic
        self._on_connected = on_connected
        self._on_message_hook = on_message
        self._manual_ack = manual_ack
        self._mqtt5 = mqtt5
        self._receive_maximum = receive_maximum
        self._session_expiry_seconds = session_expiry_seconds
        self._client: Client | None = None
        self._connected = False
        self._subscribed = False
        self._stopping = False
        self._acked: dict[int, float] = {}  # mid -> monotonic time of its PUBACK

    # -- life --
    def start(self) -> None:
        """Connect in the background (retrying with back-off while the broker is down)."""
        with self.condition:
            if self._client is not None:
                return
            self._stopping = False
        will = None
        if self._availability_topic is not None:
            will = LastWill(self._availability_topic, OFFLINE, qos=1, retain=True)
        client = connect_client(
            self.endpoint,
            clean_session=self._clean_session,
            will=will,
            manual_ack=self._manual_ack,
            mqtt5=self._mqtt5,
            receive_maximum=self._receive_maximum,
            session_expiry_seconds=self._session_expiry_seconds,
            callbacks=MqttCallbacks(
                on_connect=self._on_connect,
                on_disconnect=self._on_disconnect,
                on_message=self._on_message,
                on_publish=self._on_publish,
                on_subscribe=self._on_subscribe,
            ),
        )
        with self.condition:
            self._client = client

    def stop(self, *, timeout: float = 5.0) -> None:
        """Publish "offline" (with an availability topic, while connected; waiting up to
        ``timeout`` seconds for its PUBACK), disconnect, and end paho's network thread.

        Unacknowledged messages of a persistent session stay with the broker.
        """
        with self.condition:
            client, self._client = self._client, None
            self._stopping = True
            self.condition.notify_all()
        if client is None:
            return
        if self._availability_topic is not None and self.connected:
            started = time.monotonic()
            info = client.publish(self._availability_topic, OFFLINE, qos=1, retain=True)
            if not self._wait_acked(info.mid, started, timeout, while_stopping=True):
                _log.warning("No PUBACK for 'offline' on %s", self._availability_topic)
        client.disconnect()
        client.loop_stop()
        with self.condition:
            self._connected = False
            self.condition.notify_all()

    @property
    def running(self) -> bool:
        """Between :meth:`start` and :meth:`stop`, connected or not."""
        with self.condition:
            return self._client is not None

    @property
    def connected(self) -> bool:
        with self.condition:
            return self._connected

    def wait_subscribed(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for the broker to acknowledge our subscriptions."""
        deadline = time.monotonic() + timeout
        with self.condition:
            while not (self._connected and self._subscribed):
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self.condition.wait(left)
            return True

    # -- messages --
    def publish(
        self,
        topic: str,
        payload: bytes,
        *,
        qos: int,
        retain: bool = False,
        properties: Properties | None = None,
    ) -> MQTTMessageInfo | None:
        """Hands one message to paho; None once stopped (or before :meth:`start`).

        QoS 1/2 without a connection is kept by paho and sent on reconnect;
        QoS 0 is not. paho raises ValueError for a topic or size MQTT cannot
        carry.
        """
        with self.condition:
            client = self._client
        if client is None:
            return None
        return client.publish(topic, payload, qos=qos, retain=retain, properties=properties)

    def ack(self, mid: int, qos: int) -> None:
        """Sends the PUBACK of a received message (``manual_ack`` sessions)."""
        with self.condition:
            client = self._client
        if client is not None:
            client.ack(mid, qos)

    def acked_since(self, mid: int, started: float) -> bool:
        """Whether message ``mid`` was acknowledged after ``started`` (``time.monotonic()``); paho
        reuses mids, so an older PUBACK of the same mid does not count. Hold :attr:`condition`."""
        return self._acked.get(mid, -1.0) >= started

    def forget_acks(self, mids: Iterable[int]) -> None:
        """Drops the PUBACKs of messages the owner is done with. Hold :attr:`condition`."""
        for mid in mids:
            self._acked.pop(mid, None)

    def wait_acked(self, mid: int, started: float, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for the PUBACK of ``mid`` published at ``started``;
        False on timeout or once the session is stopping."""
        return self._wait_acked(mid, started, timeout, while_stopping=False)

    def _wait_acked(
        self, mid: int, started: float, timeout: float, *, while_stopping: bool
    ) -> bool:
        deadline = time.monotonic() + timeout
        with self.condition:
            while not self.acked_since(mid, started):
                left = deadline - time.monotonic()
                if left <= 0 or (self._stopping and not while_stopping):
                    return False
                self.condition.wait(left)
            del self._acked[mid]
            return True

    # -- paho callbacks (network thread) --
    def _on_connect(
        self,
        client: Client,
        userdata: Any,
        flags: ConnectFlags,
        reason: ReasonCode,
        properties: Properties | None,
    ) -> None:
        endpoint = self.endpoint
        if reason.is_failure:
            _log.warning("MQTT broker %s refused %s: %s", endpoint.host, endpoint.client_id, reason)
            return
        session = ""
        if not self._clean_session:
            session = " (session resumed)" if flags.session_present else " (session new)"
        _log.info(
            "Connected to MQTT broker %s:%s as %s%s",
            endpoint.host,
            endpoint.port,
            endpoint.client_id,
            session,
        )
        if self._availability_topic is not None:
            client.publish(self._availability_topic, ONLINE, qos=1, retain=True)
        with self.condition:
            self._connected = True
            self._subscribed = False
            if self._on_connected is not None:
                self._on_connected(flags.session_present)
            self.condition.notify_all()
        if self._subscriptions:
            client.subscribe(self._subscriptions)

    def _on_subscribe(
        self,
        client: Client,
        userdata: Any,
        mid: int,
        reasons: list[ReasonCode],
        properties: Properties | None,
    ) -> None:
        failed = [reason for reason in reasons if reason.is_failure]
        if failed:
            topics = ", ".join(topic for topic, _ in self._subscriptions)
            _log.error("The broker refused subscription %s: %s", topics, failed[0])
            return
        with self.condition:
            self._subscribed = True
            self.condition.notify_all()

    def _on_disconnect(
        self,
        client: Client,
        userdata: Any,
        flags: DisconnectFlags,
        reason: ReasonCode,
        properties: Properties | None,
    ) -> None:
        with self.condition:
            was_connected, self._connected = self._connected, False
            self._subscribed = False
            stopping = self._stopping
            self.condition.notify_all()
        if was_connected and not stopping:
            _log.warning(
                "Lost the MQTT broker %s as %s (%s); will reconnect",
                self.endpoint.host,
                self.endpoint.client_id,
                reason,
            )

    def _on_publish(
        self, client: Client, userdata: Any, mid: int, reason: ReasonCode, properties: Properties
    ) -> None:
        with self.condition:
            if reason.is_failure:
                _log.warning(
                    "The broker rejected a message of %s: %s", self.endpoint.client_id, reason
                )
                return
            self._acked[mid] = time.monotonic()
            self.condition.notify_all()

    def _on_message(self, client: Client, userdata: Any, message: MQTTMessage) -> None:
        if self._on_message_hook is not None:
            self._on_message_hook(message)

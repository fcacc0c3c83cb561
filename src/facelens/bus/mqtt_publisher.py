"""Publishing to MQTT without ever blocking on, or losing messages to, the network.

``publish`` only appends to the on-disk :class:`~facelens.bus.spool.Spool`
and returns; one background thread sends from the spool in order while the
broker is reachable, and removes a message only after the broker's PUBACK
(QoS 1). A broker that is down, a link that drops, a process restart: the
messages wait in the spool and go out when the broker is back. Delivery is
at least once: a message is sent twice only if the process stops between
the PUBACK and the removal from the spool (or ``stop()`` came mid-window).

Messages go out in windows of up to ``window`` (16): the whole window is
handed to paho, then we wait for every PUBACK before removing it and taking
the next. The window stays below paho's in-flight limit (20) so that the
availability messages never wait behind it. Within a connection MQTT
keeps order; across a reconnect paho itself resends the unacknowledged QoS 1
messages of the window, in order, so we never publish them a second time.
QoS 0 messages that were lost with the connection are sent again from the
spool. A PUBACK that does not come on a live connection is logged (after
``ack_timeout`` seconds) and waited for: MQTT only resends on reconnect.

Availability: with ``availability_topic`` the broker holds a retained
"online" while we are connected and, through our last will, a retained
"offline" when we vanish; a clean ``stop()`` publishes "offline" itself.
The connection (and availability) is an
:class:`~facelens.bus.mqtt_session.MqttSession`; the spool, the windows and
the sender thread are this module's.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from facelens.bus.mqtt_config import MqttEndpoint
from facelens.bus.mqtt_session import MqttSession
from facelens.bus.spool import OutgoingMessage, Spool, SpooledMessage
from facelens.errors import InvalidParameterException

_log = logging.getLogger(__name__)

_IDLE_POLL_S = 0.5
"""How often the sender re-checks for stop when nothing wakes it (it is woken on every event)."""
_MAX_WINDOW = 18
"""paho keeps at most 20 QoS 1 messages in flight; leave room for "online" and "offline"."""
_RETRY_PAUSE_S = 0.5
"""Pause after a window that sent nothing (connection lost, spool error) before the next try."""


@dataclass(frozen=True)
class PublisherStats:
    """How the publisher is doing.

    ``published``: messages the broker acknowledged, by this instance;
    ``pending``: in the spool; ``dropped``: spool overflow over the file's life;
    ``rejected``: messages paho refused to send (topic or size), dropped and logged.
    """

    published: int
    pending: int
    dropped: int
    rejected: int
    connected: bool


class MqttPublisher:
    """Spool-backed MQTT publisher; ``start()`` it, ``publish`` freely, ``stop()`` at the end."""

    def __init__(
        self,
        endpoint: MqttEndpoint,
        *,
        spool: Spool,
        availability_topic: str | None = None,
        window: int = 16,
        ack_timeout: float = 10.0,
    ) -> None:
        if not 1 <= window <= _MAX_WINDOW:
            raise InvalidParameterException(f"window must be 1-{_MAX_WINDOW}, not {window}")
        self._session = MqttSession(
            endpoint,
            clean_session=True,
            availability_topic=availability_topic,
            on_connected=self._on_connected,
        )
        self._spool = spool
        self._window = window
        self._ack_timeout = ack_timeout
        self._cond = self._session.condition
        self._thread: threading.Thread | None = None
        self._stopping = False
        self._generation = 0  # connections made so far; a QoS 0 send is void once it changes
        self._published = 0
        self._rejected = 0

    # -- public API --
    def start(self) -> None:
        """Connect in the background (retrying while the broker is down) and start sending."""
        with self._cond:
            if self._thread is not None:
                return
            self._stopping = False
        self._session.start()
        thread = threading.Thread(target=self._run, name="facelens-mqtt-publisher", daemon=True)
        with self._cond:
            self._thread = thread
        thread.start()

    def publish(
        self,
        topic: str,
        payload: bytes | Mapping[str, Any],
        *,
        qos: int = 1,
        retain: bool = False,
    ) -> None:
        """Spool one message (a mapping is sent as compact JSON); never waits for the network."""
        body = _encode(payload)
        self._spool.put(OutgoingMessage(topic, body, qos=qos, retain=retain))
        with self._cond:
            self._cond.notify_all()

    def publish_now(self, topic: str, payload: bytes | Mapping[str, Any]) -> bool:
        """QoS 0 straight to paho's queue (its network thread sends it), bypassing the spool:
        dropped, not kept, while disconnected. Whether it was handed to the connection."""
        if not self._session.connected:
            return False
        body = _encode(payload)
        from paho.mqtt.client import MQTT_ERR_SUCCESS

        try:
            info = self._session.publish(topic, body, qos=0)
        except ValueError as exc:
            raise InvalidParameterException(f"Cannot publish to {topic!r}: {exc}") from exc
        return info is not None and info.rc == MQTT_ERR_SUCCESS

    def flush(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for the spool to empty; whether it did."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while len(self._spool) > 0:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(min(left, _IDLE_POLL_S))
        return True

    @property
    def connected(self) -> bool:
        return self._session.connected

    @property
    def stats(self) -> PublisherStats:
        with self._cond:
            published, rejected = self._published, self._rejected
            connected = self._session.connected
        return PublisherStats(published, len(self._spool), self._spool.dropped, rejected, connected)

    def stop(self, *, timeout: float = 5.0) -> None:
        """Send what is spooled, publish "offline", disconnect; the spool keeps what is left.

        Each step waits up to ``timeout`` seconds: the flush (only while
        connected: with the broker away the messages wait for the next run),
        the sender finishing its window, and the "offline" PUBACK.
        """
        if self._session.running and self.connected:
            self.flush(timeout)
        with self._cond:
            thread, self._thread = self._thread, None
            self._stopping = True
            self._cond.notify_all()
        if thread is not None:
            thread.join(timeout)
        self._session.stop(timeout=timeout)

    def _on_connected(self, session_present: bool) -> None:
        """A new connection (the session holds the lock): QoS 0 sends of the last one are void."""
        self._generation += 1

    # -- the sender thread --
    def _run(self) -> None:
        while self._wait_for_work():
            try:
                sent_any = self._send_window()
            except Exception:  # the spool's disk, say: never let the sender die
                _log.exception("Sending from the MQTT spool failed; retrying")
                sent_any = False
            if not sent_any:
                self._pause(_RETRY_PAUSE_S)

    def _pause(self, seconds: float) -> None:
        with self._cond:
            if not self._stopping:
                self._cond.wait(seconds)

    def _wait_for_work(self) -> bool:
        """Block until connected with something spooled; False once stopping."""
        with self._cond:
            while not self._stopping:
                if self._session.connected and len(self._spool) > 0:
                    return True
                self._cond.wait(_IDLE_POLL_S)
            return False

    def _send_window(self) -> bool:
        """Send one window and wait for it; whether anything left the spool."""
        if not self._session.running:
            return False
        from paho.mqtt.client import MQTT_ERR_NO_CONN, MQTT_ERR_SUCCESS

        with self._cond:
            generation = self._generation
        sent: dict[int, tuple[SpooledMessage, float]] = {}
        rejected: list[int] = []
        for item in self._spool.peek(self._window):
            message = item.message
            started = time.monotonic()
            try:
                info = self._session.publish(
                    message.topic, message.payload, qos=message.qos, retain=message.retain
                )
            except ValueError as exc:  # a topic or size MQTT cannot carry: it never will
                _log.error(
                    "Dropping an MQTT message to %r that cannot be sent: %s", message.topic, exc
                )
                rejected.append(item.id)
                continue
            if info is None:  # stopped meanwhile
                break
            # QoS 1/2 without a connection is kept by paho and sent on reconnect; QoS 0 is not.
            if info.rc == MQTT_ERR_SUCCESS or (info.rc == MQTT_ERR_NO_CONN and message.qos > 0):
                sent[info.mid] = (item, started)
            else:
                break  # send the rest, in order, next window
        done = self._await_acks(sent, generation)
        self._spool.remove([*rejected, *(item.id for item in done)])
        with self._cond:
            self._published += len(done)
            self._rejected += len(rejected)
            self._cond.notify_all()
        return bool(done or rejected)

    def _await_acks(
        self, sent: dict[int, tuple[SpooledMessage, float]], generation: int
    ) -> list[SpooledMessage]:
        """The sent messages that were acknowledged, once all are (or we stop / lose QoS 0 ones)."""
        warn_at = time.monotonic() + self._ack_timeout
        with self._cond:
            while True:
                done = [mid for mid, (_, at) in sent.items() if self._session.acked_since(mid, at)]
                if len(done) == len(sent) or self._stopping:
                    break
                lost_qos0 = self._generation != generation and any(
                    item.message.qos == 0 for mid, (item, _) in sent.items() if mid not in done
                )
                if lost_qos0:
                    break
                if time.monotonic() > warn_at:
                    _log.warning(
                        "%d MQTT message(s) without PUBACK for %.0f s; still waiting",
                        len(sent) - len(done),
                        self._ack_timeout,
                    )
                    warn_at = time.monotonic() + self._ack_timeout
                self._cond.wait(_IDLE_POLL_S)
            self._session.forget_acks(done)
        return [sent[mid][0] for mid in done]


def _encode(payload: bytes | Mapping[str, Any]) -> bytes:
    if not isinstance(payload, Mapping):
        return bytes(payload)
    try:
        return json.dumps(payload, separators=(",", ":")).encode()
    except (TypeError, ValueError) as exc:
        raise InvalidParameterException(f"Payload is not JSON-serialisable: {exc}") from exc

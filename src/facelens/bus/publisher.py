"""The publishing port the recognizer talks to, and the publisher for runs without a broker.

``publish`` must return quickly and never lose what it accepted: the MQTT
publisher (:mod:`facelens.bus.mqtt_publisher`) spools to disk first. The
in-memory one here keeps messages for the process (``facelens up`` without
MQTT, tests) and logs each one.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from facelens import json_limits

_log = logging.getLogger(__name__)


class MessagePublisher(Protocol):
    def publish(
        self, topic: str, payload: bytes | Mapping[str, Any], *, qos: int = 1, retain: bool = False
    ) -> None: ...

    def publish_now(self, topic: str, payload: bytes | Mapping[str, Any]) -> bool:
        """QoS 0 and never stored: sent if the broker is connected now, else dropped; whether
        it was handed on. For news that is worthless late (a camera's per-frame labels); no
        disk write, so it is cheap enough for a frame loop."""
        ...


@dataclass(frozen=True)
class PublishedMessage:
    topic: str
    payload: bytes

    def json(self) -> Any:
        return json.loads(self.payload)


class MemoryPublisher:
    """Keeps every message (bounded) and logs it; subscribers in-process can wait on it."""

    def __init__(self, *, max_messages: int = 10_000) -> None:
        self._max = max_messages
        self._messages: list[PublishedMessage] = []
        self._changed = threading.Condition()

    def publish(
        self, topic: str, payload: bytes | Mapping[str, Any], *, qos: int = 1, retain: bool = False
    ) -> None:
        body = payload if isinstance(payload, bytes) else encode_json(payload)
        with self._changed:
            self._messages.append(PublishedMessage(topic, body))
            del self._messages[: -self._max]
            self._changed.notify_all()
        _log.info("published on %s: %s", topic, body.decode(errors="replace"))

    def publish_now(self, topic: str, payload: bytes | Mapping[str, Any]) -> bool:
        self.publish(topic, payload, qos=0)
        return True

    @property
    def messages(self) -> list[PublishedMessage]:
        with self._changed:
            return list(self._messages)

    def wait_for(self, count: int, *, timeout: float) -> list[PublishedMessage]:
        """The messages once there are ``count`` (or whatever arrived by ``timeout`` seconds)."""
        with self._changed:
            self._changed.wait_for(lambda: len(self._messages) >= count, timeout)
            return list(self._messages)


def encode_json(payload: Mapping[str, Any]) -> bytes:
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False, default=str).encode()


_MAX_OBSERVED_DEPTH = 64
"""Arrays and objects a payload may nest to be shown to observers (facelens' messages
nest a few); deeper is not parsed (``"[" * 100000`` raised RecursionError)."""

Observer = Callable[[str, Mapping[str, Any]], None]
"""Called with (topic, decoded JSON object) for every message a publisher accepts."""


class ObservedPublisher:
    """A publisher that also shows each JSON message to in-process observers.

    ``facelens up`` runs the recognizer and the edge runner in one process:
    the identifications are printed and name the live view's tracks through
    this, with or without a broker. Observers run on the publishing thread;
    one that raises is logged, never allowed to lose the message.
    """

    def __init__(self, inner: MessagePublisher, observers: list[Observer]) -> None:
        self.inner = inner
        self._observers = observers

    @property
    def connected(self) -> bool:
        return bool(getattr(self.inner, "connected", True))

    def publish(
        self, topic: str, payload: bytes | Mapping[str, Any], *, qos: int = 1, retain: bool = False
    ) -> None:
        self.inner.publish(topic, payload, qos=qos, retain=retain)
        self._show(topic, payload)

    def publish_now(self, topic: str, payload: bytes | Mapping[str, Any]) -> bool:
        return self.inner.publish_now(topic, payload)

    def _show(self, topic: str, payload: bytes | Mapping[str, Any]) -> None:
        if isinstance(payload, Mapping):
            document: Any = payload
        else:
            try:
                document = json_limits.loads(payload, max_depth=_MAX_OBSERVED_DEPTH)
            except ValueError:  # not JSON, or nested too deep to parse (TooDeepError)
                return
        if not isinstance(document, Mapping):
            return
        for observer in self._observers:
            try:
                observer(topic, document)
            except Exception:
                _log.exception("A publish observer failed on %s", topic)

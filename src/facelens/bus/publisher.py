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
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

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

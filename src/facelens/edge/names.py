"""Names for the live view: the recognizer's answers, mapped back to the runner's tracks.

The runner remembers which track each uploaded key came from; the
recognizer's messages (on its topic, and ``<topic>/unknown``) carry the
``Key`` they answer for, so an answer names that track. The display name is
the profile's ``Name`` (or ``name``) attribute, else the ExternalImageId,
UserId or FaceId; an unknown face is ``unknown``. Maps are bounded: a
runner lives for months.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from facelens import json_limits
from facelens.bus.mqtt_config import MqttEndpoint
from facelens.bus.mqtt_session import MqttSession

if TYPE_CHECKING:
    from paho.mqtt.client import MQTTMessage

_log = logging.getLogger(__name__)

UNKNOWN = "unknown"
_MAX_ENTRIES = 10_000
_MAX_MESSAGE_DEPTH = 64
"""Arrays and objects a recognizer message may nest to be read (ours nest a few)."""
_NAME_FIELDS = ("Name", "name", "ExternalImageId", "UserId", "FaceId")


def display_name(message: Mapping[str, Any]) -> str | None:
    """The name to show for one recognizer message; None for errors and other shapes."""
    status = message.get("Status")
    if status == "unknown":
        return UNKNOWN
    if status != "identified":
        return None
    for field in _NAME_FIELDS:
        value = message.get(field)
        if isinstance(value, str) and value:
            return value
    return None


class NameBoard:
    """Key -> track for this runner's uploads, and track -> name once answered; thread-safe."""

    def __init__(self, *, max_entries: int = _MAX_ENTRIES) -> None:
        self._max = max_entries
        self._tracks: OrderedDict[str, int] = OrderedDict()
        self._names: OrderedDict[int, str] = OrderedDict()
        self._unknown: list[int] = []  # tracks answered "unknown" since the last take_unknown
        self._lock = threading.Lock()

    def remember(self, key: str, track_id: int) -> None:
        with self._lock:
            self._tracks[key] = track_id
            while len(self._tracks) > self._max:
                self._tracks.popitem(last=False)

    def apply(self, message: Mapping[str, Any]) -> int | None:
        """Names the track the message's ``Key`` came from; that track id, or None."""
        key = message.get("Key")
        name = display_name(message)
        if not isinstance(key, str) or name is None:
            return None
        with self._lock:
            track_id = self._tracks.get(key)
            if track_id is None:
                return None
            # A later "unknown" does not undo a name: the person was named on a better crop.
            if name == UNKNOWN and self._names.get(track_id, UNKNOWN) != UNKNOWN:
                return track_id
            if name == UNKNOWN and len(self._unknown) < self._max:
                self._unknown.append(track_id)
            self._names[track_id] = name
            self._names.move_to_end(track_id)
            while len(self._names) > self._max:
                self._names.popitem(last=False)
        return track_id

    def take_unknown(self) -> list[int]:
        """Tracks the recognizer answered "unknown" for since the last call (each once)."""
        with self._lock:
            taken, self._unknown = self._unknown, []
        return list(dict.fromkeys(taken))

    def name_of(self, track_id: int) -> str | None:
        with self._lock:
            return self._names.get(track_id)


class RecognitionListener:
    """Subscribes to the recognizer's topics on an MQTT broker and feeds a NameBoard.

    QoS 0 and a clean session: a name that arrives while we are away is of
    no use to a live view later.
    """

    def __init__(self, endpoint: MqttEndpoint, board: NameBoard, *, topic: str) -> None:
        self._board = board
        self._session = MqttSession(
            endpoint,
            clean_session=True,
            subscriptions=[(topic, 0), (f"{topic}/unknown", 0)],
            on_message=self._on_message,
        )

    def start(self) -> None:
        self._session.start()

    def stop(self) -> None:
        self._session.stop()

    def _on_message(self, message: MQTTMessage) -> None:
        try:
            # Bounded: "[" * 100000 raised RecursionError here, which ended paho's network
            # thread (no more names until a restart). Recognizer messages nest a few levels.
            payload = json_limits.loads(message.payload, max_depth=_MAX_MESSAGE_DEPTH)
        except ValueError:  # not JSON, or nested too deep (TooDeepError)
            return
        if isinstance(payload, dict):
            self._board.apply(payload)

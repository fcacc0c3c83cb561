"""Names for the live view: the recognizer's answers, mapped back to the runner's tracks.

The runner remembers which track and visit each uploaded key came from.
The recognizer answers per visit: its messages (on its topic, and
``<topic>/unknown``) carry the ``VisitId`` and a ``Revision`` (0 for the
visit's first answer; it publishes again only when the answer changes), so an
answer names the visit's track, and the highest revision seen wins (a late,
older one is ignored: MQTT at QoS 0 over several recognizer workers does not
keep order). A message without a visit (an older recognizer, a crop from
another uploader) names the track its ``Key`` came from. The display name is
the profile's ``Name`` (or ``name``) attribute, else the ExternalImageId,
UserId or FaceId; an unknown face is ``unknown``. Maps are bounded: a
runner lives for months.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, TypeVar

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
K = TypeVar("K")
V = TypeVar("V")


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


def _revision(message: Mapping[str, Any]) -> int | None:
    value = message.get("Revision")
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


class NameBoard:
    """Key -> track and visit -> track for this runner's uploads, track -> name once
    answered (the visit's latest revision); thread-safe, every map bounded."""

    def __init__(self, *, max_entries: int = _MAX_ENTRIES) -> None:
        self._max = max_entries
        self._tracks: OrderedDict[str, int] = OrderedDict()
        self._visits: OrderedDict[str, int] = OrderedDict()
        self._revisions: OrderedDict[str, int] = OrderedDict()
        self._names: OrderedDict[int, str] = OrderedDict()
        self._lock = threading.Lock()

    def remember(self, key: str, track_id: int, visit_id: str | None = None) -> None:
        """A crop uploaded under ``key`` is a look of ``track_id`` (and of ``visit_id``)."""
        with self._lock:
            _put(self._tracks, key, track_id, self._max)
            if visit_id is not None:
                _put(self._visits, visit_id, track_id, self._max)

    def apply(self, message: Mapping[str, Any]) -> int | None:
        """Names the track of the message's visit (else of its ``Key``); that track id, or
        None for a message about no look of this runner."""
        name = display_name(message)
        if name is None:
            return None
        visit, key = message.get("VisitId"), message.get("Key")
        revision = _revision(message)
        with self._lock:
            track_id = self._visits.get(visit) if isinstance(visit, str) else None
            if track_id is None and isinstance(key, str):
                track_id = self._tracks.get(key)
            if track_id is None:
                return None
            if isinstance(visit, str) and revision is not None:
                # The visit's answer as the recognizer last revised it, whatever it says
                # (its hysteresis decided that the change is real); an older revision
                # arriving late changes nothing.
                if revision < self._revisions.get(visit, -1):
                    return track_id
                _put(self._revisions, visit, revision, self._max)
            elif name == UNKNOWN and self._names.get(track_id, UNKNOWN) != UNKNOWN:
                # Without revisions, a later "unknown" does not undo a name: the person was
                # named on a better crop.
                return track_id
            _put(self._names, track_id, name, self._max)
        return track_id

    def name_of(self, track_id: int) -> str | None:
        with self._lock:
            return self._names.get(track_id)


def _put(entries: OrderedDict[K, V], key: K, value: V, most: int) -> None:
    """Sets ``key``, newest last, and forgets the oldest beyond ``most``."""
    entries[key] = value
    entries.move_to_end(key)
    while len(entries) > most:
        entries.popitem(last=False)


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

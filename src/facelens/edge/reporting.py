"""What the runner says on ``things/{thing}/infer``: status messages and per-frame labels.

Status messages (started, model loaded, source opened / lost / ended,
uploaded, upload failed, stopped) are QoS 1 and spooled by the publisher:
they arrive even after a broker outage. Per-frame labels keep the original
recipe's shape (``{"face": 0.97}``: the highest detection confidence, 0-1)
with the face count and tracks added; they are QoS 0, at most
``labels_per_second``, and only sent while the broker is connected
(``publish_now``: not spooled, no disk write on the frame loop): a label
from ten minutes ago is noise, not news. Publishing never blocks (the
publisher's contract).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from facelens.bus.publisher import MessagePublisher
from facelens.edge.types import SourceEvent, SourceEventKind, TrackedFace
from facelens.edge.uploads import Uploaded, UploadFailed
from facelens.errors import FacelensError, InvalidParameterException

_log = logging.getLogger(__name__)


def infer_topic(template: str, thing: str) -> str:
    """The topic for ``thing``; MQTT wildcards in the thing name are refused."""
    if not thing or any(c in thing for c in "+#/\x00"):
        raise InvalidParameterException(
            f"A thing name must be non-empty without '+', '#' or '/': {thing!r}"
        )
    return template.replace("{thing}", thing)


class Reporter:
    """Publishes the runner's status and labels for one thing."""

    def __init__(
        self,
        publisher: MessagePublisher,
        *,
        thing: str,
        topic: str,
        labels_per_second: float = 2.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._publisher = publisher
        self.thing = thing
        self.topic = topic
        self._interval = 1.0 / labels_per_second
        self._clock = clock
        self._next_label = 0.0

    def status(self, status: str, **fields: Any) -> None:
        """One status message; ``fields`` are added as they are (JSON values)."""
        payload = {
            "thing": self.thing,
            "status": status,
            "at": datetime.now(UTC).isoformat(),
            **fields,
        }
        self._publish(payload)

    def labels(self, faces: Sequence[TrackedFace], *, frame_index: int) -> None:
        """The frame's face labels, if any and if the rate allows."""
        if not faces:
            return
        now = self._clock()
        if now < self._next_label:
            return
        self._next_label = now + self._interval
        payload = {
            "face": round(max(face.confidence for face in faces) / 100.0, 3),
            "faces": len(faces),
            "tracks": [
                {"id": face.track_id, "confidence": round(face.confidence / 100.0, 3)}
                | ({"name": face.name} if face.name else {})
                for face in faces
            ],
            "frame": frame_index,
            "thing": self.thing,
            "at": datetime.now(UTC).isoformat(),
        }
        try:
            self._publisher.publish_now(self.topic, payload)
        except FacelensError as exc:
            _log.error("Could not publish labels on %s: %s", self.topic, exc)

    def _publish(self, payload: dict[str, Any]) -> None:
        try:
            self._publisher.publish(self.topic, payload, qos=1)
        except FacelensError as exc:  # the spool's disk: report, never stop the camera
            _log.error("Could not publish on %s: %s", self.topic, exc)


class EdgeStatus:
    """The runner's parts' events as status messages; built before them, so it can be their
    callback. Called from the feed's and the uploader's threads: only quick work here.
    ``source_lost`` tells the frame loop to end its tracks (their crops go out at once)."""

    def __init__(self, reporter: Reporter) -> None:
        self.reporter = reporter
        self.source_lost = threading.Event()

    def on_source_event(self, event: SourceEvent) -> None:
        fields: dict[str, Any] = {"source": event.description, "attempt": event.attempt}
        if event.error:
            fields["error"] = event.error
        if event.info is not None:
            fields |= {"width": event.info.width, "height": event.info.height}
            fields["fps"] = round(event.info.fps, 3)
        if event.kind is SourceEventKind.LOST:
            _log.warning("Source lost: %s (%s)", event.description, event.error)
            self.source_lost.set()
        else:
            _log.info("%s: %s", event.kind.value.capitalize(), event.description)
        self.reporter.status(event.kind.value, **fields)

    def on_uploaded(self, uploaded: Uploaded) -> None:
        latency = None if uploaded.latency is None else round(uploaded.latency * 1000, 1)
        self.reporter.status("uploaded", key=uploaded.key, bytes=uploaded.size, latency_ms=latency)

    def on_upload_failed(self, failure: UploadFailed) -> None:
        self.reporter.status(
            "upload failed",
            key=failure.key,
            error={"Code": failure.error.code, "Message": failure.error.message},
            retrying=failure.retrying,
        )

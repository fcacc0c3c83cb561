"""Values that cross the edge package's module boundaries."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

import numpy as np
import numpy.typing as npt

from facelens.values.boxes import PixelBox

BGRImage = npt.NDArray[np.uint8]
"""An H x W x 3 uint8 array in OpenCV's BGR order (what sources deliver)."""


@dataclass(frozen=True, eq=False)
class Frame:
    """One frame as read from a source.

    index: 0-based count of frames read since the runner started (it keeps
    counting across reconnects). media_time: seconds on the source's own
    clock (position in a file; seconds since the first frame for live
    sources): tracking and upload intervals use it, so a file processed
    faster than real time behaves as if watched. captured_at: wall clock
    (UTC) when it was read, for keys and metadata. monotonic:
    ``time.monotonic()`` when it was read, for latency figures.
    """

    image: BGRImage
    index: int
    media_time: float
    captured_at: datetime
    monotonic: float

    @property
    def width(self) -> int:
        return int(self.image.shape[1])

    @property
    def height(self) -> int:
        return int(self.image.shape[0])


@dataclass(frozen=True)
class SourceInfo:
    """What an opened source says about itself; fps 0.0 when it does not know."""

    description: str
    width: int
    height: int
    fps: float
    live: bool


class SourceEventKind(StrEnum):
    OPENED = "source opened"
    LOST = "source lost"
    ENDED = "source ended"


@dataclass(frozen=True)
class SourceEvent:
    """A change in the source's state. attempt: reconnection attempt (0 for the first
    open); error: why it was lost or why the last attempt failed."""

    kind: SourceEventKind
    description: str
    attempt: int = 0
    error: str | None = None
    info: SourceInfo | None = None


@dataclass(frozen=True)
class TrackedFace:
    """A face being followed: its latest box in full-frame pixels, detection confidence
    (0-100) and, once the recognizer has answered for one of its crops, a name
    (``unknown`` is a valid answer: the recognizer saw no match)."""

    track_id: int
    box: PixelBox
    confidence: float
    name: str | None = None


@dataclass(frozen=True)
class EdgeStats:
    """A snapshot of the runner's counters (since start) and gauges (now).

    fps: frames processed per second over the last stats interval.
    detect_seconds_sum / detect_count: total detection time and calls (a
    Prometheus summary's sum and count). crop_latency_seconds_sum / _count:
    from a frame's capture to its crop being in the store.
    """

    thing: str
    uptime_seconds: float
    frames_read: int
    frames_processed: int
    frames_dropped: int
    fps: float
    detect_seconds_sum: float
    detect_count: int
    faces_detected: int
    tracks_started: int
    active_tracks: int
    crops_queued: int
    crops_uploaded: int
    upload_failures: int
    buffer_depth: int
    buffer_dropped: int
    crop_latency_seconds_sum: float
    crop_latency_count: int
    source_connected: bool
    source_reconnects: int
    mqtt_connected: bool | None
    viewers: int
    looks_refused: Mapping[str, int] = field(default_factory=dict)
    """Looks the quality gate kept on the camera, by reason (``cut``, ``small``, ``turned``,
    ``tilted``, ``blurred``, ``no-face``): why a camera that sees people uploads nothing."""

"""Following faces from frame to frame, so a person is one track and not one upload per frame.

Greedy matching on box overlap (intersection over union), with a fallback
on centre distance for small or fast-moving faces whose boxes no longer
overlap much between processed frames (a live source drops frames when
detection is slower than the camera). Faces per frame are few (a handful),
so the O(tracks x faces) scoring and a greedy assignment are exact enough
and cheaper than the Hungarian algorithm; a Kalman filter would help fast
motion across long gaps, which a doorway camera rarely has.

Times are media seconds (``Frame.media_time``), so a file processed faster
than real time tracks as if it were watched.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from facelens.engine.types import DetectedFace
from facelens.errors import InvalidParameterException
from facelens.values.boxes import PixelBox

_CENTRE_FALLBACK = 0.8
"""A face whose centre is within this many box sizes of a track's centre may continue it."""
_SIZE_RATIO = 2.0
"""...if the two boxes' sizes differ by less than this factor (a fallback match must be
the same face, not a nearer, smaller one)."""


@dataclass(frozen=True)
class Assignment:
    """A face of this frame and the track it belongs to; ``new``: the track starts here."""

    track_id: int
    face: DetectedFace
    new: bool


@dataclass(frozen=True)
class TrackUpdate:
    assignments: list[Assignment]
    ended: list[int]


@dataclass
class _Track:
    track_id: int
    box: PixelBox
    confidence: float
    first_seen: float
    last_seen: float
    hits: int = 1


class Tracker:
    """Assigns each frame's faces to tracks; a track ends after ``timeout`` seconds unseen.

    iou_threshold: least overlap (0-1) for a face to continue a track by
    overlap; lower tolerates more motion between frames but risks swapping
    two people who pass close by.
    """

    def __init__(self, *, iou_threshold: float = 0.2, timeout: float = 1.0) -> None:
        if not 0.0 < iou_threshold < 1.0:
            raise InvalidParameterException(f"iou_threshold must be in (0, 1), not {iou_threshold}")
        if timeout <= 0:
            raise InvalidParameterException(f"timeout must be positive, not {timeout}")
        self.iou_threshold = iou_threshold
        self.timeout = timeout
        self._tracks: dict[int, _Track] = {}
        self._next_id = 1
        self.started = 0

    @property
    def active(self) -> int:
        return len(self._tracks)

    def box(self, track_id: int) -> PixelBox | None:
        track = self._tracks.get(track_id)
        return track.box if track else None

    def update(self, faces: list[DetectedFace], media_time: float) -> TrackUpdate:
        """Assigns ``faces`` (one frame's) and ends tracks unseen for longer than the timeout."""
        pairs = sorted(
            (
                (score, track_id, index)
                for track_id, track in self._tracks.items()
                for index, face in enumerate(faces)
                if (score := self._affinity(track.box, face.box)) > 0.0
            ),
            reverse=True,
        )
        taken_tracks: set[int] = set()
        taken_faces: set[int] = set()
        assignments: list[Assignment] = []
        for _, track_id, index in pairs:
            if track_id in taken_tracks or index in taken_faces:
                continue
            taken_tracks.add(track_id)
            taken_faces.add(index)
            track = self._tracks[track_id]
            face = faces[index]
            track.box, track.confidence = face.box, face.confidence
            track.last_seen = media_time
            track.hits += 1
            assignments.append(Assignment(track_id, face, new=False))
        for index, face in enumerate(faces):
            if index in taken_faces:
                continue
            track_id = self._next_id
            self._next_id += 1
            self.started += 1
            self._tracks[track_id] = _Track(
                track_id, face.box, face.confidence, media_time, media_time
            )
            assignments.append(Assignment(track_id, face, new=True))
        ended = [
            track_id
            for track_id, track in self._tracks.items()
            if media_time - track.last_seen > self.timeout
        ]
        for track_id in ended:
            del self._tracks[track_id]
        assignments.sort(key=lambda a: a.track_id)
        return TrackUpdate(assignments, ended)

    def end_all(self) -> list[int]:
        """Ends every track (the source ended or the runner stops); their ids."""
        ended = sorted(self._tracks)
        self._tracks.clear()
        return ended

    def _affinity(self, a: PixelBox, b: PixelBox) -> float:
        """Overlap if it clears the threshold, else a smaller score for a near centre, else 0.

        Fallback scores stay below any overlap match (< iou_threshold), so an
        overlapping face always wins over a merely near one.
        """
        overlap = iou(a, b)
        if overlap >= self.iou_threshold:
            return overlap
        size_a = math.sqrt(max(a.area, 1e-9))
        size_b = math.sqrt(max(b.area, 1e-9))
        if max(size_a, size_b) / min(size_a, size_b) > _SIZE_RATIO:
            return 0.0
        distance = math.hypot(
            (a.left + a.right - b.left - b.right) / 2, (a.top + a.bottom - b.top - b.bottom) / 2
        )
        reach = _CENTRE_FALLBACK * (size_a + size_b) / 2
        if distance >= reach:
            return 0.0
        return self.iou_threshold * 0.5 * (1.0 - distance / reach)


def iou(a: PixelBox, b: PixelBox) -> float:
    """Intersection over union of two boxes, 0-1."""
    width = min(a.right, b.right) - max(a.left, b.left)
    height = min(a.bottom, b.bottom) - max(a.top, b.top)
    if width <= 0 or height <= 0:
        return 0.0
    inter = width * height
    union = a.area + b.area - inter
    return inter / union if union > 0 else 0.0

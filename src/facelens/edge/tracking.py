"""Following faces from frame to frame, so a person walking through is one track (one visit).

Greedy matching on box overlap (intersection over union), with a fallback
on centre distance for small or fast-moving faces whose boxes no longer
overlap much between processed frames (a live source drops frames when
detection is slower than the camera). Faces per frame are few (a handful),
so the O(tracks x faces) scoring and a greedy assignment are exact enough
and cheaper than the Hungarian algorithm.

Two cues keep a person's track through the frames where the detector loses
the face (a head turned or bent, a blur, someone passing in front), so that
one person is one visit rather than three:

- **motion**: each track keeps a constant-velocity estimate of its centre
  (pixels per second, smoothed), and matching compares a face with where the
  track *should* be now, not where it was last seen: a person walking
  steadily is found again after a few missed frames, and two people crossing
  are each expected on their own side. (A Kalman filter would add little
  over this for the second-long gaps a doorway camera has.)
- **appearance**: a hue-saturation histogram of the head and shoulders (the
  edge has no embedder; clothes and hair are what a colour histogram sees),
  compared with :func:`cv2.compareHist`. It weighs every match and vetoes a
  match by distance alone (no overlap) to a track that looks different, so
  the reach that grows with a track's time unseen does not hand a lost
  track to a stranger.

Times are media seconds (``Frame.media_time``), so a file processed faster
than real time tracks as if it were watched.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np
import numpy.typing as npt

from facelens.edge.types import BGRImage
from facelens.engine.types import DetectedFace
from facelens.errors import InvalidParameterException
from facelens.values.boxes import PixelBox

_CENTRE_FALLBACK = 0.8
"""A face whose centre is within this many box sizes of a track's centre may continue it."""
_SIZE_RATIO = 2.0
"""...if the two boxes' sizes differ by less than this factor (a fallback match must be
the same face, not a nearer, smaller one)."""
_REACH_GROWTH_S = 0.5
"""The centre fallback's reach grows by its own size for every this many seconds a track
has gone unseen: the longer the gap, the less sure the predicted position."""
_PREDICT_MAX_S = 0.5
"""Motion is extrapolated at most this far (seconds): past it, a person has likely stopped
or turned, and the fallback's grown reach takes over."""
_VELOCITY_SMOOTHING = 0.5
"""Weight of the newest displacement in the velocity estimate (0-1): detector jitter is
a few pixels a frame, which this halves, while a change of pace is followed in two frames."""
_MAX_SPEED_SIZES = 15.0
"""Fastest believable motion, in face sizes per second (a jittery match must not fling the
prediction across the frame); someone crossing the crowd clip close by moves 10."""
_MIN_LOOK_ALIKE = 0.5
"""Least appearance similarity (0-1, 1 - Bhattacharyya distance of the histograms) for a
match by distance alone; the same head and shoulders measure 0.75-0.95 frame to frame on
the walking-crowd clip, but two men in dark coats side by side also 0.7: the cue vetoes
the clearly different, it cannot tell look-alikes apart. (Measured with bench/edge_visits.py:
a stricter bar after a gap, 0.6-0.8, split more people than it saved from swaps.)"""
_HIST_BINS = [16, 16]
_APPEARANCE_MEMORY = 0.3
"""Weight of the newest histogram in a track's appearance (lighting drifts as one walks)."""

Histogram = npt.NDArray[np.float32]


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
    vx: float = 0.0
    """Centre velocity, pixels per second of video (x right, y down)."""
    vy: float = 0.0
    appearance: Histogram | None = None

    def predicted(self, media_time: float) -> PixelBox:
        """Where the box should be at ``media_time`` if the face kept its pace."""
        dt = min(max(media_time - self.last_seen, 0.0), _PREDICT_MAX_S)
        dx, dy = self.vx * dt, self.vy * dt
        b = self.box
        return PixelBox(b.left + dx, b.top + dy, b.right + dx, b.bottom + dy)

    def follow(self, face: DetectedFace, media_time: float, appearance: Histogram | None) -> None:
        """The track's face is ``face`` at ``media_time``: move it, update pace and looks."""
        dt = media_time - self.last_seen
        if dt > 0:
            (ox, oy), (nx, ny) = _centre(self.box), _centre(face.box)
            vx, vy = (nx - ox) / dt, (ny - oy) / dt
            limit = _MAX_SPEED_SIZES * math.sqrt(max(face.box.area, 1.0))
            speed = math.hypot(vx, vy)
            if speed > limit:
                vx, vy = vx * limit / speed, vy * limit / speed
            a = 1.0 if self.hits == 1 else _VELOCITY_SMOOTHING
            self.vx = a * vx + (1 - a) * self.vx
            self.vy = a * vy + (1 - a) * self.vy
        self.box, self.confidence = face.box, face.confidence
        self.last_seen = media_time
        self.hits += 1
        if appearance is not None:
            if self.appearance is None:
                self.appearance = appearance
            else:
                mixed = (1 - _APPEARANCE_MEMORY) * self.appearance + _APPEARANCE_MEMORY * appearance
                self.appearance = np.asarray(mixed, dtype=np.float32)


class Tracker:
    """Assigns each frame's faces to tracks; a track ends after ``timeout`` seconds unseen.

    iou_threshold: least overlap (0-1) for a face to continue a track by
    overlap; lower tolerates more motion between frames but risks swapping
    two people who pass close by.
    """

    def __init__(self, *, iou_threshold: float = 0.2, timeout: float = 1.5) -> None:
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

    def update(
        self, faces: list[DetectedFace], media_time: float, image: BGRImage | None = None
    ) -> TrackUpdate:
        """Assigns ``faces`` (one frame's) and ends tracks unseen for longer than the timeout.

        image: the frame the faces were found in (full resolution), for the appearance
        cue; without it tracks follow motion alone.
        """
        looks = [appearance(image, face.box) if image is not None else None for face in faces]
        pairs = sorted(
            (
                (score, track_id, index)
                for track_id, track in self._tracks.items()
                for index, face in enumerate(faces)
                if (score := self._affinity(track, face.box, looks[index], media_time)) > 0.0
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
            track.follow(face, media_time, looks[index])
            assignments.append(Assignment(track_id, face, new=False))
        for index, face in enumerate(faces):
            if index in taken_faces:
                continue
            track_id = self._next_id
            self._next_id += 1
            self.started += 1
            self._tracks[track_id] = _Track(
                track_id,
                face.box,
                face.confidence,
                media_time,
                media_time,
                appearance=looks[index],
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

    def _affinity(
        self, track: _Track, box: PixelBox, look: Histogram | None, media_time: float
    ) -> float:
        """How well a face continues a track, 0 for not at all.

        Overlap with the track's predicted box if it clears the threshold, else a
        smaller score for a centre within reach (the reach growing with the time the
        track has gone unseen), provided the appearance does not say it is someone else;
        either weighted by appearance. Fallback scores stay below any overlap match of
        like appearance, so an overlapping face wins over a merely near one.
        """
        a = track.predicted(media_time)
        similar = None
        if look is not None and track.appearance is not None:
            similar = look_alike(track.appearance, look)
        weight = 1.0 if similar is None else 0.5 + 0.5 * similar
        overlap = iou(a, box)
        if overlap >= self.iou_threshold:
            return overlap * weight
        unseen = max(media_time - track.last_seen, 0.0)
        if similar is not None and similar < _MIN_LOOK_ALIKE:
            return 0.0
        size_a = math.sqrt(max(a.area, 1e-9))
        size_b = math.sqrt(max(box.area, 1e-9))
        if max(size_a, size_b) / min(size_a, size_b) > _SIZE_RATIO:
            return 0.0
        (ax, ay), (bx, by) = _centre(a), _centre(box)
        distance = math.hypot(ax - bx, ay - by)
        reach = _CENTRE_FALLBACK * (size_a + size_b) / 2 * (1.0 + unseen / _REACH_GROWTH_S)
        if distance >= reach:
            return 0.0
        return self.iou_threshold * 0.5 * (1.0 - distance / reach) * weight


def _centre(box: PixelBox) -> tuple[float, float]:
    return (box.left + box.right) / 2, (box.top + box.bottom) / 2


def appearance(image: BGRImage, box: PixelBox) -> Histogram | None:
    """A hue-saturation histogram (16 x 16 bins, normalised) of the head and shoulders:
    the face box widened by half its width and extended down by its height, clipped to the
    frame; None when that leaves no pixels."""
    height, width = int(image.shape[0]), int(image.shape[1])
    left = max(0, int(box.left - box.width * 0.5))
    right = min(width, math.ceil(box.right + box.width * 0.5))
    top = max(0, int(box.top))
    bottom = min(height, math.ceil(box.bottom + box.height))
    if right - left < 2 or bottom - top < 2:
        return None
    hsv = cv2.cvtColor(np.ascontiguousarray(image[top:bottom, left:right]), cv2.COLOR_BGR2HSV)
    hist = cv2.calcHist([hsv], [0, 1], None, _HIST_BINS, [0, 180, 0, 256])
    cv2.normalize(hist, hist, alpha=1.0, norm_type=cv2.NORM_L1)
    return np.asarray(hist, dtype=np.float32)


def look_alike(a: Histogram, b: Histogram) -> float:
    """Appearance similarity of two histograms, 0 (nothing alike) to 1 (the same)."""
    distance = float(cv2.compareHist(a, b, cv2.HISTCMP_BHATTACHARYYA))
    return min(max(1.0 - distance, 0.0), 1.0)


def iou(a: PixelBox, b: PixelBox) -> float:
    """Intersection over union of two boxes, 0-1."""
    width = min(a.right, b.right) - max(a.left, b.left)
    height = min(a.bottom, b.bottom) - max(a.top, b.top)
    if width <= 0 or height <= 0:
        return 0.0
    inter = width * height
    union = a.area + b.area - inter
    return inter / union if union > 0 else 0.0

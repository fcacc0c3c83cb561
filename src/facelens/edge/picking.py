"""One crop per person per track: the best of a short window, then again every N seconds.

The original recipe uploaded every face of every frame: dozens of
near-identical crops per second per person, each a recognizer call. Here a
track's first upload is the best crop seen in its first ``best_of`` seconds
(sharp, large, frontal, confidently detected), so the recognizer gets one
good picture rather than the first, often blurred or turned, one; while the
person stays in view another window opens every ``reupload`` seconds. A
track that ends before its window closes still uploads what it had, once it
was seen twice (a single detection is more often a false positive than a
person who crossed the frame in one frame's time).

Before a crop goes, ``verify`` (the recognizer's own detector, run on the
crop) must find the face in it: a crop the recognizer cannot find a face
in is a wasted upload and a dead letter, and this is also where a hand or
a logo that the fast frame detector took for a face is caught. The window
keeps its best few candidates, so a rejected best is replaced by the next.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

import cv2
import numpy as np

from facelens.edge.types import BGRImage, Frame
from facelens.engine.quality import estimate_pose, estimate_quality
from facelens.engine.types import DetectedFace
from facelens.errors import InvalidParameterException
from facelens.values.boxes import PixelBox

MIN_HITS = 2
"""Detections a track needs before its first upload."""
_KEEP = 3
_RUNNERS_UP_TRACKS = 256
"""Tracks whose unused candidates are kept for a retry (the most recent ones)."""
"""Candidates a window keeps, best first, in case verification rejects the best."""
_SIZE_HALF = 80.0
"""Face size (shorter side, pixels) scoring half of the size term; larger saturates towards 1."""


@dataclass(frozen=True, eq=False)
class ChosenCrop:
    """A crop chosen for upload.

    image: the face with its margin, full-resolution BGR pixels; region: where
    it was cut from the frame; face: the detection in frame pixels; score:
    0-1 (see :func:`crop_score`); upload: 0 for a track's first upload.
    """

    track_id: int
    upload: int
    image: BGRImage
    region: PixelBox
    face: DetectedFace
    score: float
    frame_index: int
    captured_at: datetime
    captured_monotonic: float


def crop_region(box: PixelBox, *, margin: float, width: int, height: int) -> PixelBox:
    """The box grown by ``margin`` (a fraction of its width on the left and right, of its
    height on top and bottom), in whole pixels, clipped to the ``width`` x ``height`` frame."""
    dx = box.width * margin
    dy = box.height * margin
    return PixelBox(
        left=float(max(0, math.floor(box.left - dx))),
        top=float(max(0, math.floor(box.top - dy))),
        right=float(min(width, math.ceil(box.right + dx))),
        bottom=float(min(height, math.ceil(box.bottom + dy))),
    )


def cut(image: BGRImage, region: PixelBox) -> BGRImage:
    """The pixels of ``region`` (whole-pixel bounds, as from :func:`crop_region`), copied."""
    top, bottom = int(region.top), int(region.bottom)
    left, right = int(region.left), int(region.right)
    return np.ascontiguousarray(image[top:bottom, left:right])


def crop_score(crop: BGRImage, face: DetectedFace, region: PixelBox) -> float:
    """How good a picture of the face this crop is, 0-1: size x sharpness x frontality x
    confidence, each mapped to 0-1.

    The product makes any one bad property (tiny, blurred, turned away)
    sink the score. Frontality is squared: a face turned 40° embeds
    measurably worse, whereas sharpness only matters once it is poor.
    """
    local = DetectedFace(
        box=PixelBox(
            face.box.left - region.left,
            face.box.top - region.top,
            face.box.right - region.left,
            face.box.bottom - region.top,
        ),
        landmarks=face.landmarks,  # unused by the quality estimate
        confidence=face.confidence,
    )
    rgb = np.ascontiguousarray(cv2.cvtColor(crop, cv2.COLOR_BGR2RGB), dtype=np.uint8)
    sharpness = estimate_quality(rgb, local).sharpness / 100.0
    pose = estimate_pose(face.landmarks)
    frontal = max(0.0, math.cos(math.radians(pose.yaw)) * math.cos(math.radians(pose.pitch)))
    side = min(face.box.width, face.box.height)
    size = side / (side + _SIZE_HALF)
    confidence = min(max(face.confidence / 100.0, 0.0), 1.0)
    return size * (0.4 + 0.6 * sharpness) * frontal**2 * (0.5 + 0.5 * confidence)


@dataclass
class _Window:
    start: float
    candidates: list[ChosenCrop] = field(default_factory=list)
    uploads: int = 0
    total_hits: int = 0


class CropPicker:
    """Decides, frame by frame, which crops to upload.

    best_of: seconds a window stays open collecting candidates (0: upload at
    the first chance); reupload: seconds between windows while a track lives;
    margin: crop margin as a fraction of the face box on each side; verify:
    whether a crop is fit to upload (None: every crop is).
    """

    def __init__(
        self,
        *,
        best_of: float = 0.5,
        reupload: float = 30.0,
        margin: float = 0.3,
        verify: Callable[[ChosenCrop], bool] | None = None,
        unknown_retries: int = 2,
    ) -> None:
        if best_of < 0 or reupload <= 0 or margin < 0:
            raise InvalidParameterException(
                "best_of and margin must not be negative and reupload must be positive"
            )
        self.best_of = best_of
        self.reupload = reupload
        self.margin = margin
        self._verify = verify
        self._unknown_retries = unknown_retries
        self._windows: dict[int, _Window] = {}
        self._runners_up: OrderedDict[int, list[ChosenCrop]] = OrderedDict()
        self._retries: dict[int, int] = {}
        self.rejected = 0
        """Windows whose every candidate failed verification (nothing uploaded for them)."""

    def observe(self, frame: Frame, track_id: int, face: DetectedFace) -> None:
        """A detection of ``track_id`` in ``frame``: a candidate if its window is open."""
        window = self._windows.setdefault(track_id, _Window(start=frame.media_time))
        window.total_hits += 1
        if frame.media_time < window.start:
            return
        region = crop_region(face.box, margin=self.margin, width=frame.width, height=frame.height)
        if region.width < 2 or region.height < 2:
            return
        candidates = window.candidates
        image = cut(frame.image, region)
        score = crop_score(image, face, region)
        if len(candidates) >= _KEEP and score <= candidates[-1].score:
            return
        candidates.append(
            ChosenCrop(
                track_id=track_id,
                upload=window.uploads,
                image=image,
                region=region,
                face=face,
                score=score,
                frame_index=frame.index,
                captured_at=frame.captured_at,
                captured_monotonic=frame.monotonic,
            )
        )
        candidates.sort(key=lambda c: c.score, reverse=True)
        del candidates[_KEEP:]

    def due(self, media_time: float) -> list[ChosenCrop]:
        """Crops whose window has closed by ``media_time``; their tracks' next windows open."""
        chosen = []
        for window in self._windows.values():
            if not window.candidates or media_time < window.start + self.best_of:
                continue
            if window.total_hits < MIN_HITS:
                continue
            crop = self._pick(window)
            window.uploads += 1
            window.start = max(window.start + self.reupload, media_time)
            if crop is not None:
                chosen.append(crop)
        return chosen

    def end(self, track_ids: list[int]) -> list[ChosenCrop]:
        """Tracks that ended: the crop of a window still open, if the track was confirmed."""
        chosen = []
        for track_id in track_ids:
            window = self._windows.pop(track_id, None)
            if window is None or not window.candidates or window.total_hits < MIN_HITS:
                continue
            crop = self._pick(window)
            if crop is not None:
                chosen.append(crop)
        return chosen

    def retry(self, track_id: int) -> list[ChosenCrop]:
        """The recognizer could not name ``track_id``'s crop: its next candidate, if any is
        left and the track has retries left (``unknown_retries``)."""
        used = self._retries.get(track_id, 0)
        if used >= self._unknown_retries:
            return []
        candidates = self._runners_up.get(track_id, [])
        while candidates:
            candidate = candidates.pop(0)
            if self._verify is None or self._verify(candidate):
                self._retries[track_id] = used + 1
                return [candidate]
        return []

    def _pick(self, window: _Window) -> ChosenCrop | None:
        """The best candidate that passes verification; the rest are kept for a retry."""
        candidates, window.candidates = window.candidates, []
        track_id = candidates[0].track_id if candidates else None
        for n, candidate in enumerate(candidates):
            if self._verify is None or self._verify(candidate):
                if track_id is not None:
                    self._keep_runners_up(track_id, candidates[n + 1 :])
                return candidate
        self.rejected += 1
        return None

    def _keep_runners_up(self, track_id: int, candidates: list[ChosenCrop]) -> None:
        self._runners_up[track_id] = candidates
        self._runners_up.move_to_end(track_id)
        while len(self._runners_up) > _RUNNERS_UP_TRACKS:
            gone, _ = self._runners_up.popitem(last=False)
            self._retries.pop(gone, None)

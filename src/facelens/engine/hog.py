"""dlib's HOG face detector, with landmarks from dlib's 68-point shape predictor.

The 68-point model gives the five points Rekognition reports (eye centres,
nose tip, mouth corners); dlib's 5-point model has no mouth corners.
"""

from __future__ import annotations

import math
import threading
from typing import Any

import numpy as np

from facelens.engine.types import DetectedFace, Landmarks, Point, RGBImage
from facelens.errors import ConfigurationError
from facelens.values.boxes import PixelBox

# HOG's scanning window is 80 px: images whose longer side is at most this are
# upsampled once so faces down to ~40 px are found, at 4x the detection cost
# (about 0.25 s for 800x533 instead of 0.05 s). Larger images are scanned as
# they are; faces under 80 px in them are missed (YuNet finds them).
_UPSAMPLE_UP_TO = 1024


def hog_confidence(score: float) -> float:
    """Maps dlib's SVM margin (about -0.5..3; 0 is its default cut) to 0-100.

    A logistic squashing, monotone and not a probability: margin 0 -> 88,
    0.5 -> 98, 1 -> 99.8. It keeps LOW_CONFIDENCE meaningful across detectors.
    """
    return 100.0 / (1.0 + math.exp(-4.0 * (score + 0.5)))


def landmarks_from_68(points: np.ndarray) -> Landmarks:
    """Eye centres (mean of each eye's six points), nose tip (30), mouth corners (48, 54)."""

    def pt(xy: np.ndarray) -> Point:
        return Point(float(xy[0]), float(xy[1]))

    return Landmarks(
        eye_left=pt(points[36:42].mean(axis=0)),
        eye_right=pt(points[42:48].mean(axis=0)),
        nose=pt(points[30]),
        mouth_left=pt(points[48]),
        mouth_right=pt(points[54]),
    )


class HogDetector:
    """Detector protocol on dlib's HOG + linear SVM frontal face detector.

    Fast on a CPU and robust for frontal faces; misses profiles beyond about
    45 degrees of yaw (YuNet is the better choice there).
    """

    name = "hog"

    def __init__(self, *, adjust_threshold: float = 0.0, upsample: int | None = None) -> None:
        """upsample: times the image is doubled before scanning (each finds faces half as
        large at 4x the cost); None chooses by image size (see ``_UPSAMPLE_UP_TO``). The
        edge runner passes 0 and picks the scale itself, per frame size."""
        if upsample is not None and not 0 <= upsample <= 2:
            raise ConfigurationError(f"upsample must be 0-2, not {upsample}")
        self._adjust_threshold = adjust_threshold
        self._upsample = upsample
        self._detector: Any = None
        self._predictor: Any = None
        self._lock = threading.Lock()

    def prepare(self) -> None:
        with self._lock:
            if self._detector is not None:
                return
            try:
                import dlib
                import face_recognition_models
            except ImportError as exc:  # pragma: no cover - both are dependencies
                raise ConfigurationError(f"the hog detector needs dlib-bin: {exc}") from exc
            self._predictor = dlib.shape_predictor(
                face_recognition_models.pose_predictor_model_location()
            )
            self._detector = dlib.get_frontal_face_detector()

    def detect(self, image: RGBImage, *, largest_only: bool = False) -> list[DetectedFace]:
        """With ``largest_only``, a small image is first scanned as it is (4x cheaper) and
        upsampled only when that finds nothing: upsampling adds only faces under 80 px."""
        self.prepare()
        # One detector object is not safe to run from two threads at once (dlib releases
        # the GIL and aborts the process): calls on one instance are serialized.
        with self._lock:
            return self._detect(image, largest_only=largest_only)

    def _detect(self, image: RGBImage, *, largest_only: bool) -> list[DetectedFace]:
        height, width = image.shape[:2]
        upsample = self._upsample
        if upsample is None:
            upsample = 1 if max(height, width) <= _UPSAMPLE_UP_TO else 0
        if largest_only and upsample and self._upsample is None:
            rects, scores, _ = self._detector.run(image, 0, self._adjust_threshold)
            if not rects:
                rects, scores, _ = self._detector.run(image, upsample, self._adjust_threshold)
        else:
            rects, scores, _ = self._detector.run(image, upsample, self._adjust_threshold)
        faces = []
        for rect, score in zip(rects, scores, strict=True):
            shape = self._predictor(image, rect)
            points = np.array([(p.x, p.y) for p in shape.parts()], dtype=np.float64)
            box = PixelBox(
                left=float(max(0, rect.left())),
                top=float(max(0, rect.top())),
                right=float(min(width, rect.right() + 1)),
                bottom=float(min(height, rect.bottom() + 1)),
            )
            faces.append(
                DetectedFace(
                    box=box, landmarks=landmarks_from_68(points), confidence=hog_confidence(score)
                )
            )
        return faces

"""Faces in a frame: detection on a scaled copy, boxes mapped back to the full frame exactly.

Detection cost grows with pixels (HOG roughly linearly, YuNet too), so it
runs on a copy whose longer side is ``detect_side``; everything after it
(crops, quality, the live view) uses the full-resolution frame. The mapping
is per axis (``fx = width / small_width``), because rounding the copy's size
makes the two ratios differ slightly; the original recipe added ``xmin``
twice and applied its margin in model pixels, so its crops were off.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import cv2
import numpy as np

from facelens.config import Settings
from facelens.edge.types import BGRImage
from facelens.engine.protocol import Detector
from facelens.engine.types import DetectedFace
from facelens.errors import InvalidParameterException
from facelens.values.boxes import PixelBox


def build_edge_detector(settings: Settings) -> Detector:
    """The configured detector, set up for frames of a known scale.

    HOG is built without its automatic upsampling: the frame is already
    scaled to ``edge.detect_side``, and doubling it again would cost 4x.
    """
    from facelens.engine.registry import build_detector, detector_name

    if detector_name(settings) == "hog":
        from facelens.engine.hog import HogDetector

        return HogDetector(upsample=0)
    return build_detector(settings)


@dataclass(frozen=True)
class Detections:
    """The faces of one frame in full-frame pixels, and how long detection took (seconds)."""

    faces: list[DetectedFace]
    seconds: float


class FrameDetector:
    """Runs a Detector on a copy of each frame scaled so its longer side is ``detect_side``.

    min_confidence: 0-100; weaker detections are dropped (HOG's 0-margin cut
    maps to 88, YuNet's default score cut 0.6 to 60).
    """

    def __init__(
        self, detector: Detector, *, detect_side: int = 640, min_confidence: float = 50.0
    ) -> None:
        if detect_side < 16:
            raise InvalidParameterException(f"detect_side must be at least 16, not {detect_side}")
        self.detector = detector
        self.detect_side = detect_side
        self.min_confidence = min_confidence

    def prepare(self) -> None:
        self.detector.prepare()

    def detect(self, image: BGRImage) -> Detections:
        started = time.perf_counter()
        height, width = int(image.shape[0]), int(image.shape[1])
        scale = self.detect_side / max(height, width)
        small: BGRImage = image
        if abs(scale - 1.0) >= 1e-3:
            size = (max(1, round(width * scale)), max(1, round(height * scale)))
            # INTER_AREA averages when shrinking (no aliasing); linear when enlarging.
            interpolation = cv2.INTER_AREA if scale < 1.0 else cv2.INTER_LINEAR
            small = np.asarray(cv2.resize(image, size, interpolation=interpolation), np.uint8)
        rgb = np.ascontiguousarray(cv2.cvtColor(small, cv2.COLOR_BGR2RGB), dtype=np.uint8)
        fx = width / small.shape[1]
        fy = height / small.shape[0]
        faces = [
            DetectedFace(
                box=_clip(face.box.scaled(fx, fy), width, height),
                landmarks=face.landmarks.scaled(fx, fy),
                confidence=face.confidence,
            )
            for face in self.detector.detect(rgb)
            if face.confidence >= self.min_confidence
        ]
        return Detections(faces, time.perf_counter() - started)


def _clip(box: PixelBox, width: int, height: int) -> PixelBox:
    return PixelBox(
        left=min(max(box.left, 0.0), float(width)),
        top=min(max(box.top, 0.0), float(height)),
        right=min(max(box.right, 0.0), float(width)),
        bottom=min(max(box.bottom, 0.0), float(height)),
    )


class CropCheck:
    """Whether the recognizer will find the face in a crop: its detector, run on the crop.

    ``detector`` is built as the recognizer's engine builds it (for HOG: with
    its automatic upsampling of small images), so a crop that passes here is
    one the recognizer can search with. The face found must be the crop's own
    face (its centre inside the expected box), not a neighbour's. It looks at
    the crop after a JPEG round trip at ``jpeg_quality``: exactly the pixels
    the recognizer will get (a face near the detector's threshold can fall
    either side of it after compression).
    """

    def __init__(self, detector: Detector, *, jpeg_quality: int = 90) -> None:
        self.detector = detector
        self.jpeg_quality = jpeg_quality
        self.checked = 0
        self.failed = 0

    def prepare(self) -> None:
        self.detector.prepare()

    def __call__(self, image: BGRImage, face: DetectedFace, region: PixelBox) -> bool:
        """Whether the detector finds ``face`` (frame pixels) in ``image``, the crop cut
        from ``region`` of the frame."""
        ok, encoded = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, self.jpeg_quality])
        if not ok:
            return False
        decoded = cv2.imdecode(encoded, cv2.IMREAD_COLOR)
        if decoded is None:
            return False
        rgb = np.ascontiguousarray(cv2.cvtColor(decoded, cv2.COLOR_BGR2RGB), dtype=np.uint8)
        expected = PixelBox(
            face.box.left - region.left,
            face.box.top - region.top,
            face.box.right - region.left,
            face.box.bottom - region.top,
        )
        self.checked += 1
        for found in self.detector.detect(rgb):
            cx = (found.box.left + found.box.right) / 2
            cy = (found.box.top + found.box.bottom) / 2
            if expected.left <= cx <= expected.right and expected.top <= cy <= expected.bottom:
                return True
        self.failed += 1
        return False

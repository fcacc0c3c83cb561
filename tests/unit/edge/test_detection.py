"""Detection on a scaled copy: boxes come back in full-frame pixels, per axis, exactly."""

from __future__ import annotations

import numpy as np
import pytest

from facelens.config import Settings
from facelens.edge.detection import FrameDetector, build_edge_detector
from facelens.engine.types import DetectedFace, Landmarks, Point, RGBImage
from facelens.values.boxes import PixelBox


class FixedDetector:
    """Reports one face at fixed coordinates of whatever image it is given, and the sizes seen."""

    name = "fixed"

    def __init__(self, box: PixelBox, confidence: float = 90.0) -> None:
        self.box = box
        self.confidence = confidence
        self.seen: list[tuple[int, int]] = []

    def prepare(self) -> None:
        pass

    def detect(self, image: RGBImage, *, largest_only: bool = False) -> list[DetectedFace]:
        self.seen.append((image.shape[1], image.shape[0]))
        p = Point(self.box.left, self.box.top)
        return [DetectedFace(self.box, Landmarks(p, p, p, p, p), self.confidence)]


@pytest.mark.parametrize(("width", "height"), [(1920, 1080), (1000, 563), (640, 360), (320, 180)])
def test_boxes_map_back_per_axis(width: int, height: int) -> None:
    fixed = FixedDetector(PixelBox(64, 36, 128, 108))
    detector = FrameDetector(fixed, detect_side=640)
    result = detector.detect(np.zeros((height, width, 3), np.uint8))
    small_w, small_h = fixed.seen[0]
    assert max(small_w, small_h) == 640
    [face] = result.faces
    fx, fy = width / small_w, height / small_h
    assert face.box == PixelBox(64 * fx, 36 * fy, min(128 * fx, width), min(108 * fy, height))
    assert face.landmarks.nose == Point(64 * fx, 36 * fy)
    assert result.seconds >= 0


def test_weak_detections_are_dropped() -> None:
    detector = FrameDetector(FixedDetector(PixelBox(0, 0, 10, 10), 40.0), min_confidence=50)
    assert detector.detect(np.zeros((360, 640, 3), np.uint8)).faces == []


def test_the_edge_hog_detector_does_not_upsample() -> None:
    from facelens.engine.hog import HogDetector

    detector = build_edge_detector(Settings(detector="hog"))
    assert isinstance(detector, HogDetector)
    assert detector._upsample == 0

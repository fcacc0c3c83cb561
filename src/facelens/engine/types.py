"""Values that leave the engine: frozen dataclasses, pixel or ratio units stated.

The face boxes they hold (:mod:`facelens.values.boxes`) live below the engine: crop
metadata, messages and REST answers carry boxes without depending on the engine.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from facelens.values.boxes import BoundingBox, PixelBox

RGBImage = npt.NDArray[np.uint8]
"""An H x W x 3 uint8 array in RGB order."""

Embedding = npt.NDArray[np.float32]
"""A 1-D L2-normalised float32 vector."""


@dataclass(frozen=True, slots=True)
class Point:
    """A point in pixels of the image it was found in (x right, y down)."""

    x: float
    y: float


@dataclass(frozen=True, slots=True)
class Landmarks:
    """The five points Rekognition reports, in pixels.

    ``eye_left`` is the eye on the image's left (smaller x), as in Rekognition's
    ``eyeLeft``; likewise ``mouth_left``.
    """

    eye_left: Point
    eye_right: Point
    nose: Point
    mouth_left: Point
    mouth_right: Point

    def scaled(self, fx: float, fy: float) -> Landmarks:
        """The same points in an image ``fx`` times as wide and ``fy`` times as tall."""

        def s(p: Point) -> Point:
            return Point(p.x * fx, p.y * fy)

        return Landmarks(
            s(self.eye_left),
            s(self.eye_right),
            s(self.nose),
            s(self.mouth_left),
            s(self.mouth_right),
        )

    def as_named(self) -> dict[str, Point]:
        """Rekognition's landmark type names mapped to the points."""
        return {
            "eyeLeft": self.eye_left,
            "eyeRight": self.eye_right,
            "nose": self.nose,
            "mouthLeft": self.mouth_left,
            "mouthRight": self.mouth_right,
        }


@dataclass(frozen=True, slots=True)
class Pose:
    """Head pose in degrees, -180..180; 0/0/0 faces the camera upright."""

    roll: float
    yaw: float
    pitch: float


@dataclass(frozen=True, slots=True)
class Quality:
    """Rekognition's quality scores, 0-100; higher is brighter / sharper."""

    brightness: float
    sharpness: float


@dataclass(frozen=True, slots=True)
class DetectedFace:
    """One face found by a detector, in pixels of the image it was given.

    confidence: 0-100, a monotone squashing of the detector's own score, not a
    calibrated probability; higher means more certainly a face.
    """

    box: PixelBox
    landmarks: Landmarks
    confidence: float


@dataclass(frozen=True, slots=True)
class FaceDetail:
    """A detected face with everything Rekognition's ``FaceDetail`` reports.

    ``bounding_box`` is in image ratios; ``face`` keeps the pixel geometry for
    alignment and cropping.
    """

    face: DetectedFace
    bounding_box: BoundingBox
    pose: Pose
    quality: Quality
    image_width: int
    image_height: int

    @property
    def confidence(self) -> float:
        return self.face.confidence

    @property
    def pixel_size(self) -> float:
        """The shorter side of the face box in pixels (what SMALL_BOUNDING_BOX checks)."""
        return min(self.face.box.width, self.face.box.height)

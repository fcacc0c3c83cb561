"""The face engine built from a detector and an embedder.

Detection runs on a copy downscaled to ``detect_max_side`` when the image is
larger (HOG's cost grows with pixels); boxes and landmarks are mapped back
to full resolution per axis, exactly. Quality, pose, alignment and
embedding always use the full-resolution pixels.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np
import numpy.typing as npt

from facelens.engine.protocol import Detector, Embedder
from facelens.engine.quality import estimate_pose, estimate_quality
from facelens.engine.types import DetectedFace, FaceDetail, RGBImage
from facelens.values.boxes import BoundingBox


class PipelineEngine:
    """FaceEngine protocol: one detector + one embedder."""

    def __init__(
        self, detector: Detector, embedder: Embedder, *, detect_max_side: int = 1600
    ) -> None:
        self.detector = detector
        self.embedder = embedder
        self.detect_max_side = detect_max_side
        self.model_version = embedder.model_version
        self.dimension = embedder.dimension

    def prepare(self) -> None:
        self.detector.prepare()
        self.embedder.prepare()

    def detect(self, image: RGBImage, *, largest_only: bool = False) -> list[FaceDetail]:
        faces = [
            self._describe(image, face)
            for face in self._detect_scaled(image, largest_only=largest_only)
        ]
        faces.sort(key=lambda f: f.face.box.area, reverse=True)
        return faces

    def align(self, image: RGBImage, face: FaceDetail) -> RGBImage:
        return self.embedder.align(image, face.face)

    def embed(self, image: RGBImage, faces: Sequence[FaceDetail]) -> npt.NDArray[np.float32]:
        return self.embedder.embed_faces(image, [f.face for f in faces])

    def _detect_scaled(self, image: RGBImage, *, largest_only: bool) -> list[DetectedFace]:
        height, width = image.shape[:2]
        longer = max(height, width)
        if longer <= self.detect_max_side:
            return self.detector.detect(image, largest_only=largest_only)
        scale = self.detect_max_side / longer
        small_w = max(1, round(width * scale))
        small_h = max(1, round(height * scale))
        small = cv2.resize(image, (small_w, small_h), interpolation=cv2.INTER_AREA)
        fx, fy = width / small_w, height / small_h
        return [
            DetectedFace(
                box=f.box.scaled(fx, fy),
                landmarks=f.landmarks.scaled(fx, fy),
                confidence=f.confidence,
            )
            for f in self.detector.detect(np.ascontiguousarray(small), largest_only=largest_only)
        ]

    @staticmethod
    def _describe(image: RGBImage, face: DetectedFace) -> FaceDetail:
        height, width = image.shape[:2]
        return FaceDetail(
            face=face,
            bounding_box=BoundingBox.from_pixels(face.box, width, height),
            pose=estimate_pose(face.landmarks),
            quality=estimate_quality(image, face),
            image_width=width,
            image_height=height,
        )

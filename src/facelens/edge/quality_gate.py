"""Whether a look at a face is identifiable: only those leave the camera.

A look is one detection of a tracked face in one frame. Uploading one the
recognizer cannot name (a back of a head, a profile, a blur of a face at the
back of the room) costs an upload, a recognizer call and, worse, an
"unknown" answer that a person at the door sees. So before a look is
considered, four cheap measures from the frame detector's own output must
pass (in this order, the first failure being the reason):

- ``cut``: the face box reaches the frame's edge: part of the face is out of
  the picture, and landmarks on a half face are guesses (a close-up profile at
  the stage clip's edge measured 8° of yaw);
- ``small``: the eyes (the detector's landmarks, full-frame pixels) are
  closer than ``min_eye_distance``; the embedder has too few pixels;
- ``turned``: ``|yaw|`` (:func:`facelens.engine.quality.estimate_pose`) over
  ``max_yaw``: a profile;
- ``tilted``: ``|pitch|`` over ``max_pitch``: a head bent down (phones) or
  thrown back;
- ``blurred``: sharpness (:func:`facelens.engine.quality.estimate_quality`,
  0-100) under ``min_sharpness``: out of focus or moving fast;

and, for a look the picker would send, a fifth, costlier one:

- ``no-face``: the recognizer's own detector, run on the crop as the
  recognizer will get it (:class:`facelens.edge.detection.CropCheck`), does
  not find the face. This is what catches most backs of heads: the frame
  detector's landmarks on hair are not reliably "turned", but the
  recognizer's detector does not see a face there.

A refused look still shows on the live view and in the labels (the track is
followed); it is only not uploaded.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

import cv2
import numpy as np

from facelens.config import EdgeSettings
from facelens.edge.types import BGRImage
from facelens.engine.quality import estimate_pose, estimate_quality
from facelens.engine.types import DetectedFace
from facelens.values.boxes import PixelBox

_SIZE_HALF = 80.0
"""Face size (shorter side, pixels) scoring half of the size term; larger saturates towards 1."""


class Refusal(StrEnum):
    """Why a look was not identifiable (the value is what reports and benchmarks print)."""

    CUT = "cut"
    SMALL = "small"
    TURNED = "turned"
    TILTED = "tilted"
    BLURRED = "blurred"
    NO_FACE = "no-face"


@dataclass(frozen=True)
class GateLimits:
    """The gate's thresholds: eye distance in full-frame pixels, angles in degrees, sharpness
    0-100 (see :class:`facelens.config.EdgeSettings` for why the defaults are what they are)."""

    min_eye_distance: float = 8.0
    max_yaw: float = 45.0
    max_pitch: float = 30.0
    min_sharpness: float = 8.0

    @classmethod
    def from_settings(cls, settings: EdgeSettings) -> GateLimits:
        return cls(
            min_eye_distance=settings.min_eye_distance,
            max_yaw=settings.max_yaw,
            max_pitch=settings.max_pitch,
            min_sharpness=settings.min_sharpness,
        )


@dataclass(frozen=True)
class Assessment:
    """One look, measured: eye distance (full-frame pixels), yaw and pitch (degrees),
    sharpness (0-100), score (0-1, :func:`look_score`: the look's quality, sent with it as
    ``look-quality``), and why it was refused (None: identifiable so far, before the
    crop check)."""

    eye_distance: float
    yaw: float
    pitch: float
    sharpness: float
    score: float
    refusal: Refusal | None

    @property
    def passed(self) -> bool:
        return self.refusal is None


def look_score(
    *, side: float, sharpness: float, yaw: float, pitch: float, confidence: float
) -> float:
    """How good a picture of the face a look is, 0-1: size x sharpness x frontality x
    confidence, each mapped to 0-1.

    side: the face box's shorter side (pixels); sharpness 0-100; angles in degrees;
    confidence 0-100. The product makes any one bad property (tiny, blurred,
    turned away) sink the score. Frontality is squared: a face turned 40° embeds
    measurably worse, whereas sharpness only matters once it is poor.
    """
    frontal = max(0.0, math.cos(math.radians(yaw)) * math.cos(math.radians(pitch)))
    size = side / (side + _SIZE_HALF)
    sharp = min(max(sharpness / 100.0, 0.0), 1.0)
    conf = min(max(confidence / 100.0, 0.0), 1.0)
    return size * (0.4 + 0.6 * sharp) * frontal**2 * (0.5 + 0.5 * conf)


_EDGE_SHARE = 0.05
"""A box closer to the frame's edge than this share of its own size (and 1 px) counts as
cut by it: the frame detector clips boxes to the frame, and a face running off it is
often boxed a few pixels short of the edge."""


def _at_edge(box: PixelBox, width: int, height: int) -> bool:
    dx = max(1.0, box.width * _EDGE_SHARE)
    dy = max(1.0, box.height * _EDGE_SHARE)
    return box.left <= dx or box.top <= dy or box.right >= width - dx or box.bottom >= height - dy


class QualityGate:
    """Measures looks and refuses the unidentifiable; counts refusals by reason.

    confirm: the costly last check on a look about to be sent (the recognizer's
    detector on its crop); None trusts the cheap measures alone.
    """

    def __init__(
        self,
        limits: GateLimits | None = None,
        *,
        confirm: Callable[[BGRImage, DetectedFace, PixelBox], bool] | None = None,
    ) -> None:
        self.limits = limits or GateLimits()
        self._confirm = confirm
        self.refused: Counter[Refusal] = Counter()
        """Looks refused since start, by reason (each look counted once, by its first reason)."""
        self.passed = 0
        """Looks that passed every check they were put to."""

    def assess(
        self,
        crop: BGRImage,
        face: DetectedFace,
        region: PixelBox,
        *,
        frame_size: tuple[int, int] | None = None,
    ) -> Assessment:
        """The cheap measures of ``face`` (frame pixels), whose crop ``crop`` was cut from
        ``region`` of the frame (``frame_size``: its width and height, None when unknown:
        then no ``cut`` check). A refusal is counted here; a pass only once confirmed."""
        limits = self.limits
        marks = face.landmarks
        eyes = math.hypot(
            marks.eye_right.x - marks.eye_left.x, marks.eye_right.y - marks.eye_left.y
        )
        pose = estimate_pose(marks)
        local = DetectedFace(
            box=PixelBox(
                face.box.left - region.left,
                face.box.top - region.top,
                face.box.right - region.left,
                face.box.bottom - region.top,
            ),
            landmarks=marks,  # unused by the sharpness estimate
            confidence=face.confidence,
        )
        rgb = np.ascontiguousarray(cv2.cvtColor(crop, cv2.COLOR_BGR2RGB), dtype=np.uint8)
        sharpness = estimate_quality(rgb, local).sharpness
        refusal = None
        if frame_size is not None and _at_edge(face.box, *frame_size):
            refusal = Refusal.CUT
        elif eyes < limits.min_eye_distance:
            refusal = Refusal.SMALL
        elif abs(pose.yaw) > limits.max_yaw:
            refusal = Refusal.TURNED
        elif abs(pose.pitch) > limits.max_pitch:
            refusal = Refusal.TILTED
        elif sharpness < limits.min_sharpness:
            refusal = Refusal.BLURRED
        if refusal is not None:
            self.refused[refusal] += 1
        score = look_score(
            side=min(face.box.width, face.box.height),
            sharpness=sharpness,
            yaw=pose.yaw,
            pitch=pose.pitch,
            confidence=face.confidence,
        )
        return Assessment(eyes, pose.yaw, pose.pitch, sharpness, score, refusal)

    def confirm(self, crop: BGRImage, face: DetectedFace, region: PixelBox) -> bool:
        """The last check on a look about to be sent; a failure counts as ``no-face``."""
        if self._confirm is not None and not self._confirm(crop, face, region):
            self.refused[Refusal.NO_FACE] += 1
            return False
        self.passed += 1
        return True

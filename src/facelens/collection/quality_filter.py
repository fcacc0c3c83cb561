"""Rekognition's QualityFilter: which detected faces are good enough to index or search.

Rekognition does not publish its bars; these are ours, stated so users can
reason about them. Each level is a floor on detection confidence (0-100),
the face box's shorter side (pixels), sharpness and brightness (0-100), and
a ceiling on |yaw| and |pitch| (degrees). AUTO sits between LOW and MEDIUM:
it drops what would hurt recognition (tiny, blurred, dark or profile faces)
and keeps ordinary snapshots. NONE filters nothing.
"""

from __future__ import annotations

from dataclasses import dataclass

from facelens.collection.models import QualityFilter, UnindexedReason
from facelens.engine.types import FaceDetail


@dataclass(frozen=True, slots=True)
class QualityBar:
    min_confidence: float
    min_face_pixels: float
    min_sharpness: float
    min_brightness: float
    max_pose_degrees: float


BARS: dict[QualityFilter, QualityBar | None] = {
    QualityFilter.NONE: None,
    QualityFilter.LOW: QualityBar(50.0, 20.0, 5.0, 5.0, 75.0),
    QualityFilter.AUTO: QualityBar(70.0, 32.0, 10.0, 10.0, 60.0),
    QualityFilter.MEDIUM: QualityBar(85.0, 48.0, 20.0, 15.0, 45.0),
    QualityFilter.HIGH: QualityBar(95.0, 64.0, 35.0, 25.0, 30.0),
}


def quality_reasons(detail: FaceDetail, level: QualityFilter) -> tuple[UnindexedReason, ...]:
    """The reasons ``detail`` falls short of ``level`` (empty when it passes)."""
    bar = BARS[level]
    if bar is None:
        return ()
    reasons = []
    if detail.confidence < bar.min_confidence:
        reasons.append(UnindexedReason.LOW_CONFIDENCE)
    if detail.pixel_size < bar.min_face_pixels:
        reasons.append(UnindexedReason.SMALL_BOUNDING_BOX)
    if detail.quality.sharpness < bar.min_sharpness:
        reasons.append(UnindexedReason.LOW_SHARPNESS)
    if detail.quality.brightness < bar.min_brightness:
        reasons.append(UnindexedReason.LOW_BRIGHTNESS)
    if max(abs(detail.pose.yaw), abs(detail.pose.pitch)) > bar.max_pose_degrees:
        reasons.append(UnindexedReason.EXTREME_POSE)
    return tuple(reasons)

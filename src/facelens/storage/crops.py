"""What the edge runner writes on a crop and the recognizer reads back: the object metadata.

One dataclass on both sides so the two cannot drift. S3 lower-cases user
metadata names and allows only strings, so every field is a string on the
wire; reading is lenient (a value that does not parse is dropped, not
fatal), because a crop from another uploader (``aws s3 cp``) has none.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from facelens.values.boxes import PixelBox

CAMERA = "thing"
TRACK = "track-id"
CAPTURED = "captured-at"
CONFIDENCE = "confidence"
FRAME_BOX = "frame-box"
VISIT = "visit-id"
LOOK = "look"
LOOK_QUALITY = "look-quality"


@dataclass(frozen=True)
class CropMetadata:
    """camera: the edge runner's thing name; captured_at: frame time (aware, UTC);
    confidence: detection confidence 0-1; frame_box: the face in the full frame, pixels.

    visit_id: the visit (one person continuously in view of this camera) the crop is a
    look of (:mod:`facelens.history.visits`); look: its number within the visit, 0 for
    the first; look_quality: how identifiable the edge judged it, 0-1, the weight the
    recognizer fuses it with. A crop without a visit id (another uploader's) is a visit
    of one look.
    """

    camera: str | None = None
    captured_at: datetime | None = None
    track_id: str | None = None
    confidence: float | None = None
    frame_box: PixelBox | None = None
    visit_id: str | None = None
    look: int | None = None
    look_quality: float | None = None

    def to_metadata(self) -> dict[str, str]:
        out: dict[str, str] = {}
        if self.camera is not None:
            out[CAMERA] = self.camera
        if self.captured_at is not None:
            out[CAPTURED] = self.captured_at.isoformat()
        if self.track_id is not None:
            out[TRACK] = self.track_id
        if self.confidence is not None:
            out[CONFIDENCE] = f"{self.confidence:.4f}"
        if self.frame_box is not None:
            b = self.frame_box
            out[FRAME_BOX] = f"{b.left:.1f},{b.top:.1f},{b.right:.1f},{b.bottom:.1f}"
        if self.visit_id is not None:
            out[VISIT] = self.visit_id
        if self.look is not None:
            out[LOOK] = str(self.look)
        if self.look_quality is not None:
            out[LOOK_QUALITY] = f"{self.look_quality:.4f}"
        return out

    @classmethod
    def from_metadata(cls, metadata: Mapping[str, str]) -> CropMetadata:
        meta = {k.lower(): v for k, v in metadata.items()}
        return cls(
            camera=meta.get(CAMERA) or None,
            captured_at=_time(meta.get(CAPTURED)),
            track_id=meta.get(TRACK) or None,
            confidence=_number(meta.get(CONFIDENCE)),
            frame_box=_box(meta.get(FRAME_BOX)),
            visit_id=_visit(meta.get(VISIT)),
            look=_count(meta.get(LOOK)),
            look_quality=_unit(meta.get(LOOK_QUALITY)),
        )


def _number(text: str | None) -> float | None:
    try:
        value = float(text) if text is not None else None
    except ValueError:
        return None
    return value if value is not None and math.isfinite(value) else None


def _time(text: str | None) -> datetime | None:
    try:
        value = datetime.fromisoformat(text) if text else None
    except ValueError:
        return None
    return value if value is None or value.tzinfo is not None else None


def _box(text: str | None) -> PixelBox | None:
    parts = [_number(p) for p in (text or "").split(",")]
    if len(parts) != 4 or any(p is None for p in parts):
        return None
    left, top, right, bottom = (p for p in parts if p is not None)
    return PixelBox(left, top, right, bottom) if right > left and bottom > top else None


_VISIT_MAX = 128
"""Characters a visit id may have (the edge's are 32-character hex UUIDs)."""


def _visit(text: str | None) -> str | None:
    """A visit id as read: printable, without NUL, bounded; anything else is no visit."""
    if not text or len(text) > _VISIT_MAX or not text.isprintable():
        return None
    return text


def _count(text: str | None) -> int | None:
    try:
        value = int(text) if text is not None else None
    except ValueError:
        return None
    return value if value is not None and 0 <= value < 1_000_000 else None


def _unit(text: str | None) -> float | None:
    value = _number(text)
    return value if value is not None and 0.0 <= value <= 1.0 else None

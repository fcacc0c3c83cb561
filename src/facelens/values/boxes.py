"""Where a face is in an image: in pixels, or in Rekognition's ratios of the image.

The engine finds them, the edge cuts crops by them, crop metadata carries them in
the object store, and the recognizer's messages and the REST answers report them.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class PixelBox:
    """A face box in pixels; ``right``/``bottom`` are exclusive edges."""

    left: float
    top: float
    right: float
    bottom: float

    @property
    def width(self) -> float:
        return self.right - self.left

    @property
    def height(self) -> float:
        return self.bottom - self.top

    @property
    def area(self) -> float:
        return max(0.0, self.width) * max(0.0, self.height)

    def scaled(self, fx: float, fy: float) -> PixelBox:
        """The same box in an image ``fx`` times as wide and ``fy`` times as tall."""
        return PixelBox(self.left * fx, self.top * fy, self.right * fx, self.bottom * fy)


@dataclass(frozen=True, slots=True)
class BoundingBox:
    """Rekognition's box: ratios of the image width/height, 0-1 (may overhang slightly)."""

    width: float
    height: float
    left: float
    top: float

    @classmethod
    def from_pixels(cls, box: PixelBox, image_width: int, image_height: int) -> BoundingBox:
        return cls(
            width=box.width / image_width,
            height=box.height / image_height,
            left=box.left / image_width,
            top=box.top / image_height,
        )

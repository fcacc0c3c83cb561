"""Face sources: a small crop of each stored face, so a collection can be re-embedded.

Why: a collection keeps vectors only (Rekognition's semantics), and vectors of
one embedding model do not compare with another's. Without the pixels a
collection could never move to a new engine: every person would have to be
enrolled again. A source is just enough to align the face again with any
engine, without the original photo:

* a JPEG (quality 92) of the face box grown by 60% of its width and height on
  every side, clipped to the image, and downscaled so its longer side is at
  most 256 px. Every engine aligns from the five landmarks (the chip template
  of dlib's ResNet and of ArcFace both reach a little past the detector's
  box, never 60% past it), and the dlib 68-point predictor runs on the box;
* the five landmarks and the box in that crop's pixels.

A source is biometric data like the vector: it lives in the collection store
only, beside its face, and is deleted with the face and with the collection
(``keep_face_sources`` in the settings turns it off; those faces then cannot
be re-embedded by ``facelens collections reindex``). A source is about 12 KB
(3-20 KB on the test photos' faces: 256 px crops of large faces are the largest).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from facelens.engine.images import decode_image
from facelens.engine.types import DetectedFace, FaceDetail, Landmarks, Point, RGBImage
from facelens.errors import EngineError, FacelensError, StorageError
from facelens.values.boxes import BoundingBox, PixelBox

SOURCE_MARGIN = 0.6
"""The face box grows by this fraction of its width (left and right) and of its height
(top and bottom) before cropping: room for any engine's alignment template."""
SOURCE_MAX_SIDE = 256
"""Longest side of a source crop, in pixels: a face of about 110 px at most, which is
more than the 112-150 px chips of the engines sample from it after alignment."""
SOURCE_JPEG_QUALITY = 92
"""JPEG quality of a source (0-100). Re-embedded from its source, a face's dlib vector
lies 0.05 from the one its photo gave (Euclidean, unit vectors; up to 0.12 for 37 px
faces), where LFW's same-person pairs lie 0.20-0.38 apart: about 0.04 of that is the
JPEG, 0.015 the downscale. Quality 95 without chroma subsampling would halve it for
about 60% more bytes."""
_MAX_SOURCE_BYTES = 4 * 1024 * 1024
"""A stored source larger than this is not ours (a 256 px JPEG is tens of KB)."""


@dataclass(frozen=True, slots=True)
class FaceSource:
    """The crop a stored face can be embedded again from.

    jpeg: the crop, JPEG-encoded (RGB, quality :data:`SOURCE_JPEG_QUALITY`).
    width, height: the crop's size in pixels (what the JPEG decodes to).
    box, landmarks: the face's detector box and five landmarks in the crop's pixels
    (x right, y down, from the crop's top-left corner).
    """

    jpeg: bytes
    width: int
    height: int
    box: PixelBox
    landmarks: Landmarks

    def geometry(self) -> str:
        """``box`` and ``landmarks`` as compact JSON text: what the stores keep beside the
        JPEG (``{"box": [l, t, r, b], "landmarks": [[x, y] x 5]}``, in crop pixels)."""
        b, lm = self.box, self.landmarks
        points = (lm.eye_left, lm.eye_right, lm.nose, lm.mouth_left, lm.mouth_right)
        document = {
            "box": [b.left, b.top, b.right, b.bottom],
            "landmarks": [[p.x, p.y] for p in points],
        }
        return json.dumps(document, separators=(",", ":"))

    @classmethod
    def from_stored(cls, jpeg: bytes, width: int, height: int, geometry: str) -> FaceSource:
        """A source as a store read it back (see :meth:`geometry`); StorageError if the
        row is not one we wrote."""
        try:
            document: Any = json.loads(geometry)
            box = PixelBox(*(float(v) for v in document["box"]))
            points = [Point(float(x), float(y)) for x, y in document["landmarks"]]
            landmarks = Landmarks(*points)
        except (ValueError, TypeError, KeyError) as exc:
            raise StorageError(f"A stored face source has unreadable geometry: {exc}") from exc
        if not isinstance(jpeg, bytes | bytearray | memoryview):
            raise StorageError("A stored face source is not binary")
        return cls(bytes(jpeg), int(width), int(height), box, landmarks)


def cut_source(image: RGBImage, face: DetectedFace) -> FaceSource:
    """The source of ``face``, found in ``image`` (RGB, full resolution), as described above.

    The crop's corners are whole pixels (the grown box rounded outwards, then
    clipped). Downscaling maps pixel centres, as ``cv2.resize`` samples them:
    x' = (x - left + 0.5) * f - 0.5.
    """
    import cv2  # on use: models.py imports this module, and the CLI starts without OpenCV

    height, width = image.shape[:2]
    box = face.box
    grow_x, grow_y = SOURCE_MARGIN * box.width, SOURCE_MARGIN * box.height
    left = min(max(0, math.floor(box.left - grow_x)), width - 1)
    top = min(max(0, math.floor(box.top - grow_y)), height - 1)
    right = max(min(width, math.ceil(box.right + grow_x)), left + 1)
    bottom = max(min(height, math.ceil(box.bottom + grow_y)), top + 1)
    crop: RGBImage = image[top:bottom, left:right]
    crop_w, crop_h = right - left, bottom - top
    scale = min(1.0, SOURCE_MAX_SIDE / max(crop_w, crop_h))
    out_w, out_h = max(1, round(crop_w * scale)), max(1, round(crop_h * scale))
    if (out_w, out_h) != (crop_w, crop_h):
        crop = np.asarray(
            cv2.resize(crop, (out_w, out_h), interpolation=cv2.INTER_AREA), dtype=np.uint8
        )
    fx, fy = out_w / crop_w, out_h / crop_h

    def moved(x: float, y: float) -> Point:
        return Point((x - left + 0.5) * fx - 0.5, (y - top + 0.5) * fy - 0.5)

    corner, far = moved(box.left, box.top), moved(box.right, box.bottom)
    lm = face.landmarks
    points = (lm.eye_left, lm.eye_right, lm.nose, lm.mouth_left, lm.mouth_right)
    landmarks = Landmarks(*(moved(p.x, p.y) for p in points))
    bgr = cv2.cvtColor(np.ascontiguousarray(crop), cv2.COLOR_RGB2BGR)
    ok, encoded = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, SOURCE_JPEG_QUALITY])
    if not ok:
        raise EngineError(f"Could not JPEG-encode a {out_w}x{out_h} face source")
    return FaceSource(
        encoded.tobytes(), out_w, out_h, PixelBox(corner.x, corner.y, far.x, far.y), landmarks
    )


def source_face(source: FaceSource, *, confidence: float = 100.0) -> tuple[RGBImage, FaceDetail]:
    """The crop's pixels and the face in them, ready for any engine's ``embed``.

    Pose and quality are estimated on the crop, as detection would; ``confidence``
    is the stored face's (0-100). StorageError if the JPEG is not one we wrote.
    """
    from facelens.engine.quality import estimate_pose, estimate_quality  # OpenCV: on use

    try:
        pixels = decode_image(
            source.jpeg,
            max_bytes=_MAX_SOURCE_BYTES,
            max_pixels=SOURCE_MAX_SIDE * SOURCE_MAX_SIDE,
        ).pixels
    except FacelensError as exc:
        raise StorageError(f"A stored face source does not decode: {exc.message}") from exc
    height, width = pixels.shape[:2]
    if (width, height) != (source.width, source.height):
        raise StorageError(
            f"A stored face source decodes to {width}x{height}, "
            f"not the {source.width}x{source.height} recorded"
        )
    face = DetectedFace(source.box, source.landmarks, confidence)
    detail = FaceDetail(
        face=face,
        bounding_box=BoundingBox.from_pixels(source.box, width, height),
        pose=estimate_pose(source.landmarks),
        quality=estimate_quality(pixels, face),
        image_width=width,
        image_height=height,
    )
    return pixels, detail

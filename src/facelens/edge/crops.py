"""A chosen crop as an object to upload: its key, JPEG bytes and metadata.

Keys keep the original recipe's layout,
``faces/{month}_{day}/{hour}_{minute}/{timestamp}_{index}.jpg``, with two
deliberate changes: the time is UTC (a fleet of cameras in several zones
files into one tree), and ``timestamp`` is Unix time in milliseconds
rather than seconds, so two uploads in one second cannot overwrite each
other. ``index`` counts this runner's uploads. Several cameras writing to
one bucket can add ``{thing}`` to the template; ``{visit}`` (the visit id) and
``{look}`` (its number in the visit) file a visit's looks together.
"""

from __future__ import annotations

import string
from dataclasses import dataclass

import cv2

from facelens.edge.picking import ChosenCrop
from facelens.errors import ConfigurationError, EngineError
from facelens.storage.crops import CropMetadata

DEFAULT_KEY_TEMPLATE = "faces/{month}_{day}/{hour}_{minute}/{timestamp}_{index}.jpg"
_FIELDS = {
    "month",
    "day",
    "hour",
    "minute",
    "timestamp",
    "index",
    "thing",
    "track",
    "visit",
    "look",
}


@dataclass(frozen=True, eq=False)
class PendingCrop:
    """An encoded crop waiting for the object store. captured_monotonic: when its frame
    was read (``time.monotonic()``), for the frame-to-store latency; None for crops
    left on disk by an earlier run."""

    key: str
    body: bytes
    metadata: dict[str, str]
    captured_monotonic: float | None = None


def check_key_template(template: str) -> str:
    """The template, if it names only known fields; ConfigurationError otherwise."""
    try:
        names = {name for _, name, _, _ in string.Formatter().parse(template) if name}
    except ValueError as exc:
        raise ConfigurationError(f"Bad crop key template {template!r}: {exc}") from exc
    unknown = names - _FIELDS
    if unknown:
        raise ConfigurationError(
            f"Unknown field(s) {sorted(unknown)} in crop key template; known: {sorted(_FIELDS)}"
        )
    return template


def crop_key(crop: ChosenCrop, *, thing: str, index: int, template: str) -> str:
    at = crop.captured_at
    return template.format(
        month=at.month,
        day=at.day,
        hour=at.hour,
        minute=at.minute,
        timestamp=int(at.timestamp() * 1000),
        index=index,
        thing=thing,
        track=crop.track_id,
        visit=crop.visit_id,
        look=crop.look,
    )


def encode_crop(
    crop: ChosenCrop, *, thing: str, index: int, template: str, quality: int = 90
) -> PendingCrop:
    """The crop as a JPEG object with the metadata the recognizer reads back."""
    ok, encoded = cv2.imencode(".jpg", crop.image, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise EngineError(f"OpenCV could not encode a {crop.image.shape} crop as JPEG")
    metadata = CropMetadata(
        camera=thing,
        captured_at=crop.captured_at,
        track_id=str(crop.track_id),
        confidence=crop.face.confidence / 100.0,
        frame_box=crop.face.box,
        visit_id=crop.visit_id,
        look=crop.look,
        look_quality=min(max(crop.score, 0.0), 1.0),
    )
    return PendingCrop(
        key=crop_key(crop, thing=thing, index=index, template=template),
        body=encoded.tobytes(),
        metadata=metadata.to_metadata(),
        captured_monotonic=crop.captured_monotonic,
    )

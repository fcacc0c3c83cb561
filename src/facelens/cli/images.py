"""Image arguments: a file, as the AWS CLI writes it (``fileb://`` prefix accepted)."""

from __future__ import annotations

from pathlib import Path

from facelens.config import Settings
from facelens.engine.images import DecodedImage, read_image_file


def read_image(settings: Settings, path: str) -> DecodedImage:
    """Reads and decodes the image file ``path`` within the settings' size and pixel limits."""
    return read_image_file(
        Path(path.removeprefix("fileb://")),
        max_bytes=settings.max_image_bytes,
        max_pixels=settings.max_image_pixels,
    )

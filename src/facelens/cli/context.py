"""Wires settings into services for one CLI invocation. Constructing loads no model:
the engine prepares itself on first use, so `collections list` stays instant."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from facelens.engine.images import DecodedImage, read_image_file
from facelens.wiring import Components
from facelens.wiring import build_analyzer as build_analyzer


@dataclass
class Context(Components):
    def read_image(self, path: str) -> DecodedImage:
        """Reads an image file (``fileb://`` prefix accepted, as the AWS CLI writes it)."""
        return read_image_file(
            Path(path.removeprefix("fileb://")),
            max_bytes=self.settings.max_image_bytes,
            max_pixels=self.settings.max_image_pixels,
        )

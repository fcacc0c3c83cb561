"""Wires settings into services for one CLI invocation. Constructing loads no model:
the engine prepares itself on first use, so `collections list` stays instant."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

from facelens.collection.analysis import FaceAnalyzer, ImageLimits
from facelens.collection.registry import open_store
from facelens.collection.service import CollectionService
from facelens.collection.store import CollectionStore
from facelens.collection.users import UserService
from facelens.config import Settings
from facelens.engine.images import DecodedImage, read_image_file
from facelens.engine.registry import build_engine


def build_analyzer(settings: Settings) -> FaceAnalyzer:
    """The analyzer for ``settings`` (module-level so worker processes can build their own)."""
    limits = ImageLimits(max_bytes=settings.max_image_bytes, max_pixels=settings.max_image_pixels)
    return FaceAnalyzer(build_engine(settings), limits=limits)


@dataclass
class Context:
    settings: Settings = field(default_factory=Settings)

    @cached_property
    def store(self) -> CollectionStore:
        url = self.settings.database_url()
        if url.startswith("sqlite:///"):
            self.settings.home.mkdir(parents=True, exist_ok=True)
        return open_store(url)

    @cached_property
    def analyzer(self) -> FaceAnalyzer:
        return build_analyzer(self.settings)

    @cached_property
    def collections(self) -> CollectionService:
        return CollectionService(self.analyzer, self.store)

    @cached_property
    def users(self) -> UserService:
        return UserService(self.collections, self.analyzer, self.store)

    def read_image(self, path: str) -> DecodedImage:
        """Reads an image file (``fileb://`` prefix accepted, as the AWS CLI writes it)."""
        return read_image_file(
            Path(path.removeprefix("fileb://")),
            max_bytes=self.settings.max_image_bytes,
            max_pixels=self.settings.max_image_pixels,
        )

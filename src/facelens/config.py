"""One settings object for all of facelens.

Read once at the edge (the CLI, a server's start-up) with
``Settings()`` (which reads ``FACELENS_*`` environment variables) and passed
in from there; library code never reads the environment itself.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


def _default_home() -> Path:
    return Path.home() / ".facelens"


class Settings(BaseSettings):
    """facelens configuration; every field can be set as ``FACELENS_<NAME>``."""

    model_config = SettingsConfigDict(env_prefix="FACELENS_", extra="forbid", frozen=True)

    home: Path = Field(
        default_factory=_default_home,
        description="Data directory: the SQLite database and other local state live here.",
    )
    models_dir: Path | None = Field(
        default=None,
        description=(
            "Directory of optional ONNX models (e.g. YuNet). dlib's models come from the "
            "face_recognition_models package and need no directory."
        ),
    )
    testdata: Path = Field(
        default=Path("../shared/testdata"),
        description="Test photos, videos and LFW pairs; used by tests and benchmarks only.",
    )
    engine: str = Field(
        default="dlib",
        description="Face engine by name (facelens.engine.registry); an unknown name is an error.",
    )
    detector: str = Field(
        default="hog",
        description="Face detector by name: 'hog' (dlib, built in) or 'yunet' (ONNX, models_dir).",
    )
    embed_flip: bool = Field(
        default=True,
        description=(
            "Also embed each face mirrored and average: +0.1% LFW accuracy for ~1.9x embedding "
            "time. Collections stay comparable either way."
        ),
    )
    collections_url: str | None = Field(
        default=None,
        description=(
            "Where collections live: 'sqlite:///path/to.db' or 'memory://'. "
            "Default: sqlite in <home>/facelens.db."
        ),
    )
    max_image_bytes: int = Field(
        default=15 * 1024 * 1024,
        gt=0,
        description="Largest accepted image, in bytes (Rekognition's S3 limit is 15 MB).",
    )
    max_image_pixels: int = Field(
        default=50_000_000,
        gt=0,
        description="Largest accepted image, width x height in pixels (decompression-bomb guard).",
    )
    detect_max_side: int = Field(
        default=1600,
        ge=160,
        description=(
            "Images are downscaled so their longer side is at most this many pixels before "
            "detection (boxes are mapped back exactly). Trade-off: smaller is faster but misses "
            "small faces."
        ),
    )
    workers: int = Field(
        default=2,
        ge=1,
        description="Processes for bulk work (LFW benchmark): dlib's embedding holds the GIL.",
    )

    def database_url(self) -> str:
        """The collections URL, defaulting to a SQLite file under ``home``."""
        return self.collections_url or f"sqlite:///{self.home / 'facelens.db'}"

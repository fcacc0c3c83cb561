"""The root of facelens' configuration: one settings object for all of it.

Read once at the edge (the CLI, a server's start-up) with
``Settings()`` (which reads ``FACELENS_*`` environment variables) and passed
in from there; library code never reads the environment itself. Top-level
fields (paths, the engine, images, store URLs) are ``FACELENS_<NAME>``; each
section (:mod:`facelens.config.mqtt`, ``events``, ``recognizer``, ``edge``,
``serve``, ``notify``, ``retention``) is ``FACELENS_<SECTION>__<NAME>``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, FiniteFloat, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from facelens.config.edge import EdgeSettings
from facelens.config.events import EventSettings
from facelens.config.mqtt import MqttSettings
from facelens.config.notify import NotifyChannel
from facelens.config.recognizer import RecognizerSettings
from facelens.config.retention import RetentionSettings
from facelens.config.serve import ServeSettings


def _default_home() -> Path:
    return Path.home() / ".facelens"


_PositiveFinite = Annotated[float, Field(gt=0, allow_inf_nan=False)]
"""A number above zero that is not infinite or NaN (a divisor)."""


class Settings(BaseSettings):
    """facelens configuration; every field can be set as ``FACELENS_<NAME>``."""

    model_config = SettingsConfigDict(
        env_prefix="FACELENS_", env_nested_delimiter="__", extra="forbid", frozen=True
    )

    home: Path = Field(
        default_factory=_default_home,
        description="Data directory: the SQLite database and other local state live here.",
    )
    models_dir: Path | None = Field(
        default=None,
        description=(
            "Directory of optional ONNX models (YuNet, SFace ...); unset: <home>/models, where "
            "`facelens models pull` puts them (also searched when this is set). dlib's models "
            "come from the face_recognition_models package and need no directory."
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
        default="auto",
        description=(
            "Face detector by name: 'hog' (dlib, built in), 'yunet' (ONNX, models_dir) or "
            "'auto': YuNet when its model is in models_dir, else HOG. YuNet is about 1.4x "
            "faster per 640x360 frame and finds faces from 20 px where HOG needs 64 "
            "(bench/detectors.py)."
        ),
    )
    embedder: str = Field(
        default="onnx",
        description=(
            "How faces become vectors. dlib's face recognition ResNet: 'onnx' (ONNX Runtime, "
            "about 8 ms a face on one core; converted from dlib's own model file on first use and "
            "cached in <home>/models) or 'dlib' (dlib itself, about 85 ms); the vectors are the "
            "same (within 1e-6), so collections stay compatible either way. 'arcface': an "
            "ArcFace-style ONNX model (arcface_model, e.g. SFace); its vectors are another space, "
            "so its collections are its own."
        ),
    )
    arcface_model: str = Field(
        default="face_recognition_sface_2021dec.onnx",
        description=(
            "The 'arcface' embedder's ONNX file: an absolute path, or a name (or relative path) "
            "in models_dir, else <home>/models. Default: OpenCV Zoo's SFace, fetched by "
            "`facelens models pull sface`; InsightFace's w600k_r50.onnx etc. also fit."
        ),
    )
    arcface_channel_order: Literal["rgb", "bgr"] = Field(
        default="rgb",
        description=(
            "Channel order the 'arcface' model takes (chips are RGB; 'bgr' reverses them). "
            "SFace and InsightFace's ArcFace both take 'rgb'."
        ),
    )
    arcface_mean: FiniteFloat | tuple[FiniteFloat, FiniteFloat, FiniteFloat] = Field(
        default=0.0,
        description=(
            "Subtracted from each 0-255 pixel before the 'arcface' model sees it: one number, or "
            "three (one a channel, in arcface_channel_order). SFace: 0; InsightFace: 127.5."
        ),
    )
    arcface_std: _PositiveFinite | tuple[_PositiveFinite, _PositiveFinite, _PositiveFinite] = Field(
        default=1.0,
        description=(
            "Each pixel, less arcface_mean, is divided by this (0-255 units): one number or "
            "three, as arcface_mean. SFace: 1; InsightFace: 127.5."
        ),
    )
    embed_threads: int = Field(
        default=1,
        ge=1,
        le=256,
        description=(
            "ONNX Runtime threads per embedding call ('onnx' and 'arcface' embedders). 1 keeps "
            "a process on one core, so throughput grows with processes; more cut one call's "
            "latency on an otherwise idle machine."
        ),
    )
    embed_flip: bool = Field(
        default=True,
        description=(
            "Also embed each face mirrored and average: +0.1% LFW accuracy for ~1.9x embedding "
            "time. Collections stay comparable either way."
        ),
    )
    embed_views: Literal["68", "five", "five+68"] = Field(
        default="68",
        description=(
            "Which chips of a face dlib's ResNet ('onnx', 'dlib' embedders) embeds. '68': "
            "dlib's own 68-point chip (what the network was trained on; landmarks from dlib's "
            "shape predictor): 99.3% on the LFW development pairs, open-set FNIR at FPIR 1% "
            "with 746 people enrolled from one photo about 24%. 'five+68': that and the "
            "five-point chip combined, no better for twice the network work. 'five': the "
            "five-point chip only, 98.9% and about 30%. Each is its own model version "
            "(dlib-resnet-v1-chip68, dlib-resnet-v1+68, dlib-resnet-v1): collections made "
            "with one refuse the others, so set 'five' to keep using collections made before "
            "this setting."
        ),
    )
    collections_url: str | None = Field(
        default=None,
        description=(
            "Where collections live: 'sqlite:///path/to.db', 'postgresql://...', 'memory://', "
            "or 'rekognition://' (AWS Rekognition keeps them and the recognizer asks it; "
            "'?region=...&endpoint_url=...' optional). Default: sqlite in <home>/facelens.db."
        ),
    )
    keep_face_sources: bool = Field(
        default=True,
        description=(
            "Keep a small crop of every stored face (a JPEG of about 12 KB, up to 256 px, in "
            "the collections database beside its vector, deleted with the face), so that "
            "`facelens collections reindex` can re-embed a collection when the engine "
            "changes. A privacy trade-off: the crop shows the face, where a vector does not. "
            "Off: faces stored meanwhile cannot be re-embedded; reindex refuses them until they "
            "are enrolled again or dropped (--drop-unsourced)."
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
        description=(
            "Largest accepted image, width x height in pixels (decompression-bomb guard, checked "
            "from the header). Decoding costs about 7 bytes a pixel at its peak (0.35 GB at "
            "50 MP); 50 MP admits 48-50 MP camera photos."
        ),
    )
    image_pixel_budget: int = Field(
        default=100_000_000,
        gt=0,
        description=(
            "Pixels (width x height, summed) this process decodes and analyses at once; further "
            "images wait. Bounds images' memory to about 7 bytes a pixel of it (0.7 GB at "
            "100 MP, two 50 MP images) however many requests arrive. An image larger than the "
            "budget is analysed alone."
        ),
    )
    image_budget_wait_seconds: float = Field(
        default=60.0,
        gt=0,
        description=(
            "Longest wait, in seconds, for room in image_pixel_budget; past it the request "
            "fails with ThrottlingException (AWS SDKs retry it on their own)."
        ),
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

    objects_url: str | None = Field(
        default=None,
        description=(
            "Object store for crops: 'file:///dir', 's3://' (AWS; '?endpoint_url=...&region=...' "
            "for MinIO and others) or 'memory://'. Default: file:// <home>/objects."
        ),
    )
    bucket: str = Field(default="facelens", description="Bucket crops are uploaded to.")
    profiles_url: str | None = Field(
        default=None,
        description=(
            "Profile store: 'sqlite:///path.db', 'postgresql://...', 'memory://' or "
            "'dynamodb://<table>' (AWS DynamoDB). Default: the collections database (a SQLite "
            "file in <home> when collections are rekognition://)."
        ),
    )
    mqtt: MqttSettings = Field(default_factory=MqttSettings, description="MQTT broker.")
    events: EventSettings = Field(
        default_factory=EventSettings, description="ObjectCreated event delivery."
    )
    recognizer: RecognizerSettings = Field(
        default_factory=RecognizerSettings, description="The recognizer."
    )
    edge: EdgeSettings = Field(default_factory=EdgeSettings, description="The edge runner.")
    serve: ServeSettings = Field(
        default_factory=ServeSettings, description="The HTTP API and dashboard."
    )
    notify: list[NotifyChannel] = Field(
        default_factory=list,
        description="Notification channels (JSON list of {url, rule, cooldown_seconds}).",
    )
    retention: RetentionSettings = Field(
        default_factory=RetentionSettings,
        description="How long crops are kept (facelens.people.retention).",
    )

    @field_validator("home", "models_dir", "testdata", mode="after")
    @classmethod
    def _absolute(cls, path: Path | None) -> Path | None:
        """``~`` expanded and a relative path taken from the working directory, once, here:
        the SQLite URLs built from ``home`` (``sqlite:///data/...``) would otherwise read a
        relative path as absolute, and a later ``chdir`` would move the data."""
        return None if path is None else path.expanduser().absolute()

    def database_url(self) -> str:
        """The collections URL, defaulting to a SQLite file under ``home``."""
        return self.collections_url or f"sqlite:///{self.home / 'facelens.db'}"

    def objects_store_url(self) -> str:
        """The object store URL, defaulting to a directory under ``home``."""
        return self.objects_url or f"file://{self.home / 'objects'}"

    def profile_store_url(self) -> str:
        """The profiles URL, defaulting to the collections database (a SQLite file in
        ``home`` when Rekognition keeps the collections)."""
        if self.profiles_url:
            return self.profiles_url
        database = self.database_url()
        if database.startswith("rekognition:"):
            return f"sqlite:///{self.home / 'facelens.db'}"
        return database

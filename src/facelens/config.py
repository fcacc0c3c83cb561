"""One settings object for all of facelens.

Read once at the edge (the CLI, a server's start-up) with
``Settings()`` (which reads ``FACELENS_*`` environment variables) and passed
in from there; library code never reads the environment itself.
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, FiniteFloat, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from facelens.config_sections import Camera, EdgeSettings, Section, ServeSettings

__all__ = [
    "Camera",
    "EdgeSettings",
    "EventSettings",
    "EventSourceKind",
    "MqttSettings",
    "NotifyChannel",
    "NotifyRule",
    "RecognizerSettings",
    "RetentionSettings",
    "Section",
    "ServeSettings",
    "Settings",
]


def _default_home() -> Path:
    return Path.home() / ".facelens"


_PositiveFinite = Annotated[float, Field(gt=0, allow_inf_nan=False)]
"""A number above zero that is not infinite or NaN (a divisor)."""


class MqttSettings(Section):
    """The MQTT broker the recognizer publishes to (and, optionally, takes events from)."""

    url: str | None = Field(
        default=None,
        description=(
            "Broker: 'mqtt://host:1883' or 'mqtts://host:8883' (TLS); or 'iotdata://<AWS IoT "
            "data endpoint host>' to publish through AWS IoT Core's HTTPS data plane (AWS "
            "Lambda: no connection to keep). None: publish to the log only (no broker)."
        ),
    )
    username: str | None = Field(default=None, description="Broker user name.")
    password: SecretStr | None = Field(default=None, description="Broker password.")
    ca_file: Path | None = Field(
        default=None, description="CA bundle for mqtts:// (default: the system's CAs)."
    )
    cert_file: Path | None = Field(
        default=None, description="Client certificate for mqtts:// (AWS IoT Core needs one)."
    )
    key_file: Path | None = Field(default=None, description="Client certificate's private key.")
    client_id: str = Field(
        default="facelens",
        min_length=1,
        description=(
            "Prefix of every MQTT client id: '<prefix>-<role>-<random tag>' for clients with "
            "no session to keep (publishers: '<prefix>-serve-pub-<tag>', "
            "'<prefix>-<worker id>-pub-<tag>', '<prefix>-edge-<thing>-pub-<tag>'; an edge "
            "runner's name listener '<prefix>-edge-<thing>-names-<tag>'), and "
            "'<prefix>-<worker id>' for a recognizer's persistent MQTT event session, which "
            "must stay stable across restarts so its unacknowledged events resume (a new "
            "prefix starts a new session). Ids exceed MQTT 3.1.1's guaranteed 23 bytes."
        ),
    )
    spool_max_messages: int = Field(
        default=100_000,
        ge=1,
        description=(
            "Messages kept on disk while the broker is down; beyond this the oldest are dropped "
            "(and counted)."
        ),
    )


class EventSourceKind(StrEnum):
    OUTBOX = "outbox"
    MQTT = "mqtt"
    SQS = "sqs"


class EventSettings(Section):
    """How ObjectCreated events travel from the object store to recognizer workers."""

    source: EventSourceKind = Field(
        default=EventSourceKind.OUTBOX,
        description=(
            "'outbox': a SQLite outbox in <home> (one host); 'mqtt': an MQTT topic shared by "
            "workers ($share/group/topic, MinIO's message shape); 'sqs': an SQS queue (AWS)."
        ),
    )
    topic: str = Field(
        default="facelens/events", description="MQTT topic the object store's events go to."
    )
    group: str = Field(
        default="facelens-recognizers",
        description="Shared-subscription group: workers in one group split the events.",
    )
    sqs_queue_url: str | None = Field(default=None, description="SQS queue URL for source 'sqs'.")
    visibility_timeout: float = Field(
        default=30.0,
        gt=0,
        description=(
            "Seconds an event taken by a worker stays hidden from others; if the worker dies "
            "it is delivered again after this. Longer than the slowest event."
        ),
    )


class RecognizerSettings(Section):
    """What the recognizer searches and where it publishes."""

    collection_id: str = Field(default="faces", description="Collection searched.")
    prefix: str = Field(default="faces/", description="Only keys starting with this are crops.")
    suffix: str = Field(default=".jpg", description="Only keys ending with this are crops.")
    topic: str = Field(
        default="rekognition",
        description="MQTT topic of identifications; '<topic>/unknown' and '<topic>/errors' too.",
    )
    face_match_threshold: float = Field(
        default=80.0,
        ge=0,
        le=100,
        description=(
            "Similarity 0-100 a face (or a user's template) must reach to count as a match "
            "under rule 'similarity' (and on AWS Rekognition); higher means fewer false matches "
            "and more unknowns. The 'open-set' rule does not use it."
        ),
    )
    max_faces: int = Field(
        default=5, ge=1, le=4096, description="Candidate faces considered per search."
    )
    rule: Literal["open-set", "similarity"] = Field(
        default="open-set",
        description=(
            "How a face gets a name. 'open-set': only when at most "
            "max_false_identification_rate of strangers would score as high against the "
            "collection's current number of people (holds as people are enrolled or "
            "forgotten; needs an engine facelens has calibrated, else 'similarity' decides). "
            "'similarity': the best person at face_match_threshold, Rekognition's 1:1 meaning, "
            "which names more strangers the more people are enrolled."
        ),
    )
    max_false_identification_rate: float = Field(
        default=0.01,
        ge=0.001,
        le=0.5,
        description=(
            "Open-set rule: the share of strangers (people not enrolled, 0.001-0.5) that may be "
            "given a name. The rule aims at half of it, to leave room for a population unlike "
            "the one it was calibrated on. Lower: fewer wrong names, more people left unknown."
        ),
    )
    worker_id: str = Field(
        default="recognizer-1",
        min_length=1,
        description=(
            "Stable name of this worker: a restarted worker reclaims the events it held, and "
            "its MQTT session resumes under it."
        ),
    )
    strangers: bool = Field(
        default=True,
        description=(
            "Group unknown faces into anonymous persons ('stranger-<n>', kept in the companion "
            "collection '<collection_id>.strangers'); unknown messages then carry StrangerId, "
            "StrangerSightings and FirstSeen. Needs facelens' engine (not rekognition://)."
        ),
    )
    stranger_threshold: float = Field(
        default=95.0,
        ge=0,
        le=100,
        description=(
            "Similarity 0-100 an unknown face needs to a stranger's faces (RMS distance) to "
            "join that stranger. Lower merges different people into one stranger, higher "
            "splits one person into several; 95 was best on LFW (bench/strangers_lfw.py)."
        ),
    )


class NotifyRule(StrEnum):
    EVERYONE = "everyone"
    UNKNOWN = "unknown"
    NAMED = "named"


class NotifyChannel(Section):
    """One notification channel: an apprise URL or an SNS topic ARN, with its rule."""

    url: SecretStr = Field(
        description=(
            "apprise URL (mailto://, ntfy://, slack://, tgram://, json://, ...) or an AWS SNS "
            "topic ARN (arn:aws:sns:...). Secret: such URLs carry tokens."
        )
    )
    rule: NotifyRule = Field(
        default=NotifyRule.EVERYONE,
        description="Who triggers it: 'everyone', 'unknown' faces only, or 'named' people only.",
    )
    cooldown_seconds: float = Field(
        default=300.0,
        ge=0,
        description="At most one alert per person (or per 'unknown') per channel in this time.",
    )


class RetentionSettings(Section):
    """How long crops (face photos in the object store) are kept before the retention job
    deletes them. None keeps them forever.

    The defaults keep biometric data no longer than its use needs (data minimisation):
    a week of identified crops covers "who was at the door last week?" and checking a
    match; strangers' crops are for naming them the same day, and a stranger not seen
    for a month is forgotten altogether (nobody named them; their faces served only to
    recognise a return). Enrolled people's embeddings, profiles and the ledger's
    records stay (``facelens forget`` erases a person).
    """

    identified_crops_hours: float | None = Field(
        default=168.0,
        gt=0,
        description=(
            "Hours a crop of an identified person is kept, counted from its recognition "
            "(default 168: one week). None: forever."
        ),
    )
    stranger_crops_hours: float | None = Field(
        default=8.0,
        gt=0,
        description=(
            "Hours a crop of an unknown face (a stranger) is kept, and a dead letter's crop "
            "(default 8: the same working day). None: forever. Crops with no record at all "
            "(never recognized) go after the longer of the two times."
        ),
    )
    strangers_hours: float | None = Field(
        default=720.0,
        gt=0,
        description=(
            "Hours after its last sighting an anonymous person is forgotten entirely: its "
            "faces (embeddings), sightings and crops (default 720: 30 days; a stranger who "
            "comes back within it keeps their id). None: kept until named or forgotten."
        ),
    )
    interval_seconds: float = Field(
        default=600.0,
        ge=1,
        description=(
            "Seconds between two runs of the retention job in `facelens recognizer` and "
            "`facelens up` (default 600: a crop outlives its time by at most ten minutes)."
        ),
    )

    @property
    def enabled(self) -> bool:
        """Whether anything is ever deleted (at least one time is set)."""
        return any(
            hours is not None
            for hours in (
                self.identified_crops_hours,
                self.stranger_crops_hours,
                self.strangers_hours,
            )
        )


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

"""One settings object for all of facelens.

Read once at the edge (the CLI, a server's start-up) with
``Settings()`` (which reads ``FACELENS_*`` environment variables) and passed
in from there; library code never reads the environment itself.
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


def _default_home() -> Path:
    return Path.home() / ".facelens"


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class MqttSettings(_Section):
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
            "MQTT client id prefix; must be stable across restarts so a persistent session "
            "(and its unacknowledged events) resumes."
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


class EventSettings(_Section):
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


class RecognizerSettings(_Section):
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
            "Similarity 0-100 a face (or a user's template) must reach to count as a match; "
            "higher means fewer false matches and more unknowns."
        ),
    )
    max_faces: int = Field(
        default=5, ge=1, le=4096, description="Candidate faces considered per search."
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


class NotifyChannel(_Section):
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


class EdgeSettings(_Section):
    """The edge runner: one camera (or video) in, crops and status out."""

    topic: str = Field(
        default="things/{thing}/infer",
        description="MQTT topic of status messages and per-frame labels; '{thing}' is replaced.",
    )
    detect_side: int = Field(
        default=640,
        ge=64,
        le=4096,
        description=(
            "Detection runs on a copy of each frame whose longer side is this many pixels "
            "(boxes are mapped back to the full frame exactly). HOG finds faces of 80 px and "
            "up in that copy, YuNet of ~20 px: larger finds smaller faces, at roughly "
            "quadratic cost."
        ),
    )
    min_confidence: float = Field(
        default=50.0,
        ge=0,
        le=100,
        description="Detections below this confidence (0-100) are ignored.",
    )
    margin: float = Field(
        default=0.3,
        ge=0,
        le=2,
        description=(
            "Crop margin on each side, as a fraction of the face box's width (left/right) and "
            "height (top/bottom); clipped to the frame. The recognizer's detector needs context."
        ),
    )
    verify_crops: bool = Field(
        default=True,
        description=(
            "Run the recognizer's detector on each chosen crop and upload it only if it finds "
            "the face (the next-best candidate otherwise): no wasted uploads or dead letters, "
            "at one small detection per upload."
        ),
    )
    unknown_retries: int = Field(
        default=2,
        ge=0,
        description=(
            "When the recognizer answers 'unknown' for a track's crop, upload the next best "
            "crop of the same window, up to this many times per track (small faces are often "
            "named on a second look)."
        ),
    )
    jpeg_quality: int = Field(default=90, ge=10, le=100, description="JPEG quality of crops.")
    best_of_seconds: float = Field(
        default=0.5,
        ge=0,
        description=(
            "A new track's crop is the best (sharp, large, frontal) seen in this many seconds "
            "of video after it appears; 0 uploads as soon as the track is confirmed (its second "
            "detection)."
        ),
    )
    reupload_seconds: float = Field(
        default=30.0,
        gt=0,
        description="A person who stays in view is uploaded again every this many seconds.",
    )
    track_timeout_seconds: float = Field(
        default=1.0,
        gt=0,
        description=(
            "A track ends when its face has not been detected for this long (seconds of "
            "video); a person who returns later starts a new track (and a new upload)."
        ),
    )
    iou_threshold: float = Field(
        default=0.2,
        gt=0,
        lt=1,
        description=(
            "Least box overlap (intersection over union, 0-1) for a detection to continue a track."
        ),
    )
    labels_per_second: float = Field(
        default=2.0,
        gt=0,
        description="Most per-frame label messages ({'face': 0.97}) published per second.",
    )
    buffer_max_crops: int = Field(
        default=2000,
        ge=1,
        description=(
            "Crops kept on disk while the object store is unreachable; when full the oldest "
            "are dropped (and counted)."
        ),
    )
    reconnect_max_seconds: float = Field(
        default=30.0,
        gt=0,
        description="Longest wait between attempts to reopen a lost source (backoff doubles).",
    )
    stream_timeout_seconds: float = Field(
        default=10.0,
        gt=0,
        description="A network source that sends nothing for this long counts as lost.",
    )
    view_host: str = Field(
        default="127.0.0.1",
        description=(
            "Address of the live view (/stream.mjpg, /metrics). Any address but loopback needs "
            "view_username and view_password."
        ),
    )
    view_port: int | None = Field(
        default=8554,
        ge=0,
        le=65535,
        description="Port of the live view; 0 picks a free one, None turns the view off.",
    )
    view_username: str | None = Field(default=None, description="Live view's HTTP Basic user.")
    view_password: SecretStr | None = Field(
        default=None, description="Live view's HTTP Basic password."
    )
    view_fps: float = Field(
        default=10.0, gt=0, le=60, description="Most frames per second sent to each viewer."
    )
    stats_seconds: float = Field(
        default=5.0, gt=0, description="How often fps, queue depth, uploads and drops are logged."
    )


class RetentionSettings(_Section):
    """How long crops (face photos in the object store) are kept before the retention job
    deletes them. None keeps them forever.

    The defaults keep biometric data no longer than its use needs (data minimisation):
    a week of identified crops covers "who was at the door last week?" and checking a
    match; strangers' crops are for naming them the same day. Embeddings, profiles and
    the ledger's records are not crops and stay (``facelens forget`` erases a person).
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
        return self.identified_crops_hours is not None or self.stranger_crops_hours is not None


class Camera(_Section):
    """An edge runner's live view, shown on the dashboard."""

    name: str = Field(min_length=1, description="The camera's thing name.")
    url: str = Field(description="Its live view, e.g. 'http://127.0.0.1:8554/stream.mjpg'.")


class ServeSettings(_Section):
    """`facelens serve`: the HTTP API, the Rekognition endpoint and the dashboard."""

    host: str = Field(
        default="127.0.0.1",
        description=(
            "Address to listen on. Without API keys (`facelens keys create`) only loopback is "
            "allowed, and every request is trusted."
        ),
    )
    port: int = Field(default=8080, ge=0, le=65535, description="Port; 0 picks a free one.")
    max_upload_bytes: int = Field(
        default=15 * 1024 * 1024,
        gt=0,
        description="Largest request body accepted (photos, JSON with base64 images), bytes.",
    )
    failed_auth_limit: int = Field(
        default=10,
        ge=1,
        description=(
            "Failed authentications allowed per client address per minute; beyond it the "
            "client gets ThrottlingException (HTTP 429) until the minute has passed."
        ),
    )
    session_hours: float = Field(
        default=12.0, gt=0, description="How long a dashboard login lasts, hours."
    )
    collection_id: str | None = Field(
        default=None,
        description="Collection the dashboard enrols into (default: recognizer.collection_id).",
    )
    region: str = Field(
        default="us-east-1",
        description="Region the Rekognition endpoint answers for (SigV4 credential scope).",
    )
    cameras: list[Camera] = Field(
        default_factory=list, description="Edge runners' live views shown on the dashboard."
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
            "How dlib's face recognition ResNet is run: 'onnx' (ONNX Runtime, about 8 ms a face "
            "on one core; converted from dlib's own model file on first use and cached in "
            "<home>/models) or 'dlib' (dlib itself, about 85 ms). The vectors are the same "
            "(within 1e-6), so collections stay compatible either way."
        ),
    )
    embed_threads: int = Field(
        default=1,
        ge=1,
        le=256,
        description=(
            "ONNX Runtime threads per embedding call ('onnx' embedder). 1 keeps a process on one "
            "core, so throughput grows with processes; more cut one call's latency on an "
            "otherwise idle machine."
        ),
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
            "Where collections live: 'sqlite:///path/to.db', 'postgresql://...', 'memory://', "
            "or 'rekognition://' (AWS Rekognition keeps them and the recognizer asks it; "
            "'?region=...&endpoint_url=...' optional). Default: sqlite in <home>/facelens.db."
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

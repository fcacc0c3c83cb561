"""``Settings.edge`` (``FACELENS_EDGE__*``): every knob of the camera loop, with its unit and
trade-off."""

from __future__ import annotations

from pydantic import Field, SecretStr, field_validator

from facelens.config.hosts import host_names
from facelens.config.section import Section


class EdgeSettings(Section):
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
    view_allowed_hosts: list[str] = Field(
        default_factory=list,
        description=(
            "Host names the live view answers to besides loopback ones and view_host (any IP "
            "address too when view_host is 0.0.0.0 or ::), e.g. the camera box's DNS name; "
            "a request naming another Host is refused (DNS rebinding). JSON list in the "
            "environment: FACELENS_EDGE__VIEW_ALLOWED_HOSTS='[\"cam1.lan\"]'."
        ),
    )
    view_fps: float = Field(
        default=10.0, gt=0, le=60, description="Most frames per second sent to each viewer."
    )
    stats_seconds: float = Field(
        default=5.0, gt=0, description="How often fps, queue depth, uploads and drops are logged."
    )

    @field_validator("view_allowed_hosts")
    @classmethod
    def _names(cls, names: list[str]) -> list[str]:
        return host_names(names)

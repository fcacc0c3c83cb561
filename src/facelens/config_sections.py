"""Settings sections kept apart from :mod:`facelens.config`, which re-exports them.

``Section`` is the base of every section (unknown fields refused, frozen).
``EdgeSettings`` (``Settings.edge``, ``FACELENS_EDGE__*``: every knob of the
camera loop, with its unit and trade-off) and ``ServeSettings``
(``Settings.serve``) live here to keep each module readable.
"""

from __future__ import annotations

import ipaddress

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator


class Section(BaseModel):
    """A settings section: unknown fields are errors (a typo must not pass silently)."""

    model_config = ConfigDict(extra="forbid", frozen=True)


def host_names(names: list[str]) -> list[str]:
    """Host names as a Host header carries them, compared lower case without a trailing dot
    or IPv6 brackets; a port, path or wildcard is refused (a Host check matches names only)."""
    cleaned = []
    for name in names:
        bare = name.strip().lower().rstrip(".")
        if bare.startswith("[") and bare.endswith("]"):
            bare = bare[1:-1]
        if not bare or any(c in bare for c in "/@*?#[] \t") or (":" in bare and not _is_ip(bare)):
            raise ValueError(f"{name!r} is not a host name (no port, path or wildcard)")
        cleaned.append(bare)
    return cleaned


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


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


class Camera(Section):
    """An edge runner's live view, shown on the dashboard."""

    name: str = Field(min_length=1, description="The camera's thing name.")
    url: str = Field(description="Its live view, e.g. 'http://127.0.0.1:8554/stream.mjpg'.")


class ServeSettings(Section):
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
    allowed_hosts: list[str] = Field(
        default_factory=list,
        description=(
            "Host names the server answers to besides loopback ones (localhost, 127.x, ::1) "
            "and host (any IP address too when host is 0.0.0.0 or ::), on any port: e.g. a "
            "reverse proxy's public name or this machine's LAN name. A request whose Host "
            "header names another is refused (403), so a web page cannot reach the server "
            "through DNS rebinding. Browser origins with these names count as the server's "
            "own. JSON list in the environment: FACELENS_SERVE__ALLOWED_HOSTS="
            "'[\"faces.example.org\"]'."
        ),
    )
    trusted_proxies: list[str] = Field(
        default_factory=list,
        description=(
            "Reverse proxies (IP addresses or networks, e.g. '127.0.0.1' or '10.0.0.0/8') "
            "whose X-Forwarded-For and X-Forwarded-Proto are believed: requests from them "
            "count (for the failed-authentication limit, the audit log) as coming from the "
            "address they forward for. None by default: the headers are ignored, since any "
            "client can send them. JSON list in the environment: "
            "FACELENS_SERVE__TRUSTED_PROXIES='[\"127.0.0.1\"]'."
        ),
    )

    @field_validator("allowed_hosts")
    @classmethod
    def _names(cls, names: list[str]) -> list[str]:
        return host_names(names)

    @field_validator("trusted_proxies")
    @classmethod
    def _networks(cls, proxies: list[str]) -> list[str]:
        for proxy in proxies:
            try:
                ipaddress.ip_network(proxy.strip(), strict=False)
            except ValueError:
                raise ValueError(
                    f"{proxy!r} is not an IP address or network (e.g. 10.0.0.0/8)"
                ) from None
        return [proxy.strip() for proxy in proxies]

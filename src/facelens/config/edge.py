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
            "The quality gate's last check: run the recognizer's detector on a look about to "
            "be sent and upload it only if it finds the face (no wasted uploads or dead "
            "letters, at one small detection per look). On the walking-crowd test clip this "
            "is what refuses backs of heads, whose landmarks on hair look no more turned "
            "than a face."
        ),
    )
    min_eye_distance: float = Field(
        default=8.0,
        ge=0,
        description=(
            "Quality gate: fewest full-frame pixels between the eyes (the detector's landmarks) "
            "for a look to be uploaded. The recognizer still names the pianist at the edge of "
            "the stage clip at 9-10 px (tests/integration/test_up.py); under 8 px the "
            "embedder gets a face of a dozen pixels, upsampled into mush. Raise it where "
            "people walk up to the camera anyway: their later looks are larger."
        ),
    )
    max_yaw: float = Field(
        default=45.0,
        ge=0,
        le=90,
        description=(
            "Quality gate: most head turn left or right (degrees, from the landmarks, about "
            "±10° accurate) for a look to be uploaded. Profiles on the test clips measure "
            "50-85° and embed poorly; faces at a three-quarter view (up to ~40°) still match."
        ),
    )
    max_pitch: float = Field(
        default=30.0,
        ge=0,
        le=90,
        description=(
            "Quality gate: most head tilt up or down (degrees) for a look to be uploaded. "
            "Walkers looking at a phone measure 15-25° and are still recognisable; past 30° "
            "the camera sees the top of the head."
        ),
    )
    min_sharpness: float = Field(
        default=8.0,
        ge=0,
        le=100,
        description=(
            "Quality gate: least sharpness (0-100, variance of the Laplacian on the face "
            "scaled to 112 px) for a look to be uploaded. Out-of-focus faces in the "
            "background of the stage clip measure 1-5; in-focus faces, even small or dim "
            "ones, 10 and up."
        ),
    )
    jpeg_quality: int = Field(default=90, ge=10, le=100, description="JPEG quality of crops.")
    max_looks: int = Field(
        default=4,
        ge=1,
        description=(
            "Looks (crops) a visit uploads at most before its long-visit interval "
            "(reupload_seconds): the first at once, then later ones only when better or from "
            "another angle. More looks make the recognizer's fused answer surer, each at an "
            "upload and a recognizer call."
        ),
    )
    min_look_seconds: float = Field(
        default=0.5,
        ge=0,
        description=(
            "Least time (seconds of video) between two looks of one visit: consecutive "
            "frames are near copies that add little to the recognizer's fused answer."
        ),
    )
    better_look_margin: float = Field(
        default=0.25,
        ge=0,
        description=(
            "A later look is sent when its quality score (0-1: size, sharpness, frontality, "
            "confidence) beats the best look sent for the visit by this fraction (0.25: 25% "
            "better), or..."
        ),
    )
    new_pose_degrees: float = Field(
        default=20.0,
        gt=0,
        description=(
            "...when its yaw differs from every look sent by at least this many degrees: "
            "the recognizer sees the face from another side."
        ),
    )
    unknown_retries: int = Field(
        default=2,
        ge=0,
        deprecated=(
            "Ignored: later looks (max_looks) do this job for every visit; accepted so "
            "existing configuration files still load."
        ),
        description=(
            "Deprecated and ignored (was: upload runner-up crops when the recognizer "
            "answered unknown). Later looks (max_looks, better_look_margin, new_pose_degrees) "
            "do this for every visit."
        ),
    )
    best_of_seconds: float = Field(
        default=0.5,
        ge=0,
        deprecated=(
            "Ignored: a visit's first look is uploaded as soon as it passes the quality "
            "gate; accepted so existing configuration files still load."
        ),
        description=(
            "Deprecated and ignored (was: wait this long for the best crop of a new track). "
            "A visit's first look is now uploaded in the frame it passes the quality gate, "
            "and later looks bring the better pictures."
        ),
    )
    reupload_seconds: float = Field(
        default=30.0,
        gt=0,
        description=(
            "A person who stays in view sends another look every this many seconds, once "
            "max_looks are spent (and at least this often in any case)."
        ),
    )
    track_timeout_seconds: float = Field(
        default=1.5,
        gt=0,
        description=(
            "A track (and its visit) ends when its face has not been detected for this long "
            "(seconds of video): a head turned away, a detector miss or someone walking "
            "in front is bridged by the tracker's motion prediction and appearance cue; a "
            "person who returns later is a new visit. 1.5 s keeps the walkers of the crowd "
            "clip one visit each where 1.0 s split them (bench/edge_visits.py)."
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

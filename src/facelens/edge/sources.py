"""Where frames come from: a webcam, a video file or a network stream, behind one protocol.

Why one protocol: the frame loop (and :mod:`facelens.edge.capture`, which
reads in a background thread and reconnects) must not care whether frames
come from ``/dev/video0``, a recorded MP4 or an RTSP camera, and tests must
be able to hand it something else. :func:`parse_source` turns what a user
types (``0``, ``clip.mp4``, ``rtsp://user:pw@cam/stream``) into a
:class:`SourceSpec`; :class:`OpenCvSource` reads it with ``cv2.VideoCapture``.

Trade-offs: files and streams go through OpenCV's FFmpeg backend because it
is the one that honours open and read timeouts (a stalled camera makes
``read()`` fail after ``timeout_seconds`` instead of blocking forever);
webcams use whatever backend OpenCV picks (V4L2, AVFoundation, DirectShow).
``open()`` reads the first frame, so a source that opens but never delivers
(a wrong codec, a camera that accepts the connection and sends nothing)
fails at once, with a clear error, rather than on the first ``read()``.
Passwords in stream URLs never reach logs or errors: everything that
displays a source uses :meth:`SourceSpec.describe`.
"""

from __future__ import annotations

import logging
import math
import re
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit, urlunsplit
from urllib.request import url2pathname

import cv2
import numpy as np

from facelens.edge.types import BGRImage, SourceInfo
from facelens.errors import (
    InvalidImageFormatException,
    InvalidParameterException,
    ResourceNotFoundException,
    SourceUnavailableException,
)

logger = logging.getLogger(__name__)

STREAM_SCHEMES = ("rtsp", "rtsps", "rtmp", "http", "https", "udp", "tcp")
"""URL schemes read as network streams (through FFmpeg); ``file://`` is a file."""

SECRET_QUERY_KEYS = frozenset({"password", "passwd", "pwd", "pass", "token"})
"""Query parameters some cameras take credentials in; redacted like a URL password."""

REDACTED = "***"
MAX_PLAUSIBLE_FPS = 1000.0
"""OpenCV reports nonsense (90000, NaN) for some streams; above this means unknown."""


class SourceKind(StrEnum):
    WEBCAM = "webcam"
    FILE = "file"
    STREAM = "stream"


@dataclass(frozen=True)
class SourceSpec:
    """A source to open: a webcam index (int), a file path or a stream URL (str)."""

    kind: SourceKind
    target: str | int

    def __post_init__(self) -> None:
        if self.kind is SourceKind.WEBCAM:
            if isinstance(self.target, bool) or not isinstance(self.target, int):
                raise InvalidParameterException("a webcam source's target is its index (an int)")
            if self.target < 0:
                raise InvalidParameterException(f"webcam index {self.target} is negative")
        elif not isinstance(self.target, str) or not self.target.strip():
            raise InvalidParameterException(f"a {self.kind} source needs a non-empty path or URL")

    @property
    def live(self) -> bool:
        """Webcams and streams run at their own pace and cannot be rewound; files can."""
        return self.kind is not SourceKind.FILE

    def describe(self) -> str:
        """A display string for logs, errors and status: passwords replaced by ``***``."""
        if self.kind is SourceKind.WEBCAM:
            return f"webcam {self.target}"
        if self.kind is SourceKind.FILE:
            return str(self.target)
        return redact_url(str(self.target))


def redact_url(url: str) -> str:
    """``url`` with the password of its user info (and secret query values) as ``***``."""
    parts = urlsplit(url)
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, _, host = netloc.rpartition("@")
        user, has_password, _ = userinfo.partition(":")
        if has_password:
            netloc = f"{user}:{REDACTED}@{host}"
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        if any(key.lower() in SECRET_QUERY_KEYS for key, _ in pairs):
            query = urlencode(
                [(k, REDACTED if k.lower() in SECRET_QUERY_KEYS else v) for k, v in pairs],
                safe="*",
            )
    if netloc == parts.netloc and query == parts.query:
        return url  # nothing secret: keep it exactly as given
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


_URL = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")
_DIGITS = re.compile(r"^[0-9]+$")


def parse_source(text: str) -> SourceSpec:
    """What a user typed as a source -> a spec.

    Digits only: a webcam index. A URL whose scheme is one of
    :data:`STREAM_SCHEMES`: a stream. A ``file://`` URL or anything else: a
    file path (not checked here; :meth:`OpenCvSource.open` does). Raises
    InvalidParameterException for an empty text or a URL of another scheme.
    """
    value = text.strip()
    if not value:
        raise InvalidParameterException("the video source is empty (give 0, a file or a URL)")
    if _DIGITS.match(value):
        return SourceSpec(SourceKind.WEBCAM, int(value))
    url = _URL.match(value)
    if url is None:
        return SourceSpec(SourceKind.FILE, value)
    scheme = url.group(1).lower()
    if scheme == "file":
        parts = urlsplit(value)
        if parts.netloc not in ("", "localhost"):
            raise InvalidParameterException(
                f"file URL {value!r} names host {parts.netloc!r}: only local files are read"
            )
        path = url2pathname(unquote(parts.path))
        if not path:
            raise InvalidParameterException(f"file URL {value!r} has no path")
        return SourceSpec(SourceKind.FILE, path)
    if scheme not in STREAM_SCHEMES:
        accepted = ", ".join(f"{name}://" for name in (*STREAM_SCHEMES, "file"))
        raise InvalidParameterException(
            f"unsupported source scheme {scheme}:// in {redact_url(value)!r}; "
            f"accepted: a webcam index, a file path, or {accepted}"
        )
    if not urlsplit(value).netloc:
        raise InvalidParameterException(f"stream URL {redact_url(value)!r} has no host")
    return SourceSpec(SourceKind.STREAM, value)


class FrameSource(Protocol):
    """A source of BGR frames. Used from one thread at a time; not thread-safe."""

    spec: SourceSpec

    def open(self) -> SourceInfo:
        """Open and prove the source works; raises a facelens error saying what is wrong."""
        ...

    def read(self) -> BGRImage | None:
        """The next H x W x 3 uint8 frame; None at the end of a file, or when a live
        source stalled (nothing within its timeout) or failed. Raises
        InvalidImageFormatException for a frame that is not 8-bit image data."""
        ...

    def position_seconds(self) -> float | None:
        """Media position (seconds) of the frame last returned by ``read()`` for files;
        None for live sources."""
        ...

    def close(self) -> None:
        """Release the device, file or connection. Idempotent."""
        ...


class OpenCvSource:
    """A :class:`FrameSource` on ``cv2.VideoCapture``.

    timeout_seconds: for files and streams, how long FFmpeg may take to
    open the source and to deliver each frame (a stalled stream makes
    ``read()`` return None after this long). Webcams have no timeout.
    """

    def __init__(self, spec: SourceSpec, *, timeout_seconds: float = 10.0) -> None:
        if not timeout_seconds > 0:
            raise InvalidParameterException(f"timeout_seconds must be > 0, not {timeout_seconds}")
        self.spec = spec
        self.timeout_seconds = timeout_seconds
        self._capture: Any = None
        self._pending: BGRImage | None = None
        self._position: float | None = None
        self._info: SourceInfo | None = None

    def open(self) -> SourceInfo:
        if self._capture is not None and self._info is not None:
            return self._info
        description = self.spec.describe()
        if self.spec.kind is SourceKind.FILE:
            path = Path(str(self.spec.target))
            if not path.exists():
                raise ResourceNotFoundException(f"video file {description} does not exist")
            if not path.is_file():
                raise ResourceNotFoundException(f"video file {description} is not a file")
        try:
            capture = self._create()
        except cv2.error as exc:
            raise self._failure("cannot be opened") from exc
        try:
            if not capture.isOpened():
                raise self._failure("cannot be opened")
            ok, image = capture.read()
            if not ok or image is None:
                raise self._failure("opened, but its first frame cannot be read")
            first = _as_bgr(image, description)
            fps = _plausible_fps(capture.get(cv2.CAP_PROP_FPS))
            position = self._media_position(capture)
        except cv2.error as exc:
            capture.release()
            raise self._failure("failed while reading its first frame") from exc
        except BaseException:
            capture.release()
            raise
        self._capture = capture
        self._pending = first
        self._position = position
        self._info = SourceInfo(
            description=description,
            width=int(first.shape[1]),
            height=int(first.shape[0]),
            fps=fps,
            live=self.spec.live,
        )
        logger.info(
            "opened %s: %dx%d at %.2f fps",
            description,
            self._info.width,
            self._info.height,
            fps,
        )
        return self._info

    def read(self) -> BGRImage | None:
        if self._pending is not None:
            first, self._pending = self._pending, None
            return first  # read by open(); its position was recorded there
        capture = self._capture
        if capture is None:
            return None
        try:
            ok, image = capture.read()
            if not ok or image is None:
                return None
            position = self._media_position(capture)
        except cv2.error as exc:
            logger.warning("reading %s failed: %s", self.spec.describe(), exc)
            return None
        frame = _as_bgr(image, self.spec.describe())
        self._position = position
        return frame

    def position_seconds(self) -> float | None:
        return self._position

    def close(self) -> None:
        capture, self._capture = self._capture, None
        self._pending = None
        if capture is None:
            return
        try:
            capture.release()
        except cv2.error as exc:
            logger.warning("closing %s failed: %s", self.spec.describe(), exc)

    def _create(self) -> Any:
        if self.spec.kind is SourceKind.WEBCAM:
            return cv2.VideoCapture(int(self.spec.target), cv2.CAP_ANY)
        milliseconds = max(1, round(self.timeout_seconds * 1000))
        params = [
            cv2.CAP_PROP_OPEN_TIMEOUT_MSEC,
            milliseconds,
            cv2.CAP_PROP_READ_TIMEOUT_MSEC,
            milliseconds,
        ]
        return cv2.VideoCapture(str(self.spec.target), cv2.CAP_FFMPEG, params)

    def _media_position(self, capture: Any) -> float | None:
        """CAP_PROP_POS_MSEC (ms) of the frame just read, in seconds; None for live sources."""
        if self.spec.live:
            return None
        milliseconds = float(capture.get(cv2.CAP_PROP_POS_MSEC))
        return milliseconds / 1000.0 if math.isfinite(milliseconds) else None

    def _failure(self, what: str) -> InvalidImageFormatException | SourceUnavailableException:
        description = self.spec.describe()
        if self.spec.kind is SourceKind.FILE:
            return InvalidImageFormatException(
                f"{description} is not a video OpenCV can decode (it {what})"
            )
        if self.spec.kind is SourceKind.WEBCAM:
            return SourceUnavailableException(f"{description} {what}")
        return SourceUnavailableException(f"{description} {what} (timeout {self.timeout_seconds}s)")


def _plausible_fps(value: float) -> float:
    fps = float(value)
    return fps if math.isfinite(fps) and 0 < fps <= MAX_PLAUSIBLE_FPS else 0.0


def _as_bgr(image: Any, description: str) -> BGRImage:
    """An H x W x 3 uint8 BGR array from what OpenCV returned (gray and BGRA converted)."""
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.size == 0:
        raise InvalidImageFormatException(
            f"{description} delivered a frame that is not 8-bit image data"
        )
    if image.ndim == 3 and image.shape[2] == 3:
        return image
    if image.ndim == 2 or (image.ndim == 3 and image.shape[2] == 1):
        return np.asarray(cv2.cvtColor(image, cv2.COLOR_GRAY2BGR), dtype=np.uint8)
    if image.ndim == 3 and image.shape[2] == 4:
        return np.asarray(cv2.cvtColor(image, cv2.COLOR_BGRA2BGR), dtype=np.uint8)
    raise InvalidImageFormatException(
        f"{description} delivered a frame of shape {image.shape}, not H x W x 3"
    )


def open_source(spec: SourceSpec, *, timeout_seconds: float = 10.0) -> FrameSource:
    """The source for ``spec`` (not yet opened: call ``open()``)."""
    return OpenCvSource(spec, timeout_seconds=timeout_seconds)

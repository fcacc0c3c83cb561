"""The live view: boxes and names drawn on frames, JPEG-encoded for whoever watches.

The frame loop must never slow down because someone is watching, so the
hand-off is one-sided: :meth:`LiveView.publish` only stores references to
the newest frame and its faces (O(1), under a lock) and wakes the viewers.
Drawing and JPEG encoding happen in each viewer's own thread, only for
frames a viewer will actually send (at most ``max_fps`` of them), and viewers
of the same frame share one encoding. A viewer that is slower than the
camera simply skips frames: nothing queues up.

The published image is not copied: the publisher must not write into it
afterwards (sources hand out a fresh array per frame).
"""

from __future__ import annotations

import math
import threading
import time
import unicodedata
from collections.abc import Generator, Sequence
from typing import Any

import cv2
import numpy as np

from facelens.edge.types import BGRImage, Frame, TrackedFace
from facelens.errors import FacelensError, InvalidParameterException

NAMED_COLOR = (0, 200, 0)
"""BGR: a face the recognizer named."""
UNNAMED_COLOR = (0, 191, 255)
"""BGR (amber): a face the recognizer has not answered for yet."""
UNKNOWN_COLOR = (60, 60, 230)
"""BGR (red): the recognizer answered ``unknown`` (no match in the collection)."""

UNKNOWN_NAME = "unknown"
MAX_NAME_CHARS = 32
"""Longer names are cut (with '~') so a label stays on a 360p frame."""

_FONT = cv2.FONT_HERSHEY_SIMPLEX
_REFERENCE_SIDE = 360.0
"""Frame side (pixels, the shorter one) at which lines are 2 px and text is scale 0.5."""


def ascii_text(text: str) -> str:
    """``text`` in printable ASCII, which is all Hershey fonts can draw.

    Accents are dropped via NFKD (``José`` -> ``Jose``); anything else outside
    ASCII 32-126 (``李``, ``Ø``, control characters) becomes ``?``.
    """
    out: list[str] = []
    for char in unicodedata.normalize("NFKD", text):
        if unicodedata.combining(char):
            continue
        out.append(char if " " <= char <= "~" else "?")
    return "".join(out)


def face_label(face: TrackedFace) -> str:
    """``#<track_id> <name>``, or ``#<track_id> <confidence>%`` before a name is known."""
    if face.name is None:
        return f"#{face.track_id} {face.confidence:.0f}%"
    name = ascii_text(face.name)
    if len(name) > MAX_NAME_CHARS:
        name = name[: MAX_NAME_CHARS - 1] + "~"
    return f"#{face.track_id} {name}"


def face_color(face: TrackedFace) -> tuple[int, int, int]:
    """The BGR colour of a face's box and label background."""
    if face.name is None:
        return UNNAMED_COLOR
    return UNKNOWN_COLOR if face.name == UNKNOWN_NAME else NAMED_COLOR


def annotate(image: BGRImage, faces: Sequence[TrackedFace]) -> BGRImage:
    """A copy of ``image`` with a box and a label per face; ``image`` is left untouched.

    Line thickness and font scale grow with the frame's shorter side (2 px and
    scale 0.5 at 360p, 4 px and 1.5 at 1080p), so labels read at any size. A
    label sits on a filled background above its box, or just inside the box
    when there is no room above; it is shifted left to stay in the frame.
    Boxes are clipped to the frame; a box wholly outside it is not drawn.
    """
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise InvalidParameterException(
            f"annotate needs an H x W x 3 uint8 BGR image, got shape {image.shape} {image.dtype}"
        )
    out: BGRImage = image.copy()
    height, width = int(image.shape[0]), int(image.shape[1])
    scale = min(height, width) / _REFERENCE_SIDE
    line = max(1, round(1.5 * scale))
    font_scale = 0.5 * scale
    font_thickness = max(1, round(scale))
    pad = max(2, line)
    for face in faces:
        box = face.box
        if not all(math.isfinite(v) for v in (box.left, box.top, box.right, box.bottom)):
            continue
        # right/bottom are exclusive edges; OpenCV's rectangle corners are inclusive.
        left = max(0, round(box.left))
        top = max(0, round(box.top))
        right = min(width - 1, round(box.right) - 1)
        bottom = min(height - 1, round(box.bottom) - 1)
        if right < left or bottom < top:
            continue
        color = face_color(face)
        cv2.rectangle(out, (left, top), (right, bottom), color, line)
        _draw_label(out, face_label(face), left, top, color, font_scale, font_thickness, pad)
    return out


def _draw_label(
    out: BGRImage,
    text: str,
    left: int,
    top: int,
    color: tuple[int, int, int],
    font_scale: float,
    thickness: int,
    pad: int,
) -> None:
    height, width = int(out.shape[0]), int(out.shape[1])
    (text_w, text_h), baseline = cv2.getTextSize(text, _FONT, font_scale, thickness)
    label_w = int(text_w) + 2 * pad
    label_h = int(text_h) + int(baseline) + 2 * pad
    x0 = max(0, min(left, width - label_w))
    y0 = top - label_h if top - label_h >= 0 else top  # above the box, else inside it
    y0 = max(0, min(y0, height - label_h))
    cv2.rectangle(out, (x0, y0), (x0 + label_w - 1, y0 + label_h - 1), color, cv2.FILLED)
    ink = (255, 255, 255) if color == UNKNOWN_COLOR else (0, 0, 0)
    origin = (x0 + pad, y0 + pad + int(text_h))
    cv2.putText(out, text, origin, _FONT, font_scale, ink, thickness, cv2.LINE_AA)


def encode_jpeg(image: BGRImage, *, quality: int = 80) -> bytes:
    """``image`` as JPEG bytes; quality 1-100 (80: ~40 KB for 640x360, artefacts hard to see)."""
    params: list[Any] = [cv2.IMWRITE_JPEG_QUALITY, int(quality)]
    ok, buffer = cv2.imencode(".jpg", image, params)
    if not ok:
        raise FacelensError(f"OpenCV could not encode a {image.shape} image as JPEG")
    return bytes(buffer)


class LiveView:
    """The newest frame and its faces, handed from the frame loop to any number of viewers.

    Thread-safe. ``publish`` is called by the frame loop; ``frames`` (one
    generator per viewer), ``latest_jpeg`` and ``close`` by viewers' threads.
    """

    def __init__(self, *, jpeg_quality: int = 80) -> None:
        if not 1 <= jpeg_quality <= 100:
            raise InvalidParameterException(f"jpeg_quality must be 1-100, got {jpeg_quality}")
        self._quality = jpeg_quality
        self._cond = threading.Condition()
        self._seq = 0  # bumped per publish; 0 = nothing published yet
        self._frame: Frame | None = None
        self._faces: tuple[TrackedFace, ...] = ()
        self._closed = False
        self._viewers = 0
        # One encoding per published frame, shared by every viewer (and snapshots).
        # Held while encoding: a second viewer of the same frame waits and reuses it.
        self._encode_lock = threading.Lock()
        self._encoded_seq = 0
        self._encoded: bytes | None = None

    def publish(self, frame: Frame, faces: Sequence[TrackedFace]) -> None:
        """Make ``frame`` the newest; O(1): no copy of the image, no drawing, no encoding."""
        faces = faces if isinstance(faces, tuple) else tuple(faces)
        with self._cond:
            self._frame = frame
            self._faces = faces
            self._seq += 1
            self._cond.notify_all()

    @property
    def viewers(self) -> int:
        """Generators from :meth:`frames` that are running now."""
        with self._cond:
            return self._viewers

    @property
    def closed(self) -> bool:
        with self._cond:
            return self._closed

    def close(self) -> None:
        """End every generator (each returns within its ``timeout``, usually at once)."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def latest_jpeg(self) -> bytes | None:
        """The newest frame annotated and JPEG-encoded; None before the first publish."""
        with self._cond:
            seq, frame, faces = self._seq, self._frame, self._faces
        if frame is None:
            return None
        return self._jpeg(seq, frame, faces)

    def frames(
        self, *, max_fps: float, stop: threading.Event | None = None, timeout: float = 1.0
    ) -> Generator[bytes, None, None]:
        """JPEG bytes of each newer frame, for one viewer, at most ``max_fps`` per second.

        The first is the newest frame already published (if any); later ones
        only frames published since the last one sent, so a frame is never sent
        twice and a slow viewer skips frames. Drawing and encoding happen in the
        thread that iterates. Ends when :meth:`close` is called or ``stop`` is
        set; ``stop`` is an Event this cannot be woken by, so it is checked at
        least every ``timeout`` seconds.
        """
        if not (math.isfinite(max_fps) and max_fps > 0):
            raise InvalidParameterException(f"max_fps must be > 0, got {max_fps}")
        if not (math.isfinite(timeout) and timeout > 0):
            raise InvalidParameterException(f"timeout must be > 0 seconds, got {timeout}")
        return self._stream(1.0 / max_fps, stop, timeout)

    def _stream(
        self, interval: float, stop: threading.Event | None, timeout: float
    ) -> Generator[bytes, None, None]:
        with self._cond:
            self._viewers += 1
        try:
            sent = 0  # seq of the last frame sent
            not_before = 0.0  # monotonic seconds: pacing to max_fps
            while True:
                with self._cond:
                    while True:
                        if self._closed or (stop is not None and stop.is_set()):
                            return
                        now = time.monotonic()
                        if self._seq != sent and now >= not_before:
                            break
                        wait = timeout if self._seq == sent else min(timeout, not_before - now)
                        self._cond.wait(wait)
                    seq, frame, faces = self._seq, self._frame, self._faces
                    not_before = now + interval
                if frame is None:  # unreachable: seq > 0 means a frame was published
                    return
                jpeg = self._jpeg(seq, frame, faces)
                sent = seq
                yield jpeg
        finally:
            with self._cond:
                self._viewers -= 1

    def _jpeg(self, seq: int, frame: Frame, faces: Sequence[TrackedFace]) -> bytes:
        with self._encode_lock:
            if self._encoded is not None and self._encoded_seq == seq:
                return self._encoded
            jpeg = encode_jpeg(annotate(frame.image, faces), quality=self._quality)
            self._encoded_seq, self._encoded = seq, jpeg
            return jpeg

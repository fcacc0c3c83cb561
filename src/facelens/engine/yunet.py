"""A face detector on OpenCV's YuNet (``cv2.FaceDetectorYN``), an optional ONNX model.

YuNet is small (about 230 kB) and fast on a CPU, and finds the five landmarks
Rekognition reports. The model file is not shipped with facelens; it lives in
``Settings.models_dir`` and is verified against a SHA-256 pinned here before
OpenCV parses it, because a model file is code-like input to a native parser
and an altered one must not be loaded silently.

Thread safety: OpenCV's detector keeps per-input-size state
(``setInputSize`` before each image), so calls on one instance are
serialized by a lock; for parallel detection use one instance per thread or
process.
"""

from __future__ import annotations

import hashlib
import math
import threading
from pathlib import Path
from typing import Any, Final

import cv2
import numpy as np
import numpy.typing as npt

from facelens.engine.types import DetectedFace, Landmarks, Point, RGBImage
from facelens.errors import ConfigurationError, EngineError, InvalidParameterException
from facelens.values.boxes import PixelBox

__all__ = ["KNOWN_MODELS", "SHA256SUMS_NAME", "YuNetDetector", "find_model"]

KNOWN_MODELS: Final[dict[str, str]] = {
    "face_detection_yunet_2023mar.onnx": (
        "8f2383e4dd3cfbb4553ea8718107fc0423210dc964f9f4280604804ed2552fa4"
    ),
}
"""YuNet model file names facelens accepts, with the SHA-256 (hex) each must have."""

SHA256SUMS_NAME: Final = "SHA256SUMS"
"""A ``sha256sum``-format file that, when next to the model, must agree with it too."""

_ROW_LENGTH: Final = 15
"""Columns per face in YuNet's output: box (4), five landmarks (10), score (1)."""


def find_model(models_dir: Path | None) -> Path | None:
    """The path of a known YuNet model file in ``models_dir``, or None if there is none."""
    if models_dir is None:
        return None
    for name in KNOWN_MODELS:
        candidate = models_dir / name
        if candidate.is_file():
            return candidate
    return None


class YuNetDetector:
    """Finds faces with YuNet; implements :class:`facelens.engine.protocol.Detector`.

    model_path: the ONNX file; its name must be one of :data:`KNOWN_MODELS`.
    score_threshold: YuNet's own score (0-1) below which faces are dropped.
    nms_threshold: boxes overlapping a better one by more than this IoU (0-1) are dropped.
    top_k: at most this many candidate boxes enter non-maximum suppression.

    Nothing is read in the constructor; :meth:`prepare` (called by :meth:`detect`
    if needed) verifies and loads the model. Not thread-safe: see the module doc.
    """

    name: str = "yunet"

    def __init__(
        self,
        model_path: Path,
        *,
        score_threshold: float = 0.6,
        nms_threshold: float = 0.3,
        top_k: int = 5000,
    ) -> None:
        if not 0.0 <= score_threshold <= 1.0:
            raise InvalidParameterException(
                f"score_threshold must be within 0-1, not {score_threshold}."
            )
        if not 0.0 <= nms_threshold <= 1.0:
            raise InvalidParameterException(
                f"nms_threshold must be within 0-1, not {nms_threshold}."
            )
        if top_k < 1:
            raise InvalidParameterException(f"top_k must be at least 1, not {top_k}.")
        self.model_path = Path(model_path)
        self.score_threshold = float(score_threshold)
        self.nms_threshold = float(nms_threshold)
        self.top_k = int(top_k)
        self._detector: Any = None  # cv2.FaceDetectorYN once prepared (cv2 is untyped)
        self._lock = threading.Lock()

    def prepare(self) -> None:
        """Verifies the model file's SHA-256 and loads it (once; later calls do nothing).

        Raises ConfigurationError for a missing file, an unknown file name, a
        hash that differs from the pinned one or from ``SHA256SUMS``, or a file
        OpenCV cannot load.
        """
        if self._detector is not None:
            return
        model = _read_verified_model(self.model_path)
        # OpenCV's DNN warns on stderr that the new graph engine ignores preferable targets
        # ("setPreferableTarget ... not supported"): harmless (we ask for the CPU default),
        # but users read it as an error. Silence warnings for this call only; errors still
        # surface as cv2.error below.
        level = cv2.utils.logging.getLogLevel()
        cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)
        try:
            self._detector = cv2.FaceDetectorYN.create(
                "onnx",
                np.frombuffer(model, dtype=np.uint8),
                np.empty(0, dtype=np.uint8),
                (320, 320),  # replaced per image by setInputSize
                self.score_threshold,
                self.nms_threshold,
                self.top_k,
            )
        except cv2.error as exc:
            raise ConfigurationError(
                f"OpenCV could not load the YuNet model {self.model_path}: {exc}"
            ) from exc
        finally:
            cv2.utils.logging.setLogLevel(level)

    def detect(self, image: RGBImage, *, largest_only: bool = False) -> list[DetectedFace]:
        """Faces in ``image`` (H x W x 3 uint8 RGB), in its pixels, largest box first.

        ``largest_only`` changes nothing: YuNet sees every scale in one pass.

        Boxes are clipped to the image; landmarks are left as YuNet placed them
        (they may lie outside the image for a face cut by its edge). ``eye_left``
        and ``mouth_left`` are on the image's left: YuNet names them from the
        subject's view, so its "right eye" is our ``eye_left``. confidence is
        YuNet's score (0-1) times 100.
        """
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise InvalidParameterException(
                f"Expected an H x W x 3 uint8 RGB image, got shape {image.shape} "
                f"and dtype {image.dtype}."
            )
        height, width = int(image.shape[0]), int(image.shape[1])
        if width == 0 or height == 0:
            return []
        self.prepare()
        try:
            bgr = cv2.cvtColor(np.ascontiguousarray(image), cv2.COLOR_RGB2BGR)
            with self._lock:
                self._detector.setInputSize((width, height))
                _, rows = self._detector.detect(bgr)
        except cv2.error as exc:
            raise EngineError(f"YuNet failed on a {width} x {height} image: {exc}") from exc
        if rows is None:
            return []
        faces = [
            face
            for face in (
                _to_face(row, width, height)
                for row in np.asarray(rows, dtype=np.float64).reshape(-1, _ROW_LENGTH)
            )
            if face is not None
        ]
        faces.sort(key=lambda f: (f.box.area, f.confidence), reverse=True)
        return faces


def _to_face(row: npt.NDArray[np.float64], width: int, height: int) -> DetectedFace | None:
    """One YuNet output row as a DetectedFace, or None if its box misses the image."""
    values = [float(v) for v in row]
    if not all(math.isfinite(v) for v in values):
        return None
    x, y, w, h = values[0:4]
    box = PixelBox(
        left=min(max(x, 0.0), float(width)),
        top=min(max(y, 0.0), float(height)),
        right=min(max(x + w, 0.0), float(width)),
        bottom=min(max(y + h, 0.0), float(height)),
    )
    if box.width <= 0.0 or box.height <= 0.0:
        return None
    landmarks = Landmarks(
        eye_left=Point(values[4], values[5]),  # YuNet: subject's right eye
        eye_right=Point(values[6], values[7]),  # YuNet: subject's left eye
        nose=Point(values[8], values[9]),
        mouth_left=Point(values[10], values[11]),  # YuNet: right mouth corner
        mouth_right=Point(values[12], values[13]),  # YuNet: left mouth corner
    )
    confidence = min(max(values[14] * 100.0, 0.0), 100.0)
    return DetectedFace(box=box, landmarks=landmarks, confidence=confidence)


def _read_verified_model(path: Path) -> bytes:
    """The model file's bytes, once its SHA-256 matches every pin we have.

    The bytes that were hashed are the bytes handed to OpenCV, so the file
    cannot change between the check and the load.
    """
    expected = KNOWN_MODELS.get(path.name)
    if expected is None:
        raise ConfigurationError(
            f"Unknown YuNet model file {path}: expected one of {', '.join(sorted(KNOWN_MODELS))}."
        )
    try:
        data = path.read_bytes()
    except FileNotFoundError as exc:
        raise ConfigurationError(
            f"The YuNet model file {path} does not exist; expected {path.name} "
            f"with SHA-256 {expected}."
        ) from exc
    except OSError as exc:
        raise ConfigurationError(
            f"Cannot read the YuNet model file {path}: {exc.strerror or exc}."
        ) from exc
    actual = hashlib.sha256(data).hexdigest()
    if actual != expected:
        raise ConfigurationError(
            f"The YuNet model file {path} has SHA-256 {actual}; expected {expected} "
            "(the file is altered, truncated or a different version)."
        )
    sums_path = path.with_name(SHA256SUMS_NAME)
    listed = _listed_hash(sums_path, path.name)
    if listed is not None and listed != actual:
        raise ConfigurationError(
            f"The YuNet model file {path} has SHA-256 {actual}, but {sums_path} expects {listed}."
        )
    return data


def _listed_hash(sums_path: Path, file_name: str) -> str | None:
    """The lower-case hex hash ``sums_path`` (sha256sum format) lists for ``file_name``.

    None when there is no such file or it has no line for ``file_name``.
    """
    try:
        text = sums_path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigurationError(f"Cannot read the checksum file {sums_path}: {exc}.") from exc
    for line in text.splitlines():
        parts = line.strip().split(maxsplit=1)
        if len(parts) != 2:
            continue
        digest, listed_name = parts
        listed_name = listed_name.removeprefix("*")  # sha256sum's binary-mode marker
        if Path(listed_name).name == file_name:
            return digest.lower()
    return None

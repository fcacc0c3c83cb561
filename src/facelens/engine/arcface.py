"""An embedder for ArcFace-style ONNX models: OpenCV Zoo's SFace, InsightFace's ArcFace.

These networks share one input convention: a square face chip (112 px for
both families) aligned by a similarity transform of five landmarks onto the
ArcFace template (:data:`ARCFACE_TEMPLATE`), fed as a float NCHW tensor,
with one embedding row out. They differ in how pixels are normalised:

* SFace (``face_recognition_sface_2021dec.onnx``): OpenCV's
  ``FaceRecognizerSF::feature`` calls ``blobFromImage(aligned, 1.0,
  Size(112, 112), Scalar(0, 0, 0), swapRB=true)`` on OpenCV's BGR image, so
  the network sees RGB, 0-255, no mean, no scale: channel order "rgb",
  mean 0, std 1 (the defaults).
* InsightFace's ONNX ArcFace models (``w600k_r50.onnx``, glint360k ...):
  ``ArcFaceONNX.get_feat`` uses ``blobFromImages(imgs, 1/127.5, size,
  (127.5, 127.5, 127.5), swapRB=True)``: RGB, (x - 127.5) / 127.5, i.e.
  mean 127.5, std 127.5. (Old MXNet exports that start with their own
  Sub/Mul nodes take mean 0, std 1 instead.)

Both references warp with bilinear sampling onto a black border, so this
module does too (dlib's chips repeat the edge instead: that is what dlib
was trained on, not these).

Input size, batch dimension and output dimension are read from the model
when it is loaded (``prepare``): a model whose batch dimension is a fixed
number (1 in some exports) is run in slices of that size.

``model_version`` names the file, the first 12 hex digits of its SHA-256
and the normalisation, so vectors of two different files, or of one file
fed two ways, never share a collection (collections refuse another
``model_version``; ``flip`` does not change the space and is not in it).

Thread safety: ONNX Runtime's ``run`` may be called from several threads on
one session (it releases the GIL), so no lock is held around ``embed``;
``prepare`` is serialized.
"""

from __future__ import annotations

import hashlib
import math
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import cv2
import numpy as np
import numpy.typing as npt

from facelens.engine.alignment import embed_chips, similarity_transform
from facelens.engine.types import DetectedFace, RGBImage
from facelens.errors import ConfigurationError, EngineError

__all__ = [
    "ARCFACE_TEMPLATE",
    "CHANNEL_ORDERS",
    "DEFAULT_INPUT_SIZE",
    "MODEL_SETTING",
    "ArcFaceEmbedder",
    "Normalisation",
    "arcface_template",
    "find_model_file",
]

DEFAULT_INPUT_SIZE: Final = 112
"""Chip side in pixels when the model does not fix it (both SFace and ArcFace take 112)."""

ARCFACE_TEMPLATE: Final = np.array(
    [
        [38.2946, 51.6963],
        [73.5318, 51.5014],
        [56.0252, 71.7366],
        [41.5493, 92.3655],
        [70.7299, 92.2041],
    ],
    dtype=np.float64,
)
"""eyeLeft, eyeRight, nose, mouthLeft, mouthRight in a 112 px chip (image left first).

The template InsightFace trained ArcFace on (``face_align.arcface_dst``) and
OpenCV's ``FaceRecognizerSF::alignCrop`` uses for SFace.
"""

CHANNEL_ORDERS: Final = ("rgb", "bgr")
"""Channel orders a model may expect; chips are RGB, "bgr" reverses them."""

MODEL_SETTING: Final = "arcface_model (FACELENS_ARCFACE_MODEL)"
"""How error messages name the setting that chooses the file."""

_PULL_HINT: Final = "`facelens models pull sface` downloads OpenCV Zoo's SFace"

_INPUT_TYPES: Final[dict[str, type[np.floating[Any]]]] = {
    "tensor(float)": np.float32,
    "tensor(float16)": np.float16,
}
"""ONNX input element types this embedder can feed, with the numpy type it sends."""

_HASH_CHUNK: Final = 1 << 20
"""Bytes read per step while hashing a model file (1 MiB)."""


def arcface_template(size: int) -> npt.NDArray[np.float64]:
    """The five landmark positions in a ``size`` px chip, as InsightFace places them.

    InsightFace's ``estimate_norm``: a multiple of 112 scales the 112 px
    template; a multiple of 128 scales it by size/128 and moves it 8 * size/128
    px right (a wider crop around the same face, centred); any other size is
    scaled from 112 (no published convention to follow).
    """
    if size % 112 != 0 and size % 128 == 0:
        ratio = size / 128.0
        shift = np.array([8.0 * ratio, 0.0])
    else:
        ratio = size / 112.0
        shift = np.zeros(2)
    template: npt.NDArray[np.float64] = ARCFACE_TEMPLATE * ratio + shift
    return template


@dataclass(frozen=True)
class Normalisation:
    """How a chip's 0-255 pixels become the network's input.

    channel_order: "rgb" or "bgr", the order the network takes channels in.
    mean, std: per channel, in that order; the network sees (pixel - mean) / std.
    """

    channel_order: str = "rgb"
    mean: tuple[float, float, float] = (0.0, 0.0, 0.0)
    std: tuple[float, float, float] = (1.0, 1.0, 1.0)

    @classmethod
    def of(
        cls,
        channel_order: str = "rgb",
        mean: float | Sequence[float] = 0.0,
        std: float | Sequence[float] = 1.0,
    ) -> Normalisation:
        """A checked normalisation; one number for ``mean`` or ``std`` applies to all channels.

        ConfigurationError for an unknown channel order, a mean that is not
        finite, or a std that is not finite and positive.
        """
        order = channel_order.lower()
        if order not in CHANNEL_ORDERS:
            raise ConfigurationError(
                f"arcface_channel_order must be one of {', '.join(CHANNEL_ORDERS)}, "
                f"not {channel_order!r}"
            )
        means = _three("arcface_mean", mean)
        stds = _three("arcface_std", std)
        if any(value <= 0.0 for value in stds):
            raise ConfigurationError(f"arcface_std must be positive, not {stds}")
        return cls(order, means, stds)

    def label(self) -> str:
        """A short, exact description for ``model_version``: ``rgb:127.5:127.5``."""
        return f"{self.channel_order}:{_numbers(self.mean)}:{_numbers(self.std)}"


def _three(name: str, value: float | Sequence[float]) -> tuple[float, float, float]:
    values = [float(value)] * 3 if isinstance(value, int | float) else [float(v) for v in value]
    if len(values) != 3:
        raise ConfigurationError(f"{name} takes one number or three (one a channel), not {value}")
    if not all(math.isfinite(v) for v in values):
        raise ConfigurationError(f"{name} must be finite, not {value}")
    return values[0], values[1], values[2]


def _numbers(values: tuple[float, float, float]) -> str:
    """One number when the channels agree, else three: shortest exact decimal (``repr``)."""

    def one(value: float) -> str:
        text = repr(value)
        return text[:-2] if text.endswith(".0") else text

    if values[0] == values[1] == values[2]:
        return one(values[0])
    return ",".join(one(v) for v in values)


def find_model_file(name: str | Path, directories: Sequence[Path]) -> Path:
    """The model file ``name`` names: an absolute path, or a path in one of ``directories``.

    The first directory holding it wins. ConfigurationError naming the setting,
    the places looked in and how to fetch SFace when there is none.
    """
    path = Path(name).expanduser()
    candidates = [path] if path.is_absolute() else [directory / path for directory in directories]
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    looked = ", ".join(str(c) for c in candidates) or "no models directory"
    raise ConfigurationError(
        f"embedder 'arcface' needs the model file {str(name)!r} (setting {MODEL_SETTING}); "
        f"there is no such file (looked in {looked}). {_PULL_HINT} into the models directory "
        "(FACELENS_MODELS_DIR, or <home>/models); another ArcFace-style ONNX file can be named "
        "by its absolute path"
    )


class ArcFaceEmbedder:
    """Embedder protocol on an ArcFace-style ONNX model through ONNX Runtime (CPU).

    model_path: the ONNX file (see :func:`find_model_file`); hashed here,
        because ``model_version`` carries its SHA-256, and loaded by ``prepare``.
    flip: also embed each mirrored chip and average (as the other embedders).
    threads: ONNX Runtime intra-op threads per run; 1 keeps a process on one core.
    normalisation: how pixels are fed (default: SFace's, RGB 0-255).

    ``chip_size`` and ``dimension`` are the model's, known once ``prepare`` has
    run (``align`` and ``embed`` call it); before that they are 112 and 0.
    """

    def __init__(
        self,
        model_path: Path,
        *,
        flip: bool = True,
        threads: int = 1,
        normalisation: Normalisation | None = None,
    ) -> None:
        if threads < 1:
            raise ConfigurationError(f"the arcface embedder needs at least 1 thread, not {threads}")
        self.model_path = model_path
        self.flip = flip
        self.threads = threads
        self.normalisation = normalisation or Normalisation()
        self.sha256 = _file_sha256(model_path)
        _check_catalogue(model_path, self.sha256)
        self.model_version = (
            f"arcface:{model_path.name}:{self.sha256[:12]}:{self.normalisation.label()}"
        )
        self.chip_size = DEFAULT_INPUT_SIZE
        self.dimension = 0
        self._template = arcface_template(DEFAULT_INPUT_SIZE)
        self._input_name = ""
        self._output_name = ""
        self._input_type: type[np.floating[Any]] = np.float32
        self._batch: int | None = None
        self._session: Any = None
        self._lock = threading.Lock()

    def prepare(self) -> None:
        """Loads the model and reads its input size, batch size and output dimension.

        Idempotent and thread-safe. ConfigurationError when the file cannot be
        read, changed since it was hashed, is not an ONNX model, takes no
        Nx3xSxS input, or gives no 2-D output.
        """
        if self._session is not None:
            return
        with self._lock:
            if self._session is not None:
                return
            try:
                import onnxruntime
            except ImportError as exc:  # pragma: no cover - a dependency
                raise ConfigurationError(f"the arcface embedder needs onnxruntime: {exc}") from exc
            data = _read(self.model_path)
            if hashlib.sha256(data).hexdigest() != self.sha256:
                raise ConfigurationError(
                    f"the model file {self.model_path} changed after this engine was built "
                    f"(its model_version {self.model_version} names other bytes): restart"
                )
            options = onnxruntime.SessionOptions()
            options.intra_op_num_threads = self.threads
            options.inter_op_num_threads = 1
            options.execution_mode = onnxruntime.ExecutionMode.ORT_SEQUENTIAL
            options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
            options.log_severity_level = 3  # errors only: no start-up chatter on stderr
            try:
                session = onnxruntime.InferenceSession(
                    data, sess_options=options, providers=["CPUExecutionProvider"]
                )
            except Exception as exc:  # ONNX Runtime's errors derive from Exception only
                raise ConfigurationError(
                    f"{self.model_path} (setting {MODEL_SETTING}) is not an ONNX model "
                    f"ONNX Runtime can load: {exc}"
                ) from exc
            self._read_input(session)
            self._read_output(session)
            self._session = session

    def _read_input(self, session: Any) -> None:
        inputs = session.get_inputs()
        if len(inputs) != 1:
            raise self._shape_error(f"it takes {len(inputs)} inputs, not one image batch")
        shape = list(inputs[0].shape)
        if len(shape) != 4 or shape[1] != 3:
            raise self._shape_error(f"its input has shape {shape}, not N x 3 x H x W")
        height, width = (d if isinstance(d, int) and d > 0 else None for d in shape[2:])
        size = height or width or DEFAULT_INPUT_SIZE
        if (height or size) != size or (width or size) != size:
            raise self._shape_error(f"its input is {height} x {width} pixels, not square")
        input_type = _INPUT_TYPES.get(inputs[0].type)
        if input_type is None:
            known = ", ".join(_INPUT_TYPES)
            raise self._shape_error(f"its input is {inputs[0].type}, not one of {known}")
        batch = shape[0]
        self._batch = batch if isinstance(batch, int) and batch > 0 else None
        self._input_name = inputs[0].name
        self._input_type = input_type
        self.chip_size = size
        self._template = arcface_template(size)

    def _read_output(self, session: Any) -> None:
        output = session.get_outputs()[0]
        shape = list(output.shape)
        if len(shape) != 2:
            raise self._shape_error(f"its (first) output has shape {shape}, not N x dimension")
        self._output_name = output.name
        dimension = shape[1]
        if not (isinstance(dimension, int) and dimension > 0):
            # A symbolic width: one run on a black chip says what it is.
            probe = np.zeros(
                (self._batch or 1, 3, self.chip_size, self.chip_size), dtype=self._input_type
            )
            try:
                result = np.asarray(session.run([output.name], {self._input_name: probe})[0])
            except Exception as exc:
                raise self._shape_error(f"it cannot run on a black chip ({exc})") from exc
            if result.ndim != 2:
                raise self._shape_error(f"its output has shape {result.shape}, not N x dimension")
            dimension = int(result.shape[1])
        self.dimension = dimension

    def _shape_error(self, why: str) -> ConfigurationError:
        return ConfigurationError(
            f"{self.model_path} (setting {MODEL_SETTING}) is not an ArcFace-style "
            f"embedding model: {why}"
        )

    def align(self, image: RGBImage, face: DetectedFace) -> RGBImage:
        """The chip: the five landmarks moved onto the model's template, black outside the image."""
        self.prepare()
        lm = face.landmarks
        src = np.array(
            [
                (p.x, p.y)
                for p in (lm.eye_left, lm.eye_right, lm.nose, lm.mouth_left, lm.mouth_right)
            ],
            dtype=np.float64,
        )
        matrix = similarity_transform(src, self._template)
        chip = cv2.warpAffine(
            image,
            matrix,
            (self.chip_size, self.chip_size),
            flags=cv2.INTER_LINEAR,
            borderMode=cv2.BORDER_CONSTANT,
            borderValue=(0, 0, 0),
        )
        return np.ascontiguousarray(chip, dtype=np.uint8)

    def descriptors(self, chips: Sequence[RGBImage]) -> npt.NDArray[np.float32]:
        """The network's raw outputs (not normalised, no mirror), one row per chip."""
        self.prepare()
        if not chips:
            return np.zeros((0, self.dimension), dtype=np.float32)
        batch = self._tensor(chips)
        step = self._batch or len(batch)
        rows = []
        for start in range(0, len(batch), step):
            part = batch[start : start + step]
            if len(part) < step:
                # A fixed batch size: the last slice is padded with black chips.
                padding = np.zeros((step - len(part), *part.shape[1:]), dtype=part.dtype)
                part = np.concatenate([part, padding])
            rows.append(self._run(part)[: min(step, len(batch) - start)])
        raw: npt.NDArray[np.float32] = np.concatenate(rows).astype(np.float32, copy=False)
        return raw

    def embed(self, chips: Sequence[RGBImage]) -> npt.NDArray[np.float32]:
        self.prepare()
        return embed_chips(self.descriptors, chips, flip=self.flip, dimension=self.dimension)

    def embed_faces(
        self, image: RGBImage, faces: Sequence[DetectedFace]
    ) -> npt.NDArray[np.float32]:
        """One view, the aligned chip (and its mirror): these models know no 68-point chip."""
        return self.embed([self.align(image, face) for face in faces])

    def _tensor(self, chips: Sequence[RGBImage]) -> npt.NDArray[np.floating[Any]]:
        """The N x 3 x S x S network input: channels reordered, (pixel - mean) / std."""
        expected = (self.chip_size, self.chip_size, 3)
        for chip in chips:
            if chip.shape != expected or chip.dtype != np.uint8:
                raise EngineError(
                    f"chips must be {self.chip_size}x{self.chip_size} RGB uint8 (from align), "
                    f"not {chip.shape} {chip.dtype}"
                )
        pixels = np.stack(chips)
        if self.normalisation.channel_order == "bgr":
            pixels = pixels[..., ::-1]
        # One strided copy into the NCHW float buffer, then in-place arithmetic:
        # about 50 us a 112 px chip, against 650 us for the same with temporaries.
        tensor = np.empty((len(chips), 3, self.chip_size, self.chip_size), dtype=np.float32)
        np.copyto(tensor, pixels.transpose(0, 3, 1, 2))
        tensor -= np.asarray(self.normalisation.mean, dtype=np.float32)[:, None, None]
        tensor /= np.asarray(self.normalisation.std, dtype=np.float32)[:, None, None]
        return tensor if self._input_type is np.float32 else tensor.astype(self._input_type)

    def _run(self, batch: npt.NDArray[np.floating[Any]]) -> npt.NDArray[np.float32]:
        try:
            outputs = self._session.run([self._output_name], {self._input_name: batch})
        except MemoryError:
            raise
        except Exception as exc:
            raise EngineError(f"ONNX Runtime failed to embed {len(batch)} chip(s): {exc}") from exc
        raw = np.asarray(outputs[0], dtype=np.float32)
        if raw.shape != (len(batch), self.dimension):
            raise EngineError(
                f"{self.model_path.name} gave an output of shape {raw.shape} for "
                f"{len(batch)} chip(s), not ({len(batch)}, {self.dimension})"
            )
        return raw


def _file_sha256(path: Path) -> str:
    """The file's SHA-256, read in chunks (SFace's 38.7 MB in about 30 ms when cached)."""
    hasher = hashlib.sha256()
    try:
        with path.open("rb") as file:
            while chunk := file.read(_HASH_CHUNK):
                hasher.update(chunk)
    except FileNotFoundError:
        raise ConfigurationError(
            f"the arcface model file {path} (setting {MODEL_SETTING}) does not exist; {_PULL_HINT}"
        ) from None
    except OSError as exc:
        raise ConfigurationError(
            f"cannot read the arcface model file {path}: {exc.strerror or exc}"
        ) from exc
    return hasher.hexdigest()


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise ConfigurationError(
            f"cannot read the arcface model file {path}: {exc.strerror or exc}"
        ) from exc


def _check_catalogue(path: Path, sha256: str) -> None:
    """A file named like a catalogued embedder must be its bytes (a damaged copy otherwise).

    ``facelens models pull`` only ever puts verified bytes under the name, so
    other bytes there are a truncated copy or another version: refused with
    the fix, rather than indexed into a collection under a misleading name.
    """
    from facelens.engine.model_files import CATALOGUE

    for entry in CATALOGUE.values():
        if entry.kind == "embedder" and entry.file_name == path.name and entry.sha256 != sha256:
            raise ConfigurationError(
                f"{path} has SHA-256 {sha256}, not {entry.sha256} as {entry.file_name} must: "
                f"the file is damaged or another version; `facelens models pull {entry.name}` "
                "fetches the right one (or rename your own model)"
            )

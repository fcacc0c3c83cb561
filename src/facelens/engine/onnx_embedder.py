"""dlib's face recognition ResNet, same weights, run by ONNX Runtime: about 10x dlib's speed.

The network is converted from dlib's own model file (``face_recognition_models``)
on first use (:mod:`facelens.engine.onnx_convert`, cached on disk), so nothing
is downloaded and the vectors are dlib's: on the test photos the raw
descriptors differ from ``dlib.face_recognition_model_v1.compute_face_descriptor``
by under 1e-6 (the tests allow 1e-4). Hence the same ``model_version``:
collections built by either embedder are one space and stay compatible.

Views (``views``, :mod:`facelens.engine.views`): "68" (the default) embeds
each face's 68-point chip, dlib's own ("dlib-resnet-v1-chip68", 99.3% on the
LFW development pairs); "five+68" that and the five-point chip combined
("dlib-resnet-v1+68", 99.2%); "five" the five-point chip only
("dlib-resnet-v1", 98.9%).

Speed (one core, one ORT thread, 150 px chips): about 8 ms a chip alone and
6 ms a chip in batches of 8, against dlib's 80-90 ms. All chips of a call
(all views' and, with ``flip``, their mirrors) go through the network in one run.

Threads: ``threads`` is ONNX Runtime's intra-op pool for one run. The
default 1 keeps a process on one core, so that more throughput comes from
more processes (as with dlib); more threads cut one call's latency on an
otherwise idle machine. ONNX Runtime's ``run`` may be called from several
threads at once on one session, and it releases the GIL while it computes,
so unlike ``DlibEmbedder`` this class takes no lock around ``embed``.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from facelens.engine.alignment import CHIP_SIZE, align_chip, embed_chips
from facelens.engine.onnx_convert import INPUT_NAME, OUTPUT_NAME, load_or_convert
from facelens.engine.types import DetectedFace, RGBImage
from facelens.engine.views import (
    USES_68,
    VIEWS_68,
    Predictor68,
    check_views,
    dlib_model_version,
    embed_views,
    shared_predictor,
)
from facelens.errors import ConfigurationError, EngineError

__all__ = ["OnnxEmbedder", "dlib_model_path"]


def dlib_model_path() -> Path:
    """Where ``face_recognition_models`` keeps ``dlib_face_recognition_resnet_model_v1.dat``."""
    try:
        import face_recognition_models
    except ImportError as exc:  # pragma: no cover - a dependency
        raise ConfigurationError(f"the onnx embedder needs face_recognition_models: {exc}") from exc
    return Path(face_recognition_models.face_recognition_model_location())


class OnnxEmbedder:
    """Embedder protocol on dlib's ResNet through ONNX Runtime (CPU).

    flip: also embed each mirrored chip and average (as ``DlibEmbedder``).
    views: "68", "five+68" or "five" (see the module doc); it names ``model_version``.
    threads: ONNX Runtime intra-op threads per run (see the module doc).
    cache_dir: where the converted model is kept (``<home>/models`` when built
    from settings); None converts in memory on every ``prepare``.
    model_path: the dlib .dat file (default: the one in face_recognition_models).
    """

    dimension = 128
    chip_size = CHIP_SIZE

    def __init__(
        self,
        *,
        flip: bool = True,
        views: str = VIEWS_68,
        threads: int = 1,
        cache_dir: Path | None = None,
        model_path: Path | None = None,
    ) -> None:
        if threads < 1:
            raise ConfigurationError(f"the onnx embedder needs at least 1 thread, not {threads}")
        self.flip = flip
        self.views = check_views(views)
        self.model_version = dlib_model_version(views)
        self._predictor: Predictor68 | None = shared_predictor() if views in USES_68 else None
        self.threads = threads
        self.cache_dir = cache_dir
        self.model_path = model_path
        self._session: Any = None
        self._lock = threading.Lock()

    def prepare(self) -> None:
        """Converts (or loads the cached conversion of) the model and opens the session.

        Idempotent and thread-safe. ConfigurationError if the model file is
        missing or is not dlib's face recognition ResNet. Loads the 68-point
        predictor too when ``views`` needs it.
        """
        if self._predictor is not None:
            self._predictor.prepare()
        with self._lock:
            if self._session is not None:
                return
            try:
                import onnxruntime
            except ImportError as exc:  # pragma: no cover - a dependency
                raise ConfigurationError(f"the onnx embedder needs onnxruntime: {exc}") from exc
            source = self.model_path or dlib_model_path()
            model = load_or_convert(source, self.cache_dir)
            options = onnxruntime.SessionOptions()
            options.intra_op_num_threads = self.threads
            options.inter_op_num_threads = 1
            options.execution_mode = onnxruntime.ExecutionMode.ORT_SEQUENTIAL
            options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
            options.log_severity_level = 3  # errors only: no start-up chatter on stderr
            try:
                self._session = onnxruntime.InferenceSession(
                    model, sess_options=options, providers=["CPUExecutionProvider"]
                )
            except Exception as exc:
                raise ConfigurationError(
                    f"ONNX Runtime cannot load the model converted from {source}: {exc}"
                ) from exc

    def align(self, image: RGBImage, face: DetectedFace) -> RGBImage:
        return align_chip(image, face)

    def descriptors(self, chips: Sequence[RGBImage]) -> npt.NDArray[np.float32]:
        """The network's raw 128-d outputs (not normalised, no mirror), one row per chip.

        What ``dlib.face_recognition_model_v1.compute_face_descriptor`` returns;
        for comparisons and diagnostics. ``embed`` is what collections use.
        """
        self.prepare()
        if not chips:
            return np.zeros((0, self.dimension), dtype=np.float32)
        batch = self._stack(chips)
        try:
            outputs = self._session.run([OUTPUT_NAME], {INPUT_NAME: batch})
        except MemoryError:
            raise
        except Exception as exc:
            raise EngineError(f"ONNX Runtime failed to embed {len(batch)} chip(s): {exc}") from exc
        raw: npt.NDArray[np.float32] = np.asarray(outputs[0], dtype=np.float32)
        return raw

    def embed(self, chips: Sequence[RGBImage]) -> npt.NDArray[np.float32]:
        """Unit rows of five-point ``chips`` alone (benches, tests): not what collections hold
        with views "five+68" (``embed_faces`` is)."""
        return embed_chips(self.descriptors, chips, flip=self.flip, dimension=self.dimension)

    def embed_faces(
        self, image: RGBImage, faces: Sequence[DetectedFace]
    ) -> npt.NDArray[np.float32]:
        return embed_views(
            self.descriptors,
            image,
            faces,
            views=self.views,
            flip=self.flip,
            dimension=self.dimension,
            predictor=self._predictor,
        )

    def _stack(self, chips: Sequence[RGBImage]) -> npt.NDArray[np.uint8]:
        expected = (CHIP_SIZE, CHIP_SIZE, 3)
        for chip in chips:
            if chip.shape != expected or chip.dtype != np.uint8:
                raise EngineError(
                    f"chips must be {CHIP_SIZE}x{CHIP_SIZE} RGB uint8 (from align), "
                    f"not {chip.shape} {chip.dtype}"
                )
        return np.ascontiguousarray(np.stack(chips))

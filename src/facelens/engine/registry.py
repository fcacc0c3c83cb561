"""Builds the configured face engine by name; an unknown name is an error, never a fallback."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from facelens.config import Settings
from facelens.engine.dlib_embedder import DlibEmbedder
from facelens.engine.hog import HogDetector
from facelens.engine.onnx_embedder import OnnxEmbedder
from facelens.engine.pipeline import PipelineEngine
from facelens.engine.protocol import Detector, Embedder, FaceEngine
from facelens.errors import ConfigurationError


def _hog(settings: Settings) -> Detector:
    return HogDetector()


def model_directories(settings: Settings) -> tuple[Path, ...]:
    """Where optional model files are looked for, in order: ``models_dir``, then ``<home>/models``.

    ``facelens models pull`` writes to ``models_directory(settings)``: ``models_dir``
    when set, else ``<home>/models``. The home's directory is also searched
    when ``models_dir`` is set, so a model pulled before it was set is found.
    """
    from facelens.engine.model_files import models_directory

    first = models_directory(settings)
    home = settings.home / "models"
    return (first,) if first == home else (first, home)


def _find_yunet(settings: Settings) -> Path | None:
    from facelens.engine.yunet import find_model

    for directory in model_directories(settings):
        path = find_model(directory)
        if path is not None:
            return path
    return None


def _yunet(settings: Settings) -> Detector:
    from facelens.engine.yunet import YuNetDetector

    path = _find_yunet(settings)
    if path is None:
        looked = ", ".join(str(d) for d in model_directories(settings))
        raise ConfigurationError(
            "detector 'yunet' needs face_detection_yunet_2023mar.onnx in the models directory "
            f"(FACELENS_MODELS_DIR, else <home>/models; looked in {looked}): "
            "`facelens models pull yunet` fetches it"
        )
    return YuNetDetector(path)


DETECTORS: dict[str, Callable[[Settings], Detector]] = {"hog": _hog, "yunet": _yunet}


def _onnx_embedder(settings: Settings) -> Embedder:
    return OnnxEmbedder(
        flip=settings.embed_flip,
        views=settings.embed_views,
        threads=settings.embed_threads,
        cache_dir=settings.home / "models",
    )


def _dlib_embedder(settings: Settings) -> Embedder:
    return DlibEmbedder(flip=settings.embed_flip, views=settings.embed_views)


def _arcface_embedder(settings: Settings) -> Embedder:
    from facelens.engine.arcface import ArcFaceEmbedder, Normalisation, find_model_file

    normalisation = Normalisation.of(
        settings.arcface_channel_order, settings.arcface_mean, settings.arcface_std
    )
    return ArcFaceEmbedder(
        find_model_file(settings.arcface_model, model_directories(settings)),
        flip=settings.embed_flip,
        threads=settings.embed_threads,
        normalisation=normalisation,
    )


EMBEDDERS: dict[str, Callable[[Settings], Embedder]] = {
    "onnx": _onnx_embedder,
    "dlib": _dlib_embedder,
    "arcface": _arcface_embedder,
}
"""onnx and dlib run dlib's ResNet with its weights (model_version per embed_views:
facelens.engine.views.dlib_model_version): same vectors. arcface runs an ArcFace-style ONNX
file (SFace, InsightFace): a space of its own, named by the file's hash
(facelens.engine.arcface)."""


def _dlib(settings: Settings) -> FaceEngine:
    return PipelineEngine(
        build_detector(settings),
        build_embedder(settings),
        detect_max_side=settings.detect_max_side,
    )


ENGINES: dict[str, Callable[[Settings], FaceEngine]] = {"dlib": _dlib}

_T = TypeVar("_T")


def _pick(table: dict[str, _T], kind: str, name: str) -> _T:
    try:
        return table[name]
    except KeyError:
        known = ", ".join(sorted(table))
        raise ConfigurationError(f"unknown {kind} {name!r}; known: {known}") from None


AUTO = "auto"


def detector_name(settings: Settings) -> str:
    """The detector ``settings.detector`` stands for: "auto" is YuNet when its model is present.

    Why YuNet first: on the same 640x360 frames it is about 1.4x faster than
    HOG on one core and at least as good at every face size, finding 95% of
    20 px faces where HOG needs 64 px (``python -m bench.detectors``). HOG
    remains the fallback because it needs no model file.
    """
    if settings.detector != AUTO:
        return settings.detector
    return "yunet" if _find_yunet(settings) is not None else "hog"


def build_detector(settings: Settings) -> Detector:
    """The detector named by ``settings.detector`` (not yet prepared)."""
    return _pick(DETECTORS, "detector", detector_name(settings))(settings)


def build_embedder(settings: Settings) -> Embedder:
    """The embedder named by ``settings.embedder`` (not yet prepared)."""
    return _pick(EMBEDDERS, "embedder", settings.embedder)(settings)


def build_engine(settings: Settings) -> FaceEngine:
    """The engine named by ``settings.engine`` (not yet prepared: call ``prepare()``)."""
    return _pick(ENGINES, "engine", settings.engine)(settings)

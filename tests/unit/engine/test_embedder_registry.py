"""Choosing the embedder from settings: onnx by default, dlib on request, nothing at import."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from facelens.config import Settings
from facelens.engine.dlib_embedder import DlibEmbedder
from facelens.engine.onnx_embedder import OnnxEmbedder
from facelens.engine.registry import build_embedder
from facelens.errors import ConfigurationError


def test_onnx_is_the_default_with_its_cache_in_home(tmp_path: Path) -> None:
    embedder = build_embedder(Settings(home=tmp_path, embed_threads=3, embed_flip=False))
    assert isinstance(embedder, OnnxEmbedder)
    assert (embedder.cache_dir, embedder.threads, embedder.flip) == (tmp_path / "models", 3, False)
    assert embedder.views == "68"
    assert embedder.model_version == DlibEmbedder().model_version == "dlib-resnet-v1-chip68"
    assert not (tmp_path / "models").exists()  # nothing happens before prepare()


def test_dlib_stays_selectable_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FACELENS_EMBEDDER", "dlib")
    assert isinstance(build_embedder(Settings(home=tmp_path)), DlibEmbedder)


def test_unknown_embedders_and_thread_counts_are_errors(tmp_path: Path) -> None:
    with pytest.raises(
        ConfigurationError, match="unknown embedder 'tflite'; known: arcface, dlib, onnx"
    ):
        build_embedder(Settings(home=tmp_path, embedder="tflite"))
    with pytest.raises(ValueError, match="embed_threads"):
        Settings(home=tmp_path, embed_threads=0)
    with pytest.raises(ConfigurationError, match="at least 1 thread"):
        OnnxEmbedder(threads=0)


def test_importing_the_engine_loads_no_model_runtime() -> None:
    code = (
        "import sys, facelens.engine.registry, facelens.engine.onnx_embedder; "
        "print(sorted(m for m in ('onnx', 'onnxruntime') if m in sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    assert result.stdout.strip() == "[]"

"""Settings, registries and the promise that importing facelens does nothing."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import ValidationError

from facelens.collection.stores.registry import open_store
from facelens.config import Settings
from facelens.engine.registry import build_engine
from facelens.errors import ConfigurationError


def test_importing_loads_no_model_and_reads_no_environment() -> None:
    code = (
        "import os, sys\n"
        "os.environ['FACELENS_ENGINE'] = 'no-such-engine'\n"
        "import facelens.cli, facelens.collection.users, facelens.evaluation.lfw\n"
        "assert 'dlib' not in sys.modules, 'dlib imported at import time'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_settings_forbid_unknown_fields_and_read_the_prefix(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    with pytest.raises(ValidationError):
        Settings(colour="blue")  # type: ignore[call-arg]
    monkeypatch.setenv("FACELENS_HOME", str(tmp_path))
    monkeypatch.setenv("FACELENS_DETECTOR", "yunet")
    settings = Settings()
    assert settings.home == tmp_path
    assert settings.detector == "yunet"
    assert settings.database_url() == f"sqlite:///{tmp_path / 'facelens.db'}"


def test_unknown_names_are_errors_never_fallbacks(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="unknown engine 'nope'"):
        build_engine(Settings(home=tmp_path, engine="nope"))
    with pytest.raises(ConfigurationError, match=r"unknown detector 'nope'.*hog, yunet"):
        build_engine(Settings(home=tmp_path, detector="nope"))
    with pytest.raises(ConfigurationError, match="yunet"):
        build_engine(Settings(home=tmp_path, detector="yunet", models_dir=tmp_path))
    with pytest.raises(ConfigurationError, match="unknown collections URL scheme"):
        open_store("mongodb://localhost/faces")


def test_store_urls(tmp_path: Path) -> None:
    store = open_store(f"sqlite:///{tmp_path / 'x.db'}")
    store.create_collection("c", face_model_version="m")
    store.close()
    assert (tmp_path / "x.db").exists()
    memory = open_store("memory://")
    memory.create_collection("c", face_model_version="m")
    assert memory.describe_collection("c").face_count == 0
    memory.close()


def test_auto_detector_is_yunet_when_its_model_is_present(models_dir: Path, tmp_path: Path) -> None:
    from facelens.edge.detection import build_edge_detector
    from facelens.engine.hog import HogDetector
    from facelens.engine.registry import build_detector
    from facelens.engine.yunet import YuNetDetector

    without = Settings(home=tmp_path, models_dir=None)
    empty = Settings(home=tmp_path, models_dir=tmp_path)
    present = Settings(home=tmp_path, models_dir=models_dir)
    assert without.detector == "auto"
    assert isinstance(build_detector(without), HogDetector)
    assert isinstance(build_detector(empty), HogDetector)
    assert isinstance(build_detector(present), YuNetDetector)
    assert isinstance(build_edge_detector(present), YuNetDetector)
    edge_hog = build_edge_detector(without)
    assert isinstance(edge_hog, HogDetector)
    assert edge_hog._upsample == 0  # the edge scales frames itself
    chosen = Settings(home=tmp_path, detector="hog", models_dir=models_dir)
    assert isinstance(build_detector(chosen), HogDetector)

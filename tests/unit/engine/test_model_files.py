"""The model catalogue: its pins agree with the files and the other pins facelens has."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from facelens.config import Settings
from facelens.engine import yunet
from facelens.engine.model_files import (
    CATALOGUE,
    SFACE,
    YUNET,
    lookup,
    model_state,
    models_directory,
    source_url,
)
from facelens.errors import InvalidParameterException


def test_sface_is_pinned_to_opencv_zoos_2021dec_file() -> None:
    assert lookup("sface") is SFACE
    assert SFACE.file_name == "face_recognition_sface_2021dec.onnx"
    assert SFACE.size == 38_696_353
    assert SFACE.sha256 == "0ba9fbfa01b5270c96627c4ef784da859931e02f04419c829e83484087c34e79"
    assert (SFACE.kind, SFACE.licence, SFACE.input_shape) == (
        "embedder",
        "Apache-2.0",
        (None, 3, 112, 112),
    )
    assert SFACE.url.startswith("https://github.com/opencv/opencv_zoo/raw/")
    assert SFACE.url.endswith("/models/face_recognition_sface/" + SFACE.file_name)


def test_yunet_entry_agrees_with_the_detector_and_the_shared_file(models_dir: Path) -> None:
    assert yunet.KNOWN_MODELS[YUNET.file_name] == YUNET.sha256
    data = (models_dir / YUNET.file_name).read_bytes()
    assert (len(data), hashlib.sha256(data).hexdigest()) == (YUNET.size, YUNET.sha256)
    state = model_state(YUNET, models_dir)
    assert (state.present, state.verified, state.size) == (True, True, YUNET.size)


def test_every_entry_is_consistent() -> None:
    for name, entry in CATALOGUE.items():
        assert entry.name == name
        assert len(entry.sha256) == 64
        assert entry.sha256 == entry.sha256.lower()
        assert entry.size > 0
        assert entry.kind in ("detector", "embedder")
        assert entry.url.endswith("/" + entry.file_name)


def test_unknown_names_are_refused_with_the_known_ones() -> None:
    with pytest.raises(InvalidParameterException, match="known: sface, yunet"):
        lookup("arcface")
    with pytest.raises(InvalidParameterException, match="known: none"):
        lookup("sface", {})


def test_source_url_takes_a_base_or_a_file_and_only_http() -> None:
    assert source_url(SFACE) == SFACE.url
    assert source_url(SFACE, "http://mirror:8080/m/") == (
        "http://mirror:8080/m/face_recognition_sface_2021dec.onnx"
    )
    assert source_url(SFACE, "https://mirror/x.onnx") == "https://mirror/x.onnx"
    for bad in (
        "file:///etc/passwd",
        "ftp://host/x",
        "http:///nohost",
        "mirror/x",
        "http://[bad/x",
        "http://host:port/x",
        "http://host:99999/x",
        "http://host/a b",
        "http://host/x\r\nHost: other",
    ):
        with pytest.raises(InvalidParameterException):
            source_url(SFACE, bad)


def test_models_directory_defaults_to_home(tmp_path: Path) -> None:
    assert models_directory(Settings(home=tmp_path, models_dir=None)) == tmp_path / "models"
    assert models_directory(Settings(home=tmp_path, models_dir=tmp_path / "m")) == tmp_path / "m"


def test_a_missing_file_is_neither_present_nor_verified(tmp_path: Path) -> None:
    state = model_state(SFACE, tmp_path)
    assert (state.present, state.verified, state.size, state.partial) == (False, False, None, 0)

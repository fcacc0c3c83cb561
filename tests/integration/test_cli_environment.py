"""The CLI in the environments users give it: a relative home, and stderr kept for what matters."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from facelens.config import Settings


def _run(*args: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    inherited = {k: v for k, v in os.environ.items() if not k.startswith("FACELENS_")}
    return subprocess.run(
        [sys.executable, "-m", "facelens", *args],
        cwd=cwd,
        env={**inherited, **env},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_a_relative_home_is_taken_from_the_working_directory(tmp_path: Path) -> None:
    env = {"FACELENS_HOME": "data"}
    created = _run("collections", "create", "--collection-id", "friends", cwd=tmp_path, env=env)
    assert created.returncode == 0, created.stderr
    listed = _run("collections", "list", cwd=tmp_path, env=env)
    assert listed.returncode == 0, listed.stderr
    assert json.loads(listed.stdout)["CollectionIds"] == ["friends"]
    assert (tmp_path / "data" / "facelens.db").is_file()


def test_settings_make_home_and_models_dir_absolute(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    settings = Settings(home=Path("data"), models_dir=Path("models"))
    assert settings.home == tmp_path / "data"
    assert settings.models_dir == tmp_path / "models"
    assert settings.database_url() == f"sqlite:///{tmp_path / 'data' / 'facelens.db'}"
    assert Settings(home=Path("~/x")).home == Path.home() / "x"


def test_indexing_with_yunet_prints_nothing_on_stderr(
    tmp_path: Path, testdata: Path, models_dir: Path
) -> None:
    """OpenCV's 'setPreferableTarget ... not supported' warning used to be printed by every
    command that loaded YuNet; users read it as an error."""
    env = {"FACELENS_HOME": str(tmp_path / "home"), "FACELENS_MODELS_DIR": str(models_dir)}
    created = _run("collections", "create", "--collection-id", "c", cwd=tmp_path, env=env)
    assert created.returncode == 0, created.stderr
    photo = testdata / "people" / "obama" / "obama_1.jpg"
    indexed = _run("faces", "index", str(photo), "--collection-id", "c", cwd=tmp_path, env=env)
    assert indexed.returncode == 0, indexed.stderr
    assert json.loads(indexed.stdout)["FaceRecords"]
    assert indexed.stderr == ""

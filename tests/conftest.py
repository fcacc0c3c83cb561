"""Fixtures shared by every test: where the shared test data and models are, and settings.

Test data is read from ``FACELENS_TESTDATA`` (default ../shared/testdata next
to the repository), never copied in. Missing data skips on a laptop and fails
in CI (``CI=true``), so a broken checkout can never pass by skipping.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from facelens.config import Settings

pytest_plugins = [
    "tests.servers.postgres",
    "tests.servers.mosquitto",
    "tests.servers.moto",
    "tests.servers.mjpeg",
    "tests.servers.facelens_api",
]

REPO = Path(__file__).resolve().parents[1]


def _shared(variable: str, default: Path) -> Path:
    path = Path(os.environ.get(variable, default))
    if not path.is_dir():
        message = f"{variable}={path} is not a directory"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    return path


@pytest.fixture(scope="session")
def testdata() -> Path:
    return _shared("FACELENS_TESTDATA", REPO.parent / "shared" / "testdata")


@pytest.fixture(scope="session")
def models_dir() -> Path:
    return _shared("FACELENS_MODELS_DIR", REPO.parent / "shared" / "models")


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tmp_path / "home"


@pytest.fixture
def settings(home: Path) -> Settings:
    return Settings(home=home, models_dir=None)


@pytest.fixture
def cli_env(home: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """Environment for CLI runs: a private FACELENS_HOME, nothing else inherited."""
    for key in list(os.environ):
        if key.startswith("FACELENS_") and key not in ("FACELENS_TESTDATA", "FACELENS_MODELS_DIR"):
            monkeypatch.delenv(key)
    monkeypatch.setenv("FACELENS_HOME", str(home))
    return {"FACELENS_HOME": str(home)}

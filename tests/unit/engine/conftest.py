"""Fixtures shared by the engine unit tests: where the test photos and models are.

Both directories live outside the repository (``/work/shared`` next to the
checkout by default) and are only read, never copied in. Without them the tests
that need them are skipped, except on CI (``CI=true``) where that is a failure.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

_REPO_ROOT = Path(__file__).resolve().parents[3]


def _shared_dir(env_name: str, default_name: str) -> Path:
    """The directory named by ``env_name``, or ``../shared/<default_name>`` from the repo."""
    configured = os.environ.get(env_name)
    if configured:
        return Path(configured)
    return _REPO_ROOT / ".." / "shared" / default_name


def _require_dir(path: Path, what: str) -> Path:
    """``path`` if it is a directory; otherwise skip the test (or fail it on CI)."""
    if path.is_dir():
        return path
    message = f"{what} not found at {path}"
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture(scope="session")
def testdata_dir() -> Path:
    """The test photos (FACELENS_TESTDATA, default ../shared/testdata)."""
    return _require_dir(_shared_dir("FACELENS_TESTDATA", "testdata"), "test data")


@pytest.fixture(scope="session")
def models_dir() -> Path:
    """The optional ONNX models (FACELENS_MODELS_DIR, default ../shared/models)."""
    return _require_dir(_shared_dir("FACELENS_MODELS_DIR", "models"), "models directory")

"""What every server fixture needs: find a binary, skip (or fail in CI) without it, a free port."""

from __future__ import annotations

import os
import shutil
import socket
from pathlib import Path
from typing import NoReturn

import pytest


def find_binary(name: str, fallback: Path) -> Path | None:
    """``name`` on PATH, else ``fallback`` (Debian puts servers off PATH, in sbin or lib)."""
    found = shutil.which(name)
    if found is not None:
        return Path(found)
    return fallback if fallback.is_file() else None


def missing(message: str) -> NoReturn:
    """A server the tests need is not installed: skip on a laptop, fail in CI."""
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port

"""Servers for the AWS contract tests that need more than ``api_server``'s defaults.

``start_configured_server`` is ``tests.servers.facelens_api.start_api_server``
with whole settings sections given (an MQTT broker, an S3 object store), so
the server publishes to a real broker and reads a real object store.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from facelens.config import ServeSettings, Settings
from tests.servers.facelens_api import ApiServer, start_server

ServerFactory = Callable[..., ApiServer]


def start_configured_server(home: Path, **settings: object) -> ApiServer:
    """A started server (keys as ``api_server`` has) on ``Settings(home=home, **settings)``;
    ``models_dir`` is None unless given, so no FACELENS_MODELS_DIR of the shell applies."""
    settings = {"models_dir": None, **settings}
    return start_server(Settings(home=home, serve=ServeSettings(port=0), **settings))  # type: ignore[arg-type]


@pytest.fixture
def configured_server(tmp_path: Path) -> Iterator[ServerFactory]:
    """Starts servers with given settings (each on its own home); stops them all after."""
    started: list[ApiServer] = []

    def start(**settings: object) -> ApiServer:
        server = start_configured_server(tmp_path / f"home-{len(started)}", **settings)
        started.append(server)
        return server

    yield start
    for server in started:
        server.server.stop()
        server.stack.close()

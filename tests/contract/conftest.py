"""Servers for the AWS contract tests that need more than ``api_server``'s defaults.

``start_configured_server`` is ``tests.servers.facelens_api.start_api_server``
with whole settings sections given (an MQTT broker, an S3 object store), so
the server publishes to a real broker and reads a real object store.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from facelens.api.keys import Role
from facelens.api.serve import build_server
from facelens.config import ServeSettings, Settings
from facelens.wiring import Components
from tests.servers.facelens_api import ApiServer

ServerFactory = Callable[..., ApiServer]


def start_configured_server(home: Path, **settings: object) -> ApiServer:
    """A started server (keys as ``api_server`` has) on ``Settings(home=home, **settings)``;
    ``models_dir`` is None unless given, so no FACELENS_MODELS_DIR of the shell applies."""
    settings = {"models_dir": None, **settings}
    config = Settings(home=home, serve=ServeSettings(port=0), **settings)  # type: ignore[arg-type]
    components = Components(config, instance="api-test")
    admin = components.keys.create_api_key("test-admin", Role.ADMIN)
    reader = components.keys.create_api_key("test-reader", Role.READ)
    access = components.keys.create_access_key("test-sdk", Role.ADMIN)
    server, _ = build_server(components)
    server.start()
    return ApiServer(
        url=server.url,
        components=components,
        admin_token=admin.token.get_secret_value(),
        reader_token=reader.token.get_secret_value(),
        access_key_id=access.access_key_id,
        secret_access_key=access.secret_access_key.get_secret_value(),
        region=config.serve.region,
        server=server,
    )


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
        server.components.close()

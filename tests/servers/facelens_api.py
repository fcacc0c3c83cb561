"""A real facelens HTTP server per test: uvicorn on a free loopback port, a private home.

The server is the one ``facelens serve`` runs (``build_server`` on the wiring's
``open_server_bundles``, role ``api-test``), with an admin and a read-only API
key and a SigV4 access key already issued, so tests exercise authentication as
deployed. The face engine is loaded on first use (the first enrolment or search),
once per server; a test that has the session's engine loaded passes its analyzer.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import pytest

from facelens.access.keys import Role
from facelens.api.serve import build_server
from facelens.collection.analysis import FaceAnalyzer
from facelens.config import ServeSettings, Settings
from facelens.http_server import ThreadedServer
from facelens.wiring.process import process_role
from facelens.wiring.server import ServerBundles, open_server_bundles


@dataclass
class ApiServer:
    """``bundles``: what the server's routes are built on (the same stores the test reads);
    ``stack``: closes them (after ``server.stop()``)."""

    url: str
    bundles: ServerBundles
    stack: ExitStack
    admin_token: str
    reader_token: str
    access_key_id: str
    secret_access_key: str
    region: str
    server: ThreadedServer

    def headers(self, *, token: str | None = None) -> dict[str, str]:
        return {"Authorization": f"Bearer {token or self.admin_token}"}


def start_api_server(
    home: Path,
    *,
    models_dir: Path | None = None,
    analyzer: FaceAnalyzer | None = None,
    **serve: object,
) -> ApiServer:
    settings = Settings(
        home=home,
        models_dir=models_dir,
        serve=ServeSettings(port=0, **serve),  # type: ignore[arg-type]
    )
    return start_server(settings, analyzer=analyzer)


def start_server(
    settings: Settings, *, instance: str = "api-test", analyzer: FaceAnalyzer | None = None
) -> ApiServer:
    """``facelens serve`` on ``settings``, started, with an admin and a read-only API key and
    a SigV4 access key issued. ``analyzer``: a loaded engine's, else the settings' own."""
    stack = ExitStack()
    try:
        role = process_role(settings, instance)
        bundles = open_server_bundles(settings, stack, role, analyzer=analyzer)
        admin = bundles.keys.create_api_key("test-admin", Role.ADMIN)
        reader = bundles.keys.create_api_key("test-reader", Role.READ)
        access = bundles.keys.create_access_key("test-sdk", Role.ADMIN)
        server, _ = build_server(bundles)
        server.start()
    except BaseException:
        stack.close()
        raise
    return ApiServer(
        url=server.url,
        bundles=bundles,
        stack=stack,
        admin_token=admin.token.get_secret_value(),
        reader_token=reader.token.get_secret_value(),
        access_key_id=access.access_key_id,
        secret_access_key=access.secret_access_key.get_secret_value(),
        region=settings.serve.region,
        server=server,
    )


@pytest.fixture
def api_server(tmp_path: Path) -> Iterator[ApiServer]:
    """A started server (keys as ``api_server`` has) on a private home; stopped after."""
    started = start_api_server(tmp_path / "home")
    try:
        yield started
    finally:
        started.server.stop()
        started.stack.close()

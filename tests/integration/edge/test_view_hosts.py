"""The live view answers only to its own names: a web page whose name an attacker re-points
at 127.0.0.1 (DNS rebinding) cannot watch the camera. A real server on loopback."""

from __future__ import annotations

import http.client
from collections.abc import Iterator

import pytest

from facelens.edge.server import ViewServer, build_app
from facelens.edge.view import LiveView
from tests.integration.edge.test_view_server import STATS

THING = "cam1"


@pytest.fixture
def view_server() -> Iterator[ViewServer]:
    view = LiveView()
    app = build_app(view, lambda: STATS, credentials=None, max_fps=5, thing=THING)
    server = ViewServer(app, host="127.0.0.1", port=0, credentials=None, allowed_hosts=["cam1.lan"])
    server.start()
    yield server
    server.stop()
    view.close()


def get(server: ViewServer, path: str, host: str) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    try:
        conn.putrequest("GET", path, skip_host=True)
        conn.putheader("Host", host)
        conn.endheaders()
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def test_a_rebinding_page_cannot_watch(view_server: ViewServer) -> None:
    for path in ("/", "/stream.mjpg", "/snapshot.jpg", "/metrics", "/healthz"):
        status, body = get(view_server, path, f"attacker.example:{view_server.port}")
        assert status == 403, path
        assert b"AccessDeniedException" in body
        assert b"edge.view_allowed_hosts" in body
    for host in (f"127.0.0.1:{view_server.port}", "localhost", f"[::1]:{view_server.port}"):
        assert get(view_server, "/healthz", host)[0] == 200, host
    assert get(view_server, "/healthz", f"CAM1.lan:{view_server.port}")[0] == 200

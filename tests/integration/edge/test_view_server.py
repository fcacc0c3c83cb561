"""The live view over real HTTP: uvicorn on 127.0.0.1 in a thread, frames from a real
video, the MJPEG stream, snapshot, metrics, health, Basic auth, and a stop that does
not hang on a client still watching."""

from __future__ import annotations

import base64
import http.client
import json
import re
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from prometheus_client import CONTENT_TYPE_LATEST
from prometheus_client.parser import text_string_to_metric_families
from pydantic import SecretStr

from facelens.edge.metrics import format_stats, render_prometheus
from facelens.edge.server import ViewCredentials, ViewServer, build_app
from facelens.edge.types import BGRImage, EdgeStats, Frame, TrackedFace
from facelens.edge.view import LiveView
from facelens.errors import ConfigurationError
from facelens.values.boxes import PixelBox

THING = "cam1"
FACES = (
    TrackedFace(track_id=1, box=PixelBox(260, 40, 360, 160), confidence=97.0, name="hamilton"),
    TrackedFace(track_id=2, box=PixelBox(40, 150, 120, 250), confidence=81.5),
)
STATS = EdgeStats(
    thing=THING,
    uptime_seconds=12.5,
    frames_read=0,
    frames_processed=0,
    frames_dropped=0,
    fps=0.0,
    detect_seconds_sum=1.25,
    detect_count=100,
    faces_detected=180,
    tracks_started=3,
    active_tracks=2,
    crops_queued=3,
    crops_uploaded=2,
    upload_failures=1,
    buffer_depth=1,
    buffer_dropped=0,
    crop_latency_seconds_sum=0.9,
    crop_latency_count=2,
    source_connected=True,
    source_reconnects=0,
    mqtt_connected=None,
    viewers=0,
)


class Feeder:
    """Publishes the clip's frames, looping, at ~30 fps until stopped."""

    def __init__(self, view: LiveView, images: list[BGRImage]) -> None:
        self.view = view
        self.images = images
        self.published = 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self.stop.is_set():
            image = self.images[self.published % len(self.images)]
            frame = Frame(
                image=image,
                index=self.published,
                media_time=self.published / 29.97,
                captured_at=datetime.now(UTC),
                monotonic=time.monotonic(),
            )
            self.view.publish(frame, FACES)
            self.published += 1
            self.stop.wait(1 / 30)

    def stats(self) -> EdgeStats:
        return replace(STATS, frames_read=self.published, fps=29.97, viewers=self.view.viewers)


@pytest.fixture(scope="module")
def clip_images(testdata: Path) -> list[BGRImage]:
    capture = cv2.VideoCapture(str(testdata / "video" / "short_hamilton_clip.mp4"))
    images: list[BGRImage] = []
    while len(images) < 15:
        ok, image = capture.read()
        if not ok:
            break
        images.append(np.asarray(image, dtype=np.uint8))
    capture.release()
    assert len(images) == 15, "the clip has 275 frames"
    return images


@pytest.fixture
def view() -> Iterator[LiveView]:
    live = LiveView()
    yield live
    live.close()


@pytest.fixture
def feeder(view: LiveView, clip_images: list[BGRImage]) -> Iterator[Feeder]:
    feed = Feeder(view, clip_images)
    feed.thread.start()
    yield feed
    feed.stop.set()
    feed.thread.join(5)


def serve(
    view: LiveView,
    feeder: Feeder | None = None,
    *,
    credentials: ViewCredentials | None = None,
) -> ViewServer:
    stats = feeder.stats if feeder is not None else (lambda: STATS)
    app = build_app(view, stats, credentials=credentials, max_fps=20, thing=THING)
    server = ViewServer(app, host="127.0.0.1", port=0, credentials=credentials)
    server.start()
    return server


@pytest.fixture
def server(view: LiveView, feeder: Feeder) -> Iterator[ViewServer]:
    running = serve(view, feeder)
    yield running
    running.stop()


def get(
    server: ViewServer, path: str, *, auth: tuple[str, str] | None = None
) -> tuple[int, dict[str, str], bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    headers = {}
    if auth is not None:
        token = base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode("ascii")
        headers["Authorization"] = f"Basic {token}"
    try:
        connection.request("GET", path, headers=headers)
        response = connection.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        connection.close()


def read_part(response: http.client.HTTPResponse) -> bytes:
    """One multipart part: boundary line, headers, blank line, the JPEG, CRLF."""
    assert response.readline() == b"--frame\r\n"
    headers: dict[str, str] = {}
    while (line := response.readline()) != b"\r\n":
        name, _, value = line.decode("ascii").partition(":")
        headers[name.strip().lower()] = value.strip()
    assert headers["content-type"] == "image/jpeg"
    body = response.read(int(headers["content-length"]))
    assert response.read(2) == b"\r\n"
    return body


def decode(jpeg: bytes) -> Any:
    decoded = cv2.imdecode(np.frombuffer(jpeg, dtype=np.uint8), cv2.IMREAD_COLOR)
    assert decoded is not None
    return decoded


def wait_for(condition: Any, *, seconds: float = 5.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return bool(condition())


def test_the_stream_sends_annotated_jpeg_parts(server: ViewServer, view: LiveView) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    connection.request("GET", "/stream.mjpg")
    response = connection.getresponse()
    assert response.status == 200
    assert response.getheader("Content-Type") == "multipart/x-mixed-replace; boundary=frame"
    for _ in range(3):
        assert decode(read_part(response)).shape == (360, 640, 3)
    assert view.viewers == 1
    connection.close()
    assert wait_for(lambda: view.viewers == 0), "a client that goes away stops its viewer"


def test_index_page_shows_the_stream(server: ViewServer) -> None:
    status, headers, body = get(server, "/")
    assert status == 200
    assert headers["content-type"].startswith("text/html")
    assert b'<img src="stream.mjpg"' in body
    assert THING.encode() in body


def test_snapshot_and_health(server: ViewServer, feeder: Feeder) -> None:
    assert wait_for(lambda: feeder.published > 0)
    status, headers, body = get(server, "/snapshot.jpg")
    assert status == 200
    assert headers["content-type"] == "image/jpeg"
    assert decode(body).shape == (360, 640, 3)
    status, _, body = get(server, "/healthz")
    assert status == 200
    assert json.loads(body) == {"status": "ok", "thing": THING}


def test_snapshot_before_the_first_frame_is_503(view: LiveView) -> None:
    server = serve(view)
    try:
        status, headers, body = get(server, "/snapshot.jpg")
    finally:
        server.stop()
    assert status == 503
    assert headers["content-type"] == "application/json"
    error = json.loads(body)
    assert error["__type"] == "ServiceUnavailableException"
    assert THING in error["message"]


def test_metrics_are_prometheus_text(server: ViewServer, feeder: Feeder) -> None:
    assert wait_for(lambda: feeder.published > 0)
    status, headers, body = get(server, "/metrics")
    assert status == 200
    assert headers["content-type"] == CONTENT_TYPE_LATEST
    text = body.decode()
    assert 'facelens_edge_frames_read_total{thing="cam1"}' in text
    families = {family.name: family for family in text_string_to_metric_families(text)}
    assert families["facelens_edge_frames_read"].type == "counter"
    (sample,) = families["facelens_edge_frames_read"].samples
    assert sample.value >= 1
    assert families["facelens_edge_fps"].type == "gauge"
    assert families["facelens_edge_detect_seconds"].type == "summary"
    assert "facelens_edge_mqtt_connected" not in families, "no MQTT: no gauge"


def test_credentials_are_required_on_every_route(view: LiveView, feeder: Feeder) -> None:
    credentials = ViewCredentials("viewer", SecretStr("s3cret-pässword"))
    server = serve(view, feeder, credentials=credentials)
    try:
        for path in ("/", "/healthz", "/metrics", "/snapshot.jpg", "/stream.mjpg"):
            status, headers, body = get(server, path)
            assert status == 401, path
            assert headers["www-authenticate"].startswith("Basic realm=")
            assert json.loads(body)["__type"] == "UnrecognizedClientException"
        status, headers, _ = get(server, "/healthz", auth=("viewer", "wrong"))
        assert status == 401
        assert "www-authenticate" in headers
        status, _, _ = get(server, "/healthz", auth=("someone", "s3cret-pässword"))
        assert status == 401
        status, _, body = get(server, "/healthz", auth=("viewer", "s3cret-pässword"))
        assert status == 200
        assert json.loads(body)["thing"] == THING
        assert wait_for(lambda: feeder.published > 0)
        status, _, _ = get(server, "/metrics", auth=("viewer", "s3cret-pässword"))
        assert status == 200
    finally:
        server.stop()


def test_the_network_needs_credentials(view: LiveView) -> None:
    app = build_app(view, lambda: STATS, credentials=None, max_fps=5, thing=THING)
    with pytest.raises(ConfigurationError, match=re.escape("0.0.0.0")):
        ViewServer(app, host="0.0.0.0", port=0, credentials=None)
    with pytest.raises(ConfigurationError):
        ViewServer(app, host="192.168.1.20", port=0, credentials=None)
    for loopback in ("127.0.0.1", "127.0.0.2", "::1", "localhost"):
        ViewServer(app, host=loopback, port=0, credentials=None)  # constructed, not started
    credentials = ViewCredentials("viewer", SecretStr("pw"))
    ViewServer(app, host="0.0.0.0", port=0, credentials=credentials)


def test_a_port_in_use_is_a_configuration_error(view: LiveView) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        app = build_app(view, lambda: STATS, credentials=None, max_fps=5, thing=THING)
        server = ViewServer(app, host="127.0.0.1", port=port, credentials=None)
        with pytest.raises(ConfigurationError, match=str(port)):
            server.start()
        assert not server.running


def test_stop_returns_while_a_client_is_still_watching(view: LiveView, feeder: Feeder) -> None:
    server = serve(view, feeder)
    assert server.url == f"http://127.0.0.1:{server.port}"
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    connection.request("GET", "/stream.mjpg")
    response = connection.getresponse()
    read_part(response)
    started = time.monotonic()
    server.stop(timeout=5)
    elapsed = time.monotonic() - started
    assert not server.running
    assert elapsed < 5, elapsed
    rest = response.read()  # the stream ends (at a part boundary) instead of hanging
    assert not rest or rest.startswith(b"--frame")
    connection.close()
    assert wait_for(lambda: view.viewers == 0)
    with pytest.raises(ConnectionRefusedError):
        get(server, "/healthz")


def test_every_metric_is_rendered_with_its_thing_label() -> None:
    stats = replace(
        STATS, frames_read=42, mqtt_connected=False, looks_refused={"turned": 3, "no-face": 1}
    )
    families = {
        family.name: family
        for family in text_string_to_metric_families(render_prometheus(stats).decode())
    }
    counters = [
        "frames_read",
        "frames_processed",
        "frames_dropped",
        "faces_detected",
        "tracks_started",
        "crops_queued",
        "crops_uploaded",
        "upload_failures",
        "buffer_dropped",
        "source_reconnects",
        "looks_refused",
    ]
    gauges = [
        "fps",
        "active_tracks",
        "buffer_depth",
        "source_connected",
        "mqtt_connected",
        "viewers",
        "uptime_seconds",
    ]
    expected = {f"facelens_edge_{name}": "counter" for name in counters}
    expected |= {f"facelens_edge_{name}": "gauge" for name in gauges}
    expected |= {
        f"facelens_edge_{n}": "summary" for n in ("detect_seconds", "crop_latency_seconds")
    }
    assert {name: family.type for name, family in families.items()} == expected
    for family in families.values():
        assert "(" in family.documentation, f"{family.name}: HELP states the unit"
        for sample in family.samples:
            if family.name == "facelens_edge_looks_refused":
                assert sample.labels == {"thing": THING, "reason": sample.labels["reason"]}
            else:
                assert sample.labels == {"thing": THING}
    values = {s.name: s.value for f in families.values() for s in f.samples}
    assert values["facelens_edge_frames_read_total"] == 42
    assert values["facelens_edge_source_connected"] == 1
    assert values["facelens_edge_mqtt_connected"] == 0
    assert values["facelens_edge_detect_seconds_sum"] == 1.25
    assert values["facelens_edge_detect_seconds_count"] == 100
    refused = {
        s.labels["reason"]: s.value
        for s in families["facelens_edge_looks_refused"].samples
        if s.name.endswith("_total")
    }
    assert refused == {"turned": 3, "no-face": 1}


def test_stats_log_line() -> None:
    line = format_stats(replace(STATS, frames_read=1200, frames_dropped=4, fps=9.84))
    assert line.startswith("fps 9.8 | detect 12.5 ms | frames 1200 read, 4 dropped | tracks 2")
    assert "crops 2 up, 3 queued | looks refused 0" in line
    assert "buffer 1 (0 dropped)" in line
    assert "upload failures 1" in line
    assert line.endswith("viewers 0 | source up"), "no MQTT: not mentioned"
    idle = format_stats(replace(STATS, detect_count=0, source_connected=False, mqtt_connected=True))
    assert "detect - |" in idle
    assert idle.endswith("source down | mqtt up")

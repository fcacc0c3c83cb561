"""A real MJPEG-over-HTTP camera for the edge tests.

Why: what the edge runner's capture must get right (a stream that arrives at
its own pace, dies when the camera goes away, and comes back on the same
address) is network behaviour that only a real socket shows. Most cheap IP
cameras serve exactly this: ``multipart/x-mixed-replace; boundary=frame``,
one JPEG per part. Frames come from a video file (looped forever), are
JPEG-encoded with OpenCV once per file and process (cached), and are sent to
each client paced at ``fps``; a client that falls behind skips frames, as it
would with a real camera.

``stop()`` closes the listening socket and cuts every open client connection
at once (``shutdown(SHUT_RDWR)``), so a reader sees the stream die rather
than stall; ``start()`` again listens on the same port (``SO_REUSEADDR``).

What OpenCV's FFmpeg backend (``cv2.VideoCapture(url, cv2.CAP_FFMPEG,
[open/read timeouts])``, OpenCV 5.0 with libavcodec 62) needs to read this
stream, checked by hand: FFmpeg picks its ``mpjpeg`` demuxer from the
``multipart/x-mixed-replace`` content type, and each part MUST carry a
``Content-Type: image/jpeg`` header (parts with no headers are not read at
all). ``Content-Length`` per part is optional (without it the demuxer
searches for the boundary); we send it so each part is one read. The
``.mjpg`` path suffix is not needed. Opening takes milliseconds (no seconds
of probing); when the server cuts the connection the next ``read()`` fails
at once, and when it stalls ``read()`` fails after the read timeout.
"""

from __future__ import annotations

import contextlib
import functools
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from tests.servers._common import free_port

BOUNDARY = "frame"
PATH = "/video.mjpg"
JPEG_QUALITY = 80
START_ATTEMPTS = 3
"""A free port can be taken by someone else between our probe and our bind."""


@functools.lru_cache(maxsize=4)
def _encoded_frames(video: Path, quality: int) -> tuple[bytes, ...]:
    """Every frame of ``video`` as a JPEG (cached: a clip is a few MB, encoding ~1 ms a frame)."""
    import cv2

    capture = cv2.VideoCapture(str(video), cv2.CAP_FFMPEG)
    frames: list[bytes] = []
    try:
        while True:
            ok, image = capture.read()
            if not ok:
                break
            encoded, jpeg = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
            if encoded:
                frames.append(jpeg.tobytes())
    finally:
        capture.release()
    if not frames:
        raise RuntimeError(f"{video} has no frames OpenCV can decode")
    return tuple(frames)


class _Server(ThreadingHTTPServer):
    allow_reuse_address = True
    daemon_threads = True

    def __init__(self, camera: MjpegCamera, port: int) -> None:
        self.camera = camera
        self.stopping = threading.Event()
        super().__init__(("127.0.0.1", port), _Handler)


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def setup(self) -> None:
        super().setup()
        self.server.camera._register(self.connection)

    def finish(self) -> None:
        self.server.camera._unregister(self.connection)
        with contextlib.suppress(OSError):  # the camera cut the connection: nothing to flush
            super().finish()

    def do_GET(self) -> None:
        if self.path.split("?", 1)[0] != PATH:
            self.send_error(404, f"only {PATH} is served")
            return
        self.send_response(200)
        self.send_header("Content-Type", f"multipart/x-mixed-replace; boundary={BOUNDARY}")
        self.send_header("Cache-Control", "no-cache, no-store")
        self.send_header("Pragma", "no-cache")
        self.send_header("Connection", "close")
        self.end_headers()
        with contextlib.suppress(OSError):  # the client went away, or stop() cut it off
            self.server.camera._serve(self.wfile, self.server.stopping)

    def log_message(self, format: str, *args: Any) -> None:
        pass  # quiet: one line per request would drown test output


class MjpegCamera:
    """An HTTP MJPEG camera on 127.0.0.1:``port`` (``port=0``: a free one at first start)."""

    def __init__(self, video: Path, *, fps: float = 25.0, port: int = 0) -> None:
        if fps <= 0:
            raise ValueError("fps must be positive")
        self.video = video
        self.fps = fps
        self.port = port
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._connections: set[socket.socket] = set()
        self._frames: tuple[bytes, ...] = ()
        self.frames_sent = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}{PATH}"

    @property
    def running(self) -> bool:
        return self._server is not None

    @property
    def connections(self) -> int:
        """Clients connected right now."""
        with self._lock:
            return len(self._connections)

    def start(self) -> None:
        """Listen (on the same port after a ``stop()``) and serve in a background thread."""
        if self._server is not None:
            return
        self._frames = _encoded_frames(self.video, JPEG_QUALITY)  # before accepting clients
        if not self.port:
            self.port = free_port()
        server = _Server(self, self.port)
        self.port = server.server_address[1]
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"mjpeg-camera-{self.port}",
            daemon=True,
        )
        self._thread.start()

    def stop(self) -> None:
        """Stop listening and cut every client at once (a reader sees the stream end)."""
        server, self._server = self._server, None
        if server is None:
            return
        server.stopping.set()
        server.shutdown()  # serve_forever returns: no new connections are accepted
        with self._lock:
            connections = list(self._connections)
        for connection in connections:
            with contextlib.suppress(OSError):  # already closed by its handler
                connection.shutdown(socket.SHUT_RDWR)
        server.server_close()  # closes the listening socket, joins the handler threads
        if self._thread is not None:
            self._thread.join(timeout=5.0)
            self._thread = None

    def _register(self, connection: socket.socket) -> None:
        with self._lock:
            self._connections.add(connection)

    def _unregister(self, connection: socket.socket) -> None:
        with self._lock:
            self._connections.discard(connection)

    def _serve(self, out: Any, stopping: threading.Event) -> None:
        """Write parts until stopped; the frame sent is the one due now (slow clients skip)."""
        frames = self._frames
        period = 1.0 / self.fps
        started = time.monotonic()
        tick = 0
        while not stopping.is_set():
            jpeg = frames[tick % len(frames)]
            out.write(
                (
                    f"--{BOUNDARY}\r\n"
                    "Content-Type: image/jpeg\r\n"
                    f"Content-Length: {len(jpeg)}\r\n\r\n"
                ).encode("ascii")
                + jpeg
                + b"\r\n"
            )
            out.flush()
            with self._lock:
                self.frames_sent += 1
            tick = max(tick + 1, int((time.monotonic() - started) / period))
            stopping.wait(max(0.0, started + tick * period - time.monotonic()))


@pytest.fixture
def mjpeg_camera(testdata: Path) -> Iterator[MjpegCamera]:
    """A started camera on a free port serving the Hamilton clip at 25 fps; stopped at teardown."""
    video = testdata / "video" / "short_hamilton_clip.mp4"
    if not video.is_file():
        pytest.fail(f"{video} is missing from the test data")
    camera = MjpegCamera(video)
    for attempt in range(START_ATTEMPTS):
        camera.port = free_port()
        try:
            camera.start()
            break
        except OSError:
            if attempt == START_ATTEMPTS - 1:
                raise
    try:
        yield camera
    finally:
        camera.stop()

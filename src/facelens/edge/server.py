"""The live view's HTTP server: an MJPEG stream, a snapshot, metrics and a health check.

It runs uvicorn in a daemon thread of the edge runner's process, because the
view only reads what the frame loop publishes into a :class:`LiveView`; a
separate process would need the frames shipped to it. Each stream is a sync
generator that Starlette iterates in its worker threads, so drawing and JPEG
encoding never run on the event loop (anyio's pool holds 40 threads: each
streaming viewer occupies one only while it waits for or encodes a frame).

Faces on video are biometric data: the server refuses to listen on anything
but loopback without HTTP Basic credentials (use TLS in front of it, e.g. a
reverse proxy, when it is reachable from a network). It answers only to
loopback names, its own address and ``edge.view_allowed_hosts`` in ``Host``,
so a web page cannot watch a loopback camera through DNS rebinding.
"""

from __future__ import annotations

import base64
import html
import logging
import secrets
import threading
from collections.abc import Callable, Generator, Sequence
from contextlib import closing, suppress
from dataclasses import dataclass

from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response, StreamingResponse
from fastapi.security import HTTPBasic, HTTPBasicCredentials
from prometheus_client import CONTENT_TYPE_LATEST
from pydantic import SecretStr
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import HTTPConnection
from starlette.types import Receive, Scope, Send

from facelens.edge.metrics import render_prometheus
from facelens.edge.types import EdgeStats
from facelens.edge.view import LiveView
from facelens.errors import ConfigurationError, FacelensError, ServiceUnavailableException
from facelens.http_server import ThreadedServer, is_loopback

logger = logging.getLogger(__name__)

BOUNDARY = "frame"
STREAM_POLL_SECONDS = 0.25
"""How often a stream waiting for a frame checks whether the server is stopping."""
REALM = "facelens live view"

# AWS-style __type for the HTTP errors FastAPI/Starlette raise themselves.
_HTTP_ERROR_TYPES = {
    401: "UnrecognizedClientException",
    404: "UnknownOperationException",
    405: "UnknownOperationException",
}


@dataclass(frozen=True)
class ViewCredentials:
    """HTTP Basic user name and password every live-view request must carry."""

    username: str
    password: SecretStr


class _Utf8HTTPBasic(HTTPBasic):
    """FastAPI's HTTPBasic, but decoding ``user:password`` as UTF-8 (RFC 7617's
    ``charset="UTF-8"``, what browsers send): FastAPI decodes ASCII only, so a
    password with an ``ä`` could never match."""

    def make_authenticate_headers(self) -> dict[str, str]:
        return {"WWW-Authenticate": f'Basic realm="{REALM}", charset="UTF-8"'}

    async def __call__(  # type: ignore[override]  # as HTTPBasic's own (HTTPBase's differs)
        self, request: HTTPConnection
    ) -> HTTPBasicCredentials | None:
        scheme, _, param = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "basic":
            raise self.make_not_authenticated_error()
        try:
            decoded = base64.b64decode(param.strip(), validate=True).decode("utf-8")
        except ValueError as exc:  # binascii.Error and UnicodeDecodeError are ValueErrors
            raise self.make_not_authenticated_error() from exc
        username, separator, password = decoded.partition(":")
        if not separator:
            raise self.make_not_authenticated_error()
        return HTTPBasicCredentials(username=username, password=password)


class _BasicAuth:
    """The app-wide dependency: 401 (with WWW-Authenticate) unless the credentials match.

    Both parts are compared in constant time, and both always, so timing says
    nothing about which was wrong.
    """

    def __init__(self, credentials: ViewCredentials) -> None:
        self._basic = _Utf8HTTPBasic(realm=REALM)
        self._username = credentials.username.encode("utf-8")
        self._password = credentials.password.get_secret_value().encode("utf-8")

    async def __call__(self, request: Request) -> None:
        given = await self._basic(request)
        if given is None:
            raise self._basic.make_not_authenticated_error()
        user_ok = secrets.compare_digest(given.username.encode("utf-8"), self._username)
        password_ok = secrets.compare_digest(given.password.encode("utf-8"), self._password)
        if not (user_ok and password_ok):
            raise HTTPException(
                status_code=401,
                detail="Wrong user name or password",
                headers=self._basic.make_authenticate_headers(),
            )


class _ClosingStreamingResponse(StreamingResponse):
    """A StreamingResponse that closes its sync generator as soon as it ends.

    Starlette leaves that to the garbage collector; when a client goes away the
    cancelled stream sits in a reference cycle (through the exception's
    traceback) until the next collection, so the viewer would stay counted
    for seconds or minutes.
    """

    def __init__(self, parts: Generator[bytes, None, None], *, media_type: str) -> None:
        super().__init__(
            parts,
            media_type=media_type,
            headers={"Cache-Control": "no-store", "Pragma": "no-cache"},
        )
        self._parts = parts

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            # By now no worker thread runs it (Starlette waits for the thread of a
            # cancelled next()); if one did, closing raises ValueError: leave it to GC.
            with suppress(ValueError):
                self._parts.close()


def _part(jpeg: bytes) -> bytes:
    head = f"--{BOUNDARY}\r\nContent-Type: image/jpeg\r\nContent-Length: {len(jpeg)}\r\n\r\n"
    return head.encode("ascii") + jpeg + b"\r\n"


def _index_page(thing: str) -> str:
    name = html.escape(thing)
    return (
        '<!doctype html>\n<html><head><meta charset="utf-8">'
        f"<title>facelens: {name}</title>"
        "<style>body{margin:0;background:#111;color:#eee;font-family:sans-serif}"
        "h1{font-size:1.1em;margin:.4em}img{display:block;max-width:100%;height:auto}</style>"
        f"</head><body><h1>{name}</h1>"
        f'<img src="stream.mjpg" alt="live view of {name}"></body></html>\n'
    )


def build_app(
    view: LiveView,
    stats: Callable[[], EdgeStats],
    *,
    credentials: ViewCredentials | None,
    max_fps: float,
    thing: str,
    stopping: threading.Event | None = None,
) -> FastAPI:
    """The live view: ``/``, ``/stream.mjpg``, ``/snapshot.jpg``, ``/metrics``, ``/healthz``.

    max_fps: most frames per second sent to each stream client. stopping:
    set it to end every open stream (within ``STREAM_POLL_SECONDS``);
    :class:`ViewServer` sets it on stop, so uvicorn is not left waiting on
    never-ending responses. Default: a new Event, kept as ``app.state.stopping``.
    When ``credentials`` are given every route needs them (HTTP Basic); the
    OpenAPI/docs routes are off either way.
    """
    stop_event = stopping if stopping is not None else threading.Event()
    dependencies = [Depends(_BasicAuth(credentials))] if credentials is not None else []
    app = FastAPI(
        title=f"facelens live view: {thing}",
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
        dependencies=dependencies,
    )
    app.state.stopping = stop_event
    page = _index_page(thing)

    @app.exception_handler(FacelensError)
    async def facelens_error(_request: Request, exc: FacelensError) -> JSONResponse:
        return JSONResponse(
            {"__type": exc.code, "message": exc.message}, status_code=exc.http_status
        )

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        default = "ValidationException" if exc.status_code < 500 else "InternalServerError"
        return JSONResponse(
            {"__type": _HTTP_ERROR_TYPES.get(exc.status_code, default), "message": exc.detail},
            status_code=exc.status_code,
            headers=exc.headers,
        )

    @app.get("/", response_class=HTMLResponse)
    async def index() -> HTMLResponse:
        return HTMLResponse(page)

    @app.get("/stream.mjpg")
    async def stream() -> StreamingResponse:
        def parts() -> Generator[bytes, None, None]:
            frames = view.frames(max_fps=max_fps, stop=stop_event, timeout=STREAM_POLL_SECONDS)
            with closing(frames):  # closing parts() closes the viewer's generator too
                for jpeg in frames:
                    yield _part(jpeg)

        return _ClosingStreamingResponse(
            parts(), media_type=f"multipart/x-mixed-replace; boundary={BOUNDARY}"
        )

    @app.get("/snapshot.jpg")
    def snapshot() -> Response:  # sync: encoding runs in the thread pool
        jpeg = view.latest_jpeg()
        if jpeg is None:
            raise ServiceUnavailableException(f"{thing} has not delivered a frame yet")
        return Response(jpeg, media_type="image/jpeg", headers={"Cache-Control": "no-store"})

    @app.get("/metrics")
    def metrics() -> Response:  # sync: stats() may take the runner's lock
        return Response(render_prometheus(stats()), media_type=CONTENT_TYPE_LATEST)

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok", "thing": thing}

    return app


class ViewServer(ThreadedServer):
    """The live view's server: loopback only unless HTTP Basic credentials are set.

    allowed_hosts: names it answers to besides loopback ones and ``host``
    (``edge.view_allowed_hosts``); any other ``Host`` is refused with 403.
    """

    def __init__(
        self,
        app: FastAPI,
        *,
        host: str,
        port: int,
        credentials: ViewCredentials | None,
        allowed_hosts: Sequence[str] = (),
    ) -> None:
        if credentials is None and not is_loopback(host):
            raise ConfigurationError(
                f"the live view shows faces (biometric data): serving it on {host!r} needs "
                "view_username and view_password; without them use a loopback address "
                "(127.0.0.1, ::1, localhost)"
            )
        super().__init__(
            app,
            host=host,
            port=port,
            what="live view",
            allowed_hosts=allowed_hosts,
            hosts_setting="edge.view_allowed_hosts (FACELENS_EDGE__VIEW_ALLOWED_HOSTS)",
        )

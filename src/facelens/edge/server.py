"""The live view's HTTP server: an MJPEG stream, a snapshot, metrics and a health check.

It runs uvicorn in a daemon thread of the edge runner's process, because the
view only reads what the frame loop publishes into a :class:`LiveView`; a
separate process would need the frames shipped to it. Each stream is a sync
generator that Starlette iterates in its worker threads, so drawing and JPEG
encoding never run on the event loop (anyio's pool holds 40 threads: each
streaming viewer occupies one only while it waits for or encodes a frame).

Faces on video are biometric data: the server refuses to listen on anything
but loopback without HTTP Basic credentials (use TLS in front of it, e.g. a
reverse proxy, when it is reachable from a network).
"""

from __future__ import annotations

import base64
import html
import ipaddress
import logging
import secrets
import threading
import time
from collections.abc import Callable, Generator
from contextlib import closing, suppress
from dataclasses import dataclass
from typing import Any

import uvicorn
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


def is_loopback(host: str) -> bool:
    """True for ``localhost``, 127.0.0.0/8 and ``::1``: addresses no other machine reaches."""
    if host.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip()).is_loopback
    except ValueError:
        return False


class ViewServer:
    """uvicorn serving one app from a daemon thread; started once, stopped once.

    ``localhost`` binds 127.0.0.1 only (with port 0 asyncio would otherwise
    give 127.0.0.1 and ::1 two different free ports).
    """

    def __init__(
        self,
        app: FastAPI,
        *,
        host: str,
        port: int,
        credentials: ViewCredentials | None,
    ) -> None:
        if not 0 <= port <= 65535:
            raise ConfigurationError(f"live view port must be 0-65535, got {port}")
        if credentials is None and not is_loopback(host):
            raise ConfigurationError(
                f"the live view shows faces (biometric data): serving it on {host!r} needs "
                "view_username and view_password; without them use a loopback address "
                "(127.0.0.1, ::1, localhost)"
            )
        self._app = app
        self._host = host
        self._bind_host = "127.0.0.1" if host.strip().lower() == "localhost" else host
        self._port = port
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._failure: BaseException | None = None

    @property
    def port(self) -> int:
        """The port listened on once started (the picked one when asked for 0)."""
        return self._port

    @property
    def url(self) -> str:
        host = f"[{self._bind_host}]" if ":" in self._bind_host else self._bind_host
        return f"http://{host}:{self._port}"

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self, *, timeout: float = 10.0) -> None:
        """Listen and serve; returns once the socket is listening.

        Raises ConfigurationError when the port cannot be bound (in use, or
        privileged) or the server did not come up within ``timeout`` seconds.
        """
        if self._server is not None:
            raise ConfigurationError("a ViewServer can be started only once")
        config = uvicorn.Config(
            self._app,
            host=self._bind_host,
            port=self._port,
            log_level="warning",
            lifespan="off",
            log_config=None,  # leave the process' logging alone: records propagate to root
            access_log=False,
        )
        server = uvicorn.Server(config)
        self._server = server
        thread = threading.Thread(
            target=self._run, args=(server,), name=f"facelens-view-{self._port}", daemon=True
        )
        self._thread = thread
        thread.start()
        deadline = time.monotonic() + timeout
        while not server.started:
            if not thread.is_alive():
                where = f"{self._host}:{self._port}"
                failure = self._failure
                reason = f": {failure}" if failure is not None else ""
                raise ConfigurationError(f"live view cannot listen on {where}{reason}") from failure
            if time.monotonic() > deadline:
                server.should_exit = True
                raise ConfigurationError(
                    f"live view on {self._host}:{self._port} did not start within {timeout} s"
                )
            time.sleep(0.01)
        self._port = int(server.servers[0].sockets[0].getsockname()[1])
        thread.name = f"facelens-view-{self._port}"
        logger.info("live view at %s", self.url)

    def _run(self, server: uvicorn.Server) -> None:
        try:
            server.run()
        except SystemExit as exc:
            # uvicorn logs a bind failure and calls sys.exit(1) from inside the
            # `except OSError`, so the OSError is the SystemExit's context.
            self._failure = exc.__context__ if exc.__context__ is not None else exc
        except Exception as exc:
            self._failure = exc
            logger.exception("live view server failed")

    def stop(self, *, timeout: float = 5.0) -> None:
        """Stop serving and wait (at most ``timeout`` seconds) for the thread to end.

        Open streams end first (the app's ``stopping`` event); if connections
        still hold uvicorn after half the timeout, it is told to force its exit.
        The LiveView is the caller's: it is not closed here.
        """
        server, thread = self._server, self._thread
        if server is None or thread is None:
            return
        stopping: Any = getattr(self._app.state, "stopping", None)
        if isinstance(stopping, threading.Event):
            stopping.set()
        server.should_exit = True
        deadline = time.monotonic() + timeout
        thread.join(timeout / 2)
        if thread.is_alive():
            server.force_exit = True
            thread.join(max(0.0, deadline - time.monotonic()))
        if thread.is_alive():
            logger.warning("live view server did not stop within %.1f s", timeout)

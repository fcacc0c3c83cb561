"""The HTTP server: one FastAPI app with the REST API, the AWS endpoints and the dashboard.

The AWS endpoints (Rekognition and DynamoDB on ``POST /``, the IoT data plane
on ``POST /topics/{topic}``) let AWS SDKs and the AWS CLI call facelens
unchanged; see :mod:`facelens.api.aws.protocol` and :mod:`facelens.api.aws.iot_data`.

Routers stay thin: they parse, call the services ``Components`` built, and
shape the answer. Every ``FacelensError`` becomes AWS's JSON error shape
(``{"__type": code, "message": …}``) with its HTTP status, here and only
here, so boto3 raises its own exception classes and REST clients see the
same codes as the CLI. Request bodies are capped (``serve.max_upload_bytes``)
while they stream in, before anything is parsed.

Two checks run on every request before any route (:class:`SameOriginWrites`
here; the ``Host`` check in :class:`facelens.http_server.HostCheck`): a
request must name this server in ``Host``, and a state-changing one that
rides on the browser (a cookie, or a keyless loopback server's open door)
must come from this server's own pages. ``/docs`` and ``/openapi.json``
need the read role, like the API they describe.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from facelens.access.keys import KeyStore, Role
from facelens.api.security import Authenticator, FailureLimiter, Sessions, cross_site, require
from facelens.config import ServeSettings
from facelens.errors import (
    AccessDeniedException,
    ConflictException,
    FacelensError,
    RequestEntityTooLargeException,
    ResourceAlreadyExistsException,
    ResourceNotFoundException,
)
from facelens.wiring import Components

if TYPE_CHECKING:
    from facelens.api.aws.dynamodb_items import ProfileTables

_log = logging.getLogger(__name__)

_HTTP_CODES = {
    401: "UnrecognizedClientException",
    403: "AccessDeniedException",
    404: "ResourceNotFoundException",
    405: "UnknownOperationException",
    413: "RequestEntityTooLargeException",
}


@dataclass
class ServerContext:
    """What the routers use: the services, the key store, the server's settings."""

    components: Components
    keys: KeyStore
    settings: ServeSettings

    @property
    def collection_id(self) -> str:
        """The collection the dashboard enrols into and the recognizer searches."""
        return self.settings.collection_id or self.components.settings.recognizer.collection_id

    @cached_property
    def tables(self) -> ProfileTables:
        """The DynamoDB endpoint's tables: views of the one profile store (built on first use)."""
        from facelens.api.aws.dynamodb_items import ProfileTables
        from facelens.api.aws.dynamodb_tables import TableCatalogue

        catalogue = TableCatalogue(self.components.settings.home / "dynamodb-tables.db")
        return ProfileTables(catalogue, self.components.profiles, region=self.settings.region)


def error_response(
    error: FacelensError, *, rest: bool = False, error_type: str | None = None
) -> JSONResponse:
    """AWS's JSON error shape. ``rest``: the native API's statuses (404 for what does not
    exist, 409 for conflicts) instead of Rekognition's 400s; the ``__type`` is the same.
    ``error_type``: the ``__type`` when a service qualifies it (DynamoDB's
    ``com.amazonaws.dynamodb.v20120810#…``); the error's code otherwise."""
    headers = {"x-amzn-ErrorType": error.code}
    status = error.http_status
    if rest and isinstance(error, ResourceNotFoundException) and status == 400:
        status = 404
    elif rest and isinstance(error, ResourceAlreadyExistsException | ConflictException):
        status = 409
    if error.http_status == 401:
        headers["WWW-Authenticate"] = 'Bearer realm="facelens"'
    return JSONResponse(
        {"__type": error_type or error.code, "message": error.message},
        status_code=status,
        headers=headers,
    )


def create_app(
    components: Components, *, keys: KeyStore, settings: ServeSettings, open_access: bool
) -> FastAPI:
    """The app; ``open_access`` (no keys exist) trusts every caller: loopback only."""
    from facelens.api.aws import dynamodb, iot_data, rekognition
    from facelens.api.aws.protocol import json_router
    from facelens.api.dashboard import feed as dashboard
    from facelens.api.rest import audit as rest_audit
    from facelens.api.rest import collections as rest
    from facelens.api.rest import corrections as rest_corrections
    from facelens.api.rest import forget as rest_forget
    from facelens.api.rest import identify as rest_identify
    from facelens.api.rest import strangers as rest_strangers

    app = FastAPI(
        title="facelens",
        summary="Open person identification: collections, profiles, identifications.",
        version="0.1.0",
        docs_url=None,  # served below, behind the read role
        redoc_url=None,
        openapi_url=None,
    )
    app.state.ctx = ServerContext(components, keys, settings)
    # Set by ThreadedServer.stop(): never-ending responses (the live feed) watch it and end.
    app.state.stopping = threading.Event()
    app.state.authenticator = Authenticator(
        keys,
        open_access=open_access,
        limiter=FailureLimiter(settings.failed_auth_limit),
        sessions=Sessions(hours=settings.session_hours),
    )

    @app.exception_handler(FacelensError)
    async def facelens_error(request: Request, exc: FacelensError) -> JSONResponse:
        return error_response(exc, rest=request.url.path.startswith("/api/"))

    @app.exception_handler(RequestValidationError)
    async def validation_error(_request: Request, exc: RequestValidationError) -> JSONResponse:
        detail = "; ".join(
            f"{'.'.join(str(p) for p in e.get('loc', ()))}: {e.get('msg')}" for e in exc.errors()
        )
        return JSONResponse(
            {"__type": "ValidationException", "message": detail or "Invalid request"},
            status_code=400,
        )

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = _HTTP_CODES.get(exc.status_code, "ValidationException")
        return JSONResponse(
            {"__type": code, "message": str(exc.detail)},
            status_code=exc.status_code,
            headers=exc.headers,
        )

    app.include_router(rest.router, prefix="/api/v1")
    app.include_router(rest_audit.router, prefix="/api/v1")
    app.include_router(rest_forget.router, prefix="/api/v1")
    app.include_router(rest_corrections.router, prefix="/api/v1")
    app.include_router(rest_strangers.router, prefix="/api/v1")
    app.include_router(rest_identify.router, prefix="/api/v1")
    app.include_router(json_router(rekognition.SERVICE, dynamodb.SERVICE))
    app.include_router(iot_data.router)
    app.include_router(dashboard.router)

    @app.get("/", include_in_schema=False)
    async def root() -> RedirectResponse:
        return RedirectResponse("/ui/", status_code=303)

    reader = [Depends(require(Role.READ))]

    @app.get("/openapi.json", include_in_schema=False, dependencies=reader)
    async def openapi() -> JSONResponse:
        return JSONResponse(app.openapi())

    @app.get("/docs", include_in_schema=False, dependencies=reader)
    async def docs() -> HTMLResponse:
        return get_swagger_ui_html(openapi_url="/openapi.json", title="facelens API")

    app.add_middleware(BodyLimit, limit=settings.max_upload_bytes)
    # Added last, so it runs first: a foreign page's request is refused before its body is read.
    app.add_middleware(SameOriginWrites, public_names=frozenset(settings.allowed_hosts))
    return app


class SameOriginWrites:
    """ASGI middleware: 403 ``AccessDeniedException`` for a state-changing request that a
    page of another site made the browser send (:func:`facelens.api.security.cross_site`),
    on every route, before the app sees it. ``public_names``: ``serve.allowed_hosts``."""

    def __init__(self, app: ASGIApp, public_names: frozenset[str]) -> None:
        self.app = app
        self.public_names = public_names

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            reason = cross_site(
                scope["method"], Headers(scope=scope), public_names=self.public_names
            )
            if reason is not None:
                await error_response(AccessDeniedException(reason))(scope, receive, send)
                return
        await self.app(scope, receive, send)


class BodyLimit:
    """ASGI middleware: a body over ``limit`` bytes is refused with 413 as it streams in,
    whether or not it declared its length, before the app reads (and buffers) it."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers", [])).get(b"content-length")
        too_large = RequestEntityTooLargeException(
            f"The request body is over the {self.limit}-byte limit"
        )
        if declared is not None and declared.isdigit() and int(declared) > self.limit:
            await error_response(too_large)(scope, receive, send)
            return
        seen = 0
        started = refused = False

        async def counting_receive() -> Message:
            # Over the limit: answer 413 at once and tell the app the client has gone, so
            # it stops reading; whatever it then tries to send is dropped.
            nonlocal seen, started, refused
            if refused:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit:
                    refused = True
                    if not started:
                        started = True
                        await error_response(too_large)(scope, receive, send)
                    return {"type": "http.disconnect"}
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if refused:
                return
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        await self.app(scope, counting_receive, guarded_send)

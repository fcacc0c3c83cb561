"""The HTTP server's app: the REST API, the AWS endpoints and the dashboard, in one FastAPI app.

This module assembles; it is the only one that imports every router. The
AWS endpoints (Rekognition and DynamoDB on ``POST /``, the IoT data plane on
``POST /topics/{topic}``) let AWS SDKs and the AWS CLI call facelens
unchanged (:mod:`facelens.api.aws`); the native REST API is under
``/api/v1`` (:mod:`facelens.api.rest`), the dashboard under ``/ui/``
(:mod:`facelens.api.dashboard`).

Routers stay thin: they parse, call the parts they are handed
(:mod:`facelens.api.context`), and shape the answer. Errors leave in AWS's
JSON shape (:mod:`facelens.api.errors`). Request bodies are capped
(``serve.max_upload_bytes``) while they stream in, before anything is parsed.

Two checks run on every request before any route (:mod:`facelens.api.middleware`;
the ``Host`` check in :class:`facelens.http_server.HostCheck`): a request must
name this server in ``Host``, and a state-changing one that rides on the
browser (a cookie, or a keyless loopback server's open door) must come from
this server's own pages. ``/docs`` and ``/openapi.json`` need the read role,
like the API they describe.
"""

from __future__ import annotations

import threading

from fastapi import Depends, FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse

from facelens.access.keys import Role
from facelens.api.aws import dynamodb, iot_data, rekognition
from facelens.api.aws.protocol import SigningKeys, json_router
from facelens.api.context import ServerContext
from facelens.api.dashboard import corrections as dashboard_corrections
from facelens.api.dashboard import feed, login, people, search, strangers
from facelens.api.errors import add_error_handlers
from facelens.api.middleware import BodyLimit, SameOriginWrites
from facelens.api.parts import ServerParts
from facelens.api.rest import audit, collections, forget, identifications, identify, monitoring
from facelens.api.rest import corrections as rest_corrections
from facelens.api.rest import profiles as rest_profiles
from facelens.api.rest import strangers as rest_strangers
from facelens.api.rest import visits as rest_visits
from facelens.api.security import Authenticator, FailureLimiter, Sessions, require

REST_V1 = "/api/v1"


def create_app(context: ServerContext, parts: ServerParts, *, open_access: bool) -> FastAPI:
    """The app, its routes handed ``parts``; ``open_access`` (no keys exist) trusts every
    caller: loopback only."""
    settings = context.settings
    app = FastAPI(
        title="facelens",
        summary="Open person identification: collections, profiles, identifications.",
        version="0.1.0",
        docs_url=None,  # served below, behind the read role
        redoc_url=None,
        openapi_url=None,
    )
    app.state.ctx = context
    app.state.parts = parts  # read by facelens.api.context's dependencies only
    # Set by ThreadedServer.stop(): never-ending responses (the live feed) watch it and end.
    app.state.stopping = threading.Event()
    app.state.authenticator = Authenticator(
        context.keys,
        open_access=open_access,
        limiter=FailureLimiter(settings.failed_auth_limit),
        sessions=Sessions(hours=settings.session_hours),
    )
    add_error_handlers(app)

    for rest in (
        monitoring,
        collections,
        rest_profiles,
        identifications,
        rest_visits,
        audit,
        forget,
        rest_corrections,
        rest_strangers,
        identify,
    ):
        app.include_router(rest.router, prefix=REST_V1)
    keys = SigningKeys(lookup=context.keys.access_key, region=settings.region)
    app.include_router(
        json_router(
            keys,
            rekognition.service(parts.rekognition, parts.analyzer, parts.objects, parts.gallery),
            dynamodb.service(parts.tables, parts.profile_access),
        )
    )
    app.include_router(iot_data.publish_router(keys, parts.publisher))
    for page in (people, search, strangers, dashboard_corrections, login, feed):
        app.include_router(page.router)

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

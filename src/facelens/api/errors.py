"""How errors leave the HTTP server: one place turns a ``FacelensError`` into a response.

Every ``FacelensError`` becomes AWS's JSON error shape (``{"__type": code,
"message": …}``) with its HTTP status, here and only here, so boto3 raises its
own exception classes and REST clients see the same codes as the CLI. The
REST API (under ``/api/``) answers 404 and 409 where Rekognition says 400;
the ``__type`` is the same. FastAPI's own refusals (a bad parameter, an
unknown route or method) leave in the same shape.
"""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from facelens.errors import (
    ConflictException,
    FacelensError,
    ResourceAlreadyExistsException,
    ResourceNotFoundException,
)

REST_PREFIX = "/api/"
"""Where the native REST API is mounted: errors there get REST's statuses."""

_HTTP_CODES = {
    401: "UnrecognizedClientException",
    403: "AccessDeniedException",
    404: "ResourceNotFoundException",
    405: "UnknownOperationException",
    413: "RequestEntityTooLargeException",
}


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


def add_error_handlers(app: FastAPI) -> None:
    """Renders what a route raises, and what FastAPI refuses, in AWS's error shape."""

    @app.exception_handler(FacelensError)
    async def facelens_error(request: Request, exc: FacelensError) -> JSONResponse:
        return error_response(exc, rest=request.url.path.startswith(REST_PREFIX))

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

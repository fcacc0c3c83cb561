"""The Rekognition-compatible endpoint: AWS SDKs and the AWS CLI talk to facelens unchanged.

Rekognition speaks the AWS JSON 1.1 protocol: every call is ``POST /`` with
the operation in ``X-Amz-Target: RekognitionService.<Operation>``, the
parameters as a JSON object, and an AWS Signature Version 4 in
``Authorization``. So ``boto3.client("rekognition", endpoint_url=…)`` with a
facelens access key works as against AWS, errors included: each
``FacelensError`` leaves as ``{"__type": code, "message": …}`` (see
:func:`facelens.api.app.error_response`), which botocore turns into its own
exception classes.

A request is handled in this order: read the (size-capped) body, verify the
signature (failures count against the client's failure limit), find the
operation (UnknownOperationException), parse the JSON (SerializationException),
check the caller's role (AccessDeniedException), run the operation. The
signature check and the operation run on a worker thread: key lookup is a
SQLite read, and decoding, detecting and embedding take 0.1-1 s of CPU that
must not stall the event loop. The operations are in
:mod:`facelens.api.rekognition_ops`.
"""

from __future__ import annotations

import json
import uuid
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Request, Response
from starlette.concurrency import run_in_threadpool

from facelens.api import sigv4
from facelens.api.app import ServerContext
from facelens.api.keys import LOCAL, Principal
from facelens.api.rekognition_ops import OPERATIONS, Params
from facelens.api.security import Authenticator, client_address
from facelens.errors import (
    AccessDeniedException,
    SerializationException,
    UnknownOperationException,
)

router = APIRouter()

SERVICE = "rekognition"
"""The service name in the SigV4 credential scope (boto3's signing name for Rekognition)."""

TARGET_PREFIX = "RekognitionService."
CONTENT_TYPE = "application/x-amz-json-1.1"


@router.post("/", include_in_schema=False)
async def rekognition(request: Request) -> Response:
    """One Rekognition call (AWS JSON 1.1); errors leave through the app's handler."""
    ctx: ServerContext = request.app.state.ctx
    authenticator: Authenticator = request.app.state.authenticator
    body = await request.body()
    signed = sigv4.SignedRequest(
        method=request.method,
        path=_raw_path(request),
        query_string=request.scope.get("query_string", b"").decode("latin-1"),
        headers=tuple(request.headers.items()),
        body=body,
    )
    target = request.headers.get("x-amz-target", "")
    result = await run_in_threadpool(
        _call, ctx, authenticator, signed, client_address(request), target, body
    )
    return Response(
        json.dumps(result).encode("utf-8"),
        media_type=CONTENT_TYPE,
        headers={"x-amzn-RequestId": str(uuid.uuid4())},
    )


def _call(
    ctx: ServerContext,
    authenticator: Authenticator,
    signed: sigv4.SignedRequest,
    client: str,
    target: str,
    body: bytes,
) -> dict[str, Any]:
    principal = _authenticate(ctx, authenticator, signed, client)
    name = target.removeprefix(TARGET_PREFIX) if target.startswith(TARGET_PREFIX) else ""
    operation = OPERATIONS.get(name)
    if operation is None:
        raise UnknownOperationException(
            f"Unknown operation {target!r}: expected X-Amz-Target {TARGET_PREFIX}<Operation>, "
            f"one of {', '.join(sorted(OPERATIONS))}"
        )
    params = _parse(body)
    if not principal.role.allows(operation.role):
        raise AccessDeniedException(
            f"User: {principal.name} ({principal.role}) is not authorized to perform: "
            f"{SERVICE}:{name}"
        )
    return operation.handler(ctx.components, params)


def _authenticate(
    ctx: ServerContext, authenticator: Authenticator, signed: sigv4.SignedRequest, client: str
) -> Principal:
    """The caller: whoever signed, or ``local`` when the server has no keys (loopback only)."""
    if authenticator.open_access:
        return LOCAL
    return sigv4.authenticate(
        signed,
        lookup=ctx.keys.access_key,
        limiter=authenticator.limiter,
        client=client,
        region=ctx.settings.region,
        service=SERVICE,
    )


def _raw_path(request: Request) -> str:
    """The path exactly as sent (percent-encoded), which is what the client signed."""
    raw = request.scope.get("raw_path")
    if isinstance(raw, bytes) and raw:
        return raw.decode("latin-1").partition("?")[0]
    return quote(request.url.path, safe="/")


def _parse(body: bytes) -> Params:
    if not body.strip():
        return Params({})
    try:
        document = json.loads(body)
    except (UnicodeDecodeError, ValueError):
        raise SerializationException("The request body is not valid JSON") from None
    if not isinstance(document, dict):
        raise SerializationException("The request body must be a JSON object")
    return Params(document)

"""The AWS JSON protocol on ``POST /``: one route for every JSON service facelens speaks.

Rekognition (JSON 1.1) and DynamoDB (JSON 1.0) are both called as ``POST /``
with the operation in ``X-Amz-Target: <Prefix>.<Operation>`` and the
parameters as a JSON object, signed with AWS Signature Version 4. So one
route serves both: the target's prefix picks the service
(:class:`JsonService`), and with it the service name the signature must be
scoped to (``rekognition``, ``dynamodb``), the content type and the shape
of errors.

A request is handled in this order: read the (size-capped) body, verify the
signature (failures count against the client's failure limit), find the
operation (UnknownOperationException), parse the JSON
(SerializationException), check the caller's role (AccessDeniedException),
run the operation. Everything after reading the body runs on a worker
thread: the key lookup is a SQLite read, and operations decode images,
embed faces (0.1-1 s of CPU) or touch databases, none of which may stall
the event loop.

A target with an unknown prefix is still authenticated first, against the
service its credential names (when that is one of ours), so a well-signed
request with a wrong target learns UnknownOperationException, not a
signature error.

This module also holds what the IoT data-plane route (:mod:`facelens.api.aws.iot_data`)
shares with these: the request as it was signed, and authentication.

Each service runs its operations on the parts it was built with
(:func:`facelens.api.aws.rekognition.service`, :func:`facelens.api.aws.dynamodb.service`),
and the route checks signatures against the keys it was built with
(:class:`SigningKeys`): nothing here reaches into the server for more.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar
from urllib.parse import quote

from fastapi import APIRouter, Request, Response
from pydantic import SecretStr
from starlette.concurrency import run_in_threadpool

from facelens import json_limits
from facelens.access.keys import LOCAL, Principal, Role
from facelens.api.aws import sigv4
from facelens.api.aws.replays import REUSE_PAUSE, ReplayCache, mutating, repeatable
from facelens.api.errors import error_response
from facelens.api.security import Authenticator, client_address
from facelens.errors import (
    AccessDeniedException,
    FacelensError,
    SerializationException,
    SignatureReusedException,
    UnknownOperationException,
)

Json = dict[str, Any]
_T = TypeVar("_T")
MAX_BODY_DEPTH = 100
"""Most arrays and objects a request body may nest. The deepest legitimate body is a
PutItem at DynamoDB's 32-level limit: 31 maps in an attribute take two JSON levels each
(``{"M": {``), the leaf one, the request and its Item two more: 65. Everything that
walks a body recurses per level (validators, converters, ``json.dumps``), so 100 keeps
them far from Python's recursion limit of 1000, which ``"[" * 100000`` hit in
``json.loads`` itself: a 500 instead of a 400. Refused before parsing, in linear time."""
Runner = Callable[[Principal, str, Json], Json]
"""(the caller, operation name, request JSON) -> response JSON; runs on a worker thread.
The caller is for the audit log: the role was checked before."""


def plain_error_type(error: FacelensError) -> str:
    """The ``__type`` most services send: the bare code (``ResourceNotFoundException``)."""
    return error.code


@dataclass(frozen=True)
class SigningKeys:
    """What checking a SigV4 signature needs of the server: the secret of each access key,
    and the region a signature must be scoped to (``serve.region``)."""

    lookup: Callable[[str], tuple[Principal, SecretStr] | None]
    region: str


@dataclass(frozen=True)
class JsonService:
    """One AWS JSON-protocol service served on ``POST /``.

    ``name`` is the IAM action prefix used in messages (``dynamodb:PutItem``);
    ``signing_name`` the service in the SigV4 credential scope; ``roles``
    maps each operation (the target after ``target_prefix``) to the role it
    needs; ``error_type`` renders an error's ``__type``; ``headers`` adds
    response headers computed from the response body (DynamoDB's CRC32).
    """

    name: str
    target_prefix: str
    signing_name: str
    content_type: str
    roles: Mapping[str, Role]
    run: Runner
    error_type: Callable[[FacelensError], str] = plain_error_type
    headers: Callable[[bytes], dict[str, str]] = field(default=lambda _body: {})

    def operation(self, target: str) -> str:
        """The operation ``target`` names; UnknownOperationException if none of ours."""
        prefixed = target.startswith(self.target_prefix)
        name = target.removeprefix(self.target_prefix) if prefixed else ""
        if name not in self.roles:
            raise UnknownOperationException(
                f"Unknown operation {target!r}: expected X-Amz-Target "
                f"{self.target_prefix}<Operation>, one of {', '.join(sorted(self.roles))}"
            )
        return name

    def respond(self, document: Json, *, status: int = 200) -> Response:
        body = json.dumps(document).encode("utf-8")
        headers = {"x-amzn-RequestId": str(uuid.uuid4()), **self.headers(body)}
        return Response(body, status_code=status, media_type=self.content_type, headers=headers)

    def error(self, error: FacelensError) -> Response:
        """AWS's JSON error shape with this service's ``__type`` and headers."""
        rendered = error_response(error, error_type=self.error_type(error))
        rendered.headers.update(self.headers(bytes(rendered.body)))
        return rendered


def json_router(keys: SigningKeys, *services: JsonService) -> APIRouter:
    """The ``POST /`` route for ``services``, signed with ``keys``; the first service also
    answers unknown targets."""
    router = APIRouter()

    @router.post("/", include_in_schema=False)
    async def aws_json(request: Request) -> Response:
        authenticator: Authenticator = request.app.state.authenticator
        body = await request.body()
        signed = signed_request(request, body)
        target = request.headers.get("x-amz-target", "")
        service = _service_for(target, signed, services)
        replays = replay_cache(request)
        try:
            result = await run_signed(
                _call,
                service,
                keys,
                authenticator,
                signed,
                client_address(request),
                target,
                body,
                replays,
            )
        except FacelensError as exc:
            return service.error(exc)
        return service.respond(result)

    return router


def _service_for(
    target: str, signed: sigv4.SignedRequest, services: tuple[JsonService, ...]
) -> JsonService:
    for service in services:
        if target.startswith(service.target_prefix):
            return service
    scoped = _scoped_service(signed)
    for service in services:
        if service.signing_name == scoped:
            return service
    return services[0]


def _scoped_service(signed: sigv4.SignedRequest) -> str | None:
    header = signed.header("authorization")
    if header is None:
        return None
    try:
        return sigv4.parse_authorization(header).service
    except FacelensError:
        return None


def _call(
    service: JsonService,
    keys: SigningKeys,
    authenticator: Authenticator,
    signed: sigv4.SignedRequest,
    client: str,
    target: str,
    body: bytes,
    replays: ReplayCache,
) -> Json:
    # The target is signed (sigv4 insists), so what it says about the call can be trusted.
    operation = target.removeprefix(service.target_prefix)
    principal = authenticate(
        keys,
        authenticator,
        signed,
        client,
        service=service.signing_name,
        replays=replays if mutating(operation) else None,
        repeatable=repeatable(operation),
    )
    name = service.operation(target)
    params = parse_object(body)
    if not principal.role.allows(service.roles[name]):
        raise AccessDeniedException(
            f"User: {principal.name} ({principal.role}) is not authorized to perform: "
            f"{service.name}:{name}"
        )
    return service.run(principal, name, params)


def signed_request(request: Request, body: bytes) -> sigv4.SignedRequest:
    """The request as the client signed it: raw path and query, every header, the body."""
    return sigv4.SignedRequest(
        method=request.method,
        path=raw_path(request),
        query_string=request.scope.get("query_string", b"").decode("latin-1"),
        headers=tuple(request.headers.items()),
        body=body,
    )


def authenticate(
    keys: SigningKeys,
    authenticator: Authenticator,
    signed: sigv4.SignedRequest,
    client: str,
    *,
    service: str,
    replays: ReplayCache | None,
    repeatable: bool = False,
) -> Principal:
    """The caller: whoever signed for ``service``, or ``local`` when the server has no keys
    (it then listens on loopback only). ``replays``: for a request that changes something,
    whose signature is then accepted once (:class:`ReplayCache`; ``repeatable`` as
    there); None for a read. Blocking (a SQLite read): call from a worker thread."""
    if authenticator.open_access:
        return LOCAL
    return sigv4.authenticate(
        signed,
        lookup=keys.lookup,
        limiter=authenticator.limiter,
        client=client,
        region=keys.region,
        service=service,
        replays=replays,
        repeatable=repeatable,
    )


async def run_signed(call: Callable[..., _T], *args: Any) -> _T:
    """``call(*args)`` on a worker thread; a refusal for a reused signature leaves
    ``REUSE_PAUSE`` later, waited out here on the event loop (holding no thread),
    so the SDK's retry is signed in a later second and is not refused again."""
    try:
        return await run_in_threadpool(call, *args)
    except SignatureReusedException:
        await asyncio.sleep(REUSE_PAUSE.total_seconds())
        raise


def replay_cache(request: Request) -> ReplayCache:
    """The server's used signatures, shared by every SigV4 route of the app (so per
    process), made on the first signed request. Call on the event loop: it is one
    thread, so two caches are never made."""
    state = request.app.state
    cache = getattr(state, "sigv4_replays", None)
    if not isinstance(cache, ReplayCache):
        cache = state.sigv4_replays = ReplayCache()
    return cache


def raw_path(request: Request) -> str:
    """The path exactly as sent (percent-encoded), which is what the client signed."""
    raw = request.scope.get("raw_path")
    if isinstance(raw, bytes) and raw:
        return raw.decode("latin-1").partition("?")[0]
    return quote(request.url.path, safe="/")


def parse_object(body: bytes) -> Json:
    """The request's JSON object; an empty body is ``{}`` (botocore sends ``{}`` anyway).

    A body nested over :data:`MAX_BODY_DEPTH` levels is refused before it is parsed.
    """
    if not body.strip():
        return {}
    try:
        document = json_limits.loads(body, max_depth=MAX_BODY_DEPTH)
    except json_limits.TooDeepError:
        raise SerializationException(
            f"The request body nests more than {MAX_BODY_DEPTH} arrays and objects deep"
        ) from None
    except ValueError:  # UnicodeDecodeError is a ValueError
        raise SerializationException("The request body is not valid JSON") from None
    if not isinstance(document, dict):
        raise SerializationException("The request body must be a JSON object")
    return document

"""Checks every request meets before any route: a foreign page's write, an oversized body.

Both are ASGI middleware, so they act before FastAPI reads (and buffers) the
body: a foreign page's state-changing request is refused before its body is
read, and a body over ``serve.max_upload_bytes`` is refused as it streams in.
The ``Host`` check is :class:`facelens.http_server.HostCheck`'s.
"""

from __future__ import annotations

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from facelens.api.errors import error_response
from facelens.api.security import cross_site
from facelens.errors import AccessDeniedException, RequestEntityTooLargeException


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

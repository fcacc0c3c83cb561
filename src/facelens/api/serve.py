"""Builds the HTTP server from ``Components``: the app, and uvicorn on its own thread."""

from __future__ import annotations

import logging

from fastapi import FastAPI

from facelens.api.app import create_app
from facelens.api.security import check_bind
from facelens.http_server import ThreadedServer
from facelens.wiring import Components

_log = logging.getLogger(__name__)


def build_server(
    components: Components, *, host: str | None = None, port: int | None = None
) -> tuple[ThreadedServer, FastAPI]:
    """The server (not started) and its app. host/port default to ``settings.serve``.

    Without keys every caller is trusted, so only loopback is allowed then. The
    server answers to loopback names, ``host`` and ``serve.allowed_hosts`` only,
    and believes ``X-Forwarded-For`` from ``serve.trusted_proxies`` only.
    """
    settings = components.settings.serve
    host = settings.host if host is None else host
    port = settings.port if port is None else port
    has_keys = components.keys.has_keys()
    check_bind(host, has_keys=has_keys)
    if not has_keys:
        _log.warning(
            "No API keys: every local caller is trusted, so listening on %s only. "
            "`facelens keys create --name NAME --role admin` turns authentication on.",
            host,
        )
    app = create_app(components, keys=components.keys, settings=settings, open_access=not has_keys)
    server = ThreadedServer(
        app,
        host=host,
        port=port,
        what="facelens server",
        allowed_hosts=settings.allowed_hosts,
        hosts_setting="serve.allowed_hosts (FACELENS_SERVE__ALLOWED_HOSTS)",
        trusted_proxies=settings.trusted_proxies,
    )
    return server, app

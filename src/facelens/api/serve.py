"""Builds the HTTP server from ``Components``: the app, and uvicorn on its own thread.

:func:`build_server` is the one place of the HTTP front end that reads
``Components``: it hands the routes their parts (:class:`ServerParts`), each
provider returning the part ``Components`` builds on first use, so the
server opens and loads nothing before a request needs it.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from functools import partial
from typing import TypeVar

from fastapi import FastAPI

from facelens.api.app import create_app
from facelens.api.aws.dynamodb_items import ProfileTables
from facelens.api.aws.dynamodb_tables import TableCatalogue
from facelens.api.aws.rekognition_ops import RekognitionParts
from facelens.api.context import ServerContext
from facelens.api.parts import CropPlace, ServerParts
from facelens.api.security import check_bind
from facelens.enrolment import enrol_person
from facelens.http_server import ThreadedServer
from facelens.people.identify import Identifier
from facelens.wiring import Components

_log = logging.getLogger(__name__)
_T = TypeVar("_T")


def build_server(
    components: Components, *, host: str | None = None, port: int | None = None
) -> tuple[ThreadedServer, FastAPI]:
    """The server (not started) and its app. host/port default to ``settings.serve``.

    Without keys every caller is trusted, so only loopback is allowed then. The
    server answers to loopback names, ``host`` and ``serve.allowed_hosts`` only,
    and believes ``X-Forwarded-For`` from ``serve.trusted_proxies`` only.
    """
    c = components
    settings = c.settings.serve
    r = c.settings.recognizer
    host = settings.host if host is None else host
    port = settings.port if port is None else port
    has_keys = c.keys.has_keys()
    check_bind(host, has_keys=has_keys)
    if not has_keys:
        _log.warning(
            "No API keys: every local caller is trusted, so listening on %s only. "
            "`facelens keys create --name NAME --role admin` turns authentication on.",
            host,
        )
    # The DynamoDB endpoint's tables: views of the one profile store, one catalogue per server.
    tables = _once(
        lambda: ProfileTables(
            TableCatalogue(c.settings.home / "dynamodb-tables.db"),
            c.profiles,
            region=settings.region,
        )
    )
    parts = ServerParts(
        collections=lambda: c.collections,
        users=lambda: c.users,
        store=lambda: c.store,
        analyzer=lambda: c.analyzer,
        objects=lambda: c.raw_objects,
        profiles=lambda: c.profiles,
        ledger=lambda: c.ledger,
        audit=lambda: c.audit,
        policy=lambda: c.match_policy,
        corrections=lambda: c.corrections,
        strangers=lambda: c.strangers,
        forgetter=lambda: c.forgetter,
        identifier=lambda: Identifier(
            analyzer=c.analyzer,
            collections=c.collections,
            policy=c.match_policy,
            profiles=c.profiles,
            recognizer=r,
            strangers=c.strangers if r.strangers and not c.in_rekognition else None,
        ),
        publisher=lambda: c.publisher,
        tables=tables,
        rekognition=lambda: RekognitionParts(
            collections=c.collections,
            users=c.users,
            store=c.store,
            analyzer=c.analyzer,
            objects=c.raw_objects,
        ),
        enrol=partial(enrol_person, c),
    )
    context = ServerContext(
        settings=settings,
        recognizer=r,
        collection_id=settings.collection_id or r.collection_id,
        crops=CropPlace(bucket=c.settings.bucket, prefix=r.prefix),
        keys=c.keys,
    )
    app = create_app(context, parts, open_access=not has_keys)
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


def _once(build: Callable[[], _T]) -> Callable[[], _T]:
    """``build`` called on first use only, by one thread; the same result after."""
    built: list[_T] = []
    lock = threading.Lock()

    def get() -> _T:
        with lock:
            if not built:
                built.append(build())
            return built[0]

    return get

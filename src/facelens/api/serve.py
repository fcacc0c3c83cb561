"""Builds the HTTP server from the wiring's bundles: the app, and uvicorn on its own thread.

:func:`build_server` is the one place of the HTTP front end that reads
:class:`facelens.wiring.server.ServerBundles`: it hands the routes their parts
(:class:`ServerParts`), each provider opening its bundle on first use, so the
server opens and loads nothing before a request needs it.
"""

from __future__ import annotations

import logging

from fastapi import FastAPI

from facelens.api.app import create_app
from facelens.api.aws.dynamodb_items import ProfileTables
from facelens.api.aws.dynamodb_tables import TableCatalogue
from facelens.api.aws.rekognition_ops import RekognitionParts
from facelens.api.context import ServerContext
from facelens.api.parts import CropPlace, ServerParts
from facelens.api.security import check_bind
from facelens.http_server import ThreadedServer
from facelens.people.identify import Identifier
from facelens.wiring.people import enrolment, gallery, profile_service
from facelens.wiring.server import ServerBundles, once
from facelens.wiring.stores import in_rekognition

_log = logging.getLogger(__name__)


def build_server(
    bundles: ServerBundles, *, host: str | None = None, port: int | None = None
) -> tuple[ThreadedServer, FastAPI]:
    """The server (not started) and its app. host/port default to ``settings.serve``.

    Without keys every caller is trusted, so only loopback is allowed then. The
    server answers to loopback names, ``host`` and ``serve.allowed_hosts`` only,
    and believes ``X-Forwarded-For`` from ``serve.trusted_proxies`` only.
    """
    b = bundles
    settings = b.settings.serve
    r = b.settings.recognizer
    host = settings.host if host is None else host
    port = settings.port if port is None else port
    has_keys = b.keys.has_keys()
    check_bind(host, has_keys=has_keys)
    if not has_keys:
        _log.warning(
            "No API keys: every local caller is trusted, so listening on %s only. "
            "`facelens keys create --name NAME --role admin` turns authentication on.",
            host,
        )
    # The DynamoDB endpoint's tables: views of the one profile store, one catalogue per server.
    tables = once(
        lambda: ProfileTables(
            TableCatalogue(b.settings.home / "dynamodb-tables.db"),
            b.profiles(),
            region=settings.region,
        )
    )
    strangers_on = r.strangers and not in_rekognition(b.settings)

    def identifier() -> Identifier:
        own, people = b.collections(), b.people()
        return Identifier(
            analyzer=own.analyzer,
            collections=own.collections,
            policy=people.policy,
            profiles=profile_service(b.profiles(), b.history().audit),
            recognizer=r,
            strangers=people.strangers if strangers_on else None,
        )

    def rekognition() -> RekognitionParts:
        own = b.collections()
        return RekognitionParts(
            collections=own.collections,
            users=own.users,
            store=own.store,
            objects=b.objects(),
        )

    parts = ServerParts(
        collections=lambda: b.collections().collections,
        users=lambda: b.collections().users,
        store=lambda: b.collections().store,
        analyzer=b.analyzer,
        objects=b.objects,
        profiles=b.profiles,
        ledger=lambda: b.history().ledger,
        visits=lambda: b.history().visits,
        audit=lambda: b.history().audit,
        gallery=once(lambda: gallery(b.collections(), b.history().audit)),
        profile_access=once(lambda: profile_service(b.profiles(), b.history().audit)),
        enrolment=once(lambda: enrolment(b.collections(), b.profiles(), b.history().audit)),
        policy=lambda: b.people().policy,
        corrections=lambda: b.people().corrections,
        strangers=lambda: b.people().strangers,
        curation=lambda: b.people().curation,
        forgetter=lambda: b.people().forgetter,
        identifier=identifier,
        publisher=lambda: b.publication().publisher,
        tables=tables,
        rekognition=rekognition,
    )
    context = ServerContext(
        settings=settings,
        recognizer=r,
        collection_id=settings.collection_id or r.collection_id,
        crops=CropPlace(bucket=b.settings.bucket, prefix=r.prefix),
        keys=b.keys,
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

"""One facelens process for a test, opened the way ``facelens up`` opens it.

:func:`open_wired` calls :mod:`facelens.wiring`'s factories on the test's
ExitStack, in production's order (the publication first, so it is closed
last), and hands back the bundles, which the test names as the code does:
``w.collections.users``, ``w.stores.history.ledger``, ``w.people.strangers``,
``w.recognizer.recognizer``. Everything is opened at once (nothing is built on
first use); the event source alone is opened by :func:`start_worker`, since an
MQTT worker that subscribes takes its share of the events whether or not it
runs. :func:`wired_server` puts a recognizer on a test server's own stores.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import dataclass

from facelens.bus.outbox import SqliteOutbox
from facelens.bus.publisher import Observer
from facelens.collection.analysis import FaceAnalyzer
from facelens.config import Settings
from facelens.recognizer.worker import RecognizerWorker
from facelens.storage.protocol import ObjectStore
from facelens.wiring.bus import (
    Publication,
    open_event_sink,
    open_event_source,
    open_outbox,
    open_publication,
)
from facelens.wiring.people import PeopleServices, people_services
from facelens.wiring.process import ProcessRole, process_role
from facelens.wiring.recognizer import RecognizerParts, open_recognizer
from facelens.wiring.stores import CollectionParts, Stores, notifying_objects, open_stores
from tests.servers.facelens_api import ApiServer


@dataclass(frozen=True)
class Wired:
    """A test process's bundles (see the module's docstring), on facelens' own collections."""

    settings: Settings
    role: ProcessRole
    publication: Publication
    stores: Stores
    collections: CollectionParts
    people: PeopleServices
    outbox: SqliteOutbox | None
    objects: ObjectStore
    """The notifying object store: a crop put here is an event for the recognizers."""
    recognizer: RecognizerParts


def open_wired(
    settings: Settings,
    stack: ExitStack,
    *,
    instance: str | None = None,
    analyzer: FaceAnalyzer | None = None,
    observers: Sequence[Observer] = (),
    stores: Stores | None = None,
    people: PeopleServices | None = None,
    publication: Publication | None = None,
) -> Wired:
    """The process ``instance`` (default: the recognizer's worker id) on ``settings``.
    ``analyzer``: the session's loaded engine (tests share one rather than loading dlib's
    models per test). ``stores``, ``people``, ``publication``: bundles opened already (a
    server's), which this process then shares."""
    role = process_role(settings, instance)
    if publication is None:
        publication = open_publication(settings, stack, role, observers)
    if stores is None:
        stores = open_stores(settings, stack, analyzer)
    collections = stores.own_collections()
    if people is None:
        people = people_services(
            settings, collections, stores.profiles, stores.history, stores.objects
        )
    outbox = open_outbox(settings, stack)
    sink = open_event_sink(settings, stack, publication, outbox=outbox)
    return Wired(
        settings=settings,
        role=role,
        publication=publication,
        stores=stores,
        collections=collections,
        people=people,
        outbox=outbox,
        objects=notifying_objects(settings, stores.objects, sink),
        recognizer=open_recognizer(settings, stack, stores, people, publication),
    )


def start_worker(
    wired: Wired, stack: ExitStack, *, wait_seconds: float = 0.2
) -> tuple[RecognizerWorker, threading.Thread, threading.Event]:
    """A worker of ``wired``'s recognizer on its event source (opened on ``stack``), running
    on a thread until the returned event is set; the caller joins the thread before ``stack``
    closes. Nothing is prepared first and no retention runs: the test decides."""
    source = open_event_source(wired.settings, stack, outbox=wired.outbox)
    worker = RecognizerWorker(source, wired.recognizer.recognizer, wait_seconds=wait_seconds)
    stop = threading.Event()
    thread = threading.Thread(target=worker.run, args=(stop,), daemon=True)
    thread.start()
    return worker, thread, stop


def wired_server(server: ApiServer) -> Wired:
    """A recognizer on ``server``'s own stores, people services and publication (as in
    ``facelens up``), closed with the server."""
    b = server.bundles
    stores = Stores(
        collections=b.collections(),
        rekognition=None,
        profiles=b.profiles(),
        objects=b.objects(),
        history=b.history(),
    )
    return open_wired(
        b.settings,
        server.stack,
        stores=stores,
        people=b.people(),
        publication=b.publication(),
    )

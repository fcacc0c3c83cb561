"""What the HTTP server (``facelens serve``, ``facelens up``) is built on.

The server's routes use most of facelens, but each request only a little:
a server whose collections are in AWS Rekognition still serves profiles,
and no engine is loaded before the first request that needs one. So
:class:`ServerBundles` holds the key store, opened now (the server checks
at start whether there are keys), and one provider per bundle, which opens
its bundle on the server's ExitStack on first use and returns the same one
after. ``facelens up`` hands over the bundles its recognizer already opened,
so that both share one set of stores.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass
from functools import partial
from typing import TypeVar

from facelens.access.keys import KeyStore
from facelens.collection.analysis import FaceAnalyzer
from facelens.config import Settings
from facelens.profiles.store import ProfileStore
from facelens.storage.protocol import ObjectStore
from facelens.wiring.bus import Publication, open_publication
from facelens.wiring.lifetime import close_later
from facelens.wiring.people import PeopleServices, people_services
from facelens.wiring.process import ProcessRole, home_file
from facelens.wiring.stores import (
    CollectionParts,
    History,
    Stores,
    build_analyzer,
    open_collections,
    open_history,
    open_profiles,
    open_raw_objects,
)

_T = TypeVar("_T")


def open_keys(settings: Settings, stack: ExitStack) -> KeyStore:
    """The API keys and AWS access keys the server checks, ``<home>/keys.db``."""
    keys = KeyStore(home_file(settings, "keys.db"))
    close_later(stack, keys.close)
    return keys


@dataclass(frozen=True)
class ServerBundles:
    """The key store, and a provider per bundle the routes use (see the module's docstring).
    ``collections`` (and ``people``, built on them) raise ConfigurationError, per call,
    when the collections are in AWS Rekognition."""

    settings: Settings
    keys: KeyStore
    analyzer: Callable[[], FaceAnalyzer]
    collections: Callable[[], CollectionParts]
    profiles: Callable[[], ProfileStore]
    objects: Callable[[], ObjectStore]
    """The object store without event notifications: crops are read from it, never put."""
    history: Callable[[], History]
    people: Callable[[], PeopleServices]
    publication: Callable[[], Publication]


def open_server_bundles(
    settings: Settings,
    stack: ExitStack,
    role: ProcessRole,
    *,
    stores: Stores | None = None,
    people: PeopleServices | None = None,
    publication: Publication | None = None,
    analyzer: FaceAnalyzer | None = None,
) -> ServerBundles:
    """The server's bundles for ``settings``; ``stores``, ``people`` and ``publication``, when
    given, are those this process opened already (``facelens up``), else each bundle is
    opened on ``stack`` when a request first needs it. ``analyzer``: the engine's, when one
    is loaded already (tests), else one built from the settings on first use."""
    if stores is None:
        engine = once(partial(build_analyzer, settings)) if analyzer is None else _given(analyzer)
        collections = once(lambda: open_collections(settings, stack, engine()))
        profiles = once(partial(open_profiles, settings, stack))
        objects = once(partial(open_raw_objects, settings, stack))
        history = once(partial(open_history, settings, stack))
    else:
        own = stores.collections
        engine = once(partial(build_analyzer, settings)) if own is None else _given(own.analyzer)
        collections = stores.own_collections
        profiles = _given(stores.profiles)
        objects = _given(stores.objects)
        history = _given(stores.history)
    people_of_server = (
        once(lambda: people_services(settings, collections(), profiles(), history(), objects()))
        if people is None
        else _given(people)
    )
    publication_of_server = (
        once(partial(open_publication, settings, stack, role))
        if publication is None
        else _given(publication)
    )
    return ServerBundles(
        settings=settings,
        keys=open_keys(settings, stack),
        analyzer=engine,
        collections=collections,
        profiles=profiles,
        objects=objects,
        history=history,
        people=people_of_server,
        publication=publication_of_server,
    )


def _given(part: _T) -> Callable[[], _T]:
    return lambda: part


def once(build: Callable[[], _T]) -> Callable[[], _T]:
    """``build`` called on first use only, by one thread; the same result after. A build
    that raises is tried again by the next caller (nothing is kept). The server's parts,
    here and in :mod:`facelens.api.serve`, are built this way: what a request never needs
    is never opened."""
    built: list[_T] = []
    lock = threading.Lock()

    def get() -> _T:
        with lock:
            if not built:
                built.append(build())
            return built[0]

    return get

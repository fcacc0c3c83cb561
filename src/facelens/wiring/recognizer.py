"""The recognizer, assembled once for every process that runs it.

``facelens recognizer``, ``facelens up`` and the Lambda handler all build
it with :func:`open_recognizer` (the finder, the recognizer, the retention
job and the notifier), and the two long-running ones start the worker and
the retention loop with :func:`start_worker`; the Lambda runs one worker
round per invocation on the events Lambda hands it.
"""

from __future__ import annotations

from contextlib import ExitStack
from dataclasses import dataclass

from facelens.bus.notify import Notifier
from facelens.bus.outbox import SqliteOutbox
from facelens.config import Settings
from facelens.people.matching import MatchPolicy
from facelens.people.retention import RetentionJob, start_retention
from facelens.recognizer.finders import EngineFinder, FaceFinder, RekognitionFinder, SearchOptions
from facelens.recognizer.service import Recognizer, RecognizerOptions
from facelens.recognizer.visits import VisitRules
from facelens.recognizer.worker import RecognizerWorker
from facelens.wiring.bus import Publication, open_event_source, open_notifier
from facelens.wiring.lifetime import close_later
from facelens.wiring.people import PeopleServices, match_policy, retention_job
from facelens.wiring.stores import CollectionParts, Stores


def search_options(settings: Settings) -> SearchOptions:
    """How the recognizer searches: its collection, and its rule's threshold or bound."""
    r = settings.recognizer
    return SearchOptions(
        collection_id=r.collection_id,
        face_match_threshold=r.face_match_threshold,
        max_faces=r.max_faces,
        max_false_identification_rate=(
            r.max_false_identification_rate if r.rule == "open-set" else None
        ),
    )


def visit_rules(settings: Settings) -> VisitRules:
    """How a visit's looks are judged: the finder's own rule (:func:`search_options`, so the
    two cannot drift) and the visit's bars around it."""
    o, v = search_options(settings), settings.recognizer.visits
    return VisitRules(
        max_fpir=o.max_false_identification_rate,
        threshold=o.face_match_threshold,
        revise_factor=v.revise_factor,
        keep_factor=v.keep_factor,
        similarity_margin=v.similarity_margin,
        max_revisions=v.max_revisions,
        max_looks=v.max_looks,
    )


def engine_finder(
    settings: Settings, collections: CollectionParts, policy: MatchPolicy
) -> EngineFinder:
    """Who a crop shows, by facelens' engine and collections, under the match policy."""
    return EngineFinder(
        collections.analyzer, collections.collections, policy, options=search_options(settings)
    )


def face_finder(settings: Settings, stores: Stores, people: PeopleServices | None) -> FaceFinder:
    """Who a crop shows: Rekognition's collection, or facelens' engine and collections under
    ``people``'s match policy (one made on ``stores`` when None)."""
    if stores.rekognition is not None:
        return RekognitionFinder(stores.rekognition, options=search_options(settings))
    collections = stores.own_collections()
    policy = people.policy if people is not None else match_policy(collections, stores.profiles)
    return engine_finder(settings, collections, policy)


@dataclass(frozen=True)
class RecognizerParts:
    """The recognizer, the retention job that deletes what it keeps once due, and its
    notifier (None without ``settings.notify``)."""

    recognizer: Recognizer
    retention: RetentionJob
    notifier: Notifier | None


def open_recognizer(
    settings: Settings,
    stack: ExitStack,
    stores: Stores,
    people: PeopleServices | None,
    publication: Publication,
) -> RecognizerParts:
    """The recognizer on ``stores`` (``people``: :func:`facelens.wiring.people.people_of`
    the same stores, shared with whatever else this process serves), publishing through
    ``publication``. Nothing is loaded yet: :meth:`Recognizer.prepare` loads the engine."""
    r = settings.recognizer
    options = RecognizerOptions(
        prefix=r.prefix,
        suffix=r.suffix,
        topic=r.topic,
        collection_id=r.collection_id,
        worker_id=r.worker_id,
        claim_seconds=settings.events.visibility_timeout,
    )
    notifier = open_notifier(settings, stack)
    recognizer = Recognizer(
        objects=stores.objects,
        finder=face_finder(settings, stores, people),
        profiles=stores.profiles,
        ledger=stores.history.ledger,
        publisher=publication.publisher,
        notifier=notifier,
        options=options,
        strangers=people.strangers if r.strangers and people is not None else None,
        visits=stores.history.visits,
        visit_rules=visit_rules(settings),
    )
    retention = retention_job(settings, stores.history, stores.objects, people)
    return RecognizerParts(recognizer, retention, notifier)


def start_worker(
    settings: Settings,
    stack: ExitStack,
    parts: RecognizerParts,
    *,
    wait_seconds: float,
    outbox: SqliteOutbox | None = None,
    retention: bool = True,
) -> RecognizerWorker:
    """The recognizer prepared (its engine loaded), then a worker on the event source
    (``outbox``: this process's, when it also puts crops) for the caller's loop and, with
    ``retention``, the retention job every ``retention.interval_seconds`` on its own thread,
    until ``stack`` closes."""
    parts.recognizer.prepare()
    source = open_event_source(settings, stack, outbox=outbox)
    worker = RecognizerWorker(source, parts.recognizer, wait_seconds=wait_seconds)
    if retention:
        runner = start_retention(parts.retention, settings.retention)
        if runner is not None:
            close_later(stack, runner.stop)
    return worker
